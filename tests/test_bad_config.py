"""Bad input, tried systematically (hypothesis): every bad config value is one ``ValueError`` naming its field,
raised before any I/O; every bad training-CLI flag or path is one ``error:`` line and exit status 1.

The README's "Reliability" figures count the fields of ``BAD_VALUES`` and the cases of ``BAD_CLI``.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
from unittest import mock

import hypothesis.strategies as st
import pytest
from absl import flags
from hypothesis import HealthCheck, given, settings

from seq2seq_jax import main as train_main
from seq2seq_jax import train
from seq2seq_jax.configs import default as default_config
from seq2seq_jax.configs import tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_text = st.text(max_size=8)
_nan_or_inf = st.sampled_from([math.nan, math.inf, -math.inf])
_wrong_for_int = st.one_of(st.floats(allow_nan=True), _text, st.booleans(), st.lists(st.integers(), max_size=2))
_wrong_for_number = st.one_of(_text, st.booleans(), st.lists(st.floats(), max_size=2))
_not_positive = st.one_of(st.integers(max_value=0), _wrong_for_int, st.none())
_negative = st.one_of(st.integers(max_value=-1), _wrong_for_int, st.none())
_not_bool = st.one_of(st.integers(), _text, st.none())


def _not_in(allowed):
    return st.one_of(_text.filter(lambda s: s not in allowed), st.integers(), st.none())


# (section, field) -> values that must be refused. Incompatible combinations are entries too (e.g. a
# best_metric that eval.metrics does not compute, input feeding without attention).
BAD_VALUES = {
    **{("train", f): _not_positive for f in ("num_steps", "batch_size", "log_every", "keep_checkpoints",
                                            "checkpoint_every", "halving_every", "plateau_patience",
                                            "plateau_window", "accumulate_steps")},
    **{("train", f): _negative for f in ("halving_start", "warmup_steps", "eval_every", "early_stopping_patience")},
    ("train", "plateau_factor"): st.one_of(st.floats(max_value=0), st.floats(min_value=1), st.just(math.nan),
                                           _wrong_for_number),
    ("train", "seed"): st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31 - 1), _wrong_for_int),
    ("train", "learning_rate"): st.one_of(st.floats(max_value=0), st.just(math.nan), _wrong_for_number),
    ("train", "label_smoothing"): st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0), _nan_or_inf,
                                            _wrong_for_number),
    ("train", "max_grad_norm"): st.one_of(st.floats(max_value=-1e-9), _nan_or_inf, _wrong_for_number),
    ("train", "max_loss"): st.one_of(st.floats(max_value=0), st.just(math.nan), _wrong_for_number),
    ("train", "max_grad_norm_abort"): st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), _wrong_for_number),
    ("train", "skip_nonfinite_updates"): _not_bool,
    ("train", "optimizer"): _not_in(default_config.OPTIMIZERS),
    ("train", "schedule"): _not_in(default_config.SCHEDULES),
    ("eval", "beam_size"): _not_positive,
    ("eval", "length_penalty"): st.one_of(st.floats(max_value=-1e-9), _nan_or_inf, _wrong_for_number),
    ("eval", "max_output_ratio"): st.one_of(st.floats(max_value=-1e-9), _nan_or_inf, _wrong_for_number),
    ("eval", "max_output_extra"): _negative,
    ("eval", "max_validation_examples"): _negative,
    ("eval", "max_final_examples"): _negative,
    ("eval", "num_length_buckets"): _not_positive,
    ("eval", "length_edges"): st.one_of(st.just([]), st.just([10, 10]), st.just([20, 10]), st.just([-1, 5]),
                                       st.lists(_text, min_size=1, max_size=2), _text, st.integers()),
    ("eval", "length_unit"): _not_in(("tokens", "words")),
    ("eval", "best_mode"): _not_in(("max", "min")),
    ("eval", "metrics"): st.one_of(st.just([]), st.lists(_text.filter(lambda s: s not in ("seq_acc", "token_acc")),
                                                          min_size=1, max_size=2).map(lambda m: ["seq_acc", *m])),
    ("eval", "best_metric"): _not_in(("seq_acc", "token_acc", "loss", "perplexity")),
    ("model", "hidden_size"): _not_positive,
    ("model", "num_layers"): _not_positive,
    ("model", "dropout"): st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0), _wrong_for_number),
    ("model", "cell"): _not_in(("rnn", "gru", "lstm")),
    ("model", "input_feeding"): st.just(True).map(lambda _: "with decoder=bottleneck"),
    ("data", "dataset"): st.one_of(st.just(""), st.integers(), st.none()),
    ("data", "max_source_length"): st.one_of(st.integers(max_value=0), _wrong_for_int),
    ("data", "max_target_length"): st.one_of(st.integers(max_value=0), _wrong_for_int),
    ("data", "num_buckets"): _not_positive,
    ("data", "vocab_size"): st.one_of(st.integers(max_value=4), _wrong_for_int),
    ("data", "length_policy"): _not_in(("filter", "truncate")),
    ("data", "synthetic_min_length"): st.integers(min_value=13, max_value=10**6),  # above the max of 12
    ("data", "bucket_boundaries"): st.one_of(st.just([]), st.lists(st.tuples(st.integers(max_value=0), st.integers()),
                                                                   min_size=1, max_size=2)),
}


def _bad_config(section, field, value):
    """The tiny config as a plain (unlocked, untyped) ConfigDict, as ``load_trained`` reads it, with one bad value."""
    import ml_collections  # noqa: PLC0415

    raw = json.loads(tiny.get_config().to_json_best_effort())
    if (section, field) == ("model", "input_feeding"):
        raw["model"].update(decoder="bottleneck", input_feeding=True)
    else:
        raw[section][field] = value
    return ml_collections.ConfigDict(raw)


@BOUNDED
@given(st.sampled_from(sorted(BAD_VALUES)).flatmap(lambda key: BAD_VALUES[key].map(lambda v: (*key, v))))
def test_bad_config_value_is_one_error_naming_its_field_before_any_io(bad):
    section, field, value = bad
    config = _bad_config(section, field, value)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = os.path.join(tmp, "run")
        with pytest.raises(ValueError) as error:
            train.train_and_evaluate(config, workdir)
        assert not os.path.exists(workdir)  # nothing written
    message = str(error.value)
    assert f"{section}.{field}" in message and "\n" not in message, (bad, message)


# --- The training CLI -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "a_file").write_text("not a directory\n")
    return {"root": str(root), "file": str(root / "a_file"), "data_dir": str(root / "tfds")}


# Each case: flags after --config=tiny, and a piece of the expected message. {file}/{root}/{data_dir} are
# filled in from ``paths``.
BAD_CLI = [
    (["--workdir={file}"], "is not a directory"),
    (["--workdir={file}/run"], "Not a directory"),
    (["--workdir={root}/run", "--config.train.seed=-1"], "train.seed=-1"),
    (["--workdir={root}/run", "--config.eval.max_output_extra=-100"], "eval.max_output_extra=-100"),
    (["--workdir={root}/run", "--config.eval.num_length_buckets=0"], "eval.num_length_buckets=0"),
    (["--workdir={root}/run", "--config.eval.max_validation_examples=-1"], "eval.max_validation_examples=-1"),
    (["--workdir={root}/run", "--config.train.learning_rate=nan"], "train.learning_rate=nan"),
    (["--workdir={root}/run", "--config.eval.metrics=('bleu',)", "--config.eval.best_metric=seq_acc"],
     "eval.best_metric='seq_acc'"),
    (["--workdir={root}/run", "--config.data.dataset=parallel_text"], "data.train_file"),
    (["--workdir={root}/big_batch", "--config.data.data_dir={data_dir}", "--config.data.num_train=50",
      "--config.train.batch_size=64"], "fewer examples"),  # a batch larger than the training split
]


@pytest.mark.slow
@BOUNDED
@given(case=st.sampled_from(BAD_CLI))
def test_bad_training_cli_flag_or_path_is_one_error_line(paths, case):
    args, expected = case
    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.unparse_flags()
    try:
        argv = ["main", f"--config={REPO}/seq2seq_jax/configs/tiny.py", *[a.format(**paths) for a in args]]
        with mock.patch.object(sys, "argv", argv):  # config_flags reads --config.* overrides from sys.argv
            with pytest.raises(SystemExit) as exit_info:
                train_main.main(flags.FLAGS(argv))
    finally:
        flags.FLAGS.unparse_flags()
        if was_parsed:
            flags.FLAGS.mark_as_parsed()
    message = exit_info.value.code
    assert isinstance(message, str), message  # sys.exit(str): status 1
    assert message.startswith("error: ") and "\n" not in message and expected in message, (args, message)


# --- Config files that cannot be loaded ------------------------------------------------------------------

# Each case: the config file's text, and the one line expected after "error: config file <path>".
BAD_CONFIG_FILES = [
    ("def get_config(:\n    pass\n", ", line 1: SyntaxError: invalid syntax"),
    ("from seq2seq_jax.configs import tiny\n\ndef get_config():\n    config = tiny.get_config()\n"
     "    config.train.num_steps = 1 / 0\n    return config\n", ", line 5: ZeroDivisionError: division by zero"),
    ("def get_config(setting):\n    raise ValueError(f'no setting {setting!r}')\n",  # absl would print the traceback
     ", line 2: ValueError: no setting 'fast'"),
    ("import nothing_by_this_name\n", ", line 1: ModuleNotFoundError: No module named 'nothing_by_this_name'"),
    ("CONFIG = {}\n", ": it defines no get_config()"),
]


@pytest.mark.parametrize("text, expected", BAD_CONFIG_FILES)
def test_a_config_file_that_cannot_be_loaded_is_one_line_naming_it(tmp_path, capsys, monkeypatch, text, expected):
    monkeypatch.delitem(sys.modules, "config_config", raising=False)  # ml_collections' module of an earlier load
    path = tmp_path / "my_config.py"
    path.write_text(text)
    argv = ["main", f"--config={path}" + (":fast" if "setting" in text else ""), f"--workdir={tmp_path / 'run'}"]
    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.unparse_flags()
    try:
        with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exit_info:
            train_main.parse_flags(argv)
    finally:
        flags.FLAGS.unparse_flags()
        if was_parsed:
            flags.FLAGS.mark_as_parsed()
    assert exit_info.value.code == f"error: config file {path}{expected} (--verbosity=1 shows the traceback)"
    assert capsys.readouterr().err == ""  # no traceback without --verbosity=1
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_training_cli_names_a_broken_config_file_and_shows_its_traceback_when_asked(tmp_path):
    path, missing = tmp_path / "my_config.py", tmp_path / "nope.py"
    path.write_text("def get_config():\n    return {'train': undefined_name}\n")

    def train_cli(*args):
        return subprocess.run([sys.executable, "-m", "seq2seq_jax.main", f"--workdir={tmp_path / 'run'}", *args],
                              cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"})

    quiet, verbose, absent = train_cli(f"--config={path}"), train_cli(f"--config={path}", "-v", "1"), \
        train_cli(f"--config={missing}")
    line = f"error: config file {path}, line 2: NameError: name 'undefined_name' is not defined"
    assert quiet.returncode == 1 and quiet.stderr == f"{line} (--verbosity=1 shows the traceback)\n"
    assert verbose.returncode == 1 and verbose.stderr.endswith(f"{line} (--verbosity=1 shows the traceback)\n")
    assert f'File "{path}", line 2, in get_config' in verbose.stderr  # the user's own traceback
    assert absent.returncode == 1 and absent.stderr == f"error: config file {missing} does not exist\n"
    assert not (tmp_path / "run").exists()
