"""Reliability: kills, preemption, damaged checkpoints and files, a busy workdir, divergence.

End-to-end tests run the real training CLI in subprocesses on a very small tiny config. The test hook
``$SEQ2SEQ_JAX_TEST_FAULT=<point>@<step>[:<SIGNAL>]`` (``checkpointing.fault_point``) makes the run kill
itself (SIGKILL) or send itself a signal at a chosen point, so each fault lands exactly where the test says.
The README's "Reliability" figures are counted from the lists in this file (``KILL_POINTS`` ...).
"""

import errno
import gc
import json
import logging
import os
import signal
import subprocess
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl import flags
from etils import epath
from flax.training import train_state

from seq2seq_jax import checkpointing, files, logger, train
from seq2seq_jax import main as train_main
from seq2seq_jax import optim
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.configs import tiny
from seq2seq_jax.logger import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 20
# Faults of the interrupted run, in order, each followed by a restart of the same command: (fault, exit
# status, the step the next start resumes from, at most). log_every=4 and checkpoint_every=5 keep a log window
# open across every checkpoint, so resuming must also restore the window's per-step metrics.
KILL_POINTS = [
    ("step@3:SIGTERM", train.EXIT_PREEMPTED, 3),  # preempted: saves step 3 and exits 75
    ("step@8", -signal.SIGKILL, 5),  # kill -9 between checkpoints
    ("save@15", -signal.SIGKILL, 10),  # kill -9 while checkpoint 15 is being written
    (f"final_evaluation@{NUM_STEPS}", -signal.SIGKILL, NUM_STEPS),  # kill -9 during the final evaluation
]
SMALL = {  # --config.* overrides: a few seconds per run on 2 CPU cores
    "data.num_train": 300, "data.num_validation": 20, "data.num_test": 20, "data.num_buckets": 1,
    "data.synthetic_max_length": 8, "model.hidden_size": 16, "model.embedding_size": 8, "model.attention_size": 8,
    "model.dropout": 0.2, "train.num_steps": NUM_STEPS, "train.batch_size": 16, "train.log_every": 4,
    "train.checkpoint_every": 5, "train.eval_every": 0,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def cli(workdir, data_dir, *, fault=None, **overrides) -> subprocess.CompletedProcess:
    """The training CLI on the SMALL config (plus ``overrides``), optionally with a fault injected."""
    flags = [f"--config.{k}={v}" for k, v in {**SMALL, "data.data_dir": data_dir, **overrides}.items()]
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}  # with the session's compilation cache
    env.pop(checkpointing.FAULT_ENV, None)
    if fault:
        env[checkpointing.FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "seq2seq_jax.main", f"--config={REPO}/seq2seq_jax/configs/tiny.py",
                           f"--workdir={workdir}", *flags], env=env, capture_output=True, text=True, timeout=300)


def small_config(data_dir, **train_overrides):
    config = tiny.get_config()
    for key, value in {**SMALL, "data.data_dir": data_dir}.items():
        section, field = key.split(".")
        config[section][field] = value
    config.train.update(train_overrides)
    return config


def preempted_at(step, config, workdir, monkeypatch):
    """Runs ``config`` in this process until a SIGTERM (sent by the fault hook) stops it after ``step``:
    a quick way to a checkpoint at ``step`` without the final evaluation."""
    monkeypatch.setenv(checkpointing.FAULT_ENV, f"step@{step}:SIGTERM")
    with pytest.raises(train.Preempted, match=f"SIGTERM received: stopped after step {step},"):
        train.train_and_evaluate(config, str(workdir))
    monkeypatch.delenv(checkpointing.FAULT_ENV)


def final_metrics(done: subprocess.CompletedProcess) -> dict:
    """The JSON the CLI prints last on stdout (TFDS may print its preparation notes before it)."""
    return json.loads(done.stdout[done.stdout.index('{\n  "'):])


def train_losses(workdir) -> list[tuple[int, float]]:
    return [(r["step"], r["train_loss"]) for r in read_metrics(str(workdir)) if "train_loss" in r]


def params_of(workdir):
    return workdir_lib.load_trained(str(workdir), "latest")[2]


def assert_same_params(a, b):
    jax.tree_util.tree_map(np.testing.assert_array_equal, params_of(a), params_of(b))


# --- Kills and preemption through the CLI -----------------------------------------------------------


@pytest.mark.slow
def test_run_killed_and_preempted_at_every_point_ends_bit_identical_to_an_uninterrupted_one(
        tmp_path, data_dir):
    straight = cli(tmp_path / "straight", data_dir)
    assert straight.returncode == 0, straight.stderr[-2000:]
    resumed = tmp_path / "resumed"
    for fault, status, resume_step in KILL_POINTS:
        killed = cli(resumed, data_dir, fault=fault)
        assert killed.returncode == status, (fault, killed.stderr[-2000:])
        if status == train.EXIT_PREEMPTED:  # one line saying what happened, and the step saved
            assert killed.stderr.splitlines()[-1].startswith("preempted: SIGTERM received: stopped after step 3")
            assert "3" in os.listdir(resumed / "checkpoints")
        restarted_from = checkpointing.Checkpoints(str(resumed)).latest_step()
        if status == -signal.SIGKILL and fault.startswith(("step", "save")):  # the newest completed save
            assert restarted_from <= resume_step, fault  # (an asynchronous one may not have finished)
        else:
            assert restarted_from == resume_step, fault
    final = cli(resumed, data_dir)
    assert final.returncode == 0, final.stderr[-2000:]
    assert final_metrics(final) == final_metrics(straight)
    assert train_losses(resumed) == train_losses(tmp_path / "straight")  # exact floats, each log step once
    assert [r["step"] for r in read_metrics(str(resumed)) if "test/loss" in r] == [NUM_STEPS]  # not twice
    assert_same_params(resumed, tmp_path / "straight")
    starts = json.load(open(resumed / "run_info.json"))["starts"]
    assert len(starts) == len(KILL_POINTS) + 1
    assert {"command", "git", "packages", "devices", "host", "start_time"} <= set(starts[0])
    assert "--config.train.num_steps=20" in starts[0]["command"] and starts[0]["packages"]["jax"] == jax.__version__


@pytest.mark.slow
def test_second_signal_stops_at_once(tmp_path):
    script = ("import os, signal, time\n"
              "from seq2seq_jax import train\n"
              "with train._StopSignals() as s:\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    time.sleep(0.1)\n"
              "    assert s.received == 'SIGTERM'\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    time.sleep(5)\n"
              "print('not stopped')\n")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": REPO},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGTERM, done.stderr[-2000:]
    assert "not stopped" not in done.stdout


# --- One run per workdir -------------------------------------------------------------------------------


@pytest.mark.slow
def test_busy_workdir_is_refused_naming_the_process_that_holds_it(tmp_path, data_dir):
    with files.file_lock(str(tmp_path / workdir_lib.LOCK_FILE), blocking=False):
        refused = cli(tmp_path, data_dir)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"error: workdir {tmp_path} is in use by pid {os.getpid()} on host ")
    assert not (tmp_path / "config.json").exists() and not (tmp_path / "checkpoints").exists()


def test_lock_left_by_a_killed_process_does_not_block(tmp_path):
    path = str(tmp_path / workdir_lib.LOCK_FILE)
    script = ("import os, signal\nfrom seq2seq_jax import files\n"
              f"with files.file_lock({path!r}):\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / workdir_lib.LOCK_FILE).read_text().startswith("pid ")  # the dead process's lock file is there
    with files.file_lock(path, blocking=False):  # what train_and_evaluate takes: not blocked
        with pytest.raises(files.WorkdirBusyError, match=f"in use by pid {os.getpid()} on host"):
            with files.file_lock(path, blocking=False):  # while held, a second taker is refused
                pass


# --- Damaged checkpoints and files ---------------------------------------------------------------------


def _damage_state(step_dir):
    for root, _, names in os.walk(step_dir / "state"):
        for name in names:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")


@pytest.mark.slow
def test_unreadable_latest_checkpoint_falls_back_to_the_previous_one_and_is_kept(
        tmp_path, data_dir, capfd, caplog, monkeypatch):
    preempted_at(6, small_config(data_dir, checkpoint_every=3), tmp_path, monkeypatch)
    _damage_state(tmp_path / "checkpoints" / "6")
    capfd.readouterr()
    preempted_at(7, small_config(data_dir, checkpoint_every=3), tmp_path, monkeypatch)
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warnings) == 1 and "checkpoints/6 cannot be read" in warnings[0]
    assert "resuming from step 3" in warnings[0]
    assert "\n" not in warnings[0] and "Traceback" not in capfd.readouterr().err
    assert [r["step"] for r in read_metrics(str(tmp_path)) if "train_loss" in r] == [4]  # the row of 6 went
    kept = os.listdir(tmp_path / "unreadable_checkpoints")
    assert len(kept) == 1 and kept[0].startswith("6-") and os.listdir(tmp_path / "unreadable_checkpoints" / kept[0])
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["6", "7"]  # step 6 saved again, from step 3 on
    # Now nothing is readable: one error, and nothing is moved.
    for step in ("6", "7"):
        _damage_state(tmp_path / "checkpoints" / step)
    with pytest.raises(checkpointing.CheckpointError, match=r"no checkpoint in .* can be read, all left in place"):
        train.train_and_evaluate(small_config(data_dir), str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["6", "7"]
    assert len(os.listdir(tmp_path / "unreadable_checkpoints")) == 1


def training_command_fails(workdir, **overrides) -> str:
    """The message ``python -m seq2seq_jax.main`` with ``--config.<key>=<value>`` ``overrides`` of the tiny
    config ends with, run in this process. config_flags defines each override as a flag of the process's
    FLAGS when it parses it, so the ones an earlier in-process run defined are removed first."""
    argv = ["main", f"--config={REPO}/seq2seq_jax/configs/tiny.py", f"--workdir={workdir}",
            *[f"--config.{k}={v}" for k, v in overrides.items()]]
    for name in [name for name in flags.FLAGS if name.startswith("config.")]:
        delattr(flags.FLAGS, name)
    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.unparse_flags()
    try:
        with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exit_info:
            train_main.main(flags.FLAGS(argv))
    finally:
        flags.FLAGS.unparse_flags()
        if was_parsed:
            flags.FLAGS.mark_as_parsed()
    return exit_info.value.code


@pytest.mark.slow  # orbax's array writers of the failed step, left running, may call back into its closed event
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # loop (a real full disk fails them
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")  # too) or never finish
def test_a_full_disk_during_a_save_is_one_line_keeps_the_complete_checkpoints_and_the_same_command_resumes(
        tmp_path, data_dir, monkeypatch, capfd, caplog):
    """The disk fills while orbax writes step 10 (its writer threads get ENOSPC inside the step's temporary
    directory); the run stops at the next save, in one line, and a rerun resumes from step 5."""
    workdir, write_text = tmp_path / "run", epath.Path.write_text

    def no_space_in_step_10(path, *args, **kwargs):
        if f"{os.sep}checkpoints{os.sep}10.orbax-checkpoint-tmp" in str(path):  # orbax's temporary directory
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write_text(path, *args, **kwargs)

    monkeypatch.setattr(epath.Path, "write_text", no_space_in_step_10)
    assert training_command_fails(workdir, **SMALL, **{"data.data_dir": data_dir}) == (
        f"error: no space left on device for workdir {workdir}: the checkpoint of step 10 could not be saved (its "
        "partial files go when the run starts again); the complete checkpoints are kept (step 5). Free space, then "
        "run the same command to resume from step 5")
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr and "No space left on device" not in stderr  # orbax's reports: not shown
    assert checkpointing.Checkpoints(str(workdir)).latest.all_steps() == [5]
    gc.collect()  # what is left of the failed save goes now, in this test

    monkeypatch.setattr(epath.Path, "write_text", write_text)  # space freed
    caplog.set_level(logging.INFO, logger="absl")
    preempted_at(6, small_config(data_dir), workdir, monkeypatch)
    assert f"resumed {workdir} from step 5" in caplog.text
    assert sorted(os.listdir(workdir / "checkpoints")) == ["5", "6"]  # step 10's partial directory is gone
    assert [r["step"] for r in read_metrics(str(workdir)) if "train_loss" in r] == [4]  # rows after step 5 dropped


def test_a_full_disk_anywhere_else_is_one_line_naming_the_workdir(tmp_path, monkeypatch):
    def no_space(config, workdir):  # e.g. metrics.jsonl or TensorBoard's file, flushed on a full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(train, "train_and_evaluate", no_space)
    assert training_command_fails(tmp_path / "run") == (
        f"error: no space left on device ([Errno 28] No space left on device) while training in workdir "
        f"{tmp_path / 'run'}: free space, then run the same command to resume from its newest complete checkpoint")


def test_a_full_disk_is_recognised_in_every_form_orbax_reports_it():
    tensorstore = ValueError('RESOURCE_EXHAUSTED: Error writing "params.w/0": Failed to write 199 bytes to file 19: '
                             "No space left on device [os_error_code='28']")
    try:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as cause:
            raise RuntimeError("Save Finalize thread failed") from cause
    except RuntimeError as wrapped:
        chained = wrapped
    assert all(map(checkpointing.is_disk_full, [OSError(errno.ENOSPC, "x"), tensorstore, chained]))
    assert not any(map(checkpointing.is_disk_full, [OSError(errno.EACCES, "x"), ValueError("NOT_FOUND"), None]))


def test_half_written_last_metrics_row_is_dropped_and_a_damaged_middle_row_is_an_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.0}\n{"step": 2, "train_lo')
    assert read_metrics(str(tmp_path)) == [{"step": 1, "train_loss": 2.0}]
    metrics_logger = logger.MetricsLogger(str(tmp_path), start_step=2)
    metrics_logger.write({"step": 3, "train_loss": 1.0})
    metrics_logger.close()
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 3]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not a JSON row"):
        read_metrics(str(tmp_path))


def test_eval_outputs_interrupted_while_written_keep_their_previous_version(tmp_path, monkeypatch):
    result = {"split": "test", "loss": 1.0, "predictions": [("abc", "cba", ["cba"])]}
    workdir_lib.write_eval(str(tmp_path), result, step=1)
    before = {name: (tmp_path / "eval" / name).read_text() for name in os.listdir(tmp_path / "eval")}
    assert sorted(before) == ["test.json", "test_predictions.tsv"]

    def killed(*args):
        raise KeyboardInterrupt  # the process stops before the finished temporary file replaces the old one

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        workdir_lib.write_eval(str(tmp_path), {**result, "predictions": [("x", "y", ["z"])] * 1000}, step=2)
    for name, text in before.items():
        assert (tmp_path / "eval" / name).read_text() == text


def test_a_huge_line_is_filtered_by_the_default_length_limits_and_counted(tmp_path):
    from seq2seq_jax.data import pipeline  # noqa: PLC0415

    config = tiny.get_config().data
    pairs = [("abc", "cba")] * 8 + [("x" * 100_000, "y")]
    raw = {"train": [{"source": s, "target": t, "references": [t]} for s, t in pairs]}
    data = pipeline.Data(config, raw, batch_size=4, seed=0, vocab_dir=str(tmp_path))
    assert data.num_filtered["train"] == 1 and len(data.examples("train")) == 8
    assert max(s for s, _ in data.bucket_shapes) <= config.max_source_length


def test_damaged_vocabulary_is_named(tmp_path):
    from seq2seq_jax.data import vocab as vocab_lib  # noqa: PLC0415
    path = str(tmp_path / "source_vocab.json")
    vocab_lib.build_vocab("char", ["abc"]).save(path)
    with open(path, "r+") as f:
        f.truncate(10)
    with pytest.raises(ValueError, match=r"vocabulary .*source_vocab.json is damaged"):
        vocab_lib.load_vocab(path)


@pytest.mark.slow
def test_failed_first_start_does_not_block_the_corrected_command(tmp_path, data_dir, monkeypatch):
    config = small_config(data_dir, num_steps=2)
    config.train.batch_size = 512  # larger than the 300 training examples: fails after reading the data
    with pytest.raises(ValueError, match="fewer examples"):
        train.train_and_evaluate(config, str(tmp_path))
    assert not (tmp_path / "config.json").exists()
    corrected = small_config(data_dir)
    corrected.data.num_train = 200  # the failed start's vocabulary is rebuilt, not reused
    corrected.train.update(dict(skip_nonfinite_updates=True, log_every=1))
    preempted_at(1, corrected, tmp_path, monkeypatch)  # it trains
    assert json.load(open(tmp_path / "config.json"))["data"]["num_train"] == 200
    assert read_metrics(str(tmp_path))[0]["skipped_updates"] == 0  # counted in every row when skipping is on


@pytest.mark.slow
def test_dataset_preparation_holds_a_lock_in_the_data_directory(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds  # noqa: PLC0415

    from seq2seq_jax.data import pipeline  # noqa: PLC0415

    prepare, held = tfds.core.DatasetBuilder.download_and_prepare, []
    config = small_config(str(tmp_path / "tfds"))
    lock = pipeline.prepare_lock_path(config.data)

    def prepare_while_checking_the_lock(builder, *args, **kwargs):
        with pytest.raises(files.WorkdirBusyError):  # a second process would wait here
            with files.file_lock(lock, blocking=False):
                pass
        held.append(lock)
        return prepare(builder, *args, **kwargs)

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", prepare_while_checking_the_lock)
    pipeline.get_data(config.data, batch_size=16, seed=0, vocab_dir=str(tmp_path / "vocab"))
    assert len(held) == 1


def test_machine_paths_are_not_part_of_a_run_but_model_and_optimizer_state_are(tmp_path):
    config = tiny.get_config()
    files.save_json(str(tmp_path / "config.json"), json.loads(config.to_json_best_effort()))
    config.data.data_dir = "/another/machine/tfds"
    config.train.learning_rate = 0.5  # training settings may change on resume
    assert workdir_lib.check_resumable(config, str(tmp_path)) is True
    config.model.hidden_size += 1
    config.train.skip_nonfinite_updates = True
    with pytest.raises(ValueError, match=r"\(model.hidden_size: \d+ -> \d+; train.skip_nonfinite_updates: False -> True\)"):
        workdir_lib.check_resumable(config, str(tmp_path))


# --- Numerical faults -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_divergence_between_log_steps_stops_at_the_first_bad_step_and_keeps_the_good_checkpoints(
        tmp_path, data_dir, monkeypatch):
    preempted_at(4, small_config(data_dir, checkpoint_every=2), tmp_path, monkeypatch)
    before = read_metrics(str(tmp_path))
    diverging = small_config(data_dir, num_steps=12, log_every=6, checkpoint_every=1, learning_rate=float("inf"))
    with pytest.raises(train.NonFiniteLossError,
                       match=r"diverged at step 5 .*Last good checkpoint: step 4 in .*checkpoints"):
        train.train_and_evaluate(diverging, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
    assert read_metrics(str(tmp_path)) == before  # nothing of the bad steps logged
    preempted_at(5, small_config(data_dir), tmp_path, monkeypatch)  # resumes from step 4, trains step 5
    assert read_metrics(str(tmp_path))[-1]["step"] == 4 and "5" in os.listdir(tmp_path / "checkpoints")
    assert np.isfinite(float(optax.global_norm(params_of(tmp_path))))


def _toy_state(skip):
    """A one-parameter 'model' whose loss is NaN on a batch whose inputs hold inf."""
    def apply_fn(variables, inputs, lengths, targets_in, train=False, rngs=None):
        return variables["params"]["w"] * inputs[:, :, None] * jnp.arange(5.0)[None, None, :]  # [batch, len, vocab]
    config = tiny.get_config().train
    config.update(dict(skip_nonfinite_updates=skip, learning_rate=0.1))
    return train_state.TrainState.create(apply_fn=apply_fn, params={"w": jnp.ones(())},
                                         tx=optim.make_optimizer(config))


def _toy_batch(value):
    return {"inputs": jnp.full((2, 3), value), "input_lengths": jnp.full((2,), 3),
            "targets": jnp.full((2, 3), 4), "target_lengths": jnp.full((2,), 3)}


def _toy_step(skip, **bounds):
    bounds = {"max_loss": 1e4, "max_grad_norm_abort": 0.0, **bounds}
    return jax.jit(lambda s, b, x: train.checked_train_step(s, b, x, skip_nonfinite=skip,
                                                            dropout_key=jax.random.key(0), **bounds))


@pytest.mark.parametrize("bound, value", [("max_loss", 0.1), ("max_grad_norm_abort", 1e-6)])
def test_finite_divergence_beyond_a_bound_is_flagged_at_its_first_step(bound, value):
    step = _toy_step(False, **{bound: value})
    state, first_bad = _toy_state(False), jnp.int32(-1)
    for _ in range(2):
        state, first_bad, metrics = step(state, first_bad, _toy_batch(1.0))
        assert np.isfinite(float(metrics["loss_sum"]))
    assert int(first_bad) == 1


@pytest.mark.parametrize("skip", [False, True])
def test_nonfinite_gradient_is_flagged_on_device_or_skipped_and_counted(skip):
    step, batch = _toy_step(skip), _toy_batch
    state, first_bad = _toy_state(skip), jnp.int32(-1)
    state, first_bad, _ = step(state, first_bad, batch(1.0))
    good_w = state.params["w"]
    state, first_bad, metrics = step(state, first_bad, batch(jnp.inf))  # step 2: NaN loss and gradient
    state, first_bad, _ = step(state, first_bad, batch(1.0))
    assert not np.isfinite(float(metrics["grad_norm"]))
    if skip:
        assert int(first_bad) == -1 and int(state.opt_state.total_notfinite) == 1
        assert np.isfinite(float(state.params["w"])) and float(state.params["w"]) != float(good_w)
    else:
        assert int(first_bad) == 2  # the first bad step, kept although step 3 ran after it
        assert not np.isfinite(float(state.params["w"]))  # the NaN update was applied


def test_readme_figures_are_the_tests():
    import test_bad_config  # noqa: PLC0415 - a sibling test module (tests/ is on sys.path)

    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        figures = f.read().split("<!-- reliability-figures -->")[1].split("<!-- /reliability-figures -->")[0]
    numbers = [int(word) for word in figures.replace("(", " ").split() if word.isdigit()]
    assert numbers == [len(KILL_POINTS), len(test_bad_config.BAD_VALUES), len(test_bad_config.BAD_CLI)]
