"""The optimizer and the state it updates: ``make_schedule``, ``make_optimizer`` and ``create_train_state``."""

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from seq2seq_jax.model import Seq2Seq

TrainState = train_state.TrainState

# With train.skip_nonfinite_updates, this many non-finite updates in a row are applied after all, so a
# run that cannot recover ends (its parameters become non-finite) instead of skipping forever.
MAX_CONSECUTIVE_SKIPS = 10
# Halvings past this many leave any float32 learning rate at 0 (2**-149 is the smallest float32 above 0, and
# the largest float32 is below 2**128), so the halving schedule lists no more boundaries than this.
MAX_HALVINGS = 280


def make_schedule(t: ml_collections.ConfigDict) -> optax.Schedule:
    """constant | halving (Sutskever et al. 2014, sec. 3.4) | warmup_decay (linear warmup, cosine decay);
    plateau's base is constant (``make_optimizer`` scales it)."""
    if t.schedule in ("constant", "plateau"):
        return optax.constant_schedule(t.learning_rate)
    if t.schedule == "halving":  # halve at halving_start, then every halving_every steps
        boundaries = range(t.halving_start, t.num_steps + 1, t.halving_every)[:MAX_HALVINGS]
        return optax.piecewise_constant_schedule(t.learning_rate, {step: 0.5 for step in boundaries})
    return optax.warmup_cosine_decay_schedule(0.0, t.learning_rate, t.warmup_steps,
                                              max(t.num_steps, t.warmup_steps + 1))


def make_optimizer(t: ml_collections.ConfigDict) -> optax.GradientTransformationExtraArgs:
    """Global-norm clipping, then Adam | SGD | Adadelta (rho=0.95, eps=1e-6 as Bahdanau et al. 2014), then the
    plateau scale (``schedule='plateau'``, from the ``value=`` loss its ``update`` is given).

    With ``accumulate_steps=k`` the chain sees the mean of k batches' gradients (``optax.MultiSteps``: clipping
    and the schedules act on whole updates).
    """
    schedule = make_schedule(t)
    if t.optimizer == "adam":
        optimizer = optax.adam(schedule)
    elif t.optimizer == "sgd":
        optimizer = optax.sgd(schedule)
    else:
        optimizer = optax.adadelta(schedule, rho=0.95, eps=1e-6)
    clip = [optax.clip_by_global_norm(t.max_grad_norm)] if t.max_grad_norm > 0 else []
    plateau = [optax.contrib.reduce_on_plateau(factor=t.plateau_factor, patience=t.plateau_patience,
                                               accumulation_size=t.plateau_window)] if t.schedule == "plateau" else []
    chain = optax.chain(*clip, optimizer, *plateau)
    if t.accumulate_steps > 1:
        chain = optax.MultiSteps(chain, every_k_schedule=t.accumulate_steps).gradient_transformation()
    return optax.apply_if_finite(chain, MAX_CONSECUTIVE_SKIPS) if t.skip_nonfinite_updates else chain


def plateau_scale(opt_state) -> float:
    """The factor the plateau schedule applies to the learning rate now (1.0 for the other schedules)."""
    scale = optax.tree_utils.tree_get(opt_state, "scale")
    return 1.0 if scale is None else float(scale)


def accumulated_batches(opt_state):
    """Batches of the current update already accumulated (``optax.MultiSteps``), or None when every batch is an
    update; 0 right after an update is applied."""
    return optax.tree_utils.tree_get(opt_state, "mini_step")


def create_train_state(model: Seq2Seq, config: ml_collections.ConfigDict) -> TrainState:
    """Initialises the parameters from ``train.seed`` (their shapes do not depend on the dummy batch's)."""
    variables = jax.jit(model.init)(jax.random.PRNGKey(config.train.seed), jnp.ones((1, 1), jnp.int32),
                                    jnp.ones((1,), jnp.int32), jnp.ones((1, 1), jnp.int32))
    return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=make_optimizer(config.train))
