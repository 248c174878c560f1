"""Training and evaluation: pure jit-compiled steps and the loop ``train_and_evaluate(config, workdir)``.

``train_step(state, batch, ...)`` and ``eval_step(params, batch, ...)`` are pure module-level functions;
``train_and_evaluate`` binds their static settings with ``functools.partial`` and compiles them with the
state donated. Dropout keys are ``fold_in(PRNGKey(seed), step)``, so a resumed run draws the same masks.
Metrics come back as sums plus denominators, which makes averaging over batches and devices exact.
"""

import contextlib
import functools
import json
import math
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from seq2seq_jax import checkpointing
from seq2seq_jax import decoding
from seq2seq_jax import files
from seq2seq_jax import inference
from seq2seq_jax import metrics as metrics_lib
from seq2seq_jax import parallel
from seq2seq_jax.configs import default as default_config
from seq2seq_jax.data import config as data_config_lib
from seq2seq_jax.data import pipeline
from seq2seq_jax.data import vocab as vocab_lib
from seq2seq_jax.logger import MetricsLogger, record_start
from seq2seq_jax.model import ModelConfig, Seq2Seq, shift_right
from seq2seq_jax.parallel import data_mesh, shard_batch
from seq2seq_jax.recurrent import time_mask

OPTIMIZERS = ("adam", "sgd", "adadelta")
SCHEDULES = ("constant", "halving", "warmup_decay")
TrainState = train_state.TrainState


# With train.skip_nonfinite_updates, this many non-finite updates in a row are applied after all, so a
# run that cannot recover ends (its parameters become non-finite) instead of skipping forever.
MAX_CONSECUTIVE_SKIPS = 10
# Exit status of a run stopped by SIGTERM/SIGINT after saving its current step (BSD EX_TEMPFAIL: "try
# again later"); a scheduler requeues it and the same command resumes with no step lost.
EXIT_PREEMPTED = 75


class NonFiniteLossError(FloatingPointError):
    """Training diverged: a non-finite (or out-of-bounds) loss, gradient norm or parameter norm."""


class Preempted(Exception):
    """SIGTERM/SIGINT stopped the run; its current step was saved first (exit with ``EXIT_PREEMPTED``)."""


# --- Configuration ---------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_train_config(t: ml_collections.ConfigDict, e: ml_collections.ConfigDict) -> None:
    """One clear ``ValueError`` naming the first bad ``train.*`` or ``eval.*`` field."""
    def check(ok, section, field, value, allowed):
        if not ok:
            raise ValueError(f"{section}.{field}={value!r} must be {allowed}")

    for field in ("num_steps", "batch_size", "log_every", "keep_checkpoints", "checkpoint_every", "halving_every"):
        check(_is_int(t[field]) and t[field] >= 1, "train", field, t[field], "a positive integer")
    for field in ("halving_start", "warmup_steps"):
        check(_is_int(t[field]) and t[field] >= 0, "train", field, t[field], "a non-negative integer")
    check(_is_int(t.eval_every) and t.eval_every >= 0, "train", "eval_every", t.eval_every,
          "a non-negative integer (0 = at the end)")
    check(_is_int(t.seed) and 0 <= t.seed < 2**31 - 1, "train", "seed", t.seed, "an integer in [0, 2**31 - 1)")
    if t.optimizer not in OPTIMIZERS:
        raise ValueError(f"train.optimizer={t.optimizer!r} is not allowed; allowed: {list(OPTIMIZERS)}")
    if t.schedule not in SCHEDULES:
        raise ValueError(f"train.schedule={t.schedule!r} is not allowed; allowed: {list(SCHEDULES)}")
    # inf is allowed: the per-step check stops such a run at its first step, naming it.
    check(_is_number(t.learning_rate) and t.learning_rate > 0, "train", "learning_rate", t.learning_rate,
          "a positive number")
    check(_is_number(t.label_smoothing) and 0.0 <= t.label_smoothing < 1.0, "train", "label_smoothing",
          t.label_smoothing, "a number in [0, 1)")
    check(_is_number(t.max_grad_norm) and 0 <= t.max_grad_norm < math.inf, "train", "max_grad_norm",
          t.max_grad_norm, "a finite number >= 0 (0 = no clipping)")
    check(_is_number(t.max_loss) and t.max_loss > 0, "train", "max_loss", t.max_loss,
          "a positive number (inf = no bound)")
    check(_is_number(t.max_grad_norm_abort) and t.max_grad_norm_abort >= 0, "train", "max_grad_norm_abort",
          t.max_grad_norm_abort, "a number >= 0 (0 = no bound)")
    check(isinstance(t.skip_nonfinite_updates, bool), "train", "skip_nonfinite_updates", t.skip_nonfinite_updates,
          "True or False")
    if t.batch_size % jax.device_count():
        raise ValueError(f"train.batch_size={t.batch_size} must be divisible by the {jax.device_count()} devices")
    check(_is_int(e.beam_size) and e.beam_size >= 1, "eval", "beam_size", e.beam_size, "a positive integer")
    check(_is_int(e.test_beam_size) and e.test_beam_size >= 0, "eval", "test_beam_size", e.test_beam_size,
          "a non-negative integer (0 = eval.beam_size)")
    check(_is_number(e.length_penalty) and 0 <= e.length_penalty < math.inf, "eval", "length_penalty",
          e.length_penalty, "a finite number >= 0")
    check(_is_number(e.max_output_ratio) and 0 <= e.max_output_ratio < math.inf, "eval", "max_output_ratio",
          e.max_output_ratio, "a finite number >= 0")
    check(_is_int(e.max_output_extra) and e.max_output_extra >= (0 if e.max_output_ratio > 0 else 1), "eval",
          "max_output_extra", e.max_output_extra,
          f"an integer >= {0 if e.max_output_ratio > 0 else 1} (outputs need at least one token)")
    check(_is_int(e.max_validation_examples) and e.max_validation_examples >= 0, "eval", "max_validation_examples",
          e.max_validation_examples, "a non-negative integer (0 = all)")
    check(_is_int(e.num_length_buckets) and e.num_length_buckets >= 1, "eval", "num_length_buckets",
          e.num_length_buckets, "a positive integer")
    edges = e.get("length_edges")  # get: absent from the configs of runs made before the field existed
    check(edges is None or (isinstance(edges, (list, tuple)) and len(edges) >= 1 and all(_is_int(x) for x in edges)
                            and all(a < b for a, b in zip(edges, edges[1:])) and edges[0] >= 0),
          "eval", "length_edges", edges, "None or increasing integers >= 0, e.g. (0, 10, 20)")
    check(e.get("length_unit", "tokens") in inference.LENGTH_UNITS, "eval", "length_unit", e.get("length_unit"),
          " or ".join(repr(u) for u in inference.LENGTH_UNITS))
    if e.best_mode not in ("max", "min"):
        raise ValueError(f"eval.best_mode={e.best_mode!r} is not allowed; allowed: ['max', 'min']")
    check(isinstance(e.metrics, (list, tuple)) and e.metrics and all(isinstance(m, str) for m in e.metrics), "eval",
          "metrics", e.metrics, f"a non-empty list of metric names from {sorted(metrics_lib.METRICS)}")
    unknown = [m for m in e.metrics if m not in metrics_lib.METRICS]
    if unknown:
        raise ValueError(f"eval.metrics has unknown metric(s) {unknown}; allowed: {sorted(metrics_lib.METRICS)}")
    if e.best_metric not in (*e.metrics, "loss", "perplexity"):
        raise ValueError(f"eval.best_metric={e.best_metric!r} must be one of eval.metrics {list(e.metrics)} "
                         "or 'loss'/'perplexity'")


def _check_types(config: ml_collections.ConfigDict) -> None:
    """Each field has the type of its default (ints for floats allowed, None left to the section checks)."""
    defaults = default_config.get_config()
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


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Every section of a run's config, before any I/O: one ``ValueError`` naming the first bad field."""
    _check_types(config)
    validate_train_config(config.train, config.eval)
    ModelConfig.from_config(config.model, source_vocab_size=4, target_vocab_size=4)
    data_config_lib.validate(config.data)
    _check_evaluation_splits(config.data)


def _check_evaluation_splits(data_config: ml_collections.ConfigDict) -> None:
    """A ``ValueError`` if a parallel_text run lacks the validation or test file its training ends by scoring."""
    if data_config.dataset != "parallel_text":
        return
    for split, use in (("validation", "selects its best checkpoint on"), ("test", "ends by scoring")):
        if data_config[f"{split}_file"] is None:
            raise ValueError(f"data.{split}_file: training on parallel_text needs a {split} file ('path.tsv' or "
                             f"'src_path,tgt_path'): the run {use} the {split} split.")


def make_schedule(t: ml_collections.ConfigDict) -> optax.Schedule:
    """constant | halving (Sutskever et al. 2014, sec. 3.4) | warmup_decay (linear warmup, cosine decay)."""
    if t.schedule == "constant":
        return optax.constant_schedule(t.learning_rate)
    if t.schedule == "halving":  # halve at halving_start, then every halving_every steps
        def halving(step):
            halvings = jnp.maximum(0, (step - t.halving_start) // t.halving_every + 1)
            return t.learning_rate * 0.5 ** halvings
        return halving
    return optax.warmup_cosine_decay_schedule(0.0, t.learning_rate, t.warmup_steps, max(t.num_steps, t.warmup_steps + 1))


def make_optimizer(t: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam | SGD | Adadelta (rho=0.95, eps=1e-6 as Bahdanau et al. 2014)."""
    schedule = make_schedule(t)
    if t.optimizer == "adam":
        optimizer = optax.adam(schedule)
    elif t.optimizer == "sgd":
        optimizer = optax.sgd(schedule)
    else:
        optimizer = optax.adadelta(schedule, rho=0.95, eps=1e-6)
    clip = [optax.clip_by_global_norm(t.max_grad_norm)] if t.max_grad_norm > 0 else []
    chain = optax.chain(*clip, optimizer)
    return optax.apply_if_finite(chain, MAX_CONSECUTIVE_SKIPS) if t.skip_nonfinite_updates else chain


def create_model(config: ml_collections.ConfigDict, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    return Seq2Seq(ModelConfig.from_config(config.model, source_vocab_size=source_vocab_size,
                                           target_vocab_size=target_vocab_size))


def create_train_state(model: Seq2Seq, config: ml_collections.ConfigDict) -> TrainState:
    """Initialises the parameters from ``train.seed`` (their shapes do not depend on the dummy batch's)."""
    variables = jax.jit(model.init)(jax.random.PRNGKey(config.train.seed), jnp.ones((1, 1), jnp.int32),
                                    jnp.ones((1,), jnp.int32), jnp.ones((1, 1), jnp.int32))
    return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=make_optimizer(config.train))


# --- Steps -----------------------------------------------------------------------------------------


def token_losses(logits, targets, lengths, label_smoothing: float = 0.0):
    """Masked cross-entropy over real target tokens, from integer labels (no one-hot ``[batch, tgt_len, vocab]``).

    With label smoothing ``a`` the target is ``(1 - a) one_hot + a / vocab`` (``optax.smooth_labels``), whose
    cross-entropy is ``(1 - a) (-log p_y) + a (logsumexp(logits) - mean(logits))``.

    Args:
      logits: ``[batch, tgt_len, vocab]``; targets: ``[batch, tgt_len]``; lengths: ``[batch]`` (EOS counted).
    Returns:
      ``{'loss_sum', 'token_count', 'correct_sum'}``, each a scalar sum over real positions.
    """
    mask = time_mask(lengths, targets.shape[1]).astype(jnp.float32)  # [batch, tgt_len]
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)  # [batch, tgt_len]
    if label_smoothing:
        uniform = jax.nn.logsumexp(logits, axis=-1) - jnp.mean(logits, axis=-1)  # cross-entropy with 1 / vocab
        losses = (1.0 - label_smoothing) * losses + label_smoothing * uniform
    correct = (decoding.argmax(logits) == targets).astype(jnp.float32)
    return {"loss_sum": jnp.sum(losses * mask), "token_count": jnp.sum(mask), "correct_sum": jnp.sum(correct * mask)}


def train_step(state: TrainState, batch, *, dropout_key, label_smoothing: float = 0.0):
    """One optimizer step on ``batch``; returns ``(state', metrics)`` with metric sums and norms."""
    step_key = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, batch["inputs"], batch["input_lengths"],
                                shift_right(batch["targets"]), train=True, rngs={"dropout": step_key})
        sums = token_losses(logits, batch["targets"], batch["target_lengths"], label_smoothing)
        return sums["loss_sum"] / jnp.maximum(sums["token_count"], 1.0), sums

    grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads)
    metrics = {**sums, "grad_norm": optax.global_norm(grads), "param_norm": optax.global_norm(new_state.params)}
    return new_state, metrics


def eval_step(params, batch, *, model: Seq2Seq):
    """Teacher-forced loss sums on ``batch`` (no dropout)."""
    logits = model.apply({"params": params}, batch["inputs"], batch["input_lengths"], shift_right(batch["targets"]))
    return token_losses(logits, batch["targets"], batch["target_lengths"])


# --- The loop ----------------------------------------------------------------------------------------


RUN_DEFINING = ("model", "data")  # sections a resumed run must share with the checkpoint's run
MACHINE_FIELDS = ("data.data_dir",)  # where this machine keeps things, not what the run is: never compared
LOCK_FILE = ".lock"  # in the workdir: names the process training there (see files.file_lock)


def _check_config(config: ml_collections.ConfigDict, workdir: str) -> bool:
    """Whether ``workdir`` holds a started run (``config.json``); if it does, a ``ValueError`` names the
    ``RUN_DEFINING`` fields in which ``config`` differs from it."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except ValueError as error:
        raise ValueError(f"{path} is damaged ({error}); restore it or use a new --workdir") from None
    current = json.loads(config.to_json_best_effort())
    differing = [f"{section}.{k}" for section in RUN_DEFINING
                 for k in sorted(set(saved.get(section, {})) | set(current[section]))
                 if saved.get(section, {}).get(k) != current[section].get(k)
                 and f"{section}.{k}" not in MACHINE_FIELDS]
    # Fields that shape the optimizer state a checkpoint holds (clipping adds a state only when on).
    optimizer_state = lambda t: (t.get("optimizer"), t.get("skip_nonfinite_updates", False),  # noqa: E731
                                 (t.get("max_grad_norm") or 0) > 0)
    if optimizer_state(saved.get("train", {})) != optimizer_state(current["train"]):
        differing.append("train.optimizer/skip_nonfinite_updates/max_grad_norm>0 (the optimizer state)")
    if differing:
        raise ValueError(f"workdir {workdir} holds a run with a different config ({', '.join(differing)} "
                         "differ); use a new --workdir or the same model/data settings")
    return True


def _is_better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def scalar_metrics(result: dict) -> dict:
    """The scalar part of an evaluation result."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def write_eval(workdir: str, result: dict, step: int, name: str | None = None) -> None:
    """``eval/<name>.json`` (metrics, by length) and ``eval/<name>_predictions.tsv``, each written atomically;
    ``name`` defaults to the split (``seq2seq_jax.evaluate`` passes e.g. ``test_beam4`` to keep the
    training-time files). Every process holds the same result; the main process alone writes it."""
    if not parallel.is_main_process():
        return
    name = result["split"] if name is None else name
    saved = {k: v for k, v in result.items() if k not in ("predictions", "attention")}
    files.save_json(os.path.join(workdir, "eval", f"{name}.json"), {**saved, "step": step})
    rows = [f"{source}\t{hyp}\t{' | '.join(refs)}\n" for source, hyp, refs in result["predictions"]]
    files.write_atomic(os.path.join(workdir, "eval", f"{name}_predictions.tsv"),
                               "source\thypothesis\treferences\n" + "".join(rows))


def checked_train_step(state: TrainState, first_bad, batch, *, max_loss: float, max_grad_norm_abort: float,
                       skip_nonfinite: bool, **step_kwargs):
    """``train_step`` plus its health check, on device (no host sync): returns ``(state', first_bad', metrics)``
    where ``first_bad'`` is ``first_bad`` if that is already set (>= 0), else this step's number if its loss
    or gradient norm is non-finite or above the bounds (0 = none for the gradient norm) or the new
    parameters are non-finite, else -1. With ``skip_nonfinite`` a non-finite gradient is not a failure
    (``optax.apply_if_finite`` skipped the update)."""
    step = state.step + 1
    state, metrics = train_step(state, batch, **step_kwargs)
    loss = metrics["loss_sum"] / jnp.maximum(metrics["token_count"], 1.0)
    grad_norm = metrics["grad_norm"]
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    within = (loss <= max_loss) & ((max_grad_norm_abort <= 0) | (grad_norm <= max_grad_norm_abort))
    ok = jnp.isfinite(metrics["param_norm"]) & ((~finite | within) if skip_nonfinite else (finite & within))
    return state, jnp.where((first_bad < 0) & ~ok, step, first_bad).astype(jnp.int32), metrics


def _host_rows(pending: list[dict]) -> list[dict]:
    """Per-step metrics as plain Python numbers (JSON-able; exact float32 values)."""
    return [{k: int(v) if k == "step" else float(v) for k, v in row.items()} for row in jax.device_get(pending)]


class _StopSignals:
    """SIGTERM/SIGINT: the first asks the training loop to save its current step and stop; a second ends the
    process at once, as the signal would have. Once ``raise_now`` is set (training complete and saved), the
    first raises ``Preempted`` wherever the program is. Installed only in the main thread."""

    def __init__(self):
        self.received: str | None = None
        self.raise_now = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = signal.Signals(signum).name
        if self.raise_now:
            raise Preempted(f"{self.received} received during the final evaluation; training is complete and "
                            "saved: run the same command to evaluate")
        logging.warning("%s received: stopping after the current step, which is saved first (send it again to "
                        "stop at once)", self.received)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc_info):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains ``config`` in ``workdir`` (resuming from its checkpoints), then evaluates validation and test.

    Returns the final metrics as a flat dict (``validation/seq_acc``, ``test/bleu``, ... and ``step``).
    Raises ``Preempted`` after saving if SIGTERM/SIGINT arrives, ``NonFiniteLossError`` at a diverged step
    (nothing of it saved), ``files.WorkdirBusyError`` if another process trains in ``workdir``.
    """
    validate_config(config)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"workdir {workdir!r} exists and is not a directory")
    os.makedirs(workdir, exist_ok=True)
    lock = files.file_lock(os.path.join(workdir, LOCK_FILE), blocking=False, what=f"workdir {workdir}") \
        if parallel.is_main_process() else contextlib.nullcontext()  # one lock per run, not per host
    with lock, _StopSignals() as signals:
        return _train_and_evaluate(config, workdir, signals)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, signals: _StopSignals) -> dict:
    started = _check_config(config, workdir)
    t = config.train
    get_data = functools.partial(pipeline.get_data, config.data, batch_size=t.batch_size // jax.process_count(),
                                 seed=t.seed, vocab_dir=os.path.join(workdir, "vocab"), reuse_vocab=started)
    data = get_data() if parallel.is_main_process() else None  # prepares the dataset, saves the vocabularies
    multihost_utils.sync_global_devices("data prepared")  # before the other processes read them
    data = data or get_data()
    model = create_model(config, data.source_vocab.size, data.target_vocab.size)
    mesh = data_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(create_train_state(model, config), replicated)
    checkpoints = checkpointing.Checkpoints(workdir, keep=t.keep_checkpoints, remove_partial=True)
    iterator = data.train_iterator()
    meta = {"best": None, "best_step": None}
    if checkpoints.latest_step() is not None:
        state, data_state, meta = checkpoints.restore_newest_readable(state)
        state = jax.device_put(state, replicated)
        iterator.set_state(data_state)
        logging.info("resumed %s from step %d", workdir, int(state.step))
    start = int(state.step)
    pending = meta.pop("pending", [])  # the open log window's steps before a restart: its row covers them too
    # The run really starts here: a start that failed before leaves no config.json to block the next one.
    if parallel.is_main_process():
        files.save_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
        record_start(workdir)

    p_train_step = jax.jit(functools.partial(
        checked_train_step, max_loss=float(t.max_loss), max_grad_norm_abort=float(t.max_grad_norm_abort),
        skip_nonfinite=t.skip_nonfinite_updates, dropout_key=jax.random.PRNGKey(t.seed + 1),
        label_smoothing=t.label_smoothing), donate_argnums=(0, 1))
    p_eval_step = jax.jit(functools.partial(eval_step, model=model))
    schedule = make_schedule(t)
    logger = MetricsLogger(workdir, start_step=start, hparams=json.loads(config.to_json_best_effort()),
                           redo_evaluations_at=start if start >= t.num_steps else None)
    first_bad = jax.device_put(jnp.int32(-1), replicated)  # the first step that failed the checks; -1 = none

    def evaluate(split, max_examples=0, params=None, beam_size=None):
        return inference.evaluate_split(model, state.params if params is None else params, data, split,
                                        config.eval, eval_step=p_eval_step, max_examples=max_examples,
                                        beam_size=beam_size)

    def check_health():
        """The one host sync on ``first_bad``, before anything is logged, evaluated or saved."""
        bad = int(first_bad)
        if bad < 0:
            return
        row = next((r for r in _host_rows(pending) if r["step"] == bad), None)
        values = "" if row is None else (f" (loss {row['loss_sum'] / max(row['token_count'], 1.0):.6g}, gradient "
                                         f"norm {row['grad_norm']:.6g}, parameter norm {row['param_norm']:.6g})")
        last = checkpoints.wait_and_latest_step()
        raise NonFiniteLossError(
            f"training diverged at step {bad}{values}: non-finite, or above train.max_loss={t.max_loss} / "
            f"train.max_grad_norm_abort={t.max_grad_norm_abort}; nothing after step {bad - 1} was saved. Last good "
            f"checkpoint: {f'step {last} in {workdir}/checkpoints' if last is not None else 'none'}; lower "
            "train.learning_rate (or set train.skip_nonfinite_updates=True) and rerun to resume from it")

    def save_latest():
        check_health()
        checkpoints.save(state, iterator.get_state(), {**meta, "pending": _host_rows(pending)})

    window_start, paused = time.perf_counter(), 0.0
    progress = logger.progress(start, t.num_steps)
    try:
        for step in range(start + 1, t.num_steps + 1):
            state, first_bad, metrics = p_train_step(state, first_bad, shard_batch(next(iterator), mesh))
            pending.append({"step": step, **metrics})
            progress.update(1)
            checkpointing.fault_point("step", step)
            if step % t.log_every == 0 or step == t.num_steps:
                check_health()
                rows = _host_rows(pending)
                finite = [r for r in rows if math.isfinite(r["loss_sum"])]  # all, unless updates are skipped
                elapsed = time.perf_counter() - window_start - paused  # training time only
                tokens = sum(r["token_count"] for r in finite)
                row = {
                    "step": step,
                    "train_loss": sum(r["loss_sum"] for r in finite) / max(tokens, 1.0),
                    "train_token_acc": sum(r["correct_sum"] for r in finite) / max(tokens, 1.0),
                    "grad_norm": rows[-1]["grad_norm"],
                    "param_norm": rows[-1]["param_norm"],
                    "learning_rate": float(schedule(step - 1)),
                    "tokens_per_sec": tokens / max(elapsed, 1e-9),
                    "steps_per_sec": len(rows) / max(elapsed, 1e-9),
                }
                if t.skip_nonfinite_updates:
                    row["skipped_updates"] = int(state.opt_state.total_notfinite)  # since step 1
                logger.write(row)
                progress.set_postfix(loss=f"{row['train_loss']:.4f}", tok_s=f"{row['tokens_per_sec']:.0f}")
                pending, window_start, paused = [], time.perf_counter(), 0.0
            pause_start = time.perf_counter()
            if t.eval_every and step % t.eval_every == 0 and step != t.num_steps:
                check_health()
                result = evaluate("validation", config.eval.max_validation_examples)
                logger.write({"step": step, **{f"validation/{k}": v for k, v in scalar_metrics(result).items()}})
                value = result[config.eval.best_metric]
                if _is_better(value, meta["best"], config.eval.best_mode):
                    meta = {"best": value, "best_step": step}
                    checkpoints.save(state, iterator.get_state(), meta, best=True)
            if step % t.checkpoint_every == 0 or step == t.num_steps or signals.received:
                save_latest()
            paused += time.perf_counter() - pause_start  # evaluation and checkpointing
            if signals.received:
                checkpoints.wait()
                raise Preempted(f"{signals.received} received: stopped after step {step}, which is saved in "
                                f"{workdir}/checkpoints; run the same command to resume")
        checkpoints.wait()
        signals.raise_now = True
        if signals.received:  # arrived while the last checkpoint was being written
            raise Preempted(f"{signals.received} received: training is complete and saved; run the same command "
                            "to evaluate")
        final = _final_evaluation(config, workdir, state, checkpoints, evaluate, logger, iterator)
    finally:
        progress.close()
        logger.close()
        checkpoints.close()
    return final


def _final_evaluation(config, workdir, state, checkpoints, evaluate, logger, iterator) -> dict:
    """Model selection on the full validation split, then test.

    The final parameters and the best periodic checkpoint (if any, at another step) are both scored on
    all of validation; the better one is saved as ``best`` (what ``evaluate``/``translate`` load) and
    scored on test, decoded with ``eval.test_beam_size`` (when set) instead of ``eval.beam_size``.
    """
    step = int(state.step)
    checkpointing.fault_point("final_evaluation", step)
    e = config.eval
    chosen_step, validation = step, evaluate("validation", params=state.params)
    chosen_params = state.params
    best_step = checkpoints.best.latest_step()
    if best_step is not None and best_step != step:
        best_state, _, _ = checkpoints.restore(state, best=True)
        best_validation = evaluate("validation", params=best_state.params)
        if _is_better(best_validation[e.best_metric], validation[e.best_metric], e.best_mode):
            chosen_step, validation, chosen_params = best_step, best_validation, best_state.params
    if chosen_step == step:
        checkpoints.save(state, iterator.get_state(), {"best": validation[e.best_metric], "best_step": step},
                         best=True)
        checkpoints.wait()
    test = evaluate("test", params=chosen_params, beam_size=inference.split_beam_size(e, "test"))
    results = {"validation": validation, "test": test}
    final = {"step": step, "evaluated_step": chosen_step}
    for split, result in results.items():
        write_eval(workdir, result, chosen_step)
        logger.write({"step": step, **{f"{split}/{k}": v for k, v in scalar_metrics(result).items()}})
        final.update({f"{split}/{k}": v for k, v in scalar_metrics(result).items()})
    return final


# --- Trained runs ------------------------------------------------------------------------------------


def load_run(workdir: str):
    """``(config, model, source_vocab, target_vocab)`` of the run in ``workdir``, from its ``config.json`` and
    ``vocab/`` (no dataset, no checkpoint); a ``FileNotFoundError`` if ``workdir`` holds no such run."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir!r} does not exist")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} not found: {workdir!r} is not a training workdir")
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    vocabs = []
    for side in ("source", "target"):
        kind = config.data[f"{side}_vocab"]
        path = os.path.join(workdir, "vocab", vocab_lib.vocab_filename(kind, f"{side}_vocab"))
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: the run in {workdir!r} saved no {side} vocabulary")
        vocabs.append(vocab_lib.load_vocab(path))
    return config, create_model(config, vocabs[0].size, vocabs[1].size), vocabs[0], vocabs[1]


def load_trained(workdir: str, checkpoint: str = "best"):
    """``(config, model, params, source_vocab, target_vocab)`` of a trained run in ``workdir``.

    ``checkpoint`` is ``'best'`` (the validation-selected parameters, falling back to the latest when
    no best was saved yet), ``'latest'``, or the name of an averaged checkpoint (``seq2seq_jax.average``).
    Needs no dataset: the vocabularies are in ``workdir/vocab``.
    """
    config, model, source_vocab, target_vocab = load_run(workdir)
    if checkpoint not in checkpointing.SELECTIONS:
        averaged, step = checkpointing.open_averaged(workdir, checkpoint)  # checked before the state is built
        try:
            state, _, _ = checkpointing.restore_step(averaged, step, create_train_state(model, config))
        finally:
            averaged.close()
        return config, model, state.params, source_vocab, target_vocab
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):  # before Checkpoints(), which creates it
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train the run first")
    checkpoints = checkpointing.Checkpoints(workdir, keep=config.train.keep_checkpoints)
    try:
        if checkpoints.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train the run first")
        state, _, _ = checkpoints.restore(create_train_state(model, config),
                                          best=checkpoint == "best" and checkpoints.has_best())
    finally:
        checkpoints.close()
    return config, model, state.params, source_vocab, target_vocab
