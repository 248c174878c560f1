"""The sweep runner: overrides, resumption, failure isolation, shards, stale runs and a reproducible report."""

import json
import os

import ml_collections
import pytest

from experiments import report
from experiments import sweep
from seq2seq_jax.configs import compare

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


def test_apply_overrides_sets_optional_fields_to_none_and_keeps_the_configs_lock():
    config = make_config()
    config.train.max_length = ml_collections.config_dict.placeholder(int)
    new = sweep.apply_overrides(config, {"train.max_length": 5})
    assert new.train.max_length == 5 and not new.is_locked
    assert sweep.apply_overrides(new, {"train.max_length": None}).train.max_length is None
    with pytest.raises(ValueError, match="variant 'v': cannot set 'train.max_length' to 'long'"):
        sweep.apply_overrides(new, {"train.max_length": "long"}, variant="v")
    config.lock()
    assert sweep.apply_overrides(config, {"train.num_steps": 3}).is_locked


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


def test_a_preempted_run_stops_the_sweep_unrecorded_so_the_next_invocation_resumes_it(tmp_path):
    from seq2seq_jax import train

    def preempted(config, workdir):
        fake_run_fn(config, workdir)
        raise train.Preempted("SIGTERM received: stopped after step 3, which is saved")

    runs = sweep.expand(VARIANTS[:2], [0])
    with pytest.raises(train.Preempted):
        sweep.run_sweep(str(tmp_path), runs, make_config, preempted)
    assert [calls(tmp_path, r.run_id) for r in runs] == [1, 0]  # the next run never started
    assert not os.path.exists(tmp_path / "runs" / "baseline" / "seed0" / "result.json")  # not a failure
    sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn)
    assert [calls(tmp_path, r.run_id) for r in runs] == [2, 1]


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


def test_report_regenerates_byte_identical_from_results_jsonl(tmp_path):
    runs = sweep.expand(VARIANTS, [0, 1, 2])
    sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn)
    results = sweep.collect(str(tmp_path), runs)
    report.write(str(tmp_path), "Fake study", "A study of nothing.", results, METRIC_KEYS)
    markdown = (tmp_path / "report.md").read_text()
    csv_text = (tmp_path / "results.csv").read_text()

    # attention: acc = 0.5, 0.6, 0.7 -> mean 0.6, sample std 0.1; loss 1.0 every seed -> std 0.
    assert "| `attention` | 3 | 0 | 0.6 ± 0.1 (n=3) | 1 ± 0 (n=3) |" in markdown
    assert "| `broken` | 0 | 3 | — | — |" in markdown
    assert "- `broken/seed2`: RuntimeError: diverged at step 7" in markdown
    assert "- `attention`: `model.bonus=0.5`, `model.decoder='attention'`" in markdown
    assert len(csv_text.splitlines()) == 1 + 9

    with open(tmp_path / "results.jsonl") as f:
        from_jsonl = [json.loads(line) for line in f]
    os.remove(tmp_path / "report.md")
    report.write(str(tmp_path), "Fake study", "A study of nothing.", from_jsonl, METRIC_KEYS)
    assert (tmp_path / "report.md").read_text() == markdown
    assert (tmp_path / "results.csv").read_text() == csv_text


def test_collect_reports_only_the_runs_of_the_current_sweep(tmp_path):
    sweep.run_sweep(str(tmp_path), sweep.expand(VARIANTS[:1], [0, 1, 2]), make_config, fake_run_fn)
    results = sweep.collect(str(tmp_path), sweep.expand(VARIANTS[:1], [0, 1]))
    assert [r["run_id"] for r in results] == ["baseline/seed0", "baseline/seed1"]


def test_a_sweep_rerun_after_a_base_config_change_refuses_the_old_runs_naming_the_fields(tmp_path):
    runs = sweep.expand(VARIANTS[:2], [0])
    sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn)

    def changed():
        config = make_config()
        config.train.num_steps = 80
        return config

    with pytest.raises(ValueError, match=r"attention/seed0 \(train.num_steps: 10 -> 80\)"):
        sweep.run_sweep(str(tmp_path), runs, changed, fake_run_fn)
    assert [calls(tmp_path, r.run_id) for r in runs] == [1, 1]  # refused before anything ran
    sweep.run_sweep(str(tmp_path), runs, make_config, fake_run_fn)  # the same config: reused
    assert [calls(tmp_path, r.run_id) for r in runs] == [1, 1]


def test_an_option_added_since_a_run_counts_as_its_default_and_only_a_non_default_value_is_stale():
    saved = {"model.decoder": "bottleneck", "train.num_steps": 10}
    assert compare.differences(saved, {**saved, "model.recurrent_impl": "scan"}) == []  # the default
    assert compare.differences(saved, {**saved, "model.recurrent_impl": "cudnn"}) == [
        "model.recurrent_impl: 'scan' -> 'cudnn'"]
    assert compare.differences(saved, {**saved, "model.unheard_of": 1}) == ["model.unheard_of: '<absent>' -> 1"]


def test_machine_paths_are_not_part_of_a_runs_recorded_config():
    config = make_config()
    config.data = {"data_dir": "/somewhere", "dataset": "x"}
    assert compare.flat(config) == {"model.decoder": "bottleneck", "model.bonus": 0.0, "model.broken": False,
                                    "train.seed": 0, "train.num_steps": 10, "data.dataset": "x"}


@pytest.mark.parametrize("values, text", [([], "—"), ([0.5], "0.5 (n=1)"), ([0.5, 0.7], "0.6 ± 0.14 (n=2)")])
def test_a_cell_shows_n_and_never_a_spread_for_one_seed(values, text):
    results = [{"variant": "a", "overrides": {}, "status": "ok", "metrics": {"acc": v}} for v in values]
    results.append({"variant": "a", "overrides": {}, "status": "failed", "metrics": {}})
    (row,) = report.summarize(results, ["acc"])
    assert report.cell(row["mean"]["acc"], row["std"]["acc"], row["n"]["acc"]) == text


def test_summarize_uses_sample_std_and_none_for_one_seed():
    results = [
        {"variant": "a", "overrides": {}, "status": "ok", "metrics": {"acc": 1.0}},
        {"variant": "a", "overrides": {}, "status": "ok", "metrics": {"acc": 3.0}},
        {"variant": "b", "overrides": {}, "status": "ok", "metrics": {"acc": 5.0}},
        {"variant": "b", "overrides": {}, "status": "failed", "metrics": {}},
    ]
    a, b = report.summarize(results, ["acc"])
    assert (a["n_ok"], a["n_failed"], a["mean"]["acc"], a["std"]["acc"]) == (2, 0, 2.0, pytest.approx(2**0.5))
    assert (b["n_ok"], b["n_failed"], b["mean"]["acc"], b["std"]["acc"], b["n"]["acc"]) == (1, 1, 5.0, None, 1)


