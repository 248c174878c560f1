"""Checkpoint averaging (``seq2seq_jax.average``): the mean of a run's saved parameters, as a checkpoint that
``evaluate`` and ``translate`` load with ``--checkpoint=<name>``; every bad request is one line and writes nothing.

A copy of the session's tiny run (``tiny_workdir`` in conftest.py, one checkpoint at step 30) gets a second
checkpoint, step 31, whose parameters are step 30's plus noise: averaging needs no training, only saved steps.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from absl import app, flags

from seq2seq_jax import average
from seq2seq_jax import checkpointing
from seq2seq_jax import evaluate
from seq2seq_jax import inference
from seq2seq_jax import optim
from seq2seq_jax import translate
from seq2seq_jax import workdir as workdir_lib

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def fresh_flags(monkeypatch):
    """Each test parses its own flags from defaults; FLAGS is left as the test found it."""
    monkeypatch.setenv("SEQ2SEQ_JAX_CACHE_DIR", "off")
    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.unparse_flags()
    yield
    flags.FLAGS.unparse_flags()
    if was_parsed:
        flags.FLAGS.mark_as_parsed()


def run(module, *args):
    """``module.main`` as ``app.run`` calls it: flags parsed first, from their defaults."""
    flags.FLAGS.unparse_flags()
    return module.main(flags.FLAGS(["prog", *args]))


def fails_with(module, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(module, *args)
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def tree_of(directory) -> list[str]:
    """Every path under ``directory``: what a refused request must leave as it was."""
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, dirs, files in os.walk(directory) for name in dirs + files)


@pytest.fixture(scope="module")
def two_steps(tiny_workdir, tmp_path_factory):
    """The tiny run with checkpoints at steps 30 and 31 (31: step 30's parameters plus noise), and the
    parameters of each step."""
    path = tmp_path_factory.mktemp("average") / "run"
    shutil.copytree(tiny_workdir, path)
    config, model, _, _ = workdir_lib.load_run(str(path))
    checkpoints = checkpointing.Checkpoints(str(path), keep=config.train.keep_checkpoints)
    state, data_state, meta = checkpoints.restore(optim.create_train_state(model, config))
    leaves, treedef = jax.tree.flatten(jax.device_get(state.params))
    noise = [np.random.default_rng(i).normal(0, 0.1, leaf.shape).astype(leaf.dtype) for i, leaf in enumerate(leaves)]
    moved = jax.tree.unflatten(treedef, [a + b for a, b in zip(leaves, noise)])
    checkpoints.save(state.replace(step=state.step + 1, params=moved), data_state, meta)
    checkpoints.wait()
    checkpoints.close()
    assert sorted(os.listdir(path / "checkpoints")) == ["30", "31"]
    return path, {30: jax.tree.unflatten(treedef, leaves), 31: moved}


@pytest.fixture
def workdir(two_steps, tmp_path):
    """A copy of ``two_steps``'s run for one test."""
    shutil.copytree(two_steps[0], tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def params_at(two_steps):
    return two_steps[1]


def test_the_mean_of_copies_is_the_tree_itself_and_the_mean_of_two_is_elementwise():
    rng = np.random.default_rng(0)
    a = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": {"c": rng.normal(size=5).astype(np.float32)}}
    b = jax.tree.map(lambda x: (x * 3 + 1).astype(np.float32), a)
    same = average.average_params([a, a, a])
    jax.tree.map(np.testing.assert_array_equal, same, a)  # bit for bit
    mean = average.average_params([a, b])
    jax.tree.map(lambda m, x, y: np.testing.assert_array_equal(m, (x + y) / np.float32(2)), mean, a, b)
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(mean))


def test_averaging_one_checkpoint_gives_its_parameters(workdir, params_at, capsys):
    run(average, f"--workdir={workdir}", "--steps=30", "--output=only30")
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"checkpoint": "only30", "directory": str(workdir / "only30"), "step": 30,
                       "averaged_steps": [30]}
    loaded = workdir_lib.load_trained(str(workdir), "only30")[2]
    jax.tree.map(np.testing.assert_array_equal, loaded, params_at[30])


def test_the_last_two_checkpoints_average_to_their_elementwise_mean(workdir, params_at, capsys):
    run(average, f"--workdir={workdir}", "--last=2")
    assert json.loads(capsys.readouterr().out)["averaged_steps"] == [30, 31]
    assert sorted(os.listdir(workdir / "averaged")) == ["31"]  # the newest averaged step
    assert not [name for name in os.listdir(workdir) if ".tmp" in name]
    loaded = workdir_lib.load_trained(str(workdir), "averaged")[2]
    expected = jax.tree.map(lambda a, b: (a + b) / np.float32(2), params_at[30], params_at[31])
    jax.tree.map(np.testing.assert_array_equal, loaded, expected)
    # The run's own checkpoints are as they were: averaging reads them only.
    assert sorted(os.listdir(workdir / "checkpoints")) == ["30", "31"]


def test_evaluate_and_translate_load_the_averaged_checkpoint(workdir, tmp_path, capsys):
    run(average, f"--workdir={workdir}", "--last=2")
    capsys.readouterr()
    run(evaluate, f"--workdir={workdir}", "--split=test", "--checkpoint=averaged")
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == "averaged" and result["step"] == 31
    assert os.path.exists(workdir / "eval" / "test_averaged.json")  # beside, not over, the training-time test.json

    (tmp_path / "in.txt").write_text("abc\ncab\n")
    run(translate, f"--workdir={workdir}", "--checkpoint=averaged", f"--input={tmp_path / 'in.txt'}",
        f"--output={tmp_path / 'out.txt'}")
    config, model, params, source_vocab, target_vocab = workdir_lib.load_trained(str(workdir), "averaged")
    expected = inference.translate_lines(model, params, source_vocab, target_vocab, ["abc", "cab"], config.eval,
                                         batch_size=2)
    assert (tmp_path / "out.txt").read_text() == "".join(t.hypotheses[0] + "\n" for t in expected)


@pytest.mark.parametrize("args, expected", [
    (["--last=3"], "--last=3: {checkpoints} has steps 30, 31 (train.keep_checkpoints sets how many are kept)"),
    (["--steps=30,99"], "--steps: step 99 is not saved; {checkpoints} has steps 30, 31"),
    (["--steps=30,30"], "--steps: step 30 is listed twice"),
    (["--steps=30,last"], "--steps: 'last' is not a step number"),
    (["--last=1", "--output=best"], "'best' cannot name an averaged checkpoint"),
    (["--last=1", "--output=../elsewhere"], "'../elsewhere' cannot name an averaged checkpoint"),
    (["--last=1", "--output=vocab"], "{workdir}/vocab exists: remove it or choose another --output"),
])
def test_a_bad_request_is_one_line_and_writes_nothing(workdir, args, expected):
    before = tree_of(workdir.parent)
    message = fails_with(average, f"--workdir={workdir}", *args)
    assert expected.format(workdir=workdir, checkpoints=workdir / "checkpoints") in message
    assert tree_of(workdir.parent) == before


def test_an_existing_average_is_never_replaced(workdir):
    run(average, f"--workdir={workdir}", "--steps=30")
    before = tree_of(workdir)
    assert f"{workdir}/averaged exists" in fails_with(average, f"--workdir={workdir}", "--last=2")
    assert tree_of(workdir) == before
    assert checkpointing.averaged_step(str(workdir), "averaged") == 30  # the first average, still readable


def test_a_workdir_without_checkpoints_or_run_is_one_line(workdir, tmp_path):
    shutil.rmtree(workdir / "checkpoints")
    before = tree_of(tmp_path)
    assert f"no checkpoint in {workdir}/checkpoints: train the run first" in fails_with(
        average, f"--workdir={workdir}", "--last=1")
    assert "does not exist" in fails_with(average, f"--workdir={tmp_path / 'nope'}", "--last=1")
    assert "not a training workdir" in fails_with(average, f"--workdir={tmp_path}", "--last=1")
    assert tree_of(tmp_path) == before


def test_last_or_steps_is_required_and_not_both(workdir):
    with pytest.raises(app.UsageError, match="either --last=N or --steps"):
        run(average, f"--workdir={workdir}")
    with pytest.raises(app.UsageError, match="either --last=N or --steps"):
        run(average, f"--workdir={workdir}", "--last=1", "--steps=30")


def test_loading_an_unknown_or_foreign_checkpoint_name_is_one_line(workdir, tmp_path):
    (tmp_path / "in.txt").write_text("abc\n")
    for module, args in ((evaluate, []), (translate, [f"--input={tmp_path / 'in.txt'}"])):
        message = fails_with(module, f"--workdir={workdir}", "--checkpoint=last", *args)
        assert f"no checkpoint 'last' in {workdir}: the checkpoint is 'best', 'latest' or the --output name" in message
        assert f"{workdir}/vocab is not an averaged checkpoint" in fails_with(
            module, f"--workdir={workdir}", "--checkpoint=vocab", *args)
