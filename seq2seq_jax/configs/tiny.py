"""A small attention GRU that learns to reverse short strings in well under a minute on 2 CPU cores."""

from seq2seq_jax.configs import default


def get_config():
    config = default.get_config()
    config.model.cell = "gru"
    config.model.embedding_size = 32
    config.model.hidden_size = 64
    config.model.attention_size = 64
    config.data.dataset = "synthetic/reverse"
    config.data.num_train = 5000
    config.data.num_validation = 200
    config.data.num_test = 200
    config.data.synthetic_min_length = 1
    config.data.synthetic_max_length = 12
    config.data.num_buckets = 2
    config.train.num_steps = 600
    config.train.batch_size = 64
    config.train.learning_rate = 3e-3
    config.train.log_every = 50
    config.train.eval_every = 300
    config.train.checkpoint_every = 300
    config.eval.max_validation_examples = 200
    config.eval.metrics = ("seq_acc", "token_acc")
    return config
