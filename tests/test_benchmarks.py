"""The benchmarks run and report what they promise (never how fast: timings are not tested), and the
PyTorch peer computes our loss, and decodes our tokens, when given our weights."""

import functools
import json
import os
import statistics
import subprocess
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import common, report, run, step_profile, train_step
from seq2seq_jax import logger, malloc

ROW_FIELDS = {"benchmark", "variant", "impl", "ms_median", "ms_min", "ms_max", "tokens_per_s", "ratio_vs_torch"}


def _rows(result, benchmark):
    return [r for r in result["rows"] if r["benchmark"] == benchmark]


@pytest.mark.slow
def test_quick_run_writes_every_row_with_its_fields_and_the_report_renders_it(tmp_path):
    """Each benchmark once (``--quick``: one variant of each, ours and the peer's where torch is installed)."""
    path = tmp_path / "results.json"
    subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", f"--json={path}"], check=True,
                   capture_output=True, timeout=600)
    result = json.loads(path.read_text())
    assert result["quick"] and result["reps"] == 1
    assert len(result["load_before"]) == len(result["load_after"]) == 3
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["jax_version"] == jax.__version__
    with_torch = result["torch_rows"]
    assert {r["benchmark"] for r in result["rows"]} == set(run.BENCHMARKS)
    for r in result["rows"]:
        assert ROW_FIELDS <= set(r), r
        if r["benchmark"] in ("train_step_memory", *run.PROFILES):
            assert r["ms_median"] is None and r["ratio_vs_torch"] is None
            continue
        assert 0 < r["ms_min"] <= r["ms_median"] <= r["ms_max"]
        assert (r["ratio_vs_torch"] is not None) == (with_torch and not r["impl"].startswith("torch")
                                                     and r["benchmark"] in ("train_step", "search"))
    quick = run.SETTINGS[True]
    impls = ["ours"] + ["torch"] * with_torch
    steps = {(r["variant"], r["impl"]): r for r in _rows(result, "train_step")}
    preloaded = {key for key in steps if key[0].endswith(", tcmalloc")}  # where tcmalloc is installed
    assert sorted(impl for _, impl in steps.keys() - preloaded) == impls
    assert sorted(impl for _, impl in preloaded) == (impls if malloc.tcmalloc_library() else [])
    for (variant, impl), r in steps.items():  # FLOPs: ours counted, the peer's = ours
        assert r["threads"]["malloc"] == ("tcmalloc" if (variant, impl) in preloaded else malloc.name())
        assert r["page_faults_per_step"] >= 0
        assert r["tokens_per_s"] > 0 and r["params"] > 0
        assert r["flops"] > 0 and r["flops_per_s"] > 0 and (r["peak_share"] is None) == (result["peak_flops"] is None)
        if impl == "torch":
            assert r["flops"] == steps[variant, "ours"]["flops"] and r["flops_from"].startswith("ours")
    memory = {(r["variant"], r["impl"]): r for r in _rows(result, "train_step_memory")}
    assert sorted(impl for _, impl in memory) == impls
    for (variant, impl), r in memory.items():
        assert r["peak_bytes"] == r["persistent_bytes"] + r["step_bytes"]
        assert r["max_rss_bytes"] > r["peak_bytes"] > 0
        assert (r.get("peak_ratio_vs_torch") is not None) == (with_torch and impl != "torch")
    lengths = _rows(result, "train_step_length")
    assert [r["settings"]["src_len"] for r in lengths] == list(quick["lengths"])
    assert all(r["compile_s"] is not None for r in lengths)
    searches = {(r["settings"]["out_len"], r["impl"]) for r in _rows(result, "search")}
    assert searches == {(out_len, f"{impl} greedy") for out_len in quick["out_lens"] for impl in impls}
    runs = _rows(result, "train_run")  # the trainer's row, the jitted step alone folded into it
    assert len(runs) == 1 and runs[0]["tokens_per_s"] > 0 and "seq2seq_jax.main" in runs[0]["command"]
    r = runs[0]
    assert "benchmarks.trainer_overhead" in r["step_only_command"] and r["step_only_ms"] > 0
    # Window by window, each trainer process paired with the step-only process beside it.
    shares = [1 - a / t for ts, as_ in zip(r["window_ms"], r["step_only_window_ms"]) for t, a in zip(ts, as_)]
    assert r["outside_step_share"] == statistics.median(shares)
    assert (r["outside_step_share_min"], r["outside_step_share_max"]) == (min(shares), max(shares))
    assert r["input_ms"] > 0 and r["checkpoint_s"] > 0 and r["checkpoint_every"] == 300  # the tiny config's
    assert r["timed_calls"] == r["step_only_timed_calls"] == quick["train_run_steps"]["num_steps"] // 2 - 1
    translations = _rows(result, "translate")
    assert [r["impl"] for r in translations] == ["ours greedy"] and translations[0]["sentences_per_s"] > 0
    starts = _rows(result, "data_startup")
    assert [r["impl"] for r in starts] == ["prepare", "first start", "later start"]
    assert all(r["pairs"] == quick["data_pairs"][0] and r["peak_rss_bytes"] >= r["imports_rss_bytes"] > 0
               for r in starts)
    assert starts[0]["first_batch_ms"] is None and starts[0]["batch_ms"] is None and starts[0]["cache_bytes"] == 0
    assert all(r["first_batch_ms"] > 0 and r["batch_ms"] > 0 and r["cache_bytes"] > 0 for r in starts[1:])
    (step,) = _rows(result, "step_profile")  # under the malloc of the train-step rows it explains
    assert step["variant"].endswith(", tcmalloc") == bool(malloc.tcmalloc_library())
    assert step["variant"] in {variant for variant, _ in steps} and step["profile"]["ops_ms_per_step"] > 0
    (search,) = _rows(result, "search_profile")
    assert search["settings"]["beam_size"] == quick["profile_beam"] and search["profile"]["wall_ms"]["greedy"] > 0
    text = report.markdown(result)
    assert "## Where the time goes" in text and text.index("## Summary") < text.index("## Where the time goes")
    assert report.RETRACTION in text and "## Train step" in text and "## Decoding" in text and "## Memory" in text
    assert "## Start-up as the corpus grows" in text
    assert all(r["variant"] in text for r in result["rows"])
    assert (f"| {report._number(r['step_only_ms'])} | {100 * r['outside_step_share']:.1f}% "
            f"({100 * r['outside_step_share_min']:.1f} to {100 * r['outside_step_share_max']:.1f}%) |") in text


def test_quick_plan_makes_each_kind_of_row_once_and_the_full_plan_more():
    files = ("/w", "/s.txt", 10)
    quick = run.plan(quick=True, use_torch=False, translate_files=files)
    kinds = [job.benchmark for job in quick]
    # The trainer and its step alone; data_startup's phases, each the next one's data.
    assert sorted(kinds) == sorted([*run.BENCHMARKS, "train_run", *["data_startup"] * (len(run.DATA_PHASES) - 1)])
    assert [job.impl for job in quick if job.benchmark == "train_run"] == ["ours", run.STEP_ONLY]
    with_torch = run.plan(quick=True, use_torch=True, translate_files=files)
    assert {job.benchmark for job in with_torch if job.impl.startswith("torch")} == {
        "train_step", "train_step_memory", "search"}
    assert len(run.plan(quick=False, use_torch=False, translate_files=files)) > 3 * len(quick)


def test_data_startup_times_each_phase_in_its_own_process_and_a_baseline_checkout_s_starts_after_them():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    jobs = run.plan(quick=False, use_torch=False, only=("data_startup",), folder="/f", baseline=root,
                    data_pairs=[10, 20])
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    phases = ["prepare", "first start", "later start", f"first start, before ({commit})",
              f"later start, before ({commit})"]
    assert [(job.variant, job.impl) for job in jobs] == [(v, p) for v in ("10 pairs", "20 pairs") for p in phases]
    assert all("-m" in job.args and "benchmarks.data_startup" in job.args for job in jobs)
    assert [("--checkout=" + root) in job.args for job in jobs[:5]] == [False] * 3 + [True] * 2


def test_step_only_job_gets_the_trainer_s_config_flags():
    jobs = {job.impl: job for job in run.plan(quick=False, use_torch=False, only=("train_run",), folder="/f")}
    trainer, alone = jobs["ours"].args, jobs[run.STEP_ONLY].args
    assert trainer[1:3] == ("-m", "seq2seq_jax.main") and alone[1:3] == ("-m", "benchmarks.trainer_overhead")
    assert [a for a in trainer[3:] if not a.startswith("--workdir=")] == list(alone[3:])
    assert "--config.train.num_steps=300" in alone and any(a.endswith("g2p.py:cpu") for a in alone)
    assert run.setting_checkpoint_every(quick=False) == 2500


def test_step_only_row_is_folded_into_the_trainer_s_row_as_its_share_outside_the_step():
    def timed(impl, ms, **extra):
        return {"benchmark": "train_run", "variant": "g2p", "impl": impl, "ms_median": ms, "ms_min": ms - 1,
                "ms_max": ms + 1, "tokens_per_s": None, "ratio_vs_torch": None, "processes": 3, "timed_calls": 15,
                "command": "c", **extra}

    # Two processes of two windows each: the trainer's windows vary with the buckets they drew, and the jitted
    # step alone over the same batches varies with them.
    rows = [timed("ours", 100.0, tokens_per_s=5000.0, window_ms=[[100.0, 200.0], [50.0, 100.0]]),
            timed(run.STEP_ONLY, 92.0, input_ms=1.5, checkpoint_s=0.5, batch_shapes=[[128, 8, 128, 8]],
                  shapes_first_met_after_first_window=0, window_ms=[[90.0, 190.0], [48.0, 92.0]]),
            dict(benchmark="search", variant="g2p", impl="ours greedy", ms_median=3.0)]
    folded = run.with_step_only(rows, checkpoint_every=2500)
    assert [r["impl"] for r in folded] == ["ours", "ours greedy"]  # the search row of the same name untouched
    r = folded[0]
    assert r["step_only_ms"] == 92.0 and (r["step_only_ms_min"], r["step_only_ms_max"]) == (91.0, 93.0)
    # Paired shares 10%, 5%, 4%, 8%: their median 6.5%, where 1 - the medians' ratio would say 8%.
    assert r["outside_step_share"] == pytest.approx(0.065) and r["input_ms"] == 1.5
    assert (r["outside_step_share_min"], r["outside_step_share_max"]) == pytest.approx((0.04, 0.10))
    assert r["checkpoint_ms_per_step"] == pytest.approx(0.2) and r["step_only_command"] == "c"
    table = "\n".join(report._trainer_table(folded[:1]))
    assert ("| g2p | ours | 100.00 | 99.00–101.00 | 5,000 | 92.00 | 6.5% (4.0 to 10.0%) | 1.50 | 0.50 | "
            "0.200 (every 2,500) |") in table
    unpaired = [{k: v for k, v in r.items() if k != "window_ms"} for r in rows]  # runs from before windows were kept
    assert run.with_step_only(unpaired)[0]["outside_step_share"] == pytest.approx(0.08)
    rows[1]["window_ms"] = [[90.0, 190.0]]  # saved before the second step-only process ran: the pair so far
    assert run.with_step_only(rows)[0]["outside_step_share"] == pytest.approx(0.075)
    rows[1]["window_ms"] = [[90.0, 190.0], [48.0]]  # a window short: not silently paired with the wrong one
    with mock.patch.object(run.logging, "warning") as warning:
        mismatched = run.with_step_only(rows)[0]
    assert mismatched["outside_step_share"] == pytest.approx(0.08) and "outside_step_share_min" not in mismatched
    assert warning.call_args.args[1:] == ("g2p", [2, 2], [2, 1])  # named, and the run's rows kept
    older = "\n".join(report._trainer_table([timed("ours", 100.0, tokens_per_s=5000.0)]))  # before step_only_ms
    assert "| 5,000 | – | – | – | – | – |" in older


def test_the_step_alone_runs_the_trainer_s_steps_on_the_trainer_s_batches(tiny_workdir, load_trained_once):
    """``trainer_overhead.measure``, given a finished run's config, ends where the trainer ended: the same
    parameters bit for bit, so what it times is the trainer's own step on the trainer's batches in the
    trainer's order (the tiny run of conftest: 30 steps, logged every 10, one bucket shape)."""
    from benchmarks import trainer_overhead
    from seq2seq_jax import workdir as workdir_lib

    config = workdir_lib.load_run(tiny_workdir)[0]
    result = trainer_overhead.measure(config, return_state=True)
    _, _, params, _, _ = load_trained_once(tiny_workdir, "latest")
    assert int(result["state"].step) == config.train.num_steps == 30
    jax.tree_util.tree_map(np.testing.assert_array_equal, result["state"].params, params)
    assert len(result["times_s"]) == 2 and all(t > 0 for t in result["times_s"])  # steps 11-20, 21-30; 1-10 compile
    assert result["timed_steps"] == 20 and result["input_s"] > 0 and result["checkpoint_s"] > 0
    for batch, source, _, target in result["batch_shapes"]:  # [batch, src_len] inputs, [batch, tgt_len] targets
        assert batch == config.train.batch_size and [source, target] in result["bucket_shapes"]
    assert result["shapes_first_met_after_first_window"] == 0
    json.dumps({k: v for k, v in result.items() if k != "state"})  # the rest is the worker's JSON


def test_ratio_is_our_time_over_the_torch_time_of_the_same_variant():
    rows = [dict(benchmark="search", variant="v", impl="ours greedy", ms_median=2.0, ratio_vs_torch=None),
            dict(benchmark="search", variant="v", impl="ours beam 5", ms_median=9.0, ratio_vs_torch=None),
            dict(benchmark="search", variant="v", impl="torch greedy", ms_median=4.0, ratio_vs_torch=None),
            dict(benchmark="search", variant="w", impl="ours greedy", ms_median=1.0, ratio_vs_torch=None)]
    rows = run.with_ratios(rows)
    assert [r["ratio_vs_torch"] for r in rows] == [0.5, 2.25, None, None]
    assert [r.get("ratio_vs_greedy") for r in rows] == [1.0, 4.5, None, 1.0]  # ours only, within a variant


def test_plan_times_each_implementation_in_its_own_process_and_skips_torch_without_it():
    files = ("/w", "/s.txt", 10)
    with_torch = run.plan(quick=False, use_torch=True, translate_files=files)
    without = run.plan(quick=False, use_torch=False, translate_files=files)
    assert len({job.key for job in with_torch}) == len(with_torch)  # one process a job and repetition
    assert {job.impl for job in with_torch if job.benchmark == "train_step"} == {"ours", "torch", "flax_rnn"}
    models = {job.variant.split(",")[0] for job in without if job.benchmark == "train_step"}
    assert models == {"lstm/bottleneck", "lstm/attention", "gru/bottleneck", "gru/attention"}
    assert [job for job in with_torch if "torch" not in job.impl] == without
    assert all(job.args[1:3] == ("-m", "benchmarks.train_step") for job in without if job.benchmark == "train_step")
    flax = {job.variant.split(",")[0] for job in without if job.impl == "flax_rnn"}
    assert flax == {"lstm/bottleneck", "gru/bottleneck"}
    sizes = {job.variant.split(", ", 1)[1] for job in without if job.benchmark == "train_step"}
    assert sizes == {"B 64, S 32, T 32, E 128, H 256, V 1000", "B 64, S 40, T 40, E 256, H 512, V 8000"}
    lengths = [job.variant for job in without if job.benchmark == "train_step_length"]
    assert [v.split(", S ")[1].split(",")[0] for v in lengths] == ["20", "40", "80", "160"]
    memory = [job for job in with_torch if job.benchmark == "train_step_memory"]
    assert {(job.variant.split(",")[0], job.variant.split(", S ")[1].split(",")[0]) for job in memory} == {
        (model, length) for model in ("lstm/attention", "lstm/bottleneck") for length in ("40", "80", "160", "320")}
    assert all("--measure=memory" in job.args for job in memory)
    assert {(job.impl, "--remat=True" in job.args) for job in memory} == {
        ("ours", False), ("ours remat", True), ("torch", False)}
    assert {job.impl for job in without if job.benchmark == "train_step_memory"} == {"ours", "ours remat"}


def test_with_tcmalloc_each_train_step_model_is_timed_again_ours_and_the_peer_with_it_preloaded():
    files = ("/w", "/s.txt", 10)
    plain = run.plan(quick=False, use_torch=True, translate_files=files)
    jobs = run.plan(quick=False, use_torch=True, translate_files=files, tcmalloc="libtcmalloc_minimal.so.4")
    timed = [job for job in jobs if job.benchmark != "step_profile"]
    preloaded = [job for job in timed if job.env]
    assert [job for job in timed if not job.env] == [job for job in plain if job.benchmark != "step_profile"]
    assert all(not job.env for job in plain)
    assert all(job.env == (("LD_PRELOAD", "libtcmalloc_minimal.so.4"),) for job in preloaded)
    steps = {(job.variant, job.impl): job.args for job in plain
             if job.benchmark == "train_step" and job.impl != "flax_rnn"}
    # The same processes (same flags), their variants named for the malloc.
    assert {(job.variant, job.impl): job.args for job in preloaded} == {
        (f"{variant}, tcmalloc", impl): args for (variant, impl), args in steps.items()}
    # Each model's step profile runs under the malloc of the train-step rows it explains: tcmalloc, where installed.
    for planned, suffix in ((plain, ""), (jobs, ", tcmalloc")):
        profiles = [job for job in planned if job.benchmark == "step_profile"]
        assert [job.variant for job in profiles] == [f"{v}{suffix}" for v, impl in steps if impl == "ours"]
        assert all(bool(job.env) == bool(suffix) for job in profiles)
    without_torch = run.plan(quick=False, use_torch=False, translate_files=files, tcmalloc="libtcmalloc_minimal.so.4")
    assert {job.impl for job in without_torch if job.env} == {"ours"}


def test_on_a_gpu_the_lstm_rows_gain_the_cudnn_encoder_and_nothing_else_changes():
    files = ("/w", "/s.txt", 10)
    cpu = run.plan(quick=False, use_torch=True, translate_files=files)
    gpu = run.plan(quick=False, use_torch=True, translate_files=files, gpu=True)
    cudnn = [job for job in gpu if job.impl == "ours cudnn"]
    # The step profile reads XLA's CPU trace (one event per executed HLO instruction): on a CPU only.
    assert [j for j in gpu if j.impl != "ours cudnn"] == [j for j in cpu if j.benchmark != "step_profile"]
    assert {job.benchmark for job in cudnn} == {"train_step", "train_step_memory"}
    assert all(job.variant.startswith("lstm/") for job in cudnn)
    assert len([j for j in cudnn if j.benchmark == "train_step"]) == 4  # 2 LSTM models x 2 sizes
    assert all("--impl=ours" in job.args and "--recurrent_impl=cudnn" in job.args for job in cudnn)


def test_a_run_reports_its_rows_after_every_job_so_a_run_cut_short_keeps_them(monkeypatch):
    def fake_job(job, timeout_s, cache_dir):
        return {"times_s": [0.01], "first_s": 0.5, "sentences": 64, "output_steps": 20, "settings": {},
                "threads": {}}

    monkeypatch.setattr(run, "run_job", fake_job)
    seen = []
    final = run.benchmark(quick=False, use_torch=True, reps=2, only=("search",), progress=seen.append)
    jobs = 2 * 2 * 3  # reps x out_lens x (our greedy, our beam, the peer's greedy)
    assert [r["unfinished_jobs"] for r in seen] == list(range(jobs - 1, 0, -1)) and final["unfinished_jobs"] == 0
    assert [len(r["rows"]) for r in seen[:6]] == [1, 2, 3, 4, 5, 6] and len(final["rows"]) == 6
    assert seen[0]["rows"][0]["impl"] == "ours greedy" and seen[0]["rows"][0]["processes"] == 1
    assert all(r["processes"] == 2 for r in final["rows"])
    assert "Cut short: 11 of its jobs did not run" in report.markdown(seen[0])
    assert "Cut short" not in report.markdown(final)


def test_the_report_puts_a_gpu_run_s_tables_under_their_own_heading():
    def result(backend, impl, ms):
        return {"command": f"python -m benchmarks.run ({backend})", "date": "2026-12-04", "reps": 1,
                "load_before": [0.1] * 3, "load_after": [0.2] * 3, "busy_warning": None, "peak_flops": None,
                "machine": {"platform": "Linux", "processor": "x86_64", "cpu_count": 16, "python": "3.12",
                            "jax_version": "0.11", "jax_backend": backend, "device": "NVIDIA H200", "torch": None},
                "rows": [{"benchmark": "train_step", "variant": "lstm/attention, B 64", "impl": impl,
                          "ms_median": ms, "ms_min": ms, "ms_max": ms, "tokens_per_s": 1.0, "ratio_vs_torch": None,
                          "threads": {}}]}

    text = report.markdown(result("cpu", "ours", 100.0), result("gpu", "ours cudnn", 3.0))
    cpu_part, gpu_part = text.split("## On a GPU")
    assert "## Train step" in cpu_part and "| ours | 100.00 |" in cpu_part and "H200" not in cpu_part
    assert "### Train step" in gpu_part and "| ours cudnn | 3.00 |" in gpu_part
    assert "jax 0.11 (gpu, NVIDIA H200)" in gpu_part and "(gpu)" in text.splitlines()[2]
    assert "On a GPU" not in report.markdown(result("cpu", "ours", 100.0))


# --- Memory and FLOPs -------------------------------------------------------------------------------------

TINY = dict(cell="lstm", batch=4, hidden=8, embed=4, vocab=20, unmap_freed=False)  # pytest goes on: glibc as it was


def test_our_memory_is_xla_s_analysis_and_remat_needs_less_of_it_for_long_sentences():
    plain, remat = (train_step.memory(impl="ours", decoder="attention", src_len=48, tgt_len=48, remat=remat, **TINY)
                    for remat in (False, True))
    for r in (plain, remat):
        m, xla = r["memory"], r["memory"]["xla_bytes"]
        assert all(isinstance(v, int) and v >= 0 for v in xla.values()) and xla["argument"] > 0 and xla["temp"] > 0
        assert m["peak_bytes"] == xla["argument"] + xla["output"] - xla["alias"] + xla["temp"]
        assert m["persistent_bytes"] == xla["argument"] and m["max_rss_bytes"] > m["peak_bytes"]
        assert r["params"] == plain["params"] and r["settings"]["remat"] == (r is remat)
    assert remat["memory"]["xla_bytes"]["temp"] < plain["memory"]["xla_bytes"]["temp"]
    assert remat["memory"]["xla_bytes"]["argument"] == plain["memory"]["xla_bytes"]["argument"]
    assert remat["flops"] > plain["flops"] > 0  # the recomputed forward steps


def test_peer_memory_counts_its_state_and_the_step_s_peak_allocation():
    torch = pytest.importorskip("torch")
    from benchmarks import torch_seq2seq

    r = train_step.memory(impl="torch", decoder="attention", src_len=16, tgt_len=16, **TINY)
    m = r["memory"]
    assert all(isinstance(m[k], int) and m[k] > 0 for k in ("peak_bytes", "persistent_bytes", "step_bytes"))
    assert m["peak_bytes"] == m["persistent_bytes"] + m["step_bytes"] and r["flops"] is None
    assert m["max_rss_bytes"] > m["peak_bytes"]
    state = 3 * 4 * r["params"]  # parameters and Adam's two moments, float32
    assert state < m["persistent_bytes"] < state + 4096  # + the int64 batch and Adam's step counts
    held = []  # the allocator's peak, on a step whose allocations are known: 4 MB, then 4 more, 4 freed, 2 more
    def step():
        b = torch.ones(1000, 1000)
        c = b + 1
        del b
        held.append(torch.ones(500, 1000))
        del c
    assert 8_000_000 <= torch_seq2seq.peak_allocated_bytes(step) < 8_001_000


def test_memory_ratio_is_our_peak_over_the_peer_s_and_the_peer_s_flops_are_ours():
    def memory(impl, peak):
        return dict(benchmark="train_step_memory", variant="v", impl=impl, ms_median=None, ratio_vs_torch=None,
                    peak_bytes=peak, flops=None if impl == "torch" else 10)

    rows = run.with_ratios([memory("ours", 30), memory("ours remat", 15), memory("torch", 60)])
    assert [r.get("peak_ratio_vs_torch") for r in rows] == [0.5, 0.25, None]
    timed = [dict(benchmark="train_step", variant="v", impl=impl, ms_median=ms, ratio_vs_torch=None, flops=flops)
             for impl, ms, flops in [("ours", 100.0, 4e9), ("torch", 200.0, None), ("ours cudnn", 50.0, 1e9)]]
    rows = run.with_flops(timed + rows, {"flops_per_s": 80e9})
    assert [r["flops"] for r in rows[:3]] == [4e9, 4e9, 4e9]  # the peer's and cuDNN's: the jaxpr cannot see them
    assert all(r["flops_from"].startswith("ours") for r in rows[1:3])
    assert [r["flops_per_s"] for r in rows[:3]] == [40e9, 20e9, 80e9]
    assert [r["peak_share"] for r in rows[:3]] == [0.5, 0.25, 1.0]
    assert rows[5]["flops"] == 10 and "flops_per_s" not in rows[5]  # memory rows: no time, no rate


def test_a_merged_run_replaces_only_its_own_benchmarks_rows_and_the_report_names_it():
    earlier = {"rows": [dict(benchmark="train_step", impl="ours"), dict(benchmark="train_step_memory", impl="x")],
               "command": "first"}
    later = {"benchmarks": ["train_step_memory"], "command": "python -m benchmarks.run --only=train_step_memory",
             "date": "d", "machine": {"platform": "p", "cpu_count": 2, "jax_version": "j", "torch": None},
             "load_before": [0, 0, 0], "busy_warning": None, "peak_flops": None,
             "rows": [memory_row := dict(benchmark="train_step_memory", variant="lstm/attention, S 320", impl="ours",
                                         peak_bytes=3 * 2**20, persistent_bytes=2**20, step_bytes=2 * 2**20,
                                         max_rss_bytes=2**30, flops=2e9)]}
    merged = run.merge(earlier, later)
    assert merged["rows"] == [earlier["rows"][0], memory_row] and merged["command"] == "first"
    assert merged["merged"][0]["command"] == later["command"] and "rows" not in merged["merged"][0]
    assert run.merge(merged, later)["merged"] == merged["merged"]  # a rerun replaces its own record
    lines = report._merged_note(merged, "train_step_memory") + report._memory_table(merged["rows"][1:])
    assert later["command"] in lines[0] and report._merged_note(merged, "train_step") == []
    assert "| lstm/attention, S 320 | ours | 3.0 | 1.0 | 2.0 | – | 2.0 | 1,024.0 |" in lines


def test_the_summary_checks_each_headline_figure_against_its_goal():
    def row(benchmark, variant, impl, **fields):
        return dict(benchmark=benchmark, variant=variant, impl=impl, **fields)

    rows = [row("train_step", "lstm/bottleneck, H 8", "ours", ratio_vs_torch=0.7),
            row("train_step", "lstm/bottleneck, H 8", "torch", ratio_vs_torch=None),
            row("train_step", "lstm/bottleneck, H 8, tcmalloc", "ours", ratio_vs_torch=0.8),
            row("train_step", "gru/attention, H 8", "ours", ratio_vs_torch=0.4),
            row("search", "out_len 4", "ours greedy", ratio_vs_greedy=1.0),
            row("search", "out_len 4", "ours beam 5", ratio_vs_greedy=2.5),
            *[row("train_step_memory", f"lstm/attention, S {n}, T {n}", impl, peak_ratio_vs_torch=ratio)
              for n, impl, ratio in [(40, "ours", 2.0), (320, "ours", 1.5), (320, "ours remat", 0.5)]],
            row("train_run", "g2p", "ours", outside_step_share=0.05),
            *[row("data_startup", f"{n} pairs", "later start", pairs=n, ms_median=ms, peak_rss_bytes=rss)
              for n, ms, rss in [(100, 300.0, 200), (5000, 310.0, 300)]]]
    assert report.summary({"rows": rows})[2:] == [
        "| train step, ours / PyTorch: lstm/bottleneck, H 8 | 0.75 | 0.70 glibc, 0.80 tcmalloc | yes, no |",
        "| train step, ours / PyTorch: gru/attention, H 8 | 0.50 | 0.40 glibc, – tcmalloc | yes, – |",
        "| beam 5 / our greedy: out_len 4 | 2.00 | 2.50 | no |",
        "| peak memory of a step, ours / PyTorch: lstm/attention, S 320, T 320 | 1.00 | 1.50 ours, 0.50 ours remat "
        "| no, yes |",
        "| the trainer's step time outside the jitted step: g2p | 10.0% | 5.0% | yes |",
        "| data later start, 5,000 pairs / 100 pairs | 1.25 | 1.03 time, 1.50 peak RSS | yes, no |"]
    cpu = {"cpu_model": "Some CPU", "cpu_cores": 2, "cpu_vector_extensions": "avx2"}
    result = {"rows": rows, "command": "python -m benchmarks.run", "date": "2026-12-05T06:00:00", "machine": cpu,
              "merged": [{"benchmarks": ["search"], "command": "rerun", "date": "2026-12-06T01:00:00", "machine": {}}]}
    quoted = report.readme_summary(result).splitlines()
    assert quoted[0] == ("From `python -m benchmarks.run` (2026-12-05) on Some CPU, 2 cores, vector extensions avx2, "
                         "as [benchmarks/RESULTS.md](benchmarks/RESULTS.md) opens:")
    assert quoted[2:-2] == report.summary(result)
    assert quoted[-1] == "- The search rows: `rerun` (2026-12-06), merged into that file."


def test_where_the_time_goes_sets_each_profile_beside_the_rows_it_explains_and_the_rate_its_goal_needs():
    def row(benchmark, variant, impl, **fields):
        return dict(benchmark=benchmark, variant=variant, impl=impl, **fields)

    def op(step_pass, part, kind, ms):
        return {"pass": step_pass, "part": part, "kind": kind, "ms_per_step": ms}

    ops = [op("forward", "encoder scan", "matmul", 20.0), op("backward", "decoder scan", "matmul", 30.0),
           op("forward", "output layer", "matmul", 10.0), op("update", "optimizer, metrics", "other", 40.0)]
    profile = {"ops": ops, "ops_ms_per_step": 100.0}
    rows = [row("train_step", "lstm/bottleneck, H 8", "ours", ms_median=100.0, flops=12e9),
            row("train_step", "lstm/bottleneck, H 8", "torch", ms_median=100.0),
            row("train_step", "gru/attention, H 8", "ours", ms_median=100.0, flops=12e9),
            row("train_step", "gru/attention, H 8", "torch", ms_median=60.0),
            row("step_profile", "lstm/bottleneck, H 8", "ours", profile=profile),
            row("step_profile", "gru/attention, H 8", "ours", profile=profile),
            row("search_profile", "out_len 4", "ours", settings={"beam_size": 5}, profile={"wall_ms": {
                "greedy": 40.0, "beam 5": 120.0, "step alone, batch rows": 30.0,
                "step alone, batch * 5 rows": 110.0}})]
    lines = report.where_the_time_goes({"rows": rows, "peak_flops": {"flops_per_s": 300e9}})
    # 60% of the ops are matmuls: 60 ms of the 100 ms median compute 12 GFLOP, 200 GFLOP/s, 67% of the peak. The
    # bottleneck's goal, 0.75 x 100 ms, leaves them 75 - 40 = 35 ms: 343 GFLOP/s, 114%; attention's, 0.5 x 60 ms,
    # is less than the 40 ms of everything else.
    assert "| lstm/bottleneck, H 8 | 100.0 | 75.0 (0.75 ×) | 20% | 30% | 10% | 0% | 40% | 67% | 114% |" in lines
    assert "| gru/attention, H 8 | 100.0 | 30.0 (0.5 ×) | 20% | 30% | 10% | 0% | 40% | 67% | out of reach |" in lines
    # Beam search takes 3x greedy; the step alone on 5x the rows 2.75x; the search's own work is the rest.
    assert ("| out_len 4, beam 5 | 40.00 | 120.00 | 30.00 | 110.00 | 3.00 | 2.75 | 8% of the beam's time |"
            in lines)
    result = {"rows": rows, "command": "python -m benchmarks.run", "date": "2026-12-05T06:00:00", "machine": {}}
    assert "[Where the time goes](benchmarks/RESULTS.md#where-the-time-goes)" in report.readme_summary(result)
    assert report.where_the_time_goes({"rows": rows[:4]}) == []  # a run without profiles: no such section
    machine = {"platform": "Linux", "cpu_count": 2, "jax_version": "0.10", "torch": None}
    merged = {"rows": rows, "peak_flops": {"flops_per_s": 300e9}, "merged": [dict(
        command="python -m benchmarks.run --only=step_profile,search_profile", date="2026-12-05T07:00:00",
        benchmarks=["step_profile", "search_profile"], machine=machine, load_before=[0.1], busy_warning=None,
        peak_flops=None)]}
    # A later run that made both profiles is named once, above both tables.
    assert sum("--only=step_profile,search_profile" in line for line in report.where_the_time_goes(merged)) == 1


def test_the_readme_summary_replaces_only_its_marked_block_and_a_readme_without_markers_is_named(tmp_path):
    result = {"rows": [], "command": "python -m benchmarks.run", "date": "2026-12-05T06:00:00", "machine": {}}
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.BEGIN}\nold\n{report.END}\noutro\n")
    report.write_readme_summary(str(readme), result)
    assert readme.read_text() == f"intro\n{report.BEGIN}\n{report.readme_summary(result)}\n{report.END}\noutro\n"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="README.md lacks the <!-- speed-summary:begin --> / "
                                         "<!-- speed-summary:end --> markers"):
        report.write_readme_summary(str(readme), result)
    assert readme.read_text() == "no markers\n"


def test_results_md_and_the_readme_s_speed_summary_are_generated_from_the_committed_results():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "benchmarks", "results.json")) as f, \
            open(os.path.join(root, "benchmarks", "results_gpu.json")) as g:
        result, gpu = json.load(f), json.load(g)
    with open(os.path.join(root, "benchmarks", "RESULTS.md"), encoding="utf-8") as f:
        assert f.read() == report.markdown(result, gpu) + "\n", "rerun: python -m benchmarks.report ... > RESULTS.md"
    with open(report.README, encoding="utf-8") as f:
        quoted = f.read().split(report.BEGIN)[1].split(report.END)[0]
    assert quoted == f"\n{report.readme_summary(result)}\n", "rerun: python -m benchmarks.report --readme"


CPUINFO = """processor	: 0
model name	: Some CPU 9000
physical id	: 0
core id		: 0
cpu MHz		: 2445.404
flags		: fpu sse4_2 avx fma avx2 avx512f

processor	: 1
model name	: Some CPU 9000
physical id	: 0
core id		: 0
cpu MHz		: 2445.404
flags		: fpu sse4_2 avx fma avx2 avx512f

processor	: 2
model name	: Some CPU 9000
physical id	: 0
core id		: 1
cpu MHz		: 2445.404
flags		: fpu sse4_2 avx fma avx2 avx512f
"""


def test_machine_records_the_cpu_model_its_physical_cores_vector_extensions_and_clock():
    cpu = logger.cpu(CPUINFO, lscpu="Model name:  Some CPU 9000\nCPU max MHz:  3500.0000\n")
    assert cpu == {"cpu_model": "Some CPU 9000", "cpu_cores": 2, "cpu_vector_extensions": "sse4_2 avx avx2 fma avx512f",
                   "cpu_mhz": 3500.0, "cpu_mhz_source": "lscpu CPU max MHz"}  # 3 threads on 2 cores
    assert logger.cpu(CPUINFO, lscpu="")["cpu_mhz"] == 2445.404  # a VM: no max clock, the current one
    assert logger.cpu("", lscpu="")["cpu_mhz_source"] == "unknown"
    here = logger.machine()
    assert here["cpu_cores"] >= 1 and all(v is not None for v in here.values())  # studies record them as metrics


def test_peak_flops_is_cores_fma_units_lanes_two_and_the_clock():
    info = lambda ext: dict(cpu_cores=2, cpu_mhz=2500.0, cpu_mhz_source="s", cpu_vector_extensions=ext)  # noqa: E731
    assert common.peak_flops(info("avx avx2 fma"))["flops_per_s"] == 2 * 2 * 8 * 2 * 2500e6
    assert common.peak_flops(info("avx2 fma avx512f"))["flops_per_s"] == 2 * 2 * 16 * 2 * 2500e6
    assert "2 FMA units (assumed)" in common.peak_flops(info("avx2 fma"))["formula"]
    assert common.peak_flops(info("avx")) is None and common.peak_flops({**info("avx2 fma"), "cpu_mhz": 0.0}) is None


def test_matmul_flops_count_every_step_of_a_scan_unlike_xla_s_cost_analysis():
    w, x = jnp.ones((16, 32)), jnp.ones((8, 16))
    step = 2 * 8 * 16 * 32  # one [8, 16] @ [16, 32]

    def f(w, x, n=5, unroll=1):
        return jax.lax.scan(lambda c, _: ((c @ w)[:, :16], None), x, None, length=n, unroll=unroll)[0].sum()

    assert common.matmul_flops(f, w, x) == 5 * step
    assert common.matmul_flops(jax.jit(functools.partial(f, n=7)), w, x) == 7 * step  # through jit
    assert common.matmul_flops(jax.grad(f), w, x) == 3 * 5 * step  # forward, and 2 matmuls back per step
    assert common.matmul_flops(jax.grad(jax.checkpoint(f)), w, x) == 4 * 5 * step  # + the recomputed forward
    def xla_flops(**options):
        cost = jax.jit(functools.partial(f, **options)).lower(w, x).compile().cost_analysis()
        return (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]  # a list of dicts in older JAX

    assert 5 * step <= xla_flops(unroll=True) <= 5 * step + 8 * 16  # no loop: XLA agrees (+ the sum's adds)
    assert xla_flops(n=5) == xla_flops(n=50) < 2 * step  # a loop: XLA counts its body once (why we count)
    with pytest.raises(ValueError, match="trip count"):
        common.matmul_flops(lambda x: jax.lax.while_loop(lambda c: c.sum() < 9, lambda c: c @ w[:, :16], x), x)


@pytest.mark.slow
def test_decoding_benchmark_compiles_one_search_per_batch_shape():
    out = subprocess.run([sys.executable, "-m", "benchmarks.decoding", "--json", "--config=tiny", "--beam_sizes=1,2",
                          "--repeats=1", "--max_examples=16"], check=True, capture_output=True, text=True,
                         timeout=300)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    shapes = r["settings"]["batch_shapes"]
    assert 1 <= len(shapes) <= len(r["settings"]["bucket_shapes"])
    assert [x["beam_size"] for x in r["searches"]] == [1, 2]
    for x in r["searches"]:
        assert x["search_programs"] == len(shapes)  # one program per batch shape, no retracing
        assert x["eval_step_programs"] == len(shapes)
        assert x["xla_compiles"] >= x["search_programs"] + x["eval_step_programs"]
        assert x["sentences_per_s"] > 0 and len(x["pass_times_s"]) == 1


# --- The PyTorch peer is the same model ---------------------------------------------------------------


@functools.cache
def _ours(cell, decoder):
    from seq2seq_jax import model as model_lib
    from seq2seq_jax import optim

    config = common.model_config(cell, decoder, hidden=8, embed=6)
    config.model.attention_size = 5  # distinct from hidden, so a mixed-up projection would fail to load
    model = model_lib.create_model(config, 13, 11)
    params = optim.create_train_state(model, config).params
    # Non-zero biases, so each one's place is checked too.
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p + 0.1 * jax.random.normal(jax.random.key(len(str(path))), p.shape)
        if "bias" in str(path[-1]) else p, params)
    return config, model, params, common.synthetic_batch(3, 5, 4, 11, seed=1)


def _peer(config, params, cell, decoder):
    from benchmarks import torch_seq2seq

    m = config.model
    peer = torch_seq2seq.TorchSeq2Seq(cell=cell, source_vocab_size=13, target_vocab_size=11,
                                      embedding_size=m.embedding_size, hidden_size=m.hidden_size,
                                      attention_size=m.attention_size, decoder=decoder)
    torch_seq2seq.load_flax_params(peer, params)
    return peer


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("decoder", ["attention", "bottleneck"])
def test_torch_peer_computes_our_logits_and_loss_with_our_weights(cell, decoder):
    torch = pytest.importorskip("torch")
    from benchmarks import torch_seq2seq
    from seq2seq_jax import train
    from seq2seq_jax.model import shift_right

    config, model, params, batch = _ours(cell, decoder)
    logits = model.apply({"params": params}, batch["inputs"], batch["input_lengths"], shift_right(batch["targets"]))
    sums = train.token_losses(logits, jnp.asarray(batch["targets"]), jnp.asarray(batch["target_lengths"]))
    peer = _peer(config, params, cell, decoder)
    extra = (4 if cell == "lstm" else 2) * config.model.hidden_size * 2  # b_ih and b_hh of 2 recurrent layers
    assert torch_seq2seq.num_params(peer) == sum(p.size for p in jax.tree_util.tree_leaves(params)) + extra
    tb = torch_seq2seq.to_torch_batch(batch, shift_right(batch["targets"]))
    with torch.no_grad():
        peer_logits = peer(tb["inputs"], tb["input_lengths"], tb["decoder_inputs"])
        loss_sum, count, _ = torch_seq2seq.token_losses(peer_logits, tb["targets"], tb["target_lengths"])
    np.testing.assert_allclose(peer_logits.numpy(), np.asarray(logits), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(loss_sum), float(sums["loss_sum"]), rtol=1e-5)
    assert float(count) == float(sums["token_count"])


@pytest.mark.parametrize("decoder", ["attention", "bottleneck"])
def test_torch_peer_greedy_decoding_emits_our_greedy_tokens(decoder):
    pytest.importorskip("torch")
    from benchmarks import torch_seq2seq
    from seq2seq_jax import inference
    from seq2seq_jax.data.vocab import BOS, EOS

    config, model, params, batch = _ours("lstm", decoder)
    ours = inference.predict_fn(model, 1, 6)(params, batch["inputs"], batch["input_lengths"], jnp.float32(0.0))
    tb = torch_seq2seq.to_torch_batch(batch, batch["targets"])
    peer = torch_seq2seq.greedy_decode(_peer(config, params, "lstm", decoder), tb["inputs"], tb["input_lengths"],
                                       max_len=6, bos_id=BOS, eos_id=EOS).numpy()
    for row, length in enumerate(np.asarray(ours.lengths)):  # ours pads after EOS; the peer runs on
        np.testing.assert_array_equal(peer[row, :length], np.asarray(ours.tokens)[row, :length])


def test_search_profile_times_greedy_beam_and_the_step_alone_at_both_row_counts():
    command = [sys.executable, "-m", "benchmarks.search", "--profile", "--beam_size=2", "--batch=2", "--out_len=3",
               "--hidden=4", "--embed=4", "--vocab=10", "--warmup=0", "--steps=1"]
    r = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout)
    names = {"greedy", "beam 2", "step alone, batch rows", "step alone, batch * 2 rows"}
    assert set(r["wall_ms"]) == set(r["cpu_ms"]) == set(r["cpu_vs_greedy"]) == names
    assert r["wall_vs_greedy"]["greedy"] == r["cpu_vs_greedy"]["greedy"] == 1.0
    assert all(t > 0 for t in r["wall_ms"].values())
    refused = subprocess.run(command[:4] + ["--beam_size=1"], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--profile times our searches" in refused.stderr


def test_step_profile_places_every_op_of_our_step_by_pass_part_and_kind():
    command = [sys.executable, "-m", "benchmarks.step_profile", "--batch=4", "--src_len=5", "--tgt_len=5",
               "--hidden=8", "--embed=4", "--vocab=20", "--warmup=1", "--traced_steps=2"]
    r = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout)
    placed = {(op["pass"], op["part"], op["kind"]) for op in r["ops"]}
    for step_pass in ("forward", "backward"):  # both scans compute matmuls in both passes
        assert {(step_pass, "encoder scan", "matmul"), (step_pass, "decoder scan", "matmul")} <= placed
    assert ("update", "optimizer, metrics", "other") in placed
    assert r["ops_ms_per_step"] == pytest.approx(sum(op["ms_per_step"] for op in r["ops"]))
    assert all(op["ms_per_step"] > 0 for op in r["ops"]) and r["step_ms_traced"] > 0


@pytest.mark.parametrize("worker,flag", [("train_step", "--timed_steps=0"), ("step_profile", "--traced_steps=0")])
def test_no_timed_or_traced_step_is_one_line_naming_the_flag(worker, flag):
    refused = subprocess.run([sys.executable, "-m", f"benchmarks.{worker}", flag], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and f"flag {flag}: 0 is not a positive integer" in refused.stderr


def test_step_profile_reads_the_pass_part_and_kind_from_the_hlo_metadata():
    hlo = "\n".join([
        '  %ynn_fusion.3 = f32[64,1024]{1,0} fusion(%a, %b), kind=kCustom, calls=%c, metadata={op_name='
        '"jit(train_step)/jvp(Seq2Seq)/Seq2Seq.encode/encoder/rnn/while/body/closed_call/dot_general"}',
        '  %dot.21 = f32[256,1024]{1,0} dot(%a, %b), lhs_contracting_dims={0}, metadata={op_name='
        '"jit(train_step)/transpose(jvp(Seq2Seq))/Seq2Seq.decode/while/body/decoder/l0/transpose"}',
        '  %copy.63 = f32[32,64,256]{2,1,0} copy(%wrapped_broadcast.5)',
        '  %while.65 = (s32[], f32[64,256]{1,0}) while(%tuple.73), condition=%cond, body=%body',
        '  ROOT %add.1 = f32[] add(%x, %y), metadata={op_name="jit(train_step)/transpose(jvp(Seq2Seq))/'
        'Seq2Seq.decode/output_projection/add"}',
    ])
    assert step_profile.op_table(hlo) == {
        "ynn_fusion.3": ("forward", "encoder scan", "matmul"),
        "dot.21": ("backward", "decoder scan", "matmul"),
        "copy.63": ("XLA's own", "buffers", "copy"),  # no metadata: no JAX op made it
        "add.1": ("backward", "output layer", "other"),
    }  # the loop itself is left out: its event spans its body's


@pytest.mark.parametrize("flag,message", [
    ("--data_pairs=1e5", "--data_pairs takes positive whole numbers of pairs, got ['1e5']"),
    ("--baseline_checkout={tmp}", "--baseline_checkout={tmp} is not a git checkout"),
])
def test_a_bad_data_startup_flag_is_one_line_naming_it(tmp_path, flag, message):
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only=data_startup", flag.format(tmp=tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and message.format(tmp=tmp_path) in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("flags,message", [
    (["--resume", "--json={tmp}/none.json"], "--resume finishes the run in --merge_into, else --json, and there is "
                                             "none at '{tmp}/none.json'"),
    (["--resume", "--merge_into={tmp}/steps.json"], "--resume: {tmp}/steps.json holds no run of exactly "
                                                    "--only=search"),
    (["--memory_processes=0"], "flag --memory_processes=0: 0 is not a positive integer"),
])
def test_a_bad_resume_or_memory_processes_flag_is_one_line_naming_it(tmp_path, flags, message):
    (tmp_path / "steps.json").write_text(json.dumps({"benchmarks": ["train_step"], "rows": []}))
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only=search",
                          *[f.format(tmp=tmp_path) for f in flags]], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and message.format(tmp=tmp_path) in out.stderr
    assert "Traceback" not in out.stderr


def _fake_search_job(calls):
    def fake_job(job, timeout_s, cache_dir):
        calls.append(job.key)
        ms = {"ours greedy": 0.01, "ours beam 5": 0.03, "torch greedy": 0.02}[job.impl]
        return {"times_s": [ms], "first_s": 0.5, "sentences": 64, "output_steps": 20, "settings": {}, "threads": {}}
    return fake_job


def test_a_resumed_run_runs_only_the_jobs_without_rows_and_ends_as_an_uncut_run(monkeypatch):
    calls = []
    monkeypatch.setattr(run, "run_job", _fake_search_job(calls))
    seen = []
    whole = run.benchmark(quick=False, use_torch=True, reps=1, only=("search",), progress=seen.append)
    cut = seen[1]  # 2 of 6 jobs ran: our greedy and beam 5 at out_len 20, not yet the peer they are compared with
    assert cut["unfinished_jobs"] == 4 and "ratio_vs_torch" not in str([r.get("ratio_vs_torch") for r in cut["rows"]])
    calls.clear()
    progress = []
    finished = run.benchmark(quick=False, use_torch=True, reps=1, only=("search",), earlier=cut,
                             progress=progress.append)
    assert all(r["resumed"] == [{k: cut[k] for k in ("command", "date", "load_before", "load_after",
                                                      "busy_warning")}] for r in [*progress, finished])
    assert len(calls) == 4 and not set(calls) & {(r["benchmark"], r["variant"], r["impl"]) for r in cut["rows"]}
    assert finished["rows"] == whole["rows"]  # the kept rows gain their ratios to the rows run now
    assert finished["unfinished_jobs"] == 0


def test_a_run_merged_into_a_file_resumes_from_that_file_and_a_rerun_of_the_file_s_own_run_takes_its_place(
        monkeypatch):
    monkeypatch.setattr(run, "run_job", _fake_search_job([]))
    whole_search = run.benchmark(quick=False, use_torch=True, reps=1, only=("search",))
    seen = []
    run.benchmark(quick=False, use_torch=True, reps=1, only=("search",), progress=seen.append)
    base = {"benchmarks": ["train_step"], "command": "first", "rows": [dict(benchmark="train_step", impl="ours")]}
    file = run.merge(base, seen[2])  # the search run was cut short after 3 of its 6 jobs
    assert run.run_of(file, ("search",))["unfinished_jobs"] == 3 and run.run_of(file, ("translate",)) is None
    assert run.run_of(file, ("train_step",))["rows"] == base["rows"]
    finished = run.benchmark(quick=False, use_torch=True, reps=1, only=("search",),
                             earlier=run.run_of(file, ("search",)))
    file = run.merge(file, finished)
    assert file["rows"] == base["rows"] + whole_search["rows"] and file["command"] == "first"
    assert [m["unfinished_jobs"] for m in file["merged"]] == [0]
    rerun = {**base, "command": "second", "date": "d2"}
    again = run.merge(file, rerun)  # the file's own run, run again: it is now the file's run
    assert again["command"] == "second" and again["merged"] == file["merged"]
    assert again["rows"] == whole_search["rows"] + base["rows"]


def test_resume_refuses_a_run_it_cannot_finish():
    gpu = {"cpu_model": "Xeon", "device": "NVIDIA H200", "jax_backend": "gpu", "cpu_count": 16}
    cut = {"benchmarks": ["train_step"], "reps": 1, "torch_rows": True, "machine": gpu, "unfinished_jobs": 13}
    assert run.resume_problem(cut, gpu, ("train_step",), 1, True) is None
    assert "finished run" in run.resume_problem({**cut, "unfinished_jobs": 0}, gpu, ("train_step",), 1, True)
    other = run.resume_problem(cut, {**gpu, "device": "NVIDIA A100"}, ("train_step",), 1, True)
    assert other == "was run with machine's device 'NVIDIA H200' (now 'NVIDIA A100')"
    assert "reps 1 (now 3)" in run.resume_problem(cut, gpu, ("train_step",), 3, True)
    assert "train_run" in run.resume_problem(cut, gpu, ("train_run",), 1, True)


def test_memory_jobs_may_run_side_by_side_and_every_other_job_runs_alone():
    import threading

    jobs = [run.Job(b, str(i), "ours", ()) for i, b in enumerate(
        ["train_step", "train_step_memory", "train_step_memory", "train_step_memory", "search"])]
    together = threading.Barrier(3, timeout=30)  # broken (an error) unless the three memory jobs run at once
    running, alone, lock, finished = [0], {}, threading.Lock(), []

    def run_one(rep, job):
        with lock:
            running[0] += 1
            alone[job.variant] = running[0] == 1
        if job.benchmark == "train_step_memory":
            together.wait()
        with lock:
            running[0] -= 1
        return job.variant

    run.execute([(0, j) for j in jobs], run_one, lambda job, sample: finished.append(sample), processes=3)
    assert finished == ["0", "1", "2", "3", "4"]  # reported in the plan's order
    assert alone["0"] and alone["4"]
