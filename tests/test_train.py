"""Training: the tiny config learns, a stopped run resumes bit-exactly, bad settings fail clearly.

Faults (kills, preemption, damaged checkpoints, divergence) are in test_reliability.py."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seq2seq_jax import optim
from seq2seq_jax import train
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.configs import default, tiny
from seq2seq_jax.logger import read_metrics


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def small_config(data_dir, **train_overrides):
    """The tiny config, made smaller still: for tests of mechanics, not of learning."""
    config = tiny.get_config()
    config.data.data_dir = data_dir
    config.data.num_train = 300
    config.data.num_validation = 20
    config.data.num_test = 20
    config.data.synthetic_max_length = 8
    config.model.hidden_size = 16
    config.model.embedding_size = 8
    config.model.attention_size = 8
    config.model.dropout = 0.2  # dropout on, so resume must reproduce the masks too
    config.train.update(dict(num_steps=12, batch_size=16, log_every=1, eval_every=0, checkpoint_every=6))
    config.train.update(train_overrides)
    return config


@pytest.mark.slow
def test_tiny_config_learns_to_reverse_strings(tmp_path, data_dir):
    config = tiny.get_config()
    config.data.data_dir = data_dir
    final = train.train_and_evaluate(config, str(tmp_path))
    assert final["test/seq_acc"] >= 0.9, final  # 600 steps on 2 CPU cores: typically 0.97-0.99
    rows = read_metrics(str(tmp_path))
    train_rows = [r for r in rows if "train_loss" in r]
    assert [r["step"] for r in train_rows] == list(range(50, 601, 50))
    assert train_rows[-1]["train_loss"] < 0.1 * train_rows[0]["train_loss"]
    saved = json.load(open(tmp_path / "eval" / "test.json"))
    assert saved["seq_acc"] == final["test/seq_acc"] and saved["by_length"]
    assert os.listdir(tmp_path / "tensorboard")


@pytest.mark.slow
def test_stopped_run_resumes_with_identical_losses_and_parameters(tmp_path, data_dir):
    straight = train.train_and_evaluate(small_config(data_dir), str(tmp_path / "straight"))
    train.train_and_evaluate(small_config(data_dir, num_steps=6), str(tmp_path / "resumed"))
    resumed = train.train_and_evaluate(small_config(data_dir), str(tmp_path / "resumed"))
    losses = lambda name: [(r["step"], r["train_loss"]) for r in read_metrics(str(tmp_path / name))  # noqa: E731
                           if "train_loss" in r]
    assert losses("resumed") == losses("straight")  # exact floats, steps 1..12 once each
    assert resumed["test/loss"] == straight["test/loss"]
    params = lambda name: workdir_lib.load_trained(str(tmp_path / name), "latest")[2]  # noqa: E731
    jax.tree_util.tree_map(np.testing.assert_array_equal, params("resumed"), params("straight"))


@pytest.mark.slow
def test_finished_run_restarted_trains_no_more(tmp_path, data_dir):
    config = small_config(data_dir, num_steps=3, checkpoint_every=3)
    train.train_and_evaluate(config, str(tmp_path))
    before = [r for r in read_metrics(str(tmp_path)) if "train_loss" in r]
    final = train.train_and_evaluate(config, str(tmp_path))
    assert final["step"] == 3
    assert [r for r in read_metrics(str(tmp_path)) if "train_loss" in r] == before


@pytest.mark.slow
def test_workdir_of_another_model_is_refused(tmp_path, data_dir):
    train.train_and_evaluate(small_config(data_dir, num_steps=1), str(tmp_path))
    other = small_config(data_dir, num_steps=1)
    other.model.hidden_size = 32
    with pytest.raises(ValueError, match=r"different config \(model.hidden_size: \d+ -> \d+\)"):
        train.train_and_evaluate(other, str(tmp_path))


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step(tmp_path, data_dir):
    config = small_config(data_dir, num_steps=4, learning_rate=1e30, optimizer="sgd", max_grad_norm=0.0)
    config.model.init = "uniform"
    config.model.init_scale = 50.0
    with pytest.raises(train.NonFiniteLossError, match=r"diverged at step 1 \(loss .*Last good checkpoint: none"):
        train.train_and_evaluate(config, str(tmp_path))
    assert not os.listdir(tmp_path / "checkpoints")


@pytest.mark.parametrize("section, field, value, message", [
    ("train", "optimizer", "adamw", r"train.optimizer='adamw' is not allowed; allowed: \['adam', 'sgd', 'adadelta'\]"),
    ("train", "schedule", "linear", r"train.schedule='linear' is not allowed"),
    ("train", "num_steps", 0, r"train.num_steps=0 must be a positive integer"),
    ("eval", "beam_size", 0, r"eval.beam_size=0 must be a positive integer"),
    ("eval", "best_metric", "accuracy", r"eval.best_metric='accuracy' must be one of eval.metrics"),
    ("model", "cell", "lstmm", r"model.cell='lstmm' is not allowed"),
    ("data", "dataset", "nonsense/x", r"data.dataset"),
])
def test_bad_config_fails_before_writing_anything(tmp_path, data_dir, section, field, value, message):
    config = small_config(data_dir)
    config[section][field] = value
    with pytest.raises(ValueError, match=message):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_token_losses_count_only_real_positions():
    logits = jax.random.normal(jax.random.key(0), (2, 4, 5))
    targets = jnp.array([[3, 4, 2, 0], [2, 0, 0, 0]])
    sums = train.token_losses(logits, targets, jnp.array([3, 1]))
    expected = sum(float(optax.softmax_cross_entropy_with_integer_labels(logits[b, t], targets[b, t]))
                   for b, n in enumerate([3, 1]) for t in range(n))
    assert float(sums["token_count"]) == 4.0
    np.testing.assert_allclose(float(sums["loss_sum"]), expected, rtol=1e-6)


def test_halving_schedule_halves_after_the_start():
    config = tiny.get_config().train
    config.update(dict(schedule="halving", learning_rate=1.0, halving_start=10, halving_every=5))
    schedule = optim.make_schedule(config)
    assert [float(schedule(s)) for s in (0, 9, 10, 14, 15, 20)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


@pytest.mark.parametrize("learning_rate, start, every", [(0.7, 2500, 500), (1e-3, 0, 1), (3.0, 7, 3)])
def test_halving_schedule_is_the_closed_form_at_every_boundary(learning_rate, start, every):
    """optax.piecewise_constant_schedule equals the closed form ``lr * 0.5 ** max(0, (step - start) // every + 1)``
    (Sutskever et al. 2014, sec. 3.4) on each side of each of 100 halvings (past ~2**-126 the two differ: the CPU
    flushes the closed form's power of 0.5 to 0 before repeated halving reaches it)."""
    config = tiny.get_config().train
    config.update(dict(schedule="halving", learning_rate=learning_rate, halving_start=start, halving_every=every,
                       num_steps=start + 100 * every))
    steps = jnp.array(sorted({s for k in range(-2, 100) for s in start + k * every + np.array([-1, 0, 1]) if s >= 0}))
    closed_form = jax.jit(lambda step: learning_rate * 0.5 ** jnp.maximum(0, (step - start) // every + 1))
    values = jax.jit(jax.vmap(optim.make_schedule(config)))(steps)
    np.testing.assert_array_equal(values, jax.vmap(closed_form)(steps))


def test_parallel_text_without_a_validation_or_test_file_is_refused_before_any_io(tmp_path):
    config = default.get_config()
    config.data.dataset, config.data.train_file = "parallel_text", str(tmp_path / "train.tsv")
    with pytest.raises(ValueError, match="data.validation_file: training on parallel_text needs a validation file"):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
