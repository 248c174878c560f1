"""The default run: an additive-attention LSTM on English -> French number names; and ``validate(config)``.

Every other config imports this and overrides a few fields; on the command line any field can be
overridden, e.g. ``--config.model.decoder=bottleneck --config.train.num_steps=500``.

Each section is validated by the file that defines its fields: ``train`` and ``eval`` here
(``check_train``, ``check_eval``), ``model`` by ``model.ModelConfig``, ``data`` by ``data.config.validate``.
"""

import math

import jax
import ml_collections

from seq2seq_jax import inference
from seq2seq_jax import metrics as metrics_lib
from seq2seq_jax.configs.model import get_model_config
from seq2seq_jax.data import config as data_config_lib
from seq2seq_jax.data.config import get_data_config
from seq2seq_jax.model import ModelConfig

OPTIMIZERS = ("adam", "sgd", "adadelta")  # train.optimizer (seq2seq_jax.optim builds each)
SCHEDULES = ("constant", "halving", "warmup_decay", "plateau")  # train.schedule


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
    # 'warmup_decay' (linear warmup, then cosine decay to 0) | 'plateau' (multiply by plateau_factor when the
    # training loss, averaged over plateau_window updates, stops improving; optax.contrib.reduce_on_plateau).
    t.schedule = "constant"
    # Steps of linear warmup for schedule='warmup_decay'.
    t.warmup_steps = 100
    # First step at which schedule='halving' halves the learning rate.
    t.halving_start = 2500
    # Steps between halvings for schedule='halving'.
    t.halving_every = 500
    # schedule='plateau': factor applied to the learning rate at each plateau.
    t.plateau_factor = 0.5
    # schedule='plateau': windows without improvement (relative 1e-4) before the learning rate drops.
    t.plateau_patience = 5
    # schedule='plateau': updates whose mean training loss is one value of the plateau test.
    t.plateau_window = 100
    # Batches whose gradients are averaged into one update (optax.MultiSteps; fairseq --update-freq): the same
    # update with 1/k of the batch in memory. num_steps, the schedule and checkpoints count updates.
    t.accumulate_steps = 1
    # Stop training after this many validation evaluations (every eval_every steps) without a better
    # eval.best_metric, then evaluate as usual (fairseq --patience); 0 = train all num_steps.
    t.early_stopping_patience = 0
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
    # Validation and test examples decoded at the end of training: each split's first N (0 = all). TFDS stores a
    # split shuffled, so they are a sample of it; for smoke settings, whose scores are then not the split's.
    e.max_final_examples = 0
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


# --- Validation --------------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(ok: bool, section: str, field: str, value, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{section}.{field}={value!r} must be {allowed}")


def check_train(t: ml_collections.ConfigDict) -> None:
    """One clear ``ValueError`` naming the first bad ``train.*`` field."""
    for field in ("num_steps", "batch_size", "log_every", "keep_checkpoints", "checkpoint_every", "halving_every",
                  "plateau_patience", "plateau_window", "accumulate_steps"):
        _check(_is_int(t[field]) and t[field] >= 1, "train", field, t[field], "a positive integer")
    for field in ("halving_start", "warmup_steps", "early_stopping_patience"):
        _check(_is_int(t[field]) and t[field] >= 0, "train", field, t[field], "a non-negative integer")
    _check(_is_int(t.eval_every) and t.eval_every >= 0, "train", "eval_every", t.eval_every,
           "a non-negative integer (0 = at the end)")
    _check(_is_int(t.seed) and 0 <= t.seed < 2**31 - 1, "train", "seed", t.seed, "an integer in [0, 2**31 - 1)")
    if t.optimizer not in OPTIMIZERS:
        raise ValueError(f"train.optimizer={t.optimizer!r} is not allowed; allowed: {list(OPTIMIZERS)}")
    if t.schedule not in SCHEDULES:
        raise ValueError(f"train.schedule={t.schedule!r} is not allowed; allowed: {list(SCHEDULES)}")
    _check(_is_number(t.plateau_factor) and 0 < t.plateau_factor < 1, "train", "plateau_factor", t.plateau_factor,
           "a number in (0, 1)")
    if t.accumulate_steps > 1 and t.skip_nonfinite_updates:
        raise ValueError("train.accumulate_steps > 1 cannot be combined with train.skip_nonfinite_updates=True "
                         "(a skipped batch would leave its update short of a batch): set one of them back")
    if t.early_stopping_patience and not t.eval_every:
        raise ValueError(f"train.early_stopping_patience={t.early_stopping_patience} needs validation during "
                         "training: set train.eval_every > 0 (steps between evaluations)")
    # inf is allowed: the per-step check stops such a run at its first step, naming it.
    _check(_is_number(t.learning_rate) and t.learning_rate > 0, "train", "learning_rate", t.learning_rate,
           "a positive number")
    _check(_is_number(t.label_smoothing) and 0.0 <= t.label_smoothing < 1.0, "train", "label_smoothing",
           t.label_smoothing, "a number in [0, 1)")
    _check(_is_number(t.max_grad_norm) and 0 <= t.max_grad_norm < math.inf, "train", "max_grad_norm",
           t.max_grad_norm, "a finite number >= 0 (0 = no clipping)")
    _check(_is_number(t.max_loss) and t.max_loss > 0, "train", "max_loss", t.max_loss,
           "a positive number (inf = no bound)")
    _check(_is_number(t.max_grad_norm_abort) and t.max_grad_norm_abort >= 0, "train", "max_grad_norm_abort",
           t.max_grad_norm_abort, "a number >= 0 (0 = no bound)")
    _check(isinstance(t.skip_nonfinite_updates, bool), "train", "skip_nonfinite_updates", t.skip_nonfinite_updates,
           "True or False")
    if t.batch_size % jax.device_count():
        raise ValueError(f"train.batch_size={t.batch_size} must be divisible by the {jax.device_count()} devices")


def check_eval(e: ml_collections.ConfigDict) -> None:
    """One clear ``ValueError`` naming the first bad ``eval.*`` field."""
    _check(_is_int(e.beam_size) and e.beam_size >= 1, "eval", "beam_size", e.beam_size, "a positive integer")
    _check(_is_int(e.test_beam_size) and e.test_beam_size >= 0, "eval", "test_beam_size", e.test_beam_size,
           "a non-negative integer (0 = eval.beam_size)")
    _check(_is_number(e.length_penalty) and 0 <= e.length_penalty < math.inf, "eval", "length_penalty",
           e.length_penalty, "a finite number >= 0")
    _check(_is_number(e.max_output_ratio) and 0 <= e.max_output_ratio < math.inf, "eval", "max_output_ratio",
           e.max_output_ratio, "a finite number >= 0")
    _check(_is_int(e.max_output_extra) and e.max_output_extra >= (0 if e.max_output_ratio > 0 else 1), "eval",
           "max_output_extra", e.max_output_extra,
           f"an integer >= {0 if e.max_output_ratio > 0 else 1} (outputs need at least one token)")
    _check(_is_int(e.max_validation_examples) and e.max_validation_examples >= 0, "eval", "max_validation_examples",
           e.max_validation_examples, "a non-negative integer (0 = all)")
    final = e.get("max_final_examples", 0)  # get: absent from the configs of runs made before the field existed
    _check(_is_int(final) and final >= 0, "eval", "max_final_examples", final, "a non-negative integer (0 = all)")
    _check(_is_int(e.num_length_buckets) and e.num_length_buckets >= 1, "eval", "num_length_buckets",
           e.num_length_buckets, "a positive integer")
    edges = e.get("length_edges")  # get: absent from the configs of runs made before the field existed
    _check(edges is None or (isinstance(edges, (list, tuple)) and len(edges) >= 1 and all(_is_int(x) for x in edges)
                             and all(a < b for a, b in zip(edges, edges[1:])) and edges[0] >= 0),
           "eval", "length_edges", edges, "None or increasing integers >= 0, e.g. (0, 10, 20)")
    _check(e.get("length_unit", "tokens") in inference.LENGTH_UNITS, "eval", "length_unit", e.get("length_unit"),
           " or ".join(repr(u) for u in inference.LENGTH_UNITS))
    if e.best_mode not in ("max", "min"):
        raise ValueError(f"eval.best_mode={e.best_mode!r} is not allowed; allowed: ['max', 'min']")
    _check(isinstance(e.metrics, (list, tuple)) and e.metrics and all(isinstance(m, str) for m in e.metrics), "eval",
           "metrics", e.metrics, f"a non-empty list of metric names from {sorted(metrics_lib.METRICS)}")
    unknown = [m for m in e.metrics if m not in metrics_lib.METRICS]
    if unknown:
        raise ValueError(f"eval.metrics has unknown metric(s) {unknown}; allowed: {sorted(metrics_lib.METRICS)}")
    if e.best_metric not in (*e.metrics, "loss", "perplexity"):
        raise ValueError(f"eval.best_metric={e.best_metric!r} must be one of eval.metrics {list(e.metrics)} "
                         "or 'loss'/'perplexity'")


def check_types(config: ml_collections.ConfigDict) -> None:
    """Each field has the type of its default (ints for floats allowed, None left to the section checks)."""
    defaults = get_config()
    for section in defaults:
        if not isinstance(config.get(section), (dict, ml_collections.ConfigDict)):
            raise ValueError(f"config.{section} is missing or not a section: {config.get(section)!r}")
        unknown = sorted(set(config[section]) - set(defaults[section]))
        if unknown:
            raise ValueError(f"config.{section} has unknown field(s) {unknown}; allowed: {sorted(defaults[section])}")
        for field, value in config[section].items():
            default = defaults[section][field]
            if value is None or default is None:
                continue
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = _is_int(value)
            elif isinstance(default, float):
                ok = _is_number(value)
            elif isinstance(default, (list, tuple)):
                ok = isinstance(value, (list, tuple))
            else:
                ok = isinstance(value, type(default))
            if not ok:
                raise ValueError(f"{section}.{field}={value!r} has the wrong type: {type(value).__name__}, "
                                 f"expected {type(default).__name__} like the default {default!r}")


def validate(config: ml_collections.ConfigDict) -> None:
    """Every section of a run's config, before any I/O: one ``ValueError`` naming the first bad field."""
    check_types(config)
    check_train(config.train)
    check_eval(config.eval)
    ModelConfig.from_config(config.model, source_vocab_size=4, target_vocab_size=4)
    data_config_lib.validate(config.data)
    if config.data.dataset == "parallel_text":  # training ends by selecting on validation and scoring test
        for split, use in (("validation", "selects its best checkpoint on"), ("test", "ends by scoring")):
            if config.data[f"{split}_file"] is None:
                raise ValueError(f"data.{split}_file: training on parallel_text needs a {split} file ('path.tsv' or "
                                 f"'src_path,tgt_path'): the run {use} the {split} split.")
