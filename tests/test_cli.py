"""The command-line tools ``main`` (train) and ``evaluate`` (``translate``: tests/test_translate.py).

One tiny run is trained once for the session (``tiny_workdir`` in conftest.py, a few dozen steps:
accuracy does not matter here). The tools' ``main(argv)`` functions are then called in-process with
their flags parsed by ``flags.FLAGS`` as ``app.run`` would. The training CLI runs in subprocesses (a few
steps at most), to prove what the real command prints on stdout and that it fails cleanly.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import ml_collections
import pytest
from absl import app, flags

from seq2seq_jax import evaluate
from seq2seq_jax import model as model_lib
from seq2seq_jax import optim
from seq2seq_jax import translate
from seq2seq_jax.configs import tiny
from seq2seq_jax.data import pipeline

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def workdir(tiny_workdir):
    return tiny_workdir


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
    assert result["split"] == "test" and result["num_examples"] == 30 and result["step"] == 30
    assert result["beam_size"] == 1 and result["checkpoint"] == "best"
    for key in ("loss", "perplexity", "seq_acc", "token_acc"):
        assert 0 <= result[key] < float("inf")
    assert sum(row["count"] for row in result["by_length"]) == 30
    assert all({"lo", "hi", "count", "seq_acc", "token_acc"} <= set(row) for row in result["by_length"])
    with open(os.path.join(workdir, "eval", "test_predictions.tsv")) as f:
        assert len(f.read().splitlines()) == 1 + 30
    captured = capsys.readouterr()
    assert json.loads(captured.out) == result  # stdout: the saved result, alone
    assert "seq_acc" in captured.err and "by source length (tokens):" in captured.err  # the readable report


def test_evaluate_names_files_of_other_settings_apart(workdir):
    with open(os.path.join(workdir, "config.json")) as f:
        eval_config = ml_collections.ConfigDict(json.load(f)["eval"])  # beam_size 1, length_penalty 0
    assert evaluate.result_name("test", eval_config, None, None, "best") == "test"
    assert evaluate.result_name("test", eval_config, 1, 0.0, "best") == "test"
    assert evaluate.result_name("test", eval_config, 4, None, "best") == "test_beam4"
    assert evaluate.result_name("test", eval_config, 4, 0.6, "latest") == "test_beam4_lp0.6_latest"


def test_evaluate_decodes_test_with_the_runs_test_beam_and_keeps_other_beams_apart(workdir, tmp_path):
    """A run that tests with ``eval.test_beam_size`` (every G2P run) is re-evaluated with that beam under the
    training-time name; greedy decoding of test is a setting of its own, written apart."""
    copy = str(tmp_path / "run")
    shutil.copytree(workdir, copy)
    with open(os.path.join(copy, "config.json")) as f:
        config = json.load(f)
    config["eval"]["test_beam_size"] = 2
    with open(os.path.join(copy, "config.json"), "w") as f:
        json.dump(config, f)
    eval_config = ml_collections.ConfigDict(config["eval"])
    assert evaluate.result_name("test", eval_config, 2, None, "best") == "test"
    assert evaluate.result_name("test", eval_config, 1, None, "best") == "test_beam1"
    assert evaluate.result_name("validation", eval_config, 1, None, "best") == "validation"
    run(evaluate, f"--workdir={copy}", "--split=test")
    with open(os.path.join(copy, "eval", "test.json")) as f:
        assert json.load(f)["beam_size"] == 2
    run(evaluate, f"--workdir={copy}", "--split=test", "--beam_size=1")
    with open(os.path.join(copy, "eval", "test_beam1.json")) as f:
        assert json.load(f)["beam_size"] == 1
    with open(os.path.join(copy, "eval", "test.json")) as f:
        assert json.load(f)["beam_size"] == 2  # the run's own result is not overwritten


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
])
def test_bad_flags_are_rejected_when_parsed(workdir, args, expected):
    with pytest.raises(flags.Error, match=expected):
        run(evaluate, f"--workdir={workdir}", *args)


def test_missing_required_flags_are_usage_errors(workdir):
    with pytest.raises(app.UsageError, match="--workdir is required"):
        run(evaluate)
    with pytest.raises(app.UsageError, match="--workdir is required"):
        run(translate, "--output=-")


def run_training_cli(workdir, *flags, config="tiny"):
    """``python -m seq2seq_jax.main`` on ``configs/<config>.py`` in a fresh process, as a user runs it (no
    ``--workdir`` if ``workdir`` is None)."""
    return subprocess.run(
        [sys.executable, "-m", "seq2seq_jax.main", f"--config=seq2seq_jax/configs/{config}.py",
         *([f"--workdir={workdir}"] if workdir else []), *flags],
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


# A few steps on a little data: what these tests check does not depend on accuracy.
SMALL_RUN = ("--config.data.num_train=200", "--config.data.num_validation=20", "--config.data.num_test=20",
             "--config.data.num_buckets=1", "--config.train.num_steps=4", "--config.train.log_every=2",
             "--config.train.eval_every=0")


def test_training_cli_prints_only_the_result_json_even_while_preparing_a_dataset(tmp_path):
    data_dir = tmp_path / "fresh_tfds"
    result = run_training_cli(tmp_path / "run", f"--config.data.data_dir={data_dir}", *SMALL_RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Downloading and preparing dataset" in result.stderr  # TFDS's own announcement, moved to stderr
    final = json.loads(result.stdout)
    assert final["step"] == 4 and 0 <= final["test/token_acc"] <= 1


def test_dry_run_reports_what_would_be_trained_and_writes_nothing(tmp_path):
    workdir, data_dir = tmp_path / "run", tmp_path / "tfds"
    workdir.mkdir()
    args = (f"--config.data.data_dir={data_dir}", "--config.data.max_source_length=8", *SMALL_RUN)
    result = run_training_cli(workdir, "--dry_run", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(workdir) == []
    summary = json.loads(result.stdout)

    config = tiny.get_config()
    config.data.data_dir, config.data.max_source_length = str(data_dir), 8
    config.data.num_train, config.data.num_validation, config.data.num_test = 200, 20, 20
    config.data.num_buckets, config.train.num_steps, config.train.log_every, config.train.eval_every = 1, 4, 2, 0
    assert summary["config"] == json.loads(config.to_json_best_effort())
    # The same numbers as the pipeline and the model report themselves.
    data = pipeline.get_data(config.data, batch_size=config.train.batch_size, seed=config.train.seed,
                             vocab_dir=str(tmp_path / "vocab"))
    assert summary["vocab_sizes"] == {"source": data.source_vocab.size, "target": data.target_vocab.size}
    assert summary["bucket_shapes"] == [list(shape) for shape in data.bucket_shapes]
    assert summary["train_batches_per_epoch"] == data.batches_per_epoch
    model = model_lib.create_model(config, data.source_vocab.size, data.target_vocab.size)
    params = optim.create_train_state(model, config).params
    assert summary["num_params"] == sum(x.size for x in jax.tree.leaves(params))
    for split, total in (("train", 200), ("validation", 20), ("test", 20)):
        counts = summary["examples"][split]
        assert counts["kept"] == len(data.examples(split)) and counts["kept"] + counts["filtered"] == total
        assert counts["truncated"] == 0
    assert summary["examples"]["train"]["filtered"] > 0  # synthetic strings reach 12 characters

    without_workdir = run_training_cli(None, "--dry_run", *args)
    assert without_workdir.returncode == 0 and json.loads(without_workdir.stdout) == summary


def test_training_cli_refuses_parallel_text_without_a_validation_file_before_training(tmp_path):
    train_file = tmp_path / "train.tsv"
    train_file.write_text("a\tb\n")
    workdir = tmp_path / "run"
    result = run_training_cli(workdir, "--config.data.dataset=parallel_text", f"--config.data.train_file={train_file}",
                              f"--config.data.test_file={train_file}", config="default")
    assert result.returncode == 1
    assert "error: data.validation_file: training on parallel_text needs a validation file" in result.stderr
    assert "Traceback" not in result.stderr and not workdir.exists()


def test_training_cli_names_a_bad_data_file_in_one_line(tmp_path):
    good, bad = tmp_path / "good.tsv", tmp_path / "bad.tsv"
    good.write_text("a\tb\n")
    bad.write_bytes(b"a\tb\nc\xff\td\n")
    files = (f"--config.data.train_file={bad}", f"--config.data.validation_file={good}",
             f"--config.data.test_file={good}")
    result = run_training_cli(tmp_path / "run", "--config.data.dataset=parallel_text", *files,
                              f"--config.data.data_dir={tmp_path / 'tfds'}", config="default")
    assert result.returncode == 1
    assert f"error: data.train_file: file '{bad}' for the train split, line 2: not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
