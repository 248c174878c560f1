"""The sweep runner: overrides, resumption, failure isolation, shards, the CLI and a reproducible report."""

import json
import os
import shlex

import ml_collections
import pytest

from experiments import sweep

VARIANTS = [
    sweep.Variant("baseline", {}),
    sweep.Variant("attention", {"model.decoder": "attention", "model.bonus": 0.5}),
    sweep.Variant("broken", {"model.broken": True}),
]
METRIC_KEYS = ["acc", "loss"]


def make_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "model": {"decoder": "bottleneck", "bonus": 0.0, "broken": False},
        "train": {"seed": 0, "num_steps": 10},
    })


def fake_run_fn(config, workdir):
    """Counts its calls in `workdir/calls`; acc = 0.1 * seed + bonus; the 'broken' variant raises."""
    with open(os.path.join(workdir, "calls"), "a") as f:
        f.write("x")
    if config.model.broken:
        raise RuntimeError("diverged at step 7")
    return {"acc": 0.1 * config.train.seed + config.model.bonus, "loss": 1.0, "decoder": config.model.decoder}


def calls(study_dir, run_id) -> int:
    path = os.path.join(study_dir, "runs", run_id, "calls")
    return len(open(path).read()) if os.path.exists(path) else 0


def run_main(argv, study_dir):
    args = sweep.parse_study_args([f"--workdir={study_dir}", *argv], default_workdir="unused")
    return sweep.run_study(args, module="experiments.fake", variants=VARIANTS, make_config=make_config,
                           run_fn=fake_run_fn, title="Fake study", description="A study of nothing.",
                           metric_keys=METRIC_KEYS)


def test_apply_overrides_returns_a_copy_with_dotted_keys_and_the_seed_set():
    config = make_config()
    new = sweep.apply_overrides(config, {"model.decoder": "attention", "train.num_steps": 200}, seed=4)
    assert (new.model.decoder, new.train.num_steps, new.train.seed) == ("attention", 200, 4)
    assert (config.model.decoder, config.train.num_steps, config.train.seed) == ("bottleneck", 10, 0)


@pytest.mark.parametrize("key", ["model.decodr", "modl.decoder", "model.decoder.size"])
def test_unknown_override_key_names_the_key_and_the_variant(key):
    with pytest.raises(ValueError, match=rf"variant 'typo': unknown config key '{key}'"):
        sweep.apply_overrides(make_config(), {key: 1}, variant="typo")


def test_override_of_the_wrong_type_is_a_value_error():
    with pytest.raises(ValueError, match="variant 'v': cannot set 'train.num_steps' to 'many'"):
        sweep.apply_overrides(make_config(), {"train.num_steps": "many"}, variant="v")


def test_a_bad_override_fails_the_sweep_before_anything_trains(tmp_path):
    runs = sweep.expand([VARIANTS[0], sweep.Variant("typo", {"model.hidden": 8})], [0])
    with pytest.raises(ValueError, match="variant 'typo': unknown config key 'model.hidden'"):
        sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn)
    assert calls(tmp_path, "baseline/seed0") == 0


def test_variants_and_seeds_expand_to_filesystem_safe_run_ids():
    runs = sweep.expand(VARIANTS, [0, 1])
    assert [r.run_id for r in runs] == ["baseline/seed0", "baseline/seed1", "attention/seed0",
                                        "attention/seed1", "broken/seed0", "broken/seed1"]
    with pytest.raises(ValueError, match="must match"):
        sweep.Variant("../escape", {})
    with pytest.raises(ValueError, match="seeds come from the sweep"):
        sweep.Variant("v", {"train.seed": 3})
    with pytest.raises(ValueError, match="repeated"):
        sweep.expand([VARIANTS[0], VARIANTS[0]], [0])


def test_failures_are_recorded_and_the_other_runs_finish(tmp_path):
    results = sweep.run_sweep(str(tmp_path), sweep.expand(VARIANTS, [0, 1]), make_config, fake_run_fn)

    statuses = {r["run_id"]: r["status"] for r in results}
    assert statuses == {"baseline/seed0": "ok", "baseline/seed1": "ok", "attention/seed0": "ok",
                        "attention/seed1": "ok", "broken/seed0": "failed", "broken/seed1": "failed"}
    with open(tmp_path / "runs" / "attention" / "seed1" / "result.json") as f:
        ok = json.load(f)
    assert ok["metrics"] == {"acc": pytest.approx(0.6), "loss": 1.0, "decoder": "attention"}
    assert (ok["variant"], ok["seed"], ok["overrides"]) == ("attention", 1, VARIANTS[1].overrides)
    assert ok["seconds"] >= 0
    with open(tmp_path / "runs" / "broken" / "seed0" / "result.json") as f:
        failed = json.load(f)
    assert failed["error"]["type"] == "RuntimeError"
    assert failed["error"]["message"] == "diverged at step 7"
    assert "fake_run_fn" in failed["error"]["traceback"]


def test_a_second_invocation_skips_finished_runs_and_retries_failed_ones(tmp_path):
    runs = sweep.expand(VARIANTS, [0, 1])
    first = sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn)
    second = sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn)

    assert second == [r | {"seconds": s["seconds"]} for r, s in zip(first, second)]
    for run in runs:
        assert calls(tmp_path, run.run_id) == (2 if run.variant.name == "broken" else 1)


def test_keyboard_interrupt_stops_the_sweep_and_leaves_the_run_to_redo(tmp_path):
    def interrupted(config, workdir):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(str(tmp_path), sweep.expand(VARIANTS[:1], [0]), make_config, interrupted)
    assert not os.path.exists(tmp_path / "runs" / "baseline" / "seed0" / "result.json")


def test_shards_are_disjoint_and_cover_the_sweep(tmp_path):
    runs = sweep.expand(VARIANTS, [0, 1, 2, 3])
    shards = [
        {r["run_id"] for r in sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn, shard=(i, 3))}
        for i in range(3)
    ]
    assert all(not (a & b) for i, a in enumerate(shards) for b in shards[i + 1:])
    assert set.union(*shards) == {r.run_id for r in runs}
    assert [len(s) for s in shards] == [4, 4, 4]
    assert all(calls(tmp_path, r.run_id) == 1 for r in runs)


def test_only_runs_one_run(tmp_path):
    runs = sweep.expand(VARIANTS, [0, 1])
    results = sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn, only="attention/seed1")
    assert [r["run_id"] for r in results] == ["attention/seed1"]
    assert sum(calls(tmp_path, r.run_id) for r in runs) == 1
    with pytest.raises(ValueError, match="no run 'attention/seed7'"):
        sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn, only="attention/seed7")


@pytest.mark.parametrize("text, seeds", [("3", [0, 1, 2]), ("0,5", [0, 5]), ("7,", [7])])
def test_seeds_flag_is_a_count_or_a_list(text, seeds):
    assert sweep.parse_study_args([f"--seeds={text}"], "w").seeds == seeds


@pytest.mark.parametrize("flag", ["--shard=3/2", "--shard=x", "--shard=1/0", "--seeds=-1,2", "--seeds=two"])
def test_bad_flags_are_errors_naming_the_flag(flag, capsys):
    with pytest.raises(SystemExit):
        sweep.parse_study_args([flag], "w")
    assert f"argument {flag.split('=')[0]}" in capsys.readouterr().err


def test_list_prints_one_command_per_run_and_each_runs_exactly_that_run(tmp_path, capsys):
    study_dir = tmp_path / "my study"  # a space, so the commands must quote
    assert run_main(["--list", "--quick", "--seeds=4,9"], study_dir) == 0
    commands = capsys.readouterr().out.splitlines()

    assert len(commands) == len(VARIANTS) * 2
    expected = f"python -m experiments.fake '--workdir={study_dir}' --quick --seeds=4,9 --only=baseline/seed4"
    assert commands[0] == expected
    for command in commands:
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "experiments.fake"]
        run_main(argv[3:], study_dir)
    for run in sweep.expand(VARIANTS, [4, 9]):
        assert calls(study_dir, run.run_id) == 1
    assert not os.path.exists(study_dir / "report.md")  # partial runs leave the report to --report_only


def test_full_study_writes_a_report_that_regenerates_byte_identical(tmp_path):
    assert run_main(["--seeds=3"], tmp_path) == 1  # the broken variant failed
    report = (tmp_path / "report.md").read_text()
    csv_text = (tmp_path / "results.csv").read_text()

    # attention: acc = 0.5, 0.6, 0.7 -> mean 0.6, sample std 0.1; loss 1.0 every seed -> std 0.
    assert "| `attention` | 3 | 0 | 0.6 ± 0.1 | 1 ± 0 |" in report
    assert "| `broken` | 0 | 3 | — | — |" in report
    assert "- `broken/seed2`: RuntimeError: diverged at step 7" in report
    assert "- `attention`: `model.bonus=0.5`, `model.decoder='attention'`" in report
    assert len(csv_text.splitlines()) == 1 + 9

    with open(tmp_path / "results.jsonl") as f:
        from_jsonl = [json.loads(line) for line in f]
    os.remove(tmp_path / "report.md")
    sweep.write_report(str(tmp_path), "Fake study", "A study of nothing.", from_jsonl, METRIC_KEYS)
    assert (tmp_path / "report.md").read_text() == report
    assert (tmp_path / "results.csv").read_text() == csv_text

    assert run_main(["--report_only"], tmp_path) == 0
    assert (tmp_path / "report.md").read_text() == report
    assert sum(calls(tmp_path, r.run_id) for r in sweep.expand(VARIANTS, [0, 1, 2])) == 9


def test_summarize_uses_sample_std_and_zero_for_one_seed():
    results = [
        {"variant": "a", "overrides": {}, "status": "ok", "metrics": {"acc": 1.0}},
        {"variant": "a", "overrides": {}, "status": "ok", "metrics": {"acc": 3.0}},
        {"variant": "b", "overrides": {}, "status": "ok", "metrics": {"acc": 5.0}},
        {"variant": "b", "overrides": {}, "status": "failed", "metrics": {}},
    ]
    a, b = sweep.summarize(results, ["acc"])
    assert (a["n_ok"], a["n_failed"], a["mean"]["acc"], a["std"]["acc"]) == (2, 0, 2.0, pytest.approx(2**0.5))
    assert (b["n_ok"], b["n_failed"], b["mean"]["acc"], b["std"]["acc"]) == (1, 1, 5.0, 0.0)


@pytest.mark.parametrize("argv, quick, full, seeds", [
    ([], True, False, [0, 1]),
    (["--quick"], True, False, [0, 1]),
    (["--full"], False, True, [0, 1, 2, 3]),
    (["--full", "--seeds=1"], False, True, [0]),
])
def test_quick_by_default_studies_run_quick_unless_full_with_a_seed_count_per_setting(argv, quick, full, seeds):
    args = sweep.parse_study_args(argv, "w", default_seeds=2, quick_by_default=True, full_seeds=4)
    assert (args.quick, args.full, args.seeds) == (quick, full, seeds)


def test_full_and_quick_together_are_an_error_and_full_needs_quick_by_default(capsys):
    with pytest.raises(SystemExit):
        sweep.parse_study_args(["--full", "--quick"], "w", quick_by_default=True)
    assert "argument --full" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.parse_study_args(["--full"], "w")
    assert not sweep.parse_study_args(["--quick"], "w").full


@pytest.mark.parametrize("flag", ["--full", "--quick"])
def test_listed_commands_keep_the_setting_of_a_quick_by_default_study(flag):
    args = sweep.parse_study_args([flag], "w", default_seeds=2, quick_by_default=True, full_seeds=4)
    commands = sweep.list_commands("experiments.fake", args, sweep.expand(VARIANTS[:1], args.seeds))
    reparsed = sweep.parse_study_args(shlex.split(commands[0])[3:], "w", default_seeds=2, quick_by_default=True)
    assert (reparsed.quick, reparsed.full, reparsed.seeds) == (args.quick, args.full, args.seeds)


def test_extra_sections_can_be_made_from_the_results(tmp_path):
    def sections(study_dir, results):
        return [f"## Extra\n\n{len(results)} results in {os.path.basename(study_dir)}"]

    args = sweep.parse_study_args([f"--workdir={tmp_path}", "--seeds=2"], "unused")
    sweep.run_study(args, module="experiments.fake", variants=VARIANTS[:2], make_config=make_config,
                    run_fn=fake_run_fn, title="Fake", description="d", metric_keys=METRIC_KEYS,
                    extra_sections=sections)
    assert f"## Extra\n\n4 results in {tmp_path.name}" in (tmp_path / "report.md").read_text()
