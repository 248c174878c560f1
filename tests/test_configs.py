"""Every shipped config is valid: its model, train and eval sections pass validation as they are."""

import importlib
import pathlib

import pytest

from seq2seq_jax import train
from seq2seq_jax.data import config as data_config
from seq2seq_jax.model import ModelConfig

CONFIGS = sorted(p.stem for p in pathlib.Path(train.__file__).parent.joinpath("configs").glob("*.py")
                 if p.stem not in ("__init__", "model"))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_valid(name):
    config = importlib.import_module(f"seq2seq_jax.configs.{name}").get_config()
    ModelConfig.from_config(config.model, source_vocab_size=10, target_vocab_size=10)
    data_config.validate(config.data)
    train.validate_train_config(config.train, config.eval)


@pytest.mark.parametrize("path", ["configs/default.py", "configs/model.py", "data/config.py"])
def test_every_default_field_has_a_one_line_comment_above_it(path):
    source = pathlib.Path(train.__file__).parent.joinpath(path).read_text().splitlines()
    for i, line in enumerate(source):
        stripped = line.strip()
        if stripped.startswith(("t.", "e.", "m.", "c.")) and " = " in stripped:
            assert source[i - 1].strip().startswith("#"), f"no comment above {stripped!r}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dates", "number_words", "tiny"])
def test_config_trains_end_to_end_on_small_data(name, tmp_path_factory):
    """Each offline config's dataset, vocabularies and model run through train_and_evaluate (2 steps).

    g2p's dataset is exercised by experiments/g2p_cmudict's test; wmt14 needs the catalog data."""
    config = importlib.import_module(f"seq2seq_jax.configs.{name}").get_config()
    config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
    config.data.num_train, config.data.num_validation, config.data.num_test = 300, 20, 20
    config.model.update(dict(hidden_size=16, embedding_size=8, attention_size=8))
    config.train.num_steps = 2
    final = train.train_and_evaluate(config, str(tmp_path_factory.mktemp(name)))
    assert final["step"] == 2 and final["test/num_examples"] == 20
