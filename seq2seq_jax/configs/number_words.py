"""English -> French number names (char level): "ninety-seven" -> "quatre-vingt-dix-sept".

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/number_words.py --workdir=runs/number_words
"""

from seq2seq_jax.configs import default


def get_config():
    config = default.get_config()
    config.data.dataset = "number_words/en_fr"
    config.model.cell = "lstm"
    config.model.bidirectional = True
    config.model.hidden_size = 128
    config.model.embedding_size = 64
    config.train.num_steps = 6000
    config.train.batch_size = 64
    config.eval.metrics = ("seq_acc", "chrf", "cer")
    config.eval.best_metric = "seq_acc"
    return config
