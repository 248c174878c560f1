"""Copy random strings through a fixed-vector encoder–decoder: the task of the gradient-flow study.

A bottleneck model (Sutskever et al. 2014) with Sutskever's U(-0.08, 0.08) initialisation and LSTM forget
bias 1.0 copies strings over a 10-letter alphabet (`synthetic/copy`); everything the decoder writes must
have crossed the whole encoder, so copy accuracy by length shows how far back each cell remembers.

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/copy.py:quick --workdir=runs/copy

Settings (the argument after ``:``; default ``cpu``):
  quick  strings of 1-10 letters, hidden 128, 1500 steps: the gated cells learn to copy most lengths.
  cpu    strings of 1-20 letters, hidden 128, 4000 steps.
  gpu    strings of 1-40 letters, hidden 256, 10k steps.
"""

import ml_collections

from seq2seq_jax.configs import default

SETTINGS = ("quick", "cpu", "gpu")


def get_config(setting: str = "cpu") -> ml_collections.ConfigDict:
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r} is not one of {list(SETTINGS)}")
    c = default.get_config()
    c.model.decoder = "bottleneck"
    c.model.cell = "lstm"
    c.model.embedding_size = 32
    c.model.init = "uniform"  # Sutskever 2014, sec. 3.4
    c.model.init_scale = 0.08
    c.model.forget_bias = 1.0  # LSTM only (Jozefowicz et al. 2015)
    c.data.dataset = "synthetic/copy"
    c.data.synthetic_min_length = 1
    c.data.synthetic_alphabet_size = 10
    c.data.num_validation = 500
    c.data.num_test = 1000
    c.data.num_buckets = 3
    c.train.batch_size = 64
    c.train.learning_rate = 3e-3
    c.train.max_grad_norm = 5.0
    c.train.log_every = 100
    # Copy strings have no spaces, so whitespace-token metrics would see one token: characters (cer).
    c.eval.metrics = ("seq_acc", "cer")
    c.eval.max_validation_examples = 500
    c.eval.num_length_buckets = 4
    length, train, hidden, steps = {"quick": (10, 10_000, 128, 1500), "cpu": (20, 20_000, 128, 4000),
                                    "gpu": (40, 50_000, 256, 10_000)}[setting]
    c.data.synthetic_max_length = length
    c.data.num_train = train
    c.model.hidden_size = c.model.attention_size = hidden
    c.train.num_steps = steps
    c.train.eval_every = 0 if setting == "quick" else steps // 4
    c.train.checkpoint_every = steps if setting == "quick" else steps // 4
    return c
