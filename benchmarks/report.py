"""Renders ``benchmarks/RESULTS.md`` from the JSON of ``benchmarks.run``; every number comes from it.

  python -m benchmarks.run --json=benchmarks/results.json
  python -m benchmarks.report --results=benchmarks/results.json > benchmarks/RESULTS.md
  python -m benchmarks.report --results=benchmarks/results.json --gpu_results=benchmarks/results_gpu.json \
      > benchmarks/RESULTS.md
  python -m benchmarks.report --results=benchmarks/results.json --readme   # the README's summary of it

RESULTS.md opens with a summary: the run's headline figures, each against its goal (``GOALS``); the README's
Speed section quotes that summary between its ``speed-summary`` markers.
"""

import json
import os
import re
import sys

from absl import app, flags

from seq2seq_jax import files

_RESULTS = flags.DEFINE_string("results", "benchmarks/results.json", "What `python -m benchmarks.run --json` wrote.")
_GPU_RESULTS = flags.DEFINE_string("gpu_results", None, "The same on a GPU (its tables follow, under 'On a GPU').")
_README = flags.DEFINE_bool("readme", False, "Write the summary of --results into README.md's Speed section "
                            "(between its speed-summary markers) instead of printing RESULTS.md.")

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
BEGIN, END = "<!-- speed-summary:begin -->", "<!-- speed-summary:end -->"

# What the summary checks each headline figure against; every goal is an upper bound.
GOALS = {
    "train_step": {"bottleneck": 0.75, "attention": 0.5},  # our step's time / the PyTorch peer's
    "beam": 2.0,  # our beam 5 search's time / our greedy search's
    "memory": 1.0,  # the most memory our step holds / the peer's, at the longest sentences
    "outside_step": 0.10,  # the share of the trainer's step time spent outside the jitted step
    # A later start's time and peak RSS on the largest corpus / on the smallest (50x the pairs: a start that read
    # the corpus would grow about 50x; the margin is for timing noise).
    "data_growth": 1.25,
}

RETRACTION = (
    "The ratios published here before (PyTorch taking 6.4x, 7.8x and 8.0x our train-step time) were measured "
    "while a training job shared the 2-core CPU. PyTorch's thread pool degrades far more under load than "
    "XLA's, so those ratios were wrong: rerun on an idle machine, the two were at parity. Every number below "
    "comes from one run in which each implementation ran alone in its own process.")

TITLES = {
    "train_step": ("Train step", "forward + backward + global-norm clipping + Adam + the step's metrics, one "
                   "synthetic batch (lengths in [len/2, len]); tokens/s counts target tokens. `flax_rnn`: the "
                   "bottleneck model written with Flax's plain `nn.RNN` and the same step. Variants ending "
                   "`, tcmalloc`: both sides again with tcmalloc preloaded (`LD_PRELOAD`), the ratio between them; "
                   "the others run glibc's malloc. Page faults / step: the process's minor page faults per timed "
                   "step; under glibc our step maps XLA's temporary buffer afresh every step and takes one fault per "
                   "4 KiB of it (`seq2seq_jax/malloc.py`)."),
    "train_step_length": ("Compile and step time by sequence length", "ours; compile = the first step's time "
                          "(trace + compile + one step) less a timed step's median."),
    "train_step_memory": ("Memory", "the most memory one train step holds at once, in MiB (2^20 bytes), at "
                          "growing source and target lengths (lengths in [len/2, len], padded to len); no timing. "
                          "Ours: XLA's buffer assignment of the compiled, donated step (`compiled.memory_analysis()`): "
                          "argument + output − alias + temp bytes, i.e. the state and the batch, plus the outputs not "
                          "written into the donated state's buffers, plus the one buffer XLA packs every intermediate "
                          "into (activations kept for the backward pass, gradients, Adam's update). The peer: the "
                          "tensors it holds before the step (parameters, Adam's moments, the batch) plus the most "
                          "bytes PyTorch's CPU allocator held at once in the step's own allocations (torch.profiler's "
                          "memory events, on its first model step; Adam's moments created before it by a zero "
                          "update). Both count tensor bytes, both are deterministic. "
                          "`ours remat`: `model.remat=True`, the encoder's and decoder's per-step activations "
                          "recomputed in the backward pass (the matmul FLOPs show the recomputation). Our additive "
                          "attention's `tanh` is recomputed in every row (always on); the peer stores it for every "
                          "decoder step. Process max RSS: the whole process's peak resident memory after the step "
                          "(interpreter, libraries, our XLA compiler and the peer's profiler included; freed blocks "
                          "of 1 MiB or more unmapped at once), a check that the tensor counts leave nothing big out: "
                          "`VmHWM` since 2026-12-05, `ru_maxrss` before, which also counts the peak of the runner "
                          "that started the process (a few hundred MiB), so those rows' RSS is a bound from above."),
    "search": ("Decoding", "untrained parameters (the peer gets ours), so every search runs to the maximum output "
               "length; sentences/s of one batch. Ratio: our time / the peer's greedy time; ÷ greedy: our time / "
               "our greedy search's."),
    "train_run": ("The trainer end to end", "`python -m seq2seq_jax.main` on real data, input pipeline, bucketing "
                  "and logging included: ms per step and target tokens/s of its `metrics.jsonl` windows (the "
                  "first window, which compiles, left out); the command is in `results.json`. Jitted step alone: "
                  "`benchmarks.trainer_overhead`, in a process of its own alternating with the trainer's, runs the "
                  "trainer's jitted step (the trainer's code builds the data, state and step) over the same batches "
                  "in the same order, put on the device in advance with every shape compiled, timed in the same "
                  "windows; outside the step = 1 − that / the trainer's time in the same window of the process "
                  "it alternated with, the median over those paired windows (their range in parentheses): the share "
                  "of the trainer's step time spent on everything else (input pipeline, transfer, dispatch, "
                  "metrics, logging). Input "
                  "alone: a batch drawn from the trainer's iterator and put on the device, with no step running. "
                  "The trainer's windows leave checkpoint saves out: one save of the state (waited for) is "
                  "shown spread over the setting's `train.checkpoint_every` steps."),
    "translate": ("`python -m seq2seq_jax.translate` end to end", "whole process, start included, on CMUdict's test "
                  "words with the trainer benchmark's model (trained 600 steps by the benchmark); the median is over "
                  "the processes that found JAX's persistent compilation cache filled by the first one, whose time "
                  "is the last column."),
    "data_startup": ("Start-up as the corpus grows", "`pipeline.get_data` on generated parallel text (word "
                     "vocabularies; 1–40 words a sentence, ~20 on average; 2,000 validation and test pairs), one "
                     "process a row, run in this order on the same data: `prepare` (TFDS writes the corpus's "
                     "array_record files, once), `first start` (a new run: vocabularies built from the training "
                     "split, which is encoded into the data directory's cache), `later start` (a resumed run, or "
                     "any later one with those vocabularies: the encoded split's files opened, read where indexed), "
                     "each with its first training batch in its seconds; then each start draws 100 more batches, "
                     "timed one by one (next batches: their median). `before`: the same starts with the pipeline of "
                     "the commit named, which read and encoded every split at every start. Peak RSS: the process's "
                     "`VmHWM` (a later start whose next batches show – is from a run before they were drawn, which "
                     "read the cache through a memory map: the pages its first batch's rows mapped in count in its "
                     "peak); imports: its "
                     "resident memory before the phase (interpreter and libraries)."),
}

FLOPS = (
    "matmul GFLOP: the step's matmul FLOPs (every `dot_general`'s 2·M·N·K, a scan's body once per step; "
    "elementwise work not counted), counted on our step's jaxpr (`benchmarks.common.matmul_flops`). The peer's "
    "row shows ours, the same model's (ours also recomputes the additive attention's scores in the backward pass: "
    "a few percent more at long sources). Not XLA's `cost_analysis()['flops']`, which counts a loop's body once "
    "whatever its trip count. GFLOP/s: that count over the median time; % of peak: of the CPU's peak fp32 FLOP/s "
    "(the machine line says how it is computed).")


def _number(x, digits=2):
    return "–" if x is None else f"{x:,.{digits}f}"


def _mib(x):
    return _number(None if x is None else x / 2**20, 1)


def _cpu_name(m: dict) -> str:
    """'<CPU>, <cores> cores, vector extensions <flags>'."""
    return f"{m['cpu_model']}, {m['cpu_cores']} cores, vector extensions {m['cpu_vector_extensions'] or 'none'}"


def _cpu(m: dict, peak: dict | None) -> str:
    """The CPU and its peak FLOP/s, where the run recorded them (runs before they were recorded: '')."""
    if "cpu_model" not in m:
        return ""
    text = f" CPU: {_cpu_name(m)}, {m['cpu_mhz']:g} MHz ({m['cpu_mhz_source']})."
    if peak:
        text += (f" Peak fp32 FLOP/s = {peak['formula']} = {peak['flops_per_s'] / 1e9:,.1f} GFLOP/s (the clock a VM "
                 "shows is usually the nominal one: under a higher boost clock the shares of peak below overstate).")
    return text


def _memory_table(rows: list[dict]) -> list[str]:
    lines = ["| variant | impl | peak (MiB) | state + batch (MiB) | step (MiB) | ours / torch | matmul GFLOP | "
             "process max RSS (MiB) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        flops = None if r.get("flops") is None else r["flops"] / 1e9
        lines.append(f"| {r['variant']} | {r['impl']} | {_mib(r['peak_bytes'])} | {_mib(r['persistent_bytes'])} | "
                     f"{_mib(r['step_bytes'])} | {_number(r.get('peak_ratio_vs_torch'))} | {_number(flops, 1)} | "
                     f"{_mib(r['max_rss_bytes'])} |")
    return lines


def _trainer_table(rows: list[dict]) -> list[str]:
    """The trainer's rows; runs from before the jitted step was timed alone show '–' in its columns."""
    lines = ["| variant | impl | median (ms) | min–max (ms) | tokens/s | jitted step alone (ms) | outside the step | "
             "input alone (ms/batch) | checkpoint save (s) | save per step (ms) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        share = r.get("outside_step_share")
        spread = (f" ({100 * r['outside_step_share_min']:.1f} to {100 * r['outside_step_share_max']:.1f}%)"
                  if "outside_step_share_min" in r else "")
        every = f" (every {r['checkpoint_every']:,})" if r.get("checkpoint_every") else ""
        lines.append(f"| {r['variant']} | {r['impl']} | {_number(r['ms_median'])} | {_number(r['ms_min'])}–"
                     f"{_number(r['ms_max'])} | {_number(r['tokens_per_s'], 0)} | {_number(r.get('step_only_ms'))} | "
                     f"{'–' if share is None else f'{100 * share:.1f}%{spread}'} | {_number(r.get('input_ms'))} | "
                     f"{_number(r.get('checkpoint_s'))} | {_number(r.get('checkpoint_ms_per_step'), 3)}{every} |")
    return lines


def _data_table(rows: list[dict]) -> list[str]:
    lines = ["| corpus | phase | seconds | first batch (ms) | next batches (ms/batch) | peak RSS (MiB) | "
             "above imports (MiB) | corpus (MiB) | cache (MiB) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['impl']} | {_number(r['ms_median'] / 1e3)} | "
                     f"{_number(r.get('first_batch_ms'))} | {_number(r.get('batch_ms'), 3)} | "
                     f"{_mib(r['peak_rss_bytes'])} | "
                     f"{_mib(r['peak_rss_bytes'] - r['imports_rss_bytes'])} | {_mib(r['corpus_bytes'])} | "
                     f"{'–' if r['cache_bytes'] is None else _mib(r['cache_bytes'])} |")
    return lines


def _merged_note(result: dict, benchmark: str) -> list[str]:
    """The run that replaced this section's rows (``benchmarks.run --merge_into``), if one did."""
    for m in reversed(result.get("merged", [])):
        if benchmark in m["benchmarks"]:
            i = m["machine"]
            busy = f" **Warning: {m['busy_warning']}.**" if m["busy_warning"] else ""
            cut = (f" **Cut short: {m['unfinished_jobs']} of its jobs did not run (their rows are missing).**"
                   if m.get("unfinished_jobs") else "")
            return [f"These rows come from a later run, `{m['command']}` ({m['date']}), merged into this file: "
                    f"{i['platform']}, {i['cpu_count']} CPUs; jax {i['jax_version']}; torch "
                    f"{i['torch'] or 'not installed'}; load average before {m['load_before']}."
                    f"{_cpu(i, m['peak_flops'])}{busy}{cut}", ""]
    return []


def _machine(result: dict) -> list[str]:
    m = result["machine"]
    device = f", {m['device']}" if m["jax_backend"] != "cpu" else ""
    lines = [
        f"Machine: {m['platform']}, {m['processor']}, {m['cpu_count']} CPUs; Python {m['python']}; jax "
        f"{m['jax_version']} ({m['jax_backend']}{device}); torch {m['torch'] or 'not installed (no PyTorch rows)'}. "
        f"Load average (1, 5, 15 min) before: {result['load_before']}, after: {result['load_after']} (after counts the "
        "benchmark's own processes). "
        f"{result['reps']} processes per row, run one at a time and alternated.{_cpu(m, result.get('peak_flops'))}",
        "",
    ]
    if result["busy_warning"]:
        lines += [f"**Warning: {result['busy_warning']}.**", ""]
    if result.get("unfinished_jobs"):
        lines += [f"**Cut short: {result['unfinished_jobs']} of its jobs did not run (their rows are missing).**",
                  ""]
    return lines


def _met(value, goal) -> str:
    return "–" if value is None else "yes" if value <= goal else "no"


def summary(result: dict) -> list[str]:
    """The run's headline figures, each against its goal in ``GOALS``: a markdown table, one row a figure."""
    rows = {(r["benchmark"], r["variant"], r["impl"]): r for r in result["rows"]}

    def value(benchmark, variant, impl, name):  # None where the run has no such row
        return rows.get((benchmark, variant, impl), {}).get(name)

    tcmalloc = any(variant.endswith(", tcmalloc") for _, variant, _ in rows)
    figures = {goal: [] for goal in GOALS}  # each goal's (what, goal, [(label, value)], shown as a percentage)
    for benchmark, variant, impl in rows:
        if benchmark == "train_step" and impl == "ours" and not variant.endswith(", tcmalloc"):
            mallocs = [("glibc", variant)] + [("tcmalloc", f"{variant}, tcmalloc")] * tcmalloc
            figures["train_step"].append((f"train step, ours / PyTorch: {variant}",
                                          GOALS["train_step"][variant.split(",")[0].split("/")[1]],
                                          [(m, value(benchmark, v, impl, "ratio_vs_torch")) for m, v in mallocs],
                                          False))
        elif benchmark == "search" and impl == "ours beam 5":
            figures["beam"].append((f"beam 5 / our greedy: {variant}", GOALS["beam"],
                                    [("", value(benchmark, variant, impl, "ratio_vs_greedy"))], False))
        elif benchmark == "train_run" and impl == "ours":
            figures["outside_step"].append((f"the trainer's step time outside the jitted step: {variant}",
                                            GOALS["outside_step"],
                                            [("", value(benchmark, variant, impl, "outside_step_share"))], True))
    memory = [variant for benchmark, variant, _ in rows if benchmark == "train_step_memory"]
    length = lambda variant: int(re.search(r"\bS (\d+)", variant).group(1))  # noqa: E731
    for model in dict.fromkeys(variant.split(",")[0] for variant in memory):
        longest = max((v for v in memory if v.startswith(f"{model},")), key=length)
        figures["memory"].append((f"peak memory of a step, ours / PyTorch: {longest}", GOALS["memory"],
                                  [(impl, value("train_step_memory", longest, impl, "peak_ratio_vs_torch"))
                                   for impl in ("ours", "ours remat")], False))
    later = [r for r in result["rows"] if r["benchmark"] == "data_startup" and r["impl"].startswith("later start")]
    if later:
        small, large = min(r["pairs"] for r in later), max(r["pairs"] for r in later)
        for impl in dict.fromkeys(r["impl"] for r in later):
            a, b = (next(r for r in later if r["impl"] == impl and r["pairs"] == n) for n in (small, large))
            figures["data_growth"].append((f"data {impl}, {large:,} pairs / {small:,} pairs", GOALS["data_growth"],
                                           [("time", b["ms_median"] / a["ms_median"]),
                                            ("peak RSS", b["peak_rss_bytes"] / a["peak_rss_bytes"])], False))
    lines = ["| figure | goal (at most) | measured | met |", "|---|---:|---|---|"]
    for what, goal, values, percent in (figure for kind in GOALS for figure in figures[kind]):
        show = lambda x: "–" if x is None else f"{100 * x:.1f}%" if percent else f"{x:.2f}"  # noqa: E731
        lines.append(f"| {what} | {show(goal)} | {', '.join(f'{show(v)} {label}'.strip() for label, v in values)} "
                     f"| {', '.join(_met(v, goal) for _, v in values)} |")
    return lines


STEP_PROFILE = (
    "Train step (`benchmarks.step_profile`, under the malloc of the train-step rows beside it): XLA's trace of our "
    "step, each op placed by what it computes, as shares of the ops' time (the profiler slows every op, so the "
    "shares, not its times, are applied to the median of our train-step row, which it did not slow). Not matmul: "
    "elementwise work, copies, the optimizer. Matmuls ran at: the step's matmul FLOPs over the matmuls' share of "
    "that median, as a share of the CPU's peak. The goal needs: the rate our matmuls would need for the step to "
    "take the goal × the peer's median with everything else unchanged; out of reach where everything else alone "
    "takes longer, and beyond any matmul library above 100%. Where that rate is far above the one our matmuls "
    "reach, closing the gap takes faster matmuls of 64-row operands (XLA's CPU matmul library, not our code) or "
    "fewer FLOPs, not a leaner scan.")
SEARCH_PROFILE = (
    "Beam search (`benchmarks.search --profile`: each call in turn in one process, medians of wall time): the "
    "encoder then the decoder step alone run out_len times on the batch's rows (greedy's work) and on batch × "
    "beam rows (mapped over the beams as the search maps it). That step on batch × beam rows over greedy is a "
    "floor no change of the search can go below: what beam search adds beyond it (log-softmax, top-k, "
    "reordering the states) is its own work. Where the floor is above the goal, only a decoder step whose "
    "cost grows less with its rows (fewer FLOPs per row) could meet it.")


def _share(x) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _matmul_share(profile: dict, passes=("forward", "backward", "update", "XLA's own"), parts=None) -> float:
    """The share of a step profile's op time spent in matmuls of ``passes`` and ``parts`` (None: every part)."""
    return sum(o["ms_per_step"] for o in profile["ops"] if o["kind"] == "matmul" and o["pass"] in passes
               and (parts is None or o["part"] in parts)) / profile["ops_ms_per_step"]


def _step_profile_table(result: dict, profiles: list[dict]) -> list[str]:
    """Each profiled train-step model: its ops' shares, and the matmul rate its goal would need."""
    rows = {(r["benchmark"], r["variant"], r["impl"]): r for r in result["rows"]}
    peak = (result.get("peak_flops") or {}).get("flops_per_s")
    lines = ["| variant | ours (ms) | goal (ms): × the peer's | matmul: scans forward | scans backward | output "
             "layer | other | not matmul | matmuls ran at (% of peak) | the goal needs (% of peak) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    scans = ("encoder scan", "decoder scan")
    for p in profiles:
        forward, backward = (_matmul_share(p["profile"], (name,), scans) for name in ("forward", "backward"))
        output, matmul = _matmul_share(p["profile"], parts=("output layer",)), _matmul_share(p["profile"])
        ours, peer = (rows.get(("train_step", p["variant"], impl), {}) for impl in ("ours", "torch"))
        goal = GOALS["train_step"][p["variant"].split(",")[0].split("/")[1]]
        ran = needs = goal_ms = None
        if ours.get("ms_median") and ours.get("flops") and peak:
            ran = ours["flops"] / (matmul * ours["ms_median"] / 1e3) / peak
        if ran is not None and peer.get("ms_median"):
            goal_ms, rest_ms = goal * peer["ms_median"], (1 - matmul) * ours["ms_median"]
            needs = ours["flops"] / ((goal_ms - rest_ms) / 1e3) / peak if goal_ms > rest_ms else float("inf")
        other = max(matmul - forward - backward - output, 0)  # not below 0 by rounding
        lines.append(f"| {p['variant']} | {_number(ours.get('ms_median'), 1)} | {_number(goal_ms, 1)} ({goal:g} ×) | "
                     f"{' | '.join(_share(x) for x in (forward, backward, output, other, 1 - matmul, ran))} | "
                     f"{'out of reach' if needs == float('inf') else _share(needs)} |")
    return lines


def _search_profile_table(profiles: list[dict]) -> list[str]:
    lines = ["| variant | greedy (ms) | beam (ms) | step alone, batch rows (ms) | step alone, batch × beam rows "
             "(ms) | beam ÷ greedy | the floor: step alone, batch × beam rows ÷ greedy | the search's own work |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for p in profiles:
        k, wall = p["settings"]["beam_size"], p["profile"]["wall_ms"]
        greedy, beam, alone, beams = (wall[name] for name in ("greedy", f"beam {k}", "step alone, batch rows",
                                                              f"step alone, batch * {k} rows"))
        lines.append(f"| {p['variant']}, beam {k} | {_number(greedy)} | {_number(beam)} | {_number(alone)} | "
                     f"{_number(beams)} | {_number(beam / greedy)} | {_number(beams / greedy)} | "
                     f"{_share(max(beam - beams, 0) / beam)} of the beam's time |")
    return lines


def where_the_time_goes(result: dict) -> list[str]:
    """The profiles of the run (``benchmarks.run``'s ``step_profile`` and ``search_profile`` rows), beside the rows
    they explain: the section for the goals of the summary that are not met."""
    profiles = {b: [r for r in result["rows"] if r["benchmark"] == b] for b in ("step_profile", "search_profile")}
    if not any(profiles.values()):
        return []
    lines = ["## Where the time goes", "", "The profiles behind the summary's train-step and beam-search figures: "
             "where each one's time goes, and what meeting its goal would take.", ""]
    notes = {b: _merged_note(result, b) for b in profiles}
    if notes["step_profile"] == notes["search_profile"]:  # one run made both: say so once
        lines += notes["step_profile"]
        notes = {b: [] for b in notes}
    if profiles["step_profile"]:
        lines += [STEP_PROFILE, "", *notes["step_profile"],
                  *_step_profile_table(result, profiles["step_profile"]), ""]
    if profiles["search_profile"]:
        lines += [SEARCH_PROFILE, "", *notes["search_profile"],
                  *_search_profile_table(profiles["search_profile"]), ""]
    return lines


def _on_cpu(machine: dict) -> str:
    """' on <CPU>, <cores> cores, vector extensions <flags>', where the run recorded them."""
    return f" on {_cpu_name(machine)}" if "cpu_model" in machine else ""


def readme_summary(result: dict) -> str:
    """What the README's Speed section quotes: the summary, with the runs and the CPUs it came from."""
    merged = [f"- The {', '.join(m['benchmarks'])} rows: `{m['command']}` ({m['date'][:10]}){_on_cpu(m['machine'])}, "
              "merged into that file." for m in result.get("merged", [])]
    why = ["", "Where a goal is not met, RESULTS.md's [Where the time goes]"
           "(benchmarks/RESULTS.md#where-the-time-goes) shows the profile behind the figure."
           ] if where_the_time_goes(result) else []
    return "\n".join([f"From `{result['command']}` ({result['date'][:10]}){_on_cpu(result['machine'])}, as "
                      "[benchmarks/RESULTS.md](benchmarks/RESULTS.md) opens:", "", *summary(result),
                      *([""] + merged if merged else []), *why])


def write_readme_summary(readme: str, result: dict) -> None:
    """Replaces what lies between ``readme``'s speed-summary markers by ``readme_summary(result)``."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} lacks the {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    files.write_atomic(readme, f"{head}{BEGIN}\n{readme_summary(result)}\n{END}{rest.split(END, 1)[1]}")


def markdown(result: dict, gpu: dict | None = None) -> str:
    """RESULTS.md: ``result``'s tables, then, given a run on a GPU, its tables under "On a GPU"."""
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `python -m benchmarks.report` from `{result['command']}` ({result['date']})"
        + (f" and `{gpu['command']}` ({gpu['date']})" if gpu else "") + "; do not edit by hand.",
        "",
        RETRACTION,
        "",
        *_machine(result),
        "## Summary",
        "",
        *summary(result),
        "",
        *where_the_time_goes(result),
        *_tables(result, "##"),
    ]
    if gpu:
        lines += ["## On a GPU", "", GPU_NOTE, "", *_machine(gpu), *_tables(gpu, "###")]
    return "\n".join(lines)


GPU_NOTE = (
    "The same benchmarks on one GPU, each implementation alone in its process: ours on JAX's default device, "
    "the peer on `cuda`, float32 matmuls in TF32 on both sides (JAX's default on a GPU; the peer set to it); a "
    "step's time waits for its kernels. `ours cudnn`: `model.recurrent_impl='cudnn'`, the encoder's LSTM "
    "through cuDNN (`jax.experimental.rnn`). Memory: ours as on the CPU (XLA's buffer assignment, here the "
    "GPU compiler's); the peer's step bytes are the CUDA allocator's peak (`torch.cuda.max_memory_allocated`). "
    "No share of a peak is computed for the GPU.")


def _tables(result: dict, heading: str) -> list[str]:
    lines = []
    for benchmark, (title, note) in TITLES.items():
        rows = [r for r in result["rows"] if r["benchmark"] == benchmark]
        if not rows:
            continue
        if benchmark == "train_step_memory":
            lines += [f"{heading} {title}", "", note, "", *_merged_note(result, benchmark), *_memory_table(rows), ""]
            continue
        if benchmark == "train_run":
            lines += [f"{heading} {title}", "", note, "", *_merged_note(result, benchmark), *_trainer_table(rows),
                      ""]
            continue
        if benchmark == "data_startup":
            lines += [f"{heading} {title}", "", note, "", *_merged_note(result, benchmark), *_data_table(rows), ""]
            continue
        flops = any(r.get("flops") for r in rows)  # runs before FLOPs were counted: no such columns
        rate = "tokens/s" if benchmark.startswith("train") else "sentences/s"
        extra = {"train_step_length": "compile (s)", "translate": "empty cache (ms)"}.get(benchmark, "ours / torch")
        greedy = benchmark == "search"
        flop_columns = " matmul GFLOP | GFLOP/s | % of peak |" * flops
        faults = benchmark == "train_step" and any(r.get("page_faults_per_step") is not None for r in rows)
        lines += [f"{heading} {title}", "", note, "", *([FLOPS, ""] if flops else []), *_merged_note(result, benchmark),
                  f"| variant | impl | median (ms) | min–max (ms) | {rate} | {extra} |{' ÷ greedy |' * greedy}"
                  f"{flop_columns}{' page faults / step |' * faults} threads, malloc |",
                  f"|---|---|---:|---:|---:|---:|{'---:|' * greedy}{'---:|---:|---:|' * flops}{'---:|' * faults}---|"]
        for r in rows:
            per_s = r["tokens_per_s"] if benchmark.startswith("train") else r["sentences_per_s"]
            last = {"train_step_length": r.get("compile_s"), "translate": r.get("cold_cache_ms")}.get(
                benchmark, r["ratio_vs_torch"])
            threads = ", ".join(f"{k} {v}" for k, v in (r["threads"] or {}).items() if v != "")
            by_greedy = f" {_number(r.get('ratio_vs_greedy'))} |" if greedy else ""
            share = None if r.get("peak_share") is None else 100 * r["peak_share"]
            by_flops = (f" {_number(r.get('flops') and r['flops'] / 1e9, 1)} | "
                        f"{_number(r.get('flops_per_s') and r['flops_per_s'] / 1e9, 1)} | {_number(share, 0)} |"
                        if flops else "")
            by_faults = f" {_number(r.get('page_faults_per_step'), 0)} |" if faults else ""
            lines.append(f"| {r['variant']} | {r['impl']} | {_number(r['ms_median'])} | {_number(r['ms_min'])}–"
                         f"{_number(r['ms_max'])} | {_number(per_s, 0)} | {_number(last)} |{by_greedy}{by_flops}"
                         f"{by_faults} {threads} |")
        lines.append("")
    return lines


def main(argv):
    del argv
    with open(_RESULTS.value) as f:
        result = json.load(f)
    if _README.value:
        try:
            write_readme_summary(README, result)
        except ValueError as e:
            raise app.UsageError(str(e)) from None
        print(f"wrote the summary of {_RESULTS.value} into {README}", file=sys.stderr)
        return
    gpu = None
    if _GPU_RESULTS.value:
        with open(_GPU_RESULTS.value) as f:
            gpu = json.load(f)
    print(markdown(result, gpu))


if __name__ == "__main__":
    app.run(main)
