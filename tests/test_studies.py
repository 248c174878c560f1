"""The study scripts: every variant's config is valid in both settings, by-length results aggregate over
seeds, and each study runs end to end (the `--quick` code path on a tiny task) to a complete report."""

import importlib
import json
import os
import re
import subprocess
import sys

import pytest

from experiments import common
from experiments import sweep
from seq2seq_jax.model import ModelConfig

STUDIES = ["bottleneck_vs_attention", "reverse_source", "cell_ablation", "attention_variants"]

# The quick setting shrunk to seconds per run: a few hundred examples, 8 units, 6 steps, one shape bucket.
TINY = {"data.num_train": 300, "data.num_validation": 20, "data.num_test": 60, "data.num_buckets": 1,
        "model.embedding_size": 8, "model.hidden_size": 8, "model.attention_size": 8,
        "train.num_steps": 6, "train.batch_size": 16, "train.log_every": 2, "eval.num_length_buckets": 3}


# Compile-bound at this size: XLA's CPU backend at optimization level 0 halves the file's time. Only code
# generation changes; the Python path is `--quick`'s.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def study(name):
    return importlib.import_module(f"experiments.{name}")


def run_main(name, argv):
    """`experiments.<name>.main(argv, overrides=TINY)` in a fresh process (so XLA_FLAGS take effect)."""
    code = ("import sys, jax; jax.config.update('jax_numpy_rank_promotion', 'raise'); "
            f"from experiments import {name}; sys.exit({name}.main({argv!r}, overrides={TINY!r}))")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": FAST_COMPILE,
           "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("full", [False, True], ids=["quick", "full"])
@pytest.mark.parametrize("name", STUDIES)
def test_every_variant_is_a_valid_model_in_both_settings(name, full):
    spec = study(name).STUDY
    base = common.make_config(spec, full)
    assert base.train.num_steps == spec.num_steps[int(full)]
    for run in sweep.expand(spec.variants, [0]):
        config = sweep.apply_overrides(base, run.variant.overrides, seed=0, variant=run.variant.name)
        ModelConfig.from_config(config.model, source_vocab_size=10, target_vocab_size=10)


def test_the_main_study_compares_equal_sized_models_that_differ_only_in_the_decoder():
    spec = study("bottleneck_vs_attention").STUDY
    assert [v.name for v in spec.variants] == ["bottleneck", "attention"]
    assert {k for v in spec.variants for k in v.overrides} <= {"model.decoder", "model.attention"}
    args = sweep.parse_study_args([], "w", default_seeds=spec.seeds[0], quick_by_default=True)
    assert args.quick and args.seeds == [0, 1]


def _write_test_json(study_dir, run_id, rows):
    path = os.path.join(study_dir, "runs", run_id, "eval", "test.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"by_length": rows}, f)


def test_by_length_is_mean_and_sample_std_over_seeds_per_bucket(tmp_path):
    inf = float("inf")
    for seed, accs in [(0, (0.9, 0.4)), (1, (0.7, 0.2))]:
        _write_test_json(tmp_path, f"a/seed{seed}", [{"lo": 1, "hi": 6, "count": 5, "seq_acc": accs[0]},
                                                     {"lo": 6, "hi": inf, "count": 7, "seq_acc": accs[1]}])
    results = [{"run_id": f"a/seed{s}", "variant": "a", "seed": s, "status": "ok"} for s in (0, 1)]
    results.append({"run_id": "a/seed2", "variant": "a", "seed": 2, "status": "failed"})
    buckets, table = common.by_length(str(tmp_path), results, "seq_acc")
    assert [(b["label"], b["count"]) for b in buckets] == [("1–5", 5), ("≥ 6", 7)]
    (m0, s0, n0), (m1, s1, n1) = table["a"]
    assert (m0, m1, n0, n1) == (pytest.approx(0.8), pytest.approx(0.3), 2, 2)
    assert (s0, s1) == (pytest.approx(0.1414, abs=1e-4), pytest.approx(0.1414, abs=1e-4))
    section = common.by_length_section(str(tmp_path), results, ["seq_acc"])
    assert "| ≥ 6 | 7 | 0.3 ± 0.14 |" in section


def test_spread_by_length_picks_shortest_to_longest():
    sources = ["a b c", "a", "a b", "a b c d", "a b c d e"]
    picks = common.spread_by_length(sources, 3, lambda s: len(s.split()))
    assert [sources[i] for i in picks] == ["a", "a b c", "a b c d e"]


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_study_runs_end_to_end_and_writes_a_complete_report(name, tmp_path):
    module = study(name)
    seeds = 2 if name == "bottleneck_vs_attention" else 1  # the main study: std over seeds for real
    argv = [f"--workdir={tmp_path}", f"--seeds={seeds}"]
    run_main(name, argv)

    report = (tmp_path / "report.md").read_text()
    for variant in module.VARIANTS:
        assert re.search(rf"^\| `{re.escape(variant.name)}` \| {seeds} \| 0 \|", report, re.M), variant.name
    assert "## Test metrics by source length" in report and "### seq_acc" in report
    assert "## Command, setting and machine" in report
    assert f"`python -m experiments.{name} --workdir={tmp_path} --seeds={seeds}`" in report
    assert "backend `cpu`" in report
    with open(tmp_path / "results.jsonl") as f:
        assert len(f.readlines()) == len(module.VARIANTS) * seeds
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 1 + len(module.VARIANTS) * seeds

    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert {"plots/by_length_seq_acc.png", "plots/by_length_chrf.png", "plots/overall_seq_acc.png",
            "plots/train_loss.png"} <= set(linked)
    for variant in module.STUDY.heatmaps:
        assert f"plots/attention/{variant}_seed0_0.png" in linked
    for path in linked:
        assert (tmp_path / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path

    if name == "bottleneck_vs_attention":  # once is enough (each costs a process and the heatmaps' compile)
        # The report is made from the saved runs only: regenerating it trains nothing and changes nothing.
        run_main(name, [*argv, "--report_only"])
        assert (tmp_path / "report.md").read_text() == report
