"""The study framework: every study takes the same flags and its variants are valid configs in every setting;
claims get the verdict their numbers call for; a study runs end to end, survives a kill, and regenerates its
report byte for byte."""

import dataclasses
import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import claims
from experiments import report
from experiments import study
from experiments import sweep
from seq2seq_jax import train
from seq2seq_jax.configs import compare
from seq2seq_jax.configs import default as default_config

STUDIES = ["bottleneck_vs_attention", "reverse_source", "cell_ablation", "attention_variants", "gradient_flow",
           "g2p_cmudict", "wmt14", "bible_es_en"]

# The quick setting shrunk to seconds per run: a few hundred examples, 8 units, 6 steps, one shape bucket.
TINY = {"data.num_train": 300, "data.num_validation": 20, "data.num_test": 60, "data.num_buckets": 1,
        "model.embedding_size": 8, "model.hidden_size": 8, "model.attention_size": 8,
        "train.num_steps": 6, "train.batch_size": 16, "train.log_every": 2, "train.checkpoint_every": 3,
        "eval.num_length_buckets": 3}
TINY_FLAGS = [f"--config.{k}={v}" for k, v in TINY.items()]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spec(name) -> study.Study:
    return importlib.import_module(f"experiments.{name}").STUDY


# --- Flags and configs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STUDIES)
def test_help_shows_the_studys_own_question_settings_and_claims(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        study.parse_args(spec(name), ["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert spec(name).question in " ".join(out.split())
    for setting in study.SETTINGS:
        assert f"--config=seq2seq_jax/configs/{spec(name).config}:{setting}" in out
    for claim in spec(name).claims:
        assert claim.text in out


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_takes_the_shared_flags_and_lists_commands_that_keep_them(name, tmp_path, capsys):
    s = spec(name)
    argv = [f"--workdir={tmp_path}", "--setting=cpu", "--seeds=0,5", "--list", "--config.train.num_steps=7"]
    assert study.main(s, argv) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 2 * len(s.variants)
    listed = shlex.split(commands[-1])
    assert listed[:3] == ["python", "-m", f"experiments.{name}"]
    assert listed[-1] == f"--only={s.variants[-1].name}/seed5"
    args = study.parse_args(s, listed[3:])
    assert (args.setting, args.seeds, args.overrides, args.workdir) == ("cpu", [0, 5], {"train.num_steps": 7},
                                                                         str(tmp_path))
    assert args.config.train.num_steps == 7
    assert not os.listdir(tmp_path)  # --list runs nothing


@pytest.mark.parametrize("name", STUDIES)
def test_a_typo_in_a_config_override_names_the_field(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        study.parse_args(spec(name), ["--config.train.num_stepz=7"])
    assert exit_.value.code == 2
    assert "--config: unknown config key 'train.num_stepz'" in capsys.readouterr().err


def test_an_override_of_what_the_study_varies_or_of_the_seed_is_refused(capsys):
    with pytest.raises(SystemExit):
        study.parse_args(spec("bottleneck_vs_attention"), ["--config.model.decoder=attention"])
    assert "--config.model.decoder: variant 'bottleneck' sets this field" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.parse_args(spec("bottleneck_vs_attention"), ["--config.train.seed=3"])
    assert "seeds come from --seeds" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--config.train.num_stepz=7"], "--config: unknown config key 'train.num_stepz'"),
    (["--config.modl.decoder=attention"], "--config: unknown config key 'modl.decoder'"),
    (["--config.train.num_steps=many"], "--config: cannot set 'train.num_steps' to 'many': "),
    (["--config.train.num_steps=7.5"], "--config: cannot set 'train.num_steps' to 7.5: "),
    (["--config.train.num_steps"], "argument --config.train.num_steps: expected a value"),
    (["--sead=3"], "unrecognized argument '--sead=3'; did you mean --seeds?"),
    (["attention"], "unrecognized argument 'attention'"),
    (["--list=maybe"], "argument --list=maybe: expected true or false"),
])
def test_a_bad_command_line_stops_main_with_one_line_before_anything_runs(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        study.main(fake_spec(), [f"--workdir={tmp_path}", "--seeds=1", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m experiments.bottleneck_vs_attention: error: {message}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not os.listdir(tmp_path)


def test_a_config_override_reaches_every_run_its_recorded_config_and_its_reproducing_command(tmp_path):
    seen = []

    def recording(config, workdir):
        seen.append((config.model.decoder, config.train.num_steps, config.data.max_source_length))
        return fake_spec().run_fn(config, workdir)

    argv = [f"--workdir={tmp_path}", "--seeds=1", "--config.train.num_steps=7",
            "--config.data.max_source_length", "None"]  # `--flag value` as well as `--flag=value`
    assert study.main(dataclasses.replace(fake_spec(), run_fn=recording), argv) == 0
    assert seen == [("bottleneck", 7, None), ("attention", 7, None)]
    recorded = json.loads((tmp_path / "runs" / "attention" / "seed0" / "result.json").read_text())["config"]
    assert (recorded["train.num_steps"], recorded["data.max_source_length"]) == (7, None)
    assert ("--config.train.num_steps=7 --config.data.max_source_length=None --config.model.decoder=attention"
            in (tmp_path / "report.md").read_text())


def test_config_override_values_are_python_literals_or_strings():
    args = study.parse_args(spec("bible_es_en"), [
        "--config.data.bucket_boundaries=[(16, 16), (64, 64)]", "--config.eval.length_edges=None",
        "--config.eval.metrics=('bleu',)", "--config.train.learning_rate=1",
        "--config.train.skip_nonfinite_updates=TRUE", "--config.data.data_dir=/tmp/tfds"])
    assert args.overrides == {"data.bucket_boundaries": [(16, 16), (64, 64)], "eval.length_edges": None,
                              "eval.metrics": ("bleu",), "train.learning_rate": 1,
                              "train.skip_nonfinite_updates": True, "data.data_dir": "/tmp/tfds"}
    c = args.config
    assert (c.data.bucket_boundaries, c.eval.length_edges, c.eval.metrics) == ([(16, 16), (64, 64)], None, ("bleu",))
    assert (c.train.learning_rate, c.train.skip_nonfinite_updates, c.data.data_dir) == (1.0, True, "/tmp/tfds")


def test_a_flagfile_holds_flags_and_config_overrides(tmp_path):
    (tmp_path / "flags").write_text("--setting=cpu\n--config.train.num_steps=7\n")
    args = study.parse_args(spec("reverse_source"), [f"--flagfile={tmp_path / 'flags'}", "--seeds=2"])
    assert (args.setting, args.seeds, args.overrides) == ("cpu", [0, 1], {"train.num_steps": 7})
    assert args.config.train.num_steps == 7


def test_two_studies_run_back_to_back_in_one_process_each_with_its_own_flags(tmp_path, capsys):
    from absl import flags  # noqa: PLC0415

    importlib.import_module("seq2seq_jax.main")  # the training tool: its --config and --workdir are on FLAGS
    before = set(flags.FLAGS)
    assert {"config", "workdir"} <= before
    reverse, cells = spec("reverse_source"), spec("cell_ablation")
    argv = [f"--workdir={tmp_path / 'r'}", "--seeds=1", "--list", "--config.train.num_steps=7"]
    assert study.main(reverse, argv) == 0
    first = capsys.readouterr().out.splitlines()
    assert study.main(cells, ["--setting=cpu", "--list"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert len(first) == len(reverse.variants) and len(second) == len(cells.variants) * cells.settings["cpu"].seeds
    assert all(f"--workdir={tmp_path / 'r'} --setting=quick --seeds=1 --config.train.num_steps=7" in c for c in first)
    assert all("--workdir=runs/cell_ablation --setting=cpu" in c and "--config." not in c for c in second)
    assert study.main(fake_spec(), [f"--workdir={tmp_path / 'f'}", "--seeds=1", "--config.train.num_steps=5"]) == 0
    assert study.main(fake_spec(), [f"--workdir={tmp_path / 'f'}", "--seeds=1", "--report_only"]) == 2  # 5 -> 1000
    assert "train.num_steps: 5 -> 1000" in capsys.readouterr().err
    assert set(flags.FLAGS) == before  # nothing defined on absl's global flags


@pytest.mark.parametrize("text, seeds", [("3", [0, 1, 2]), ("0,5", [0, 5]), ("7,", [7])])
def test_seeds_flag_is_a_count_or_a_list(text, seeds):
    assert study.parse_args(spec("reverse_source"), [f"--seeds={text}"]).seeds == seeds


@pytest.mark.parametrize("flag", ["--shard=3/2", "--shard=x", "--seeds=-1,2", "--seeds=two", "--setting=big"])
def test_bad_flags_are_errors_naming_the_flag(flag, capsys):
    with pytest.raises(SystemExit):
        study.parse_args(spec("reverse_source"), [flag])
    assert f"argument {flag.split('=')[0]}" in capsys.readouterr().err


def test_quick_is_the_default_setting_and_sets_the_seed_count():
    args = study.parse_args(spec("g2p_cmudict"), [])
    assert (args.setting, args.seeds) == ("quick", [0, 1, 2])
    assert study.parse_args(spec("g2p_cmudict"), ["--setting=cpu"]).seeds == [0]


@pytest.mark.parametrize("setting", study.SETTINGS)
@pytest.mark.parametrize("name", STUDIES)
def test_every_variant_of_every_study_is_a_valid_run_in_every_setting(name, setting):
    s = spec(name)
    base = study.base_config(s, setting)
    for run in sweep.expand(s.variants, [0]):
        default_config.validate(sweep.apply_overrides(base, run.variant.overrides, seed=0, variant=run.variant.name))


def test_the_main_study_compares_models_of_equal_size_that_differ_only_in_the_decoder():
    s = spec("bottleneck_vs_attention")
    configs = [sweep.apply_overrides(study.base_config(s, "quick"), v.overrides) for v in s.variants]
    differing = {k for k, v in compare.flat(configs[0]).items() if compare.flat(configs[1])[k] != v}
    assert differing == {"model.decoder"}
    sizes = [(c.model.cell, c.model.embedding_size, c.model.hidden_size, c.model.num_layers) for c in configs]
    assert sizes[0] == sizes[1]


# --- Claims -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pairs, verdict", [
    ([(0.9, 0.5), (0.85, 0.45), (0.92, 0.55)], "reproduced"),     # a clear effect
    ([(0.5, 0.9), (0.45, 0.85), (0.55, 0.92)], "not reproduced"),  # reversed
    ([(0.6, 0.5), (0.5, 0.62), (0.58, 0.55)], "inconclusive"),     # noise
])
def test_claims_over_seeds_get_the_verdict_of_their_paired_t_interval(pairs, verdict):
    stats = claims.claim_estimate(pairs)
    assert stats["n"] == 3 and stats["low"] < stats["estimate"] < stats["high"]
    assert stats["estimate"] == pytest.approx(sum(a - b for a, b in pairs) / 3)
    assert claims.verdict(stats["low"], stats["high"]) == verdict


def test_one_seed_is_a_paired_bootstrap_over_the_test_examples_both_variants_were_scored_on():
    # 1000 test words: b gets 900 right; a gets the same 900 and 20 more. Paired, the difference 0.02 is
    # clear (each resample scores both on the same words); two independent binomials would give it an
    # interval of about ±0.026, containing 0.
    b = np.r_[np.ones(900), np.zeros(100)]
    a = b.copy()
    a[900:920] = 1
    paired = claims.claim_estimate([(a.mean(), b.mean())], [(a, b)])
    assert paired["n"] == 1 and "paired bootstrap over 1000 test examples" in paired["method"]
    assert paired["estimate"] == pytest.approx(0.02) and 0.008 < paired["low"] < 0.02 < paired["high"] < 0.032
    assert claims.verdict(paired["low"], paired["high"]) == "reproduced"
    few = claims.claim_estimate([(0.6, 0.5)], [(np.r_[np.ones(12), np.zeros(8)], np.r_[np.zeros(8), np.ones(10),
                                                                                      np.zeros(2)])])
    assert claims.verdict(few["low"], few["high"]) == "inconclusive"  # 20 examples that disagree: too few
    other = claims.claim_estimate([(-0.1, -0.5)])  # no per-example values (e.g. BLEU): no interval
    assert (other["low"], other["high"], claims.verdict(other["low"], other["high"])) == (None, None, "inconclusive")


def test_the_claims_table_of_one_seed_prints_no_spread():
    claims = [{"claim": "c", "quantity": "a − b", "n": 1, "estimate": 0.4, "low": None, "high": None,
               "method": "one seed, no interval", "verdict": "inconclusive"}]
    section = report.claims_section(claims, "quick")
    assert "| c | `a − b` | 0.4 | — | 1 | one seed, no interval | **inconclusive** |" in section
    assert "±" not in section.split("\n\n", 2)[2]


def test_a_claim_not_reproduced_says_why_from_its_numbers_and_a_reproduced_one_says_nothing():
    noisy = claims.claim_estimate([(0.95, 0.94), (0.94, 0.945), (0.96, 0.945)])
    c = {"claim": "feeding helps", "quantity": "a − b", **noisy, "verdict": claims.verdict(noisy["low"], noisy["high"])}
    assert c["verdict"] == "inconclusive"
    needed = claims.seeds_needed(c["estimate"], c["sd"])
    assert needed > 3 and f"--seeds={needed}" in claims.why(c, "Near the ceiling.")
    assert claims.why(c, "Near the ceiling.").endswith("Near the ceiling.")
    # The interval of `needed` seeds with this mean and spread excludes 0; that of one seed fewer does not.
    half = lambda n: claims.stats.t.ppf(0.975, n - 1) * c["sd"] / n ** 0.5  # noqa: E731
    assert half(needed) < c["estimate"] <= half(needed - 1)
    reversed_ = claims.claim_estimate([(0.5, 0.9), (0.45, 0.85), (0.55, 0.92)])
    assert "opposite" in claims.why({**reversed_, "verdict": "not reproduced"})
    clear = claims.claim_estimate([(0.9, 0.5), (0.85, 0.45), (0.92, 0.55)])
    assert claims.why({**clear, "verdict": "reproduced"}, "a caveat") == ""
    section = report.claims_section([{**c, "method": "paired t over 3 seeds", "why": claims.why(c)}], "quick")
    assert "**feeding helps: inconclusive.** Why: the mean difference" in section


def _write_test_json(study_dir, run_id, rows, **metrics):
    path = os.path.join(study_dir, "runs", run_id, "eval", "test.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"by_length": rows, **metrics}, f)


def test_a_bucket_claim_pairs_the_variants_by_seed_on_that_bucket(tmp_path):
    inf = float("inf")
    results = []
    for seed, (long_a, long_b) in enumerate([(0.9, 0.2), (0.8, 0.3), (0.85, 0.1)]):
        for variant, long in (("a", long_a), ("b", long_b)):
            _write_test_json(tmp_path, f"{variant}/seed{seed}", [{"lo": 1, "hi": 6, "count": 50, "seq_acc": 0.9},
                                                                 {"lo": 6, "hi": inf, "count": 50, "seq_acc": long}])
            results.append({"run_id": f"{variant}/seed{seed}", "variant": variant, "seed": seed, "status": "ok",
                            "metrics": {"test/seq_acc": 0.5}})
    s = dataclasses.replace(spec("bottleneck_vs_attention"), variants=[sweep.Variant("a", {}), sweep.Variant("b", {})],
                            claims=[claims.Claim("long", better="a", worse="b", metric="test/seq_acc", bucket=-1),
                                    claims.Claim("all", better="a", worse="b", metric="test/seq_acc")])
    long, overall = claims.evaluate_claims(s.claims, str(tmp_path), results)
    assert (long["n"], long["seeds"], long["estimate"]) == (3, [0, 1, 2], pytest.approx(0.65))
    assert long["verdict"] == "reproduced"
    assert (overall["estimate"], overall["verdict"]) == (0.0, "inconclusive")


# --- Tables and plots ---------------------------------------------------------------------------------


def test_by_length_is_mean_and_sample_std_over_seeds_per_bucket(tmp_path):
    inf = float("inf")
    for seed, accs in [(0, (0.9, 0.4)), (1, (0.7, 0.2))]:
        _write_test_json(tmp_path, f"a/seed{seed}", [{"lo": 1, "hi": 6, "count": 5, "seq_acc": accs[0]},
                                                     {"lo": 6, "hi": inf, "count": 7, "seq_acc": accs[1]}])
    _write_test_json(tmp_path, "b/seed0", [{"lo": 1, "hi": 6, "count": 5, "seq_acc": 0.5}])
    results = [{"run_id": f"a/seed{s}", "variant": "a", "seed": s, "status": "ok"} for s in (0, 1)]
    results += [{"run_id": "a/seed2", "variant": "a", "seed": 2, "status": "failed"},
                {"run_id": "b/seed0", "variant": "b", "seed": 0, "status": "ok"}]
    buckets, table = report.by_length(str(tmp_path), results, "seq_acc")
    assert [(b["label"], b["count"]) for b in buckets] == [("1–5", 5), ("≥ 6", 7)]
    assert table["a"] == [[0.9, 0.7], [0.4, 0.2]] and table["b"] == [[0.5], []]
    section = report.by_length_section(str(tmp_path), results, ["seq_acc"])
    assert "| 1–5 | 5 | 0.8 ± 0.14 (n=2) | 0.5 (n=1) |" in section
    assert "| ≥ 6 | 7 | 0.3 ± 0.14 (n=2) | — |" in section


def test_by_length_curves_are_drawn_at_bucket_centres():
    buckets = [{"lo": 1, "hi": 6}, {"lo": 6, "hi": 9}, {"lo": 9, "hi": float("inf")}]
    assert report._centres(buckets, longest=14) == [3.0, 7.0, 11.5]


def test_spread_by_length_picks_shortest_to_longest():
    sources = ["a b c", "a", "a b", "a b c d", "a b c d e"]
    picks = report.spread_by_length(sources, 3, lambda s: len(s.split()))
    assert [sources[i] for i in picks] == ["a", "a b c", "a b c d e"]


# --- A sweep stopped and rerun ------------------------------------------------------------------------


def fake_spec(stop_after: list | None = None) -> study.Study:
    """A two-variant study whose runs write a test.json instead of training; `stop_after=[k]` interrupts
    the sweep (KeyboardInterrupt, as a kill would) when the k-th run starts."""
    started = []

    def run_fn(config, workdir):
        started.append(workdir)
        if stop_after and len(started) == stop_after[0]:
            raise KeyboardInterrupt
        acc = 0.5 + 0.1 * config.train.seed + (0.3 if config.model.decoder == "attention" else 0.0)
        os.makedirs(os.path.join(workdir, "eval"))
        with open(os.path.join(workdir, "eval", "test.json"), "w") as f:
            json.dump({"by_length": [{"lo": 1, "hi": float("inf"), "count": 100, "seq_acc": acc}]}, f)
        return {"test/seq_acc": acc, "test/num_examples": 100}

    return dataclasses.replace(spec("bottleneck_vs_attention"), run_fn=run_fn, heatmaps=())


def test_a_sweep_stopped_midway_and_rerun_writes_the_report_of_an_uninterrupted_one(tmp_path):
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert study.main(fake_spec(), [f"--workdir={whole}", "--seeds=2"]) == 0
    with pytest.raises(KeyboardInterrupt):
        study.main(fake_spec(stop_after=[3]), [f"--workdir={stopped}", "--seeds=2"])
    assert study.main(fake_spec(), [f"--workdir={stopped}", "--seeds=2", "--report_only"]) == 1  # runs missing
    assert study.main(fake_spec(), [f"--workdir={stopped}", "--seeds=2"]) == 0
    for name in ("report.md", "claims.json"):
        assert (stopped / name).read_text().replace(str(stopped), str(whole)) == (whole / name).read_text()
    claims = json.loads((whole / "claims.json").read_text())
    assert [(c["n"], c["verdict"]) for c in claims] == [(2, "reproduced"), (2, "reproduced")]


def test_a_preempted_study_exits_75_for_the_scheduler_and_its_rerun_completes(tmp_path, capsys):
    def preempted(config, workdir):
        raise train.Preempted("SIGTERM received: stopped after step 3, which is saved")

    assert study.main(dataclasses.replace(fake_spec(), run_fn=preempted),
                      [f"--workdir={tmp_path}", "--seeds=1"]) == train.EXIT_PREEMPTED == 75
    assert "preempted: SIGTERM received" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
    assert study.main(fake_spec(), [f"--workdir={tmp_path}", "--seeds=1"]) == 0


def test_report_only_fails_when_a_run_failed(tmp_path):
    def failing(config, workdir):
        raise RuntimeError("diverged")

    s = dataclasses.replace(fake_spec(), run_fn=failing)
    assert study.main(s, [f"--workdir={tmp_path}", "--seeds=1"]) == 1
    assert study.main(s, [f"--workdir={tmp_path}", "--seeds=1", "--report_only"]) == 1
    assert "RuntimeError: diverged" in (tmp_path / "report.md").read_text()


def test_a_rerun_or_report_with_another_base_config_refuses_the_finished_runs(tmp_path, capsys):
    assert study.main(fake_spec(), [f"--workdir={tmp_path}", "--seeds=1"]) == 0
    markdown = (tmp_path / "report.md").read_text()
    for flag in ([], ["--report_only"]):
        assert study.main(fake_spec(), [f"--workdir={tmp_path}", "--seeds=1", "--config.train.num_steps=80", *flag]) == 2
        assert "train.num_steps: 1000 -> 80" in capsys.readouterr().err
    assert (tmp_path / "report.md").read_text() == markdown  # the old runs are not reported as new


# --- End to end ---------------------------------------------------------------------------------------


def study_process(name, argv):
    """`python -m experiments.<name> *argv` with the tiny overrides, in a fresh process."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",  # XLA_FLAGS: conftest's fast compilation, inherited
           "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", f"experiments.{name}", *argv, *TINY_FLAGS], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_study(name, argv, expected=0):
    process = study_process(name, argv)
    _, err = process.communicate(timeout=300)
    assert process.returncode == expected, err[-3000:]


@pytest.mark.slow
def test_a_tiny_study_runs_end_to_end_survives_a_kill_and_regenerates_its_report_byte_for_byte(tmp_path):
    argv = [f"--workdir={tmp_path}", "--seeds=2"]
    process = study_process("bottleneck_vs_attention", argv)
    first = tmp_path / "runs" / "bottleneck" / "seed0" / "result.json"
    deadline = time.monotonic() + 240
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # after the first run, during the second
    process.communicate(timeout=60)
    assert first.exists() and not (tmp_path / "report.md").exists()
    finished = first.read_text()
    run_study("bottleneck_vs_attention", argv)
    assert first.read_text() == finished  # the finished run was kept, not redone

    markdown = (tmp_path / "report.md").read_text()
    claims = (tmp_path / "claims.json").read_text()
    assert markdown.startswith("# Fixed-vector bottleneck vs additive attention")
    assert markdown.index("## Claims") < markdown.index("## Results")
    for variant in ("bottleneck", "attention"):
        assert re.search(rf"^\| `{variant}` \| 2 \| 0 \| .*\(n=2\)", markdown, re.M), variant
    assert [c["n"] for c in json.loads(claims)] == [2, 2]
    assert "python -m seq2seq_jax.main --config=seq2seq_jax/configs/number_digits.py:quick" in markdown
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert {"plots/by_length_seq_acc.png", "plots/overall_seq_acc.png", "plots/train_loss.png",
            "plots/attention/attention_seed0_0.png"} <= set(linked)
    for path in linked:
        assert (tmp_path / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path

    # The report is made from the saved runs only: regenerating it trains nothing and changes nothing.
    run_study("bottleneck_vs_attention", [*argv, "--report_only"])
    assert (tmp_path / "report.md").read_text() == markdown
    assert (tmp_path / "claims.json").read_text() == claims


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reverse_source", "cell_ablation", "attention_variants"])
def test_study_runs_end_to_end_and_writes_a_complete_report(name, tmp_path):
    run_study(name, [f"--workdir={tmp_path}", "--seeds=1"])
    markdown = (tmp_path / "report.md").read_text()
    for variant in spec(name).variants:
        assert re.search(rf"^\| `{re.escape(variant.name)}` \| 1 \| 0 \|", markdown, re.M), variant.name
    assert "## Claims" in markdown
    assert not [line for line in markdown.splitlines() if line.startswith("| `") and "±" in line]  # one seed
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert len(claims) == len(spec(name).claims)
    # One seed of a seq_acc claim: an interval from both variants' predictions on the same test examples.
    assert all(c["method"].startswith("paired bootstrap over") and c["low"] <= c["estimate"] <= c["high"]
               for c in claims), claims
    for path in re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown):
        assert (tmp_path / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
