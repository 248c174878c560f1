"""Training and evaluation: pure jit-compiled steps and the loop ``train_and_evaluate(config, workdir)``.

``train_step(state, batch, ...)`` and ``eval_step(params, batch, ...)`` are pure module-level functions;
``train_and_evaluate`` binds their static settings with ``functools.partial`` and compiles them with the
state donated. Dropout keys are ``fold_in(PRNGKey(seed), step)``, so a resumed run draws the same masks.
Metrics come back as sums plus denominators, which makes averaging over batches and devices exact.
"""

import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from seq2seq_jax import checkpointing
from seq2seq_jax import inference
from seq2seq_jax import metrics as metrics_lib
from seq2seq_jax.data import config as data_config_lib
from seq2seq_jax.data import pipeline
from seq2seq_jax.data import vocab as vocab_lib
from seq2seq_jax.logger import MetricsLogger
from seq2seq_jax.model import ModelConfig, Seq2Seq, shift_right
from seq2seq_jax.recurrent import time_mask

OPTIMIZERS = ("adam", "sgd", "adadelta")
SCHEDULES = ("constant", "halving", "warmup_decay")
TrainState = train_state.TrainState


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


# --- Configuration ---------------------------------------------------------------------------------


def validate_train_config(t: ml_collections.ConfigDict, e: ml_collections.ConfigDict) -> None:
    """One clear ``ValueError`` naming the first bad ``train.*`` or ``eval.*`` field."""
    for field in ("num_steps", "batch_size", "log_every", "keep_checkpoints", "checkpoint_every"):
        if not isinstance(t[field], int) or t[field] < 1:
            raise ValueError(f"train.{field}={t[field]!r} must be a positive integer")
    for field in ("halving_start", "halving_every", "warmup_steps"):
        if not isinstance(t[field], int) or t[field] < (1 if field == "halving_every" else 0):
            raise ValueError(f"train.{field}={t[field]!r} must be a {'positive' if field == 'halving_every' else 'non-negative'} integer")
    if not isinstance(t.eval_every, int) or t.eval_every < 0:
        raise ValueError(f"train.eval_every={t.eval_every!r} must be a non-negative integer (0 = at the end)")
    if t.optimizer not in OPTIMIZERS:
        raise ValueError(f"train.optimizer={t.optimizer!r} is not allowed; allowed: {list(OPTIMIZERS)}")
    if t.schedule not in SCHEDULES:
        raise ValueError(f"train.schedule={t.schedule!r} is not allowed; allowed: {list(SCHEDULES)}")
    if not t.learning_rate > 0:
        raise ValueError(f"train.learning_rate={t.learning_rate!r} must be positive")
    if not 0.0 <= t.label_smoothing < 1.0:
        raise ValueError(f"train.label_smoothing={t.label_smoothing!r} must be in [0, 1)")
    if t.batch_size % jax.device_count():
        raise ValueError(f"train.batch_size={t.batch_size} must be divisible by the {jax.device_count()} devices")
    if not isinstance(e.beam_size, int) or e.beam_size < 1:
        raise ValueError(f"eval.beam_size={e.beam_size!r} must be a positive integer")
    if e.best_mode not in ("max", "min"):
        raise ValueError(f"eval.best_mode={e.best_mode!r} is not allowed; allowed: ['max', 'min']")
    unknown = [m for m in e.metrics if m not in metrics_lib.METRICS]
    if unknown:
        raise ValueError(f"eval.metrics has unknown metric(s) {unknown}; allowed: {sorted(metrics_lib.METRICS)}")
    if e.best_metric not in (*e.metrics, "loss", "perplexity"):
        raise ValueError(f"eval.best_metric={e.best_metric!r} must be one of eval.metrics {list(e.metrics)} "
                         "or 'loss'/'perplexity'")


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Every section of a run's config, before any I/O: one ``ValueError`` naming the first bad field."""
    validate_train_config(config.train, config.eval)
    ModelConfig.from_config(config.model, source_vocab_size=4, target_vocab_size=4)
    data_config_lib.validate(config.data)


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
    return optax.chain(*clip, optimizer)


def create_model(config: ml_collections.ConfigDict, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    return Seq2Seq(ModelConfig.from_config(config.model, source_vocab_size=source_vocab_size,
                                           target_vocab_size=target_vocab_size))


def create_train_state(model: Seq2Seq, config: ml_collections.ConfigDict, batch_shape=(1, 1, 1)) -> TrainState:
    """Initialises the parameters from ``train.seed`` (shapes do not depend on ``batch_shape``)."""
    batch, src_len, tgt_len = batch_shape
    variables = jax.jit(model.init)(jax.random.PRNGKey(config.train.seed), jnp.ones((batch, src_len), jnp.int32),
                                    jnp.full((batch,), src_len, jnp.int32), jnp.ones((batch, tgt_len), jnp.int32))
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
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
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


# --- Devices -----------------------------------------------------------------------------------------


def data_mesh() -> Mesh:
    """All devices of all processes along one ``'data'`` axis."""
    return Mesh(np.asarray(jax.devices()), ("data",))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """This process's numpy batch -> global arrays split along the batch axis."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


# --- The loop ----------------------------------------------------------------------------------------


RUN_DEFINING = ("model", "data")  # sections a resumed run must share with the checkpoint's run


def _write_or_check_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        differing = [f"{section}.{k}" for section in RUN_DEFINING
                     for k in sorted(set(saved.get(section, {})) | set(current[section]))
                     if saved.get(section, {}).get(k) != current[section].get(k)]
        if differing:
            raise ValueError(f"workdir {workdir} holds a run with a different config ({', '.join(differing)} "
                             "differ); use a new --workdir or the same model/data settings")
    checkpointing.save_json(path, current)


def _is_better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def scalar_metrics(result: dict) -> dict:
    """The scalar part of an evaluation result."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def write_eval(workdir: str, result: dict, step: int, name: str | None = None) -> None:
    """``eval/<name>.json`` (metrics, by length) and ``eval/<name>_predictions.tsv``; ``name`` defaults to
    the split (``seq2seq_jax.evaluate`` passes e.g. ``test_beam4`` to keep the training-time files)."""
    name = result["split"] if name is None else name
    saved = {k: v for k, v in result.items() if k not in ("predictions", "attention")}
    checkpointing.save_json(os.path.join(workdir, "eval", f"{name}.json"), {**saved, "step": step})
    with open(os.path.join(workdir, "eval", f"{name}_predictions.tsv"), "w") as f:
        f.write("source\thypothesis\treferences\n")
        for source, hyp, refs in result["predictions"]:
            f.write(f"{source}\t{hyp}\t{' | '.join(refs)}\n")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains ``config`` in ``workdir`` (resuming from its checkpoints), then evaluates validation and test.

    Returns the final metrics as a flat dict (``validation/seq_acc``, ``test/bleu``, ... and ``step``).
    """
    validate_config(config)
    os.makedirs(workdir, exist_ok=True)
    _write_or_check_config(config, workdir)
    t = config.train
    data = pipeline.get_data(config.data, batch_size=t.batch_size // jax.process_count(), seed=t.seed,
                             vocab_dir=os.path.join(workdir, "vocab"))
    model = create_model(config, data.source_vocab.size, data.target_vocab.size)
    mesh = data_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(create_train_state(model, config), replicated)
    checkpoints = checkpointing.Checkpoints(workdir, keep=t.keep_checkpoints)
    iterator = data.train_iterator()
    meta = {"best": None, "best_step": None}
    if checkpoints.latest_step() is not None:
        state, data_state, meta = checkpoints.restore(state)
        state = jax.device_put(state, replicated)
        iterator.set_state(data_state)
        logging.info("resumed %s from step %d", workdir, int(state.step))
    start = int(state.step)

    p_train_step = jax.jit(functools.partial(train_step, dropout_key=jax.random.PRNGKey(t.seed + 1),
                                             label_smoothing=t.label_smoothing), donate_argnums=0)
    p_eval_step = jax.jit(functools.partial(eval_step, model=model))
    schedule = make_schedule(t)
    logger = MetricsLogger(workdir, start_step=start, hparams=json.loads(config.to_json_best_effort()))

    def evaluate(split, max_examples=0, params=None):
        return inference.evaluate_split(model, state.params if params is None else params, data, split,
                                        config.eval, eval_step=p_eval_step, max_examples=max_examples)

    pending, window_start, paused = [], time.perf_counter(), 0.0
    progress = logger.progress(start, t.num_steps)
    try:
        for step in range(start + 1, t.num_steps + 1):
            state, metrics = p_train_step(state, shard_batch(next(iterator), mesh))
            pending.append(metrics)
            progress.update(1)
            if step % t.log_every == 0 or step == t.num_steps:
                rows = jax.device_get(pending)
                losses = [r["loss_sum"] / max(r["token_count"], 1.0) for r in rows]
                bad = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
                if bad:  # rows[i] is step (step - len(rows) + 1 + i)
                    raise NonFiniteLossError(f"training loss is {losses[bad[0]]} at step "
                                             f"{step - len(rows) + 1 + bad[0]} (workdir {workdir}); last checkpoint kept")
                elapsed = time.perf_counter() - window_start - paused  # training time only
                tokens = sum(float(r["token_count"]) for r in rows)
                row = {
                    "step": step,
                    "train_loss": sum(float(r["loss_sum"]) for r in rows) / max(tokens, 1.0),
                    "train_token_acc": sum(float(r["correct_sum"]) for r in rows) / max(tokens, 1.0),
                    "grad_norm": float(rows[-1]["grad_norm"]),
                    "param_norm": float(rows[-1]["param_norm"]),
                    "learning_rate": float(schedule(step - 1)),
                    "tokens_per_sec": tokens / max(elapsed, 1e-9),
                }
                logger.write(row)
                progress.set_postfix(loss=f"{row['train_loss']:.4f}", tok_s=f"{row['tokens_per_sec']:.0f}")
                pending, window_start, paused = [], time.perf_counter(), 0.0
            pause_start = time.perf_counter()
            if t.eval_every and step % t.eval_every == 0 and step != t.num_steps:
                result = evaluate("validation", config.eval.max_validation_examples)
                logger.write({"step": step, **{f"validation/{k}": v for k, v in scalar_metrics(result).items()}})
                value = result[config.eval.best_metric]
                if _is_better(value, meta["best"], config.eval.best_mode):
                    meta = {"best": value, "best_step": step}
                    checkpoints.save(state, iterator.get_state(), meta, best=True)
            if step % t.checkpoint_every == 0 or step == t.num_steps:
                checkpoints.save(state, iterator.get_state(), meta)
            paused += time.perf_counter() - pause_start  # evaluation and checkpointing
        checkpoints.wait()
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
    scored on test.
    """
    step = int(state.step)
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
    results = {"validation": validation, "test": evaluate("test", params=chosen_params)}
    final = {"step": step, "evaluated_step": chosen_step}
    for split, result in results.items():
        write_eval(workdir, result, chosen_step)
        logger.write({"step": step, **{f"{split}/{k}": v for k, v in scalar_metrics(result).items()}})
        final.update({f"{split}/{k}": v for k, v in scalar_metrics(result).items()})
    return final


# --- Trained runs ------------------------------------------------------------------------------------


def load_trained(workdir: str, checkpoint: str = "best"):
    """``(config, model, params, source_vocab, target_vocab)`` of a trained run in ``workdir``.

    ``checkpoint`` is ``'best'`` (the validation-selected parameters, falling back to the latest when
    no best was saved yet) or ``'latest'``. Needs no dataset: the vocabularies are in ``workdir/vocab``.
    """
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir!r} does not exist")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} not found: {workdir!r} is not a training workdir")
    if checkpoint not in ("best", "latest"):
        raise ValueError(f"checkpoint={checkpoint!r} is not allowed; allowed: ['best', 'latest']")
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    vocabs = []
    for side in ("source", "target"):
        kind = config.data[f"{side}_vocab"]
        path = os.path.join(workdir, "vocab", vocab_lib.vocab_filename(kind, f"{side}_vocab"))
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: the run in {workdir!r} saved no {side} vocabulary")
        vocabs.append(vocab_lib.load_vocab(path))
    model = create_model(config, vocabs[0].size, vocabs[1].size)
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
    return config, model, state.params, vocabs[0], vocabs[1]
