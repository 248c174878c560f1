"""Grapheme-to-phoneme on the CMU Pronouncing Dictionary: letters -> ARPAbet phones (no stress marks).

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/g2p.py:cpu --workdir=runs/g2p

An attention LSTM (bidirectional encoder, Bahdanau 2014); the `g2p_cmudict` study also trains the
bottleneck variant (`--config.model.decoder=bottleneck --config.model.bidirectional=False
--config.model.reverse_source=True`). Validation during training is greedy; the selected checkpoint decodes
the test split with a beam of 5 (`eval.test_beam_size`). PER and WER count a word right if it matches any
of its dictionary pronunciations.

Settings (the argument after ``:``; default ``cpu``):
  quick  hidden 64, 400 steps: ~2-3 minutes for both study variants on 2 CPU cores.
  cpu    hidden 128, 20k steps (~21 epochs), label smoothing 0.1: the README's setting, ~27 min.
  gpu    hidden 512, dropout 0.3, 30k steps, batch 256.
"""

import ml_collections

from seq2seq_jax.configs import default

SETTINGS = ("quick", "cpu", "gpu")


def get_config(setting: str = "cpu") -> ml_collections.ConfigDict:
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r} is not one of {list(SETTINGS)}")
    c = default.get_config()
    c.data.dataset = "cmudict_g2p/no_stress"
    c.data.source_vocab = "char"
    c.data.target_vocab = "word"  # one token per phone
    c.data.num_buckets = 3
    c.model.cell = "lstm"
    c.model.bidirectional = True
    c.train.learning_rate = 2e-3
    c.train.schedule = "warmup_decay"
    c.train.max_grad_norm = 1.0
    c.train.log_every = 100
    c.eval.beam_size = 1  # greedy validation during training
    c.eval.test_beam_size = 5  # the selected checkpoint decodes test with a beam
    c.eval.metrics = ("per", "wer", "seq_acc")
    c.eval.best_metric = "per"
    c.eval.best_mode = "min"
    c.eval.max_validation_examples = 1000
    c.eval.max_output_ratio = 1.5
    c.eval.max_output_extra = 5
    if setting == "quick":
        c.model.embedding_size, c.model.hidden_size, c.model.attention_size = 32, 64, 64
        c.train.batch_size, c.train.num_steps, c.train.warmup_steps = 64, 400, 50
        c.train.eval_every, c.train.checkpoint_every = 0, 400
        c.eval.max_validation_examples = 300
    elif setting == "cpu":
        # ~21 epochs of the 121k training pronunciations: in a 30-minute budget a small model gains more from
        # epochs than from width (batch 256 halves the steps per second: the CPU is compute-bound). 8000
        # steps without label smoothing stayed well above 26% beam-5 WER, 15k steps gave 26.5%, and dropout
        # 0.2 made both variants worse within 15k steps.
        c.model.embedding_size, c.model.hidden_size, c.model.attention_size = 64, 128, 128
        c.train.batch_size, c.train.num_steps, c.train.warmup_steps = 128, 20_000, 300
        c.train.label_smoothing = 0.1
        c.train.eval_every = c.train.checkpoint_every = 2500
    else:
        c.model.embedding_size, c.model.hidden_size, c.model.attention_size = 256, 512, 512
        c.model.dropout = 0.3
        c.train.batch_size, c.train.num_steps, c.train.warmup_steps = 256, 30_000, 1000
        c.train.learning_rate = 1e-3
        c.train.eval_every = c.train.checkpoint_every = 2000
    return c
