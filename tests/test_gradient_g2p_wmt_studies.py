"""The gradient-flow, G2P and WMT'14 studies: the gradient measurement itself, then each study end to end
on a budget far below `quick` (the same code path, smaller numbers through `--config.*` flags)."""

import csv
import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import g2p_cmudict
from experiments import gradient_flow
from experiments import study
from experiments import wmt14
from seq2seq_jax import model as model_lib
from seq2seq_jax import optim
from seq2seq_jax.configs import copy as copy_config
from seq2seq_jax.data import vocab as vocab_lib
from seq2seq_jax.model import Seq2Seq

pytestmark = pytest.mark.slow

VOCAB = vocab_lib.build_vocab("char", ["abcdefghij"])


def tiny(cell, **model):
    """(config, model, initial params) of a small bottleneck model from the gradient-flow base config."""
    config = copy_config.get_config("quick")
    config.model.cell = cell
    config.model.hidden_size, config.model.embedding_size = 8, 4
    config.model.update(model)
    m = model_lib.create_model(config, VOCAB.size, VOCAB.size)
    return config, m, optim.create_train_state(m, config).params


def padded_batch(seed=0, lengths=(5, 3, 1)):
    rng = np.random.default_rng(seed)
    width = max(lengths)
    inputs = rng.integers(4, VOCAB.size, (len(lengths), width)).astype(np.int32)
    lengths = np.array(lengths, np.int32)
    inputs = np.where(np.arange(width)[None] < lengths[:, None], inputs, 0)
    return {"inputs": inputs, "input_lengths": lengths,
            "targets": np.concatenate([inputs, np.zeros_like(inputs[:, :1])], axis=1) + 0,
            "target_lengths": lengths + 1}


@pytest.mark.parametrize("cell, reverse_source", [("rnn", False), ("gru", True), ("lstm", False), ("lstm", True)])
def test_perturbed_encoder_with_zero_eps_is_the_model_encoder(cell, reverse_source):
    _, model, params = tiny(cell, reverse_source=reverse_source)
    batch = padded_batch()
    expected = jax.jit(functools.partial(model.apply, method=Seq2Seq.encode))(
        {"params": params}, batch["inputs"], batch["input_lengths"])
    got = jax.jit(gradient_flow.encode_perturbed, static_argnums=0)(
        model, params, batch["inputs"], batch["input_lengths"], jnp.zeros((3, 5, 8)))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), got, expected)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_hidden_gradients_match_finite_differences(cell):
    _, model, params = tiny(cell, init="orthogonal")
    batch = padded_batch(lengths=(4, 2))
    grads = np.asarray(gradient_flow.hidden_gradients(model, params, batch))  # [batch, src_len, hidden]
    loss = jax.jit(lambda eps: jnp.sum(gradient_flow.example_losses(model, params, batch, eps)))
    zeros, h = np.zeros(grads.shape, np.float32), 1e-2
    for b, t in [(0, 0), (0, 3), (1, 0), (1, 1)]:
        direction = zeros.copy()
        direction[b, t] = grads[b, t] / np.linalg.norm(grads[b, t])  # along the gradient: the largest slope
        numeric = (loss(zeros + h * direction) - loss(zeros - h * direction)) / (2 * h)
        np.testing.assert_allclose(numeric, np.linalg.norm(grads[b, t]), rtol=2e-2)
    assert np.all(grads[1, 2:] == 0), "a perturbation at a padding step changes nothing"


def test_vanilla_rnn_gradient_vanishes_much_faster_than_the_lstms_at_init():
    """Under Sutskever's U(-0.08, 0.08) init (and forget bias 1): per step back, tanh' * W_hh shrinks the
    RNN's gradient by a factor well below 1, while the LSTM's cell path keeps a forget gate's share of it
    (sigmoid(1) = 0.73 a step: about 0.73**19 = 3e-3 over the 19 steps)."""
    decay = {}
    for cell in ("rnn", "lstm"):
        config, model, params = tiny(cell, hidden_size=32)
        batch = gradient_flow.probe_batch(config, VOCAB, VOCAB, length=20, size=8)
        profile = gradient_flow.gradient_profile(model, params, batch)
        assert profile.shape == (20,) and np.all(profile > 0)
        decay[cell] = profile[-1] / profile[0]
    assert decay["rnn"] < 1e-6 and decay["lstm"] > 1e-3


def read_results(study_dir):
    with open(os.path.join(study_dir, "results.jsonl")) as f:
        return [json.loads(line) for line in f]


def assert_study_written(study_dir, variants, plots, report_has=()):
    results = read_results(study_dir)
    assert [(r["variant"], r["status"]) for r in results] == [(v, "ok") for v in sorted(variants)]
    with open(os.path.join(study_dir, "results.csv")) as f:
        assert len(list(csv.DictReader(f))) == len(variants)
    report = open(os.path.join(study_dir, "report.md")).read()
    for plot in plots:
        assert os.path.getsize(os.path.join(study_dir, plot)) > 0 and f"]({plot})" in report
    for text in report_has:
        assert text in report
    return results


def flags(overrides: dict) -> list[str]:
    return [f"--config.{k}={v}" for k, v in overrides.items()]


def only(spec: study.Study, *names: str) -> study.Study:
    """The study with only the variants `names` (and the claims between them): a cheaper end-to-end run."""
    return dataclasses.replace(spec, variants=[v for v in spec.variants if v.name in names],
                               claims=[c for c in spec.claims if {c.better, c.worse} <= set(names)])


def test_gradient_flow_study_end_to_end(tmp_path):
    overrides = {"data.data_dir": tmp_path / "tfds", "data.num_train": 300, "data.num_validation": 30,
                 "data.num_test": 60, "data.synthetic_max_length": 6, "data.num_buckets": 1,
                 "model.hidden_size": 16, "train.num_steps": 8, "train.log_every": 4, "train.checkpoint_every": 8}
    study_dir = str(tmp_path / "study")
    spec = only(gradient_flow.STUDY, "rnn", "lstm")
    assert study.main(spec, [f"--workdir={study_dir}", "--seeds=1", *flags(overrides)]) == 0
    results = assert_study_written(
        study_dir, ["rnn", "lstm"],
        ["plots/gradient_flow_init.png", "plots/gradient_flow_trained.png", "plots/by_length_seq_acc.png"],
        ["## Gradient norm by distance from the output", "## Test metrics by source length"])
    for r in results:
        assert np.isfinite(r["metrics"]["grad_init/log10_per_step"]) and r["metrics"]["probe_length"] == 6
        record = json.load(open(os.path.join(study_dir, "runs", r["run_id"], "gradient_flow.json")))
        assert len(record["init"]) == len(record["trained"]) == 6
    claims = json.load(open(os.path.join(study_dir, "claims.json")))
    assert [c["n"] for c in claims] == [1, 1]


def test_g2p_study_end_to_end_decodes_test_with_a_beam_and_shows_the_published_table(tmp_path):
    # Words of at most 3 letters only: a few thousand training examples, a few hundred test words.
    overrides = {"data.data_dir": tmp_path / "tfds", "data.max_source_length": 3, "data.num_buckets": 1,
                 "model.hidden_size": 16, "model.embedding_size": 8, "model.attention_size": 16,
                 "train.num_steps": 6, "train.log_every": 3, "train.checkpoint_every": 6,
                 "eval.max_validation_examples": 20, "eval.test_beam_size": 2}
    study_dir = str(tmp_path / "study")
    spec = only(g2p_cmudict.STUDY, "attention")  # the bottleneck runs on wmt14
    assert study.main(spec, [f"--workdir={study_dir}", "--seeds=1", *flags(overrides)]) == 0
    results = assert_study_written(study_dir, ["attention"], ["plots/overall_per.png"],
                                   ["## Published results (not directly comparable)", "5.45", "20.24",
                                    "2007 CMUdict"])
    for r in results:
        m = r["metrics"]
        assert m["test/beam_size"] == 2 and m["validation/beam_size"] == 1 and m["cmudict_version"]
        assert 0 <= m["test/wer"] <= 1 and m["test/num_examples"] > 20


def test_wmt14_study_runs_a_few_steps_on_mock_data(tmp_path, fixed_mock_getitems):
    overrides = {"data.data_dir": tmp_path / "tfds", "data.vocab_size": 60, "data.num_buckets": 1,
                 "data.max_source_length": None, "data.max_target_length": None,
                 "model.hidden_size": 16, "model.embedding_size": 8, "model.attention_size": 16,
                 "train.batch_size": 8, "train.num_steps": 3, "train.log_every": 3, "train.checkpoint_every": 3,
                 "eval.max_validation_examples": 8}
    study_dir = str(tmp_path / "study")
    with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
        spec = only(wmt14.STUDY, "bottleneck")  # attention runs on g2p
        assert study.main(spec, [f"--workdir={study_dir}", "--seeds=1", *flags(overrides)]) == 0
    results = assert_study_written(study_dir, ["bottleneck"], ["plots/by_length_bleu.png"])
    for r in results:
        assert r["metrics"]["step"] == 3 and r["metrics"]["test/beam_size"] == 2
        assert 0 <= r["metrics"]["test/bleu"] <= 100
    config = json.load(open(os.path.join(study_dir, "runs", "bottleneck", "seed0", "config.json")))
    assert config["data"]["source_vocab"] == config["data"]["target_vocab"] == "sentencepiece"
