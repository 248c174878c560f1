"""The Bible study (Bahdanau et al. 2014, fig. 2 on Spanish→English verses): two models of the same cell, size
and budget with parameter counts within 10%; BLEU of short and long sources from the test predictions."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from test_studies import REPO

from experiments import bible_es_en
from experiments import study
from experiments import sweep
from seq2seq_jax import metrics
from seq2seq_jax.configs import compare
from seq2seq_jax.data.datasets import bible
from seq2seq_jax.model import ModelConfig, Seq2Seq

STUDY = bible_es_en.STUDY


def configs(setting):
    base = study.base_config(STUDY, setting)
    return {v.name: sweep.apply_overrides(base, v.overrides) for v in STUDY.variants}


def num_params(config) -> int:
    vocab = config.data.vocab_size  # sentencepiece vocabularies of this size on either side
    model = Seq2Seq(ModelConfig.from_config(config.model, source_vocab_size=vocab, target_vocab_size=vocab))
    x = jnp.ones((1, 3), jnp.int32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, jnp.array([3]), x))["params"]
    return sum(leaf.size for leaf in jax.tree.leaves(shapes))


@pytest.mark.parametrize("setting", study.SETTINGS)
def test_both_models_have_the_same_cell_size_and_budget_and_parameters_within_ten_percent(setting):
    bottleneck, attention = configs(setting)["bottleneck"], configs(setting)["attention"]
    for field in ("model.cell", "model.embedding_size", "model.hidden_size", "train.num_steps",
                  "train.batch_size", "data.vocab_size"):
        assert compare.flat(bottleneck)[field] == compare.flat(attention)[field], field
    assert (bottleneck.model.reverse_source, bottleneck.model.bidirectional) == (True, False)  # Sutskever
    assert (attention.model.reverse_source, attention.model.bidirectional) == (False, True)  # Bahdanau
    sizes = num_params(bottleneck), num_params(attention)
    assert max(sizes) / min(sizes) <= 1.1, sizes


def test_short_and_long_bleu_come_from_the_verses_of_those_source_lengths():
    predictions = [
        ("uno dos tres cuatro cinco seis siete ocho nueve diez", "one two three four five six seven eight nine ten",
         "one two three four five six seven eight nine ten"),  # 10 words: short, translated perfectly
        (" ".join(["palabra"] * 30), "a word a word a word", " ".join(["word"] * 30)),  # 30 words: long
        ("cinco palabras nada más aquí", "five words", "five words only here"),  # 5 words: neither
    ]
    got = bible_es_en.length_metrics(predictions)
    long_bleu = metrics.corpus_bleu(["a word a word a word"], [[" ".join(["word"] * 30)]])
    assert got == {"test/bleu_10_19_words": pytest.approx(100.0), "test/bleu_30plus_words": pytest.approx(long_bleu),
                   "test/bleu_drop_10_19_to_30plus": pytest.approx(100.0 - long_bleu)}
    assert bible_es_en.length_metrics(predictions[2:]) == {}  # no short or long verse: no number


def test_scores_over_seeds_keep_a_digit_of_their_spread():
    assert bible_es_en.mean_sd([25.4, 25.9, 26.5]) == "25.9 ± 0.6"
    assert bible_es_en.mean_sd([0.019, 0.010, 0.010]) == "0.013 ± 0.005"  # an untrained model: not "0.0 ± 0.0"
    assert bible_es_en.mean_sd([3.2]) == "3.2 (one seed)" and bible_es_en.mean_sd([]) == "—"


def test_example_and_heatmap_verses_are_the_first_of_each_length():
    sources = ["a b c", "a b", "a b c d e", "a b c"]
    assert bible_es_en.first_of_lengths(sources, (3, 4, 9)) == [0, 2]  # 4 words: the nearest longer; 9: none


def _modules_installed() -> bool:
    try:
        bible.open_modules("es-en", ["spaRV1909eb", "engWEB2015eb"], bible.sword_dir())
    except bible.MissingModuleError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _modules_installed(), reason="needs `apt-get install sword-text-sparv sword-text-web`")
def test_the_study_runs_on_the_real_verses_and_reports_fig_2_its_maps_and_example_translations(tmp_path):
    tiny = {"data.data_dir": str(tmp_path / "tfds"), "data.vocab_size": 300, "data.bucket_boundaries": None,
            "data.num_buckets": 2, "model.embedding_size": 8, "model.hidden_size": 8, "model.attention_size": 4,
            "train.num_steps": 4, "train.batch_size": 16, "train.warmup_steps": 1, "train.log_every": 2,
            "eval.max_validation_examples": 16, "eval.max_final_examples": 200, "eval.max_output_ratio": 0.0,
            "eval.max_output_extra": 8}
    argv = [f"--workdir={tmp_path / 'study'}", "--seeds=1", *(f"--config.{k}={v}" for k, v in tiny.items())]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO}  # XLA_FLAGS: conftest's, inherited
    done = subprocess.run([sys.executable, "-m", "experiments.bible_es_en", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    study_dir = tmp_path / "study"
    report = (study_dir / "report.md").read_text()
    claims = json.loads((study_dir / "claims.json").read_text())
    assert [c["claim"] for c in claims] == [c.text for c in STUDY.claims]
    assert all(c["n"] == 1 for c in claims)  # BLEU has no per-example outcomes: one seed, no interval
    linked = set(re.findall(r"!\[[^]]*\]\(([^)]+)\)", report))
    assert {"plots/by_length_bleu.png", "plots/attention/attention_seed0_0.png",
            "plots/attention/attention_seed0_1.png"} <= linked
    summary = (study_dir / "summary.md").read_text()
    assert summary.strip() in report
    assert summary.count("- source: ") == len(bible_es_en.EXAMPLE_WORDS)
    assert summary.count("- `bottleneck` (seed 0): ") == summary.count("- `attention` (seed 0): ") == 3
    evaluations = study_dir / "runs" / "attention" / "seed0" / "eval"
    by_length = json.loads((evaluations / "test.json").read_text())
    assert by_length["num_examples"] == json.loads((evaluations / "validation.json").read_text())["num_examples"] == 200
    assert len(bible_es_en.test_predictions(str(evaluations.parent))) == 200  # the first 200 of each split, no more
    assert by_length["length_unit"] == "words"
    assert [row["lo"] for row in by_length["by_length"]] == [0, 10, 20, 30, 40, 50]  # fig. 2's buckets
