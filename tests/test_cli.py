"""The command-line tools ``main`` (train) and ``evaluate`` (``translate``: tests/test_translate.py).

One tiny run is trained once for the module (``train.train_and_evaluate`` directly, a few dozen steps:
accuracy does not matter here). The tools' ``main(argv)`` functions are then called in-process with
their flags parsed by ``flags.FLAGS`` as ``app.run`` would; only the training CLI's typo check runs in a
subprocess, to prove the real command fails cleanly.
"""

import json
import os
import subprocess
import sys

import ml_collections
import pytest
from absl import app, flags

from seq2seq_jax import evaluate
from seq2seq_jax import train
from seq2seq_jax import translate
from seq2seq_jax.configs import tiny

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    config = tiny.get_config()
    config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
    config.data.num_train, config.data.num_validation, config.data.num_test = 200, 30, 30
    config.data.num_buckets = 1  # one padded shape: one compilation of each step
    config.train.num_steps, config.train.log_every = 20, 10
    config.train.eval_every, config.train.checkpoint_every = 0, 20
    path = str(tmp_path_factory.mktemp("run"))
    train.train_and_evaluate(config, path)
    return path


@pytest.fixture(autouse=True)
def fresh_flags():
    """Each test parses its own flags from defaults; FLAGS is left as the test found it."""
    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.unparse_flags()
    yield
    flags.FLAGS.unparse_flags()
    if was_parsed:
        flags.FLAGS.mark_as_parsed()


def run(module, *args):
    """``module.main`` as ``app.run`` calls it: flags parsed first (parse errors raise ``flags.Error``)."""
    return module.main(flags.FLAGS(["prog", *args]))


def fails_with(module, *args) -> str:
    """The message of a tool that ends with ``cli.fail``."""
    with pytest.raises(SystemExit) as exit_info:
        run(module, *args)
    message = str(exit_info.value.code)
    assert message.startswith("error: ")
    return message


# --- evaluate ----------------------------------------------------------------------------------------


def test_evaluate_writes_overall_and_by_length_metrics(workdir, capsys):
    run(evaluate, f"--workdir={workdir}", "--split=test")
    with open(os.path.join(workdir, "eval", "test.json")) as f:
        result = json.load(f)
    assert result["split"] == "test" and result["num_examples"] == 30 and result["step"] == 20
    assert result["beam_size"] == 1 and result["checkpoint"] == "best"
    for key in ("loss", "perplexity", "seq_acc", "token_acc"):
        assert 0 <= result[key] < float("inf")
    assert sum(row["count"] for row in result["by_length"]) == 30
    assert all({"lo", "hi", "count", "seq_acc", "token_acc"} <= set(row) for row in result["by_length"])
    with open(os.path.join(workdir, "eval", "test_predictions.tsv")) as f:
        assert len(f.read().splitlines()) == 1 + 30
    out = capsys.readouterr().out
    assert "seq_acc" in out and "by source length:" in out


def test_evaluate_names_files_of_other_settings_apart(workdir):
    with open(os.path.join(workdir, "config.json")) as f:
        eval_config = ml_collections.ConfigDict(json.load(f)["eval"])  # beam_size 1, length_penalty 0
    assert evaluate.result_name("test", eval_config, None, None, "best") == "test"
    assert evaluate.result_name("test", eval_config, 1, 0.0, "best") == "test"
    assert evaluate.result_name("test", eval_config, 4, None, "best") == "test_beam4"
    assert evaluate.result_name("test", eval_config, 4, 0.6, "latest") == "test_beam4_lp0.6_latest"


# --- errors ------------------------------------------------------------------------------------------


def test_missing_workdir_is_one_clear_error(tmp_path):
    missing = tmp_path / "nope"
    assert "does not exist" in fails_with(evaluate, f"--workdir={missing}")
    assert not missing.exists()


def test_workdir_without_config_or_checkpoints_is_left_untouched(workdir, tmp_path):
    assert "not a training workdir" in fails_with(evaluate, f"--workdir={tmp_path}")
    with open(os.path.join(workdir, "config.json")) as f:
        (tmp_path / "config.json").write_text(f.read())
    os.symlink(os.path.join(workdir, "vocab"), tmp_path / "vocab")
    assert "train the run first" in fails_with(evaluate, f"--workdir={tmp_path}")
    assert sorted(os.listdir(tmp_path)) == ["config.json", "vocab"]


@pytest.mark.parametrize("args, expected", [
    (["--split=dev"], "train|validation|test"),
    (["--beam_size=0"], "positive"),
    (["--beam=3"], "Unknown command line flag 'beam'"),
    (["--checkpoint=last"], "best|latest"),
])
def test_bad_flags_are_rejected_when_parsed(workdir, args, expected):
    with pytest.raises(flags.Error, match=expected):
        run(evaluate, f"--workdir={workdir}", *args)


def test_missing_required_flags_are_usage_errors(workdir):
    with pytest.raises(app.UsageError, match="--workdir is required"):
        run(evaluate)
    with pytest.raises(app.UsageError, match="--workdir is required"):
        run(translate, "--output=-")


def run_training_cli(workdir, *flags):
    """``python -m seq2seq_jax.main`` on the tiny config in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "seq2seq_jax.main", "--config=seq2seq_jax/configs/tiny.py",
         f"--workdir={workdir}", *flags],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"})


def test_training_cli_rejects_a_misspelt_config_field(tmp_path):
    workdir = tmp_path / "run"
    result = run_training_cli(workdir, "--config.train.num_step=1")
    assert result.returncode == 1
    assert "--config.train.num_step" in result.stderr and 'Did you mean "num_steps"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not workdir.exists()


def test_training_cli_rejects_a_bad_config_value_in_one_line(tmp_path):
    workdir = tmp_path / "run"
    result = run_training_cli(workdir, "--config.model.cell=lstmm")
    assert result.returncode == 1
    assert "error: model.cell='lstmm' is not allowed; allowed: ['gru', 'lstm', 'rnn']" in result.stderr
    assert "Traceback" not in result.stderr
    assert not workdir.exists()
