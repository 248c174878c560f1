"""English number names -> their decimal digits: the task of the bottleneck, reversal, cell and attention studies.

"sixty-seven million, three hundred and twenty-six thousand, five hundred and fifty-one" -> "67326551"
(`number_words/digits_en` with `data.reverse_pair=True`). Digit counts are uniform in 1..9, so sources run
from 1 to 14 words (3 to 110 characters) while targets stay at most 9 characters: decoding is cheap, and
what varies is how much source the model must carry. The first digit depends on the first words, which a
fixed-vector encoder must keep across the whole sentence.

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/number_digits.py:quick --workdir=runs/digits

Settings (the argument after ``:``; default ``cpu``):
  quick  word sources (1-14 steps), GRU 128, 1000 steps, validation only at the end; ~25 s a run
         on 2 cores.
  cpu    word sources, GRU 128, 50k examples, 3000 steps, validation every 1000; ~35 s a run on 2 cores.
  gpu    character sources (3-110 steps: a harder test of the fixed vector), LSTM 256, 20k steps.
"""

import ml_collections

from seq2seq_jax.configs import default

SETTINGS = ("quick", "cpu", "gpu")


def get_config(setting: str = "cpu") -> ml_collections.ConfigDict:
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r} is not one of {list(SETTINGS)}")
    c = default.get_config()
    c.data.dataset = "number_words/digits_en"
    c.data.reverse_pair = True
    c.data.target_vocab = "char"
    c.data.source_vocab = "char" if setting == "gpu" else "word"
    c.model.cell = "lstm" if setting == "gpu" else "gru"
    c.model.forget_bias = 1.0  # LSTM only (Jozefowicz et al. 2015): remembers from the first step
    # Targets are at most 9 digits + EOS, whatever the source length.
    c.eval.max_output_ratio = 0.0
    c.eval.max_output_extra = 12
    c.eval.metrics = ("seq_acc", "chrf", "cer")
    c.eval.num_length_buckets = 5
    c.train.schedule = "warmup_decay"
    if setting == "quick":
        c.data.num_train, c.data.num_validation, c.data.num_test = 20_000, 300, 1000
        c.data.num_buckets = 3
        c.model.embedding_size = 32
        c.model.hidden_size = c.model.attention_size = 128
        c.train.batch_size = 64
        c.train.learning_rate = 3e-3
        c.train.warmup_steps = 50
        c.train.num_steps = 1000
        # Validation only at the end: no periodic decoding, one checkpoint.
        c.train.eval_every = 0
        c.train.checkpoint_every = 1000
        c.train.log_every = 25
        c.eval.max_validation_examples = 0
    elif setting == "cpu":
        c.data.num_train, c.data.num_validation, c.data.num_test = 50_000, 1000, 2000
        c.data.num_buckets = 3
        c.model.embedding_size = 32
        c.model.hidden_size = c.model.attention_size = 128
        c.train.batch_size = 64
        c.train.learning_rate = 3e-3
        c.train.warmup_steps = 100
        c.train.num_steps = 3000
        c.train.eval_every = c.train.checkpoint_every = 1000
        c.train.log_every = 50
        c.eval.max_validation_examples = 300
    else:
        c.data.num_validation, c.data.num_test = 2000, 2000
        c.model.embedding_size = 64
        c.model.hidden_size = c.model.attention_size = 256
        c.train.batch_size = 128
        c.train.learning_rate = 1e-3
        c.train.warmup_steps = 500
        c.train.num_steps = 20_000
        c.train.eval_every = c.train.checkpoint_every = 2000
        c.train.log_every = 100
        c.eval.max_validation_examples = 2000
    return c
