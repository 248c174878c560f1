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
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from seq2seq_jax import checkpointing
from seq2seq_jax import decoding
from seq2seq_jax import files
from seq2seq_jax import inference
from seq2seq_jax import malloc
from seq2seq_jax import optim
from seq2seq_jax import parallel
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.configs import default as default_config
from seq2seq_jax.data import pipeline
from seq2seq_jax.logger import MetricsLogger, record_start
from seq2seq_jax.model import Seq2Seq, create_model, shift_right
from seq2seq_jax.optim import TrainState
from seq2seq_jax.parallel import data_mesh, shard_batch
from seq2seq_jax.recurrent import time_mask

# Exit status of a run stopped by SIGTERM/SIGINT after saving its current step (BSD EX_TEMPFAIL: "try
# again later"); a scheduler requeues it and the same command resumes with no step lost.
EXIT_PREEMPTED = 75


class NonFiniteLossError(FloatingPointError):
    """Training diverged: a non-finite (or out-of-bounds) loss, gradient norm or parameter norm."""


class Preempted(Exception):
    """SIGTERM/SIGINT stopped the run; its current step was saved first (exit with ``EXIT_PREEMPTED``)."""


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
    """One optimizer step on ``batch`` (one batch of an update with ``train.accumulate_steps``); returns
    ``(state', metrics)`` with metric sums and norms. The optimizer gets the batch's loss as ``value`` (the
    plateau schedule's signal)."""
    step_key = jax.random.fold_in(dropout_key, state.step)
    if optim.accumulated_batches(state.opt_state) is not None:  # one key per batch of an update
        step_key = jax.random.fold_in(step_key, optim.accumulated_batches(state.opt_state))

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, batch["inputs"], batch["input_lengths"],
                                shift_right(batch["targets"]), train=True, rngs={"dropout": step_key})
        sums = token_losses(logits, batch["targets"], batch["target_lengths"], label_smoothing)
        return sums["loss_sum"] / jnp.maximum(sums["token_count"], 1.0), sums

    (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params, value=loss)
    accumulated = optim.accumulated_batches(opt_state)  # step counts updates, not batches
    new_state = state.replace(step=state.step + (1 if accumulated is None else (accumulated == 0)),
                              params=optax.apply_updates(state.params, updates), opt_state=opt_state)
    metrics = {**sums, "grad_norm": optax.global_norm(grads), "param_norm": optax.global_norm(new_state.params)}
    return new_state, metrics


def eval_step(params, batch, *, model: Seq2Seq):
    """Teacher-forced loss sums on ``batch`` (no dropout)."""
    logits = model.apply({"params": params}, batch["inputs"], batch["input_lengths"], shift_right(batch["targets"]))
    return token_losses(logits, batch["targets"], batch["target_lengths"])


# --- The loop ----------------------------------------------------------------------------------------


def _is_better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def checked_train_step(state: TrainState, first_bad, batch, *, max_loss: float, max_grad_norm_abort: float,
                       skip_nonfinite: bool, **step_kwargs):
    """``train_step`` plus its health check, on device (no host sync): returns ``(state', first_bad', metrics)``
    where ``first_bad'`` is ``first_bad`` if that is already set (>= 0), else this step's number if its loss
    or gradient norm is non-finite or above the bounds (0 = none for the gradient norm) or the new
    parameters are non-finite, else -1. With ``skip_nonfinite`` a non-finite gradient is not a failure
    (``optax.apply_if_finite`` skipped the update). Steps count updates (of ``train.accumulate_steps`` batches)."""
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


def jitted_train_step(t: ml_collections.ConfigDict):
    """``checked_train_step`` bound to ``config.train`` ``t``'s settings and jitted, the state and
    ``first_bad`` donated: ``(state, first_bad, batch) -> (state, first_bad, metrics)``, the trainer's step."""
    return jax.jit(functools.partial(
        checked_train_step, max_loss=float(t.max_loss), max_grad_norm_abort=float(t.max_grad_norm_abort),
        skip_nonfinite=t.skip_nonfinite_updates, dropout_key=jax.random.PRNGKey(t.seed + 1),
        label_smoothing=t.label_smoothing), donate_argnums=(0, 1))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains ``config`` in ``workdir`` (resuming from its checkpoints), then evaluates validation and test.

    Returns the final metrics as a flat dict (``validation/seq_acc``, ``test/bleu``, ... and ``step``).
    Raises ``Preempted`` after saving if SIGTERM/SIGINT arrives, ``NonFiniteLossError`` at a diverged step
    (nothing of it saved), ``files.WorkdirBusyError`` if another process trains in ``workdir``.
    """
    default_config.validate(config)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"workdir {workdir!r} exists and is not a directory")
    os.makedirs(workdir, exist_ok=True)
    lock = files.file_lock(os.path.join(workdir, workdir_lib.LOCK_FILE), blocking=False, what=f"workdir {workdir}") \
        if parallel.is_main_process() else contextlib.nullcontext()  # one lock per run, not per host
    with lock, _StopSignals() as signals:
        return _train_and_evaluate(config, workdir, signals)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, signals: _StopSignals) -> dict:
    started = workdir_lib.check_resumable(config, workdir)
    if parallel.is_main_process() and (hint := malloc.hint(jax.default_backend())):
        logging.info("%s", hint)
    t = config.train
    get_data = functools.partial(pipeline.get_data, config.data, batch_size=t.batch_size // jax.process_count(),
                                 seed=t.seed, vocab_dir=os.path.join(workdir, workdir_lib.VOCAB_DIR),
                                 reuse_vocab=started)
    data = get_data() if parallel.is_main_process() else None  # prepares the dataset, saves the vocabularies
    multihost_utils.sync_global_devices("data prepared")  # before the other processes read them
    data = data or get_data()
    model = create_model(config, data.source_vocab.size, data.target_vocab.size)
    mesh = data_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(optim.create_train_state(model, config), replicated)
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
        workdir_lib.save_config(workdir, config)
        record_start(workdir)

    p_train_step = jitted_train_step(t)
    p_eval_step = jax.jit(functools.partial(eval_step, model=model))
    schedule = jax.jit(optim.make_schedule(t))
    logger = MetricsLogger(workdir, start_step=start, hparams=json.loads(config.to_json_best_effort()),
                           redo_evaluations_at=start if start >= t.num_steps or "stopped_early_at" in meta else None)
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
        last = start if "stopped_early_at" in meta else t.num_steps
        for step in range(start + 1, last + 1):
            for _ in range(t.accumulate_steps):
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
                    "learning_rate": float(schedule(step - 1)) * optim.plateau_scale(state.opt_state),
                    "tokens_per_sec": tokens / max(elapsed, 1e-9),
                    "steps_per_sec": len(rows) / t.accumulate_steps / max(elapsed, 1e-9),
                }
                if t.skip_nonfinite_updates:
                    row["skipped_updates"] = int(state.opt_state.total_notfinite)  # since step 1
                logger.write(row)
                progress.set_postfix(loss=f"{row['train_loss']:.4f}", tok_s=f"{row['tokens_per_sec']:.0f}")
                pending, window_start, paused = [], time.perf_counter(), 0.0
            pause_start, stop_early = time.perf_counter(), False
            if t.eval_every and step % t.eval_every == 0 and step != t.num_steps:
                check_health()
                result = evaluate("validation", config.eval.max_validation_examples)
                logger.write({"step": step, **{f"validation/{k}": v
                                               for k, v in workdir_lib.scalar_metrics(result).items()}})
                value = result[config.eval.best_metric]
                if _is_better(value, meta["best"], config.eval.best_mode):
                    meta = {"best": value, "best_step": step}
                    checkpoints.save(state, iterator.get_state(), meta, best=True)
                stop_early = bool(t.early_stopping_patience) and (
                    step - meta["best_step"] >= t.early_stopping_patience * t.eval_every)
                if stop_early:
                    meta = {**meta, "stopped_early_at": step}
                    logging.info("early stopping at step %d: eval.%s has not improved for %d evaluations (best at "
                                 "step %d)", step, config.eval.best_metric, t.early_stopping_patience,
                                 meta["best_step"])
            if step % t.checkpoint_every == 0 or step == t.num_steps or signals.received or stop_early:
                save_latest()
            paused += time.perf_counter() - pause_start  # evaluation and checkpointing
            if signals.received:
                checkpoints.wait()
                raise Preempted(f"{signals.received} received: stopped after step {step}, which is saved in "
                                f"{workdir}/checkpoints; run the same command to resume")
            if stop_early:
                break
        checkpoints.wait()
        signals.raise_now = True
        if signals.received:  # arrived while the last checkpoint was being written
            raise Preempted(f"{signals.received} received: training is complete and saved; run the same command "
                            "to evaluate")
        final = _final_evaluation(config, workdir, state, checkpoints, evaluate, logger, iterator)
        if "stopped_early_at" in meta:
            final["stopped_early_at"] = meta["stopped_early_at"]
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
    ``eval.max_final_examples`` (a smoke setting's) scores each split's first N examples instead of all.
    """
    step = int(state.step)
    checkpointing.fault_point("final_evaluation", step)
    e = config.eval
    sample = e.max_final_examples  # a training config is always built from configs/default.py: the field is there
    chosen_step, validation = step, evaluate("validation", sample, params=state.params)
    chosen_params = state.params
    best_step = checkpoints.best.latest_step()
    if best_step is not None and best_step != step:
        best_state, _, _ = checkpoints.restore(state, best=True)
        best_validation = evaluate("validation", sample, params=best_state.params)
        if _is_better(best_validation[e.best_metric], validation[e.best_metric], e.best_mode):
            chosen_step, validation, chosen_params = best_step, best_validation, best_state.params
    if chosen_step == step:
        checkpoints.save(state, iterator.get_state(), {"best": validation[e.best_metric], "best_step": step},
                         best=True)
        checkpoints.wait()
    test = evaluate("test", sample, params=chosen_params, beam_size=inference.split_beam_size(e, "test"))
    results = {"validation": validation, "test": test}
    final = {"step": step, "evaluated_step": chosen_step}
    for split, result in results.items():
        workdir_lib.write_eval(workdir, result, chosen_step)
        logger.write({"step": step, **{f"{split}/{k}": v for k, v in workdir_lib.scalar_metrics(result).items()}})
        final.update({f"{split}/{k}": v for k, v in workdir_lib.scalar_metrics(result).items()})
    return final
