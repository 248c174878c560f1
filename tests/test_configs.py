"""Every shipped config is valid in each of its settings: its sections pass validation as they are."""

import dataclasses
import importlib
import pathlib
import re

import pytest

from seq2seq_jax import train
from seq2seq_jax.configs import compare
from seq2seq_jax.configs import default as default_config
from seq2seq_jax.configs.model import get_model_config
from seq2seq_jax.data import config as data_config
from seq2seq_jax.model import ModelConfig

CONFIGS = sorted(p.stem for p in pathlib.Path(train.__file__).parent.joinpath("configs").glob("*.py")
                 if p.stem not in ("__init__", "model", "compare"))  # not run configs
# (config, setting): every setting of a config file with settings (`get_config(setting)`, loaded as
# `--config=path.py:setting`), and None (`get_config()`) for every config.
SETTINGS = [(name, None) for name in CONFIGS] + [
    (name, setting) for name in CONFIGS
    for setting in getattr(importlib.import_module(f"seq2seq_jax.configs.{name}"), "SETTINGS", ())]


@pytest.mark.parametrize("name, setting", SETTINGS)
def test_config_is_valid_in_each_setting(name, setting):
    module = importlib.import_module(f"seq2seq_jax.configs.{name}")
    config = module.get_config() if setting is None else module.get_config(setting)
    ModelConfig.from_config(config.model, source_vocab_size=10, target_vocab_size=10)
    data_config.validate(config.data)
    default_config.validate(config)


@pytest.mark.parametrize("name", [n for n in CONFIGS if hasattr(importlib.import_module(f"seq2seq_jax.configs.{n}"), "SETTINGS")])
def test_an_unknown_setting_names_the_allowed_ones(name):
    with pytest.raises(ValueError, match=r"setting 'huge' is not one of \['quick', 'cpu', 'gpu'\]"):
        importlib.import_module(f"seq2seq_jax.configs.{name}").get_config("huge")


def test_a_config_file_setting_loads_through_the_training_cli_flag():
    """`--config=seq2seq_jax/configs/X.py:quick` (ml_collections' config_flags) passes `quick` to get_config;
    the studies print such commands for each run (tests/test_cli.py covers `--config.*` overrides)."""
    from absl import flags
    from ml_collections import config_flags

    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True)
    path = pathlib.Path(train.__file__).parent / "configs" / "copy.py"
    values(["prog", f"--config={path}:quick"])
    assert values.config.data.synthetic_max_length == 10


@pytest.mark.parametrize("path", ["configs/default.py", "model.py", "data/config.py"])
def test_every_default_field_has_a_one_line_comment_above_it(path):
    source = pathlib.Path(train.__file__).parent.joinpath(path).read_text().splitlines()
    for i, line in enumerate(source):
        stripped = line.strip()
        if (re.match(r"[temc]\.\w+ = ", stripped)
                or path == "model.py" and re.fullmatch(r"    \w+: \w+ = .+", line)):  # ModelConfig's fields
            assert source[i - 1].strip().startswith("#"), f"no comment above {stripped!r}"


def test_the_model_section_is_every_model_config_field_with_its_default():
    section = get_model_config()
    built = ModelConfig.from_config(section, source_vocab_size=10, target_vocab_size=12)
    assert dataclasses.asdict(built) == {**section.to_dict(), "source_vocab_size": 10, "target_vocab_size": 12}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dates", "number_words", "tiny"])
def test_config_trains_end_to_end_on_small_data(name, tmp_path_factory):
    """Each offline config's dataset, vocabularies and model run through train_and_evaluate (2 steps).

    number_digits, copy, g2p and wmt14 (on mock data) train in the studies' tests (tests/test_studies*.py)."""
    config = importlib.import_module(f"seq2seq_jax.configs.{name}").get_config()
    config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
    config.data.num_train, config.data.num_validation, config.data.num_test = 300, 20, 20
    config.model.update(dict(hidden_size=16, embedding_size=8, attention_size=8))
    config.train.num_steps = 2
    final = train.train_and_evaluate(config, str(tmp_path_factory.mktemp(name)))
    assert final["step"] == 2 and final["test/num_examples"] == 20


def test_a_negative_test_beam_size_is_refused_naming_the_field():
    config = importlib.import_module("seq2seq_jax.configs.g2p").get_config("quick")
    config.eval.test_beam_size = -1  # (a value of another type is refused by the ConfigDict itself)
    with pytest.raises(ValueError, match=r"eval.test_beam_size=.* must be a non-negative integer"):
        default_config.validate(config)


def test_resume_and_sweeps_compare_configs_by_one_rule():
    """``compare.differences``: a field the saved config lacks is its default; resume compares only what the
    checkpoint depends on (model, data, the optimizer state's shape), so a run a study accepts can resume."""
    saved = compare.flat(default_config.get_config())
    del saved["model.recurrent_impl"]  # a run saved before the field existed: the default is what it did
    current = default_config.get_config()
    assert compare.differences(saved, current) == compare.differences(saved, current, resume=True) == []
    current.train.num_steps += 1  # another budget: a different result, but it can resume
    current.train.max_grad_norm = 1.0  # clipping still on: same optimizer state
    current.data.data_dir = "/elsewhere"  # a machine field: never compared
    current.model.remat = True  # the same loss and gradients, computed with less memory
    assert compare.differences(saved, current) == ["model.remat: False -> True", "train.max_grad_norm: 5.0 -> 1.0",
                                                   "train.num_steps: 5000 -> 5001"]
    assert compare.differences(saved, current, resume=True) == []
    current.train.max_grad_norm = 0.0  # clipping off: the checkpoint's optimizer state has another shape
    current.model.hidden_size += 1
    assert compare.differences(saved, current, resume=True) == [
        f"model.hidden_size: {current.model.hidden_size - 1} -> {current.model.hidden_size}",
        "train.max_grad_norm: 5.0 -> 0.0"]
    assert compare.differences(None, current) == ["no recorded config"]
