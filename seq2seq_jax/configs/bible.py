"""Spanish -> English Bible verses (Reina-Valera 1909 -> World English Bible): real sentences of 1-60 words.

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/bible.py:cpu --workdir=runs/bible
  echo "En el principio crió Dios los cielos y la tierra." | python -m seq2seq_jax.translate --workdir=runs/bible

The data is the `bible/es-en` builder (Debian's `sword-text-sparv` and `sword-text-web`; see
`seq2seq_jax/data/datasets/bible.py`): verses aligned by reference, whole chapters held out for validation
and test, no verse over 60 words (the span of Bahdanau et al. 2014, fig. 2). Sentencepiece on each side;
outputs are detokenised before BLEU and chrF (sacrebleu) against the raw references, and the by-length
breakdown counts the source's words in buckets of ten, as fig. 2 does. An attention LSTM (bidirectional
encoder, Bahdanau 2014); the `bible_es_en` study also trains the fixed-vector model (reversed source,
Sutskever 2014). Validation is greedy; the selected checkpoint decodes test with a beam.

Settings (the argument after ``:``; default ``cpu``):
  quick  sentencepiece 4000, embedding/hidden 128, 60 steps, greedy, scored on 300 validation and test verses:
         a smoke test of the study (under 10 minutes on 2 cores), no more.
  cpu    sentencepiece 4000, embedding/hidden 256, the README's setting.
  gpu    Bahdanau's size: embedding 620, hidden 1000, beam 12; sentencepiece 16000.
The attention size (Bahdanau's n') is half the hidden size, so that the fixed-vector model (2 layers, see
the study) and the attention model differ by less than 10% in parameters in every setting.
"""

import ml_collections

from seq2seq_jax.configs import default

SETTINGS = ("quick", "cpu", "gpu")


def get_config(setting: str = "cpu") -> ml_collections.ConfigDict:
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r} is not one of {list(SETTINGS)}")
    c = default.get_config()
    c.data.dataset = "bible/es-en"
    c.data.source_vocab = c.data.target_vocab = "sentencepiece"
    c.model.cell = "lstm"
    c.model.bidirectional = True
    c.model.forget_bias = 1.0  # Jozefowicz et al. 2015: remembers from the first step
    c.train.optimizer = "adam"
    c.train.schedule = "warmup_decay"
    c.train.max_grad_norm = 1.0  # Bahdanau et al. 2014, appendix B.2.1
    c.train.label_smoothing = 0.1
    c.eval.metrics = ("bleu", "chrf")
    c.eval.best_metric = "bleu"
    c.eval.length_unit = "words"
    c.eval.length_edges = (0, 10, 20, 30, 40, 50)  # fig. 2's x axis, in buckets of ten words
    c.eval.beam_size = 1  # greedy validation during training
    c.eval.length_penalty = 0.6
    # English takes ~1.1 pieces per Spanish piece; a longest output of 1.5x + 10 leaves room for the
    # longest verses without letting a hypothesis that never ends decode for long.
    c.eval.max_output_ratio = 1.5
    c.eval.max_output_extra = 10
    # Padded shapes (source, target pieces) from the training split's lengths: quantile buckets would put the
    # longest quarter (40 to ~110 pieces) into one bucket padded to the longest verse; these pad the average
    # batch to ~39 target pieces instead of ~47. The last shape fits the longest verse at the setting's
    # vocabulary size (fewer pieces make longer verses).
    if setting == "quick":
        c.data.vocab_size = 4000
        c.data.bucket_boundaries = [(32, 32), (64, 64), (112, 96)]  # three shapes: less to compile
        c.model.embedding_size = c.model.hidden_size = 128
        c.model.attention_size = 64
        c.train.batch_size, c.train.learning_rate, c.train.warmup_steps = 64, 3e-3, 30
        c.train.num_steps = 60
        c.train.eval_every, c.train.checkpoint_every, c.train.log_every = 0, 60, 20
        c.eval.max_validation_examples = 200
        c.eval.max_final_examples = 300  # of 1,423 validation and 1,088 test verses: a sample, for time
        c.eval.test_beam_size = 1
    elif setting == "cpu":
        c.data.vocab_size = 4000
        c.data.bucket_boundaries = [(24, 24), (32, 32), (40, 40), (48, 48), (64, 64), (112, 96)]
        c.model.embedding_size = c.model.hidden_size = 256
        c.model.attention_size = 128
        c.train.batch_size, c.train.learning_rate, c.train.warmup_steps = 64, 2e-3, 100
        # 2000 updates: at 1000 attention's test BLEU still varied from 5.5 to 12.6 between seeds (still taking
        # off); 2000 is ~35-55 minutes a run for attention, ~25 for the bottleneck, on 2 CPU cores.
        c.train.num_steps = 2000
        c.train.eval_every = c.train.checkpoint_every = 1000
        c.train.log_every = 50
        c.eval.max_validation_examples = 400
        c.eval.test_beam_size = 5
    else:
        c.data.vocab_size = 16000
        c.data.bucket_boundaries = [(24, 24), (32, 32), (40, 40), (48, 48), (64, 64), (80, 88)]
        c.model.embedding_size, c.model.hidden_size, c.model.attention_size = 620, 1000, 500
        c.model.dropout = 0.3
        c.train.batch_size, c.train.learning_rate, c.train.warmup_steps = 80, 1e-3, 1000
        c.train.num_steps = 40_000
        c.train.eval_every = c.train.checkpoint_every = 2000
        c.train.log_every = 100
        c.eval.max_validation_examples = 0
        c.eval.test_beam_size = 12
    return c
