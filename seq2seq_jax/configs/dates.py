"""Human-readable dates in many locales and formats -> ISO 8601 (YYYY-MM-DD).

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/dates.py --workdir=runs/dates
"""

from seq2seq_jax.configs import default


def get_config():
    config = default.get_config()
    config.data.dataset = "dates"
    config.model.cell = "gru"
    config.model.bidirectional = True
    config.model.hidden_size = 128
    config.train.num_steps = 4000
    config.eval.metrics = ("seq_acc", "cer")
    return config
