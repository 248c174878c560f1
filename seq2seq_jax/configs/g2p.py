"""Grapheme-to-phoneme on the CMU Pronouncing Dictionary: letters -> ARPAbet phones (no stress marks).

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/g2p.py --workdir=runs/g2p

PER and WER count a word right if it matches any of its dictionary pronunciations.
"""

from seq2seq_jax.configs import default


def get_config():
    config = default.get_config()
    config.data.dataset = "cmudict_g2p/no_stress"
    config.data.source_vocab = "char"
    config.data.target_vocab = "word"  # one token per phone
    config.model.cell = "lstm"
    config.model.bidirectional = True
    config.model.hidden_size = 256
    config.model.embedding_size = 64
    config.model.attention_size = 128
    config.model.dropout = 0.2
    config.train.num_steps = 20000
    config.train.batch_size = 128
    config.train.schedule = "warmup_decay"
    config.train.eval_every = 2000
    config.train.checkpoint_every = 2000
    config.eval.beam_size = 5
    config.eval.metrics = ("per", "wer", "seq_acc")
    config.eval.best_metric = "per"
    config.eval.best_mode = "min"
    return config
