"""WMT'14 French -> English with SentencePiece: the fixed vector vs attention at scale (Bahdanau et al. 2014).

Needs the TFDS catalog data, downloaded once with internet access into ``data.data_dir`` (tens of GB):

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/wmt14.py:gpu --workdir=runs/wmt14 \\
      --config.data.data_dir=/path/to/tensorflow_datasets

An attention LSTM (bidirectional encoder); the `wmt14` study also trains the bottleneck variant. Validation
during training is greedy on 1000 sentences; the selected checkpoint decodes newstest2014 with a beam of 5
and GNMT length penalty 0.6 (`eval.test_beam_size`, `eval.length_penalty`).

Settings (the argument after ``:``; default ``gpu``):
  quick  a smoke test (tiny model, 200 steps, e.g. on `tfds.testing.mock_data`).
  cpu    a small model on sentences of at most 30 pieces, 5000 steps: a sanity run, hours on 2 cores.
  gpu    about Bahdanau's RNNsearch size (1024 hidden, 512 embeddings), 200k steps, bfloat16.
"""

import ml_collections

from seq2seq_jax.configs import default

SETTINGS = ("quick", "cpu", "gpu")


def get_config(setting: str = "gpu") -> ml_collections.ConfigDict:
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r} is not one of {list(SETTINGS)}")
    c = default.get_config()
    c.data.dataset = "wmt14_translate/fr-en"
    c.data.source_vocab = "sentencepiece"
    c.data.target_vocab = "sentencepiece"
    c.model.cell = "lstm"
    c.model.bidirectional = True
    c.train.schedule = "warmup_decay"
    c.train.max_grad_norm = 1.0
    c.eval.beam_size = 1  # greedy validation during training
    c.eval.test_beam_size = 5
    c.eval.length_penalty = 0.6
    c.eval.max_output_ratio = 1.5
    c.eval.max_output_extra = 10
    c.eval.metrics = ("bleu", "chrf")
    c.eval.best_metric = "bleu"
    c.eval.max_validation_examples = 1000
    if setting == "quick":
        c.data.vocab_size, c.data.max_source_length, c.data.max_target_length = 500, 64, 64
        c.data.num_buckets = 2
        c.model.embedding_size, c.model.hidden_size, c.model.attention_size = 32, 64, 64
        c.train.batch_size, c.train.num_steps, c.train.warmup_steps = 16, 200, 20
        c.train.eval_every, c.train.checkpoint_every, c.train.log_every = 0, 200, 50
        c.eval.test_beam_size = 2
        c.eval.max_validation_examples = 100
    elif setting == "cpu":
        c.data.vocab_size, c.data.max_source_length, c.data.max_target_length = 8000, 30, 30
        c.data.num_buckets = 3
        c.model.embedding_size, c.model.hidden_size, c.model.attention_size = 128, 256, 256
        c.train.batch_size, c.train.num_steps, c.train.warmup_steps = 64, 5000, 500
        c.train.eval_every = c.train.checkpoint_every = 1000
        c.train.log_every = 100
        c.eval.max_validation_examples = 200
    else:
        c.data.vocab_size, c.data.max_source_length, c.data.max_target_length = 16_000, 80, 80
        c.data.num_buckets = 6
        c.model.embedding_size, c.model.hidden_size, c.model.attention_size = 512, 1024, 1024
        c.model.dropout = 0.2
        c.model.dtype = "bfloat16"
        c.train.batch_size, c.train.num_steps, c.train.warmup_steps = 128, 200_000, 4000
        c.train.learning_rate = 5e-4
        c.train.eval_every, c.train.checkpoint_every, c.train.log_every = 10_000, 5000, 200
    return c
