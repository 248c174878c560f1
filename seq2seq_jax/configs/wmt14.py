"""WMT'14 French -> English with SentencePiece, sized for one GPU (Bahdanau et al. 2014's RNNsearch,
smaller): needs the TFDS catalog data, downloaded once with internet access into ``data.data_dir``.

  python -m seq2seq_jax.main --config=seq2seq_jax/configs/wmt14.py --workdir=runs/wmt14 \\
      --config.data.data_dir=/path/to/tensorflow_datasets
"""

from seq2seq_jax.configs import default


def get_config():
    config = default.get_config()
    config.data.dataset = "wmt14_translate/fr-en"
    config.data.source_vocab = "sentencepiece"
    config.data.target_vocab = "sentencepiece"
    config.data.vocab_size = 16000
    config.data.max_source_length = 50
    config.data.max_target_length = 50
    config.data.num_buckets = 5
    config.model.cell = "gru"
    config.model.bidirectional = True
    config.model.embedding_size = 512
    config.model.hidden_size = 1000
    config.model.attention_size = 1000
    config.model.dropout = 0.2
    config.model.dtype = "bfloat16"
    config.train.num_steps = 200000
    config.train.batch_size = 128
    config.train.learning_rate = 5e-4
    config.train.max_grad_norm = 1.0
    config.train.schedule = "warmup_decay"
    config.train.warmup_steps = 2000
    config.train.eval_every = 10000
    config.train.checkpoint_every = 5000
    config.eval.beam_size = 5
    config.eval.length_penalty = 0.6
    config.eval.max_validation_examples = 1000
    config.eval.metrics = ("bleu", "chrf")
    config.eval.best_metric = "bleu"
    return config
