"""The optimizer options: gradient accumulation, the plateau schedule and early stopping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seq2seq_jax import optim
from seq2seq_jax import train
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.configs import default as default_config
from seq2seq_jax.configs import tiny
from seq2seq_jax.logger import read_metrics

from test_train import small_config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


PARAMS = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
GRADS = [{"w": jnp.array([0.3, 4.0, -1.0]), "b": jnp.array(2.0)},
         {"w": jnp.array([-0.1, 2.0, 0.2]), "b": jnp.array(-7.0)}]


def train_config(**overrides):
    t = tiny.get_config().train
    t.update({"learning_rate": 0.1, "max_grad_norm": 1.0, **overrides})
    return t


def apply(tx, grads_list, params=PARAMS, value=1.0):
    state, update = tx.init(params), jax.jit(tx.update)
    for grads in grads_list:
        updates, state = update(grads, state, params, value=jnp.float32(value))
        params = optax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("optimizer", default_config.OPTIMIZERS)
def test_accumulating_two_batches_is_one_update_on_their_mean_gradient(optimizer):
    """optax.MultiSteps: the first batch changes nothing, the second applies the update that the plain optimizer
    (clipping included) makes from the mean of both gradients."""
    accumulating = optim.make_optimizer(train_config(optimizer=optimizer, accumulate_steps=2))
    after_first, state = apply(accumulating, GRADS[:1])
    jax.tree_util.tree_map(np.testing.assert_array_equal, after_first, PARAMS)
    assert optim.accumulated_batches(state) == 1
    after_both, state = apply(accumulating, GRADS)
    assert optim.accumulated_batches(state) == 0
    mean = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, *GRADS)
    expected, _ = apply(optim.make_optimizer(train_config(optimizer=optimizer)), [mean])
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), after_both, expected)
    assert optim.accumulated_batches(optim.make_optimizer(train_config()).init(PARAMS)) is None


def test_plateau_schedule_multiplies_the_rate_once_the_windowed_loss_stops_improving():
    """reduce_on_plateau: windows of 2 updates; the loss never improves on the first window's, so after
    patience=1 more window the scale drops to plateau_factor (and the update with it)."""
    t = train_config(schedule="plateau", plateau_window=2, plateau_patience=1, plateau_factor=0.5, max_grad_norm=0.0,
                     optimizer="sgd")
    tx = optim.make_optimizer(t)
    _, state = apply(tx, GRADS * 2, value=3.0)  # two windows at the same loss: the second is no improvement
    assert optim.plateau_scale(state) == 0.5
    _, state = apply(tx, GRADS, value=3.0)
    assert optim.plateau_scale(state) == 1.0  # the first window sets the best loss
    assert optim.plateau_scale(optim.make_optimizer(train_config()).init(PARAMS)) == 1.0
    assert float(optim.make_schedule(t)(10)) == pytest.approx(t.learning_rate)  # the base rate stays constant


@pytest.mark.parametrize("overrides, message", [
    (dict(accumulate_steps=2, skip_nonfinite_updates=True), "train.accumulate_steps > 1 cannot be combined"),
    (dict(early_stopping_patience=2, eval_every=0), r"train.early_stopping_patience=2 needs validation"),
])
def test_options_that_cannot_work_together_are_refused(overrides, message):
    config = tiny.get_config()
    config.train.update(overrides)
    with pytest.raises(ValueError, match=message):
        default_config.validate(config)


@pytest.mark.slow
def test_accumulated_run_counts_updates_and_resumes_exactly(tmp_path, data_dir):
    """accumulate_steps=2: 4 steps are 4 updates of 2 batches (checkpoints and logs count updates), and a run
    stopped after update 2 and resumed ends with the same losses and parameters."""
    config = lambda n: small_config(data_dir, num_steps=n, accumulate_steps=2, checkpoint_every=2)  # noqa: E731
    straight = train.train_and_evaluate(config(4), str(tmp_path / "straight"))
    train.train_and_evaluate(config(2), str(tmp_path / "resumed"))
    train.train_and_evaluate(config(4), str(tmp_path / "resumed"))
    assert straight["step"] == 4
    losses = lambda name: [(r["step"], r["train_loss"]) for r in read_metrics(str(tmp_path / name))  # noqa: E731
                           if "train_loss" in r]
    assert [s for s, _ in losses("straight")] == [1, 2, 3, 4]
    assert losses("resumed") == losses("straight")
    params = lambda name: workdir_lib.load_trained(str(tmp_path / name), "latest")[2]  # noqa: E731
    jax.tree_util.tree_map(np.testing.assert_array_equal, params("resumed"), params("straight"))
    assert sorted(int(p.name) for p in (tmp_path / "straight" / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]


@pytest.mark.slow
def test_early_stopping_ends_after_patience_evaluations_without_improvement_and_stays_stopped(tmp_path, data_dir):
    """A metric that cannot improve (seq_acc of an untrained model stays 0, and equal is not better): the best is
    step 1's, so patience=2 stops the run at step 3 of 12; the same command again trains no more."""
    config = small_config(data_dir, num_steps=12, eval_every=1, early_stopping_patience=2, learning_rate=1e-9)
    final = train.train_and_evaluate(config, str(tmp_path))
    assert final["stopped_early_at"] == 3 and final["step"] == 3
    rows = read_metrics(str(tmp_path))
    assert max(r["step"] for r in rows if "train_loss" in r) == 3
    again = train.train_and_evaluate(config, str(tmp_path))
    assert again["step"] == 3 and again["stopped_early_at"] == 3
    assert [r for r in read_metrics(str(tmp_path)) if "train_loss" in r] == [r for r in rows if "train_loss" in r]
