"""The default run: an additive-attention LSTM on English -> French number names.

Every other config imports this and overrides a few fields; on the command line any field can be
overridden, e.g. ``--config.model.decoder=bottleneck --config.train.num_steps=500``.
"""

import ml_collections

from seq2seq_jax.configs.model import get_model_config
from seq2seq_jax.data.config import get_data_config


def get_train_config() -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    # Number of optimizer steps.
    t.num_steps = 5000
    # Examples per batch (global, over all devices).
    t.batch_size = 64
    # Peak learning rate.
    t.learning_rate = 1e-3
    # 'adam' | 'sgd' (Sutskever 2014) | 'adadelta' (Bahdanau 2014, eps=1e-6, rho=0.95).
    t.optimizer = "adam"
    # 'constant' | 'halving' (Sutskever: halve every halving_every steps from halving_start) |
    # 'warmup_decay' (linear warmup, then cosine decay to 0).
    t.schedule = "constant"
    # Steps of linear warmup for schedule='warmup_decay'.
    t.warmup_steps = 100
    # First step at which schedule='halving' halves the learning rate.
    t.halving_start = 2500
    # Steps between halvings for schedule='halving'.
    t.halving_every = 500
    # Clip gradients to this global norm (Sutskever: 5; Bahdanau: 1); 0 = no clipping.
    t.max_grad_norm = 5.0
    # Stop the run at the first step whose training loss exceeds this (a diverged run: cross-entropy of a
    # working model stays near log(vocabulary size)); non-finite losses always stop it. inf = no bound.
    t.max_loss = 1e4
    # Stop the run at the first step whose gradient norm (before clipping) exceeds this; 0 = no bound
    # (the default, as exploding gradients of vanilla RNNs are studied here, and clipping handles them).
    t.max_grad_norm_abort = 0.0
    # Skip (instead of stopping at) updates whose gradients are NaN/inf (optax.apply_if_finite), counted as
    # skipped_updates in metrics.jsonl; the run still stops if the parameters themselves become non-finite.
    t.skip_nonfinite_updates = False
    # Label smoothing of the cross-entropy (0 = none).
    t.label_smoothing = 0.0
    # Seed of parameter initialisation, dropout and data order.
    t.seed = 0
    # Steps between training-metric rows in metrics.jsonl / TensorBoard.
    t.log_every = 50
    # Steps between validation evaluations (0 = only at the end).
    t.eval_every = 1000
    # Steps between checkpoints (the last step is always saved).
    t.checkpoint_every = 1000
    # Number of most recent checkpoints kept (the best one is kept as well).
    t.keep_checkpoints = 2
    return t


def get_eval_config() -> ml_collections.ConfigDict:
    e = ml_collections.ConfigDict()
    # Beam size of validation/test decoding (1 = greedy).
    e.beam_size = 1
    # Beam size of the final test decoding, after model selection (0 = eval.beam_size): e.g. greedy
    # validation during training, a beam for the test score.
    e.test_beam_size = 0
    # GNMT length-penalty alpha for beam search (0 = plain log-probability).
    e.length_penalty = 0.0
    # Longest output is max_output_ratio * (source bucket length) + max_output_extra tokens.
    e.max_output_ratio = 2.0
    # Tokens added to the longest output (see max_output_ratio).
    e.max_output_extra = 10
    # Validation examples decoded at each eval_every (0 = all).
    e.max_validation_examples = 1000
    # Metrics computed on decoded outputs (see seq2seq_jax.metrics.METRICS).
    e.metrics = ("seq_acc", "token_acc", "bleu", "chrf")
    # Validation metric that picks the best checkpoint.
    e.best_metric = "seq_acc"
    # 'max' if a larger best_metric is better, 'min' if smaller is (loss, per, wer, cer).
    e.best_mode = "max"
    # Number of source-length buckets in the by-length breakdown (quantiles of the split's source lengths).
    e.num_length_buckets = 5
    # Fixed bucket edges instead, e.g. (0, 10, 20, 30, 40, 50) for Bahdanau's fig. 2: buckets [0, 10), ...,
    # and [50, inf); None = quantile buckets.
    e.length_edges = None
    # What the by-length breakdown counts: 'tokens' (of the source vocabulary) or 'words' (whitespace-separated
    # words of the raw source, the same for every vocabulary: how fig. 2 counts).
    e.length_unit = "tokens"
    return e


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Model architecture (seq2seq_jax/configs/model.py documents each field).
    config.model = get_model_config()
    # Dataset, vocabularies, length limits and buckets (seq2seq_jax/data/config.py).
    config.data = get_data_config()
    # Optimisation, logging and checkpointing.
    config.train = get_train_config()
    # Decoding and metrics of validation and test.
    config.eval = get_eval_config()
    return config
