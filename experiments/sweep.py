"""Sweeps as data (after big_vision): variants x seeds, one workdir per run, resumable, failure-isolated.

A study script `experiments/NAME.py` declares its variants as config overrides and hands them here:

    VARIANTS = [sweep.Variant("bottleneck", {"model.decoder": "bottleneck"}),
                sweep.Variant("attention", {"model.decoder": "attention"})]

    def main(argv):
        args = sweep.parse_study_args(argv, default_workdir="runs/NAME")
        return sweep.run_study(args, module="experiments.NAME", variants=VARIANTS, make_config=...,
                               run_fn=train.train_and_evaluate, title=..., description=..., metric_keys=[...])

    python -m experiments.NAME --workdir=DIR --quick --seeds=3        # every run, then the report
    python -m experiments.NAME --workdir=DIR --list                    # one command per run (SLURM, parallel)
    python -m experiments.NAME --workdir=DIR --shard=0/4               # runs j with j % 4 == 0
    python -m experiments.NAME --workdir=DIR --report_only             # results.jsonl + report.md again

A study may run its quick setting by default (`parse_study_args(..., quick_by_default=True)`): then `--full`
selects the full setting, and `--list` writes `--quick` or `--full` into every command it prints.

Layout of a study directory:
    runs/<variant>/seed<k>/   the run's workdir (checkpoints, metrics.jsonl, ...) and result.json
    results.jsonl             every result.json, one per line, sorted by (variant, seed)
    report.md, results.csv    generated from results.jsonl only, so regenerating them is byte-identical
"""

import argparse
from collections.abc import Callable, Mapping, Sequence
import copy
import csv
import dataclasses
import glob
import io
import json
import os
import re
import shlex
import statistics
import time
import traceback

from absl import logging
import ml_collections

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,=+-]*")
SEED_KEY = "train.seed"


@dataclasses.dataclass(frozen=True)
class Variant:
    """A named set of config overrides: dotted keys -> values, e.g. {"model.decoder": "attention"}."""

    name: str
    overrides: dict

    def __post_init__(self):
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"variant name {self.name!r} must match {_NAME.pattern} (it names a directory)")
        if SEED_KEY in self.overrides:
            raise ValueError(f"variant {self.name!r} overrides {SEED_KEY!r}; seeds come from the sweep")


@dataclasses.dataclass(frozen=True)
class Run:
    """One variant trained with one seed."""

    variant: Variant
    seed: int

    @property
    def run_id(self) -> str:
        """`<variant>/seed<seed>`: unique in a study, and the run's path below `study_dir/runs`."""
        return f"{self.variant.name}/seed{self.seed}"


def expand(variants: Sequence[Variant], seeds: Sequence[int]) -> list[Run]:
    """Every variant with every seed, variant-major."""
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"variant names must be unique; repeated: {duplicates}")
    if any(not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
    return [Run(v, s) for v in variants for s in seeds]


def apply_overrides(
    config: ml_collections.ConfigDict,
    overrides: Mapping,
    *,
    seed: int | None = None,
    variant: str = "?",
) -> ml_collections.ConfigDict:
    """A copy of `config` with each dotted key set, and `train.seed = seed` unless seed is None.

    Only existing fields can be set: an unknown key, or a value of the wrong type, is a ValueError naming
    the key and the variant (typos must not silently train the default model).
    """
    config = copy.deepcopy(config)
    items = dict(overrides)
    if seed is not None:
        items[SEED_KEY] = seed
    for key, value in items.items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node[part] if isinstance(node, ml_collections.ConfigDict) and part in node else None
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise ValueError(f"variant {variant!r}: unknown config key {key!r}")
        try:
            node[leaf] = value
        except TypeError as e:
            raise ValueError(f"variant {variant!r}: cannot set {key!r} to {value!r}: {e}") from e
    return config


def _write_atomic(path: str, text: str) -> None:
    """Writes through a temporary file and a rename, so readers never see half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_result(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        logging.warning("Unreadable %s; the run will be redone.", path)
        return None


def _metric_value(key: str, value):
    """Numbers (including numpy/jax scalars) as float or int, strings as they are."""
    if isinstance(value, (bool, int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"run_fn returned a non-scalar metric {key!r}: {value!r}") from None


def _execute(run: Run, config, workdir: str, run_fn) -> dict:
    """Runs `run_fn` and returns the result record, 'ok' or 'failed' (any Exception is caught)."""
    record = {"run_id": run.run_id, "variant": run.variant.name, "seed": run.seed,
              "overrides": run.variant.overrides}
    start = time.perf_counter()
    try:
        metrics = run_fn(config, workdir)
        if not isinstance(metrics, Mapping):
            raise TypeError(f"run_fn must return a dict of metrics, got {type(metrics).__name__}")
        record.update(status="ok", metrics={k: _metric_value(k, v) for k, v in metrics.items()})
    except Exception as e:  # noqa: BLE001 - isolating failures is the point; KeyboardInterrupt passes.
        logging.exception("Run %s failed.", run.run_id)
        error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
        record.update(status="failed", metrics={}, error=error)
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def _select(runs: Sequence[Run], shard: tuple[int, int], only: str | None) -> list[Run]:
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    if only is not None:
        if shard != (0, 1):
            raise ValueError("give either only or shard, not both")
        chosen = [r for r in runs if r.run_id == only]
        if not chosen:
            raise ValueError(f"no run {only!r} in this sweep; runs: {[r.run_id for r in runs]}")
        return chosen
    return [r for j, r in enumerate(runs) if j % count == index]


def run_workdir(study_dir: str, run_id: str) -> str:
    """The workdir of run ``run_id`` of the study in ``study_dir``: ``study_dir/runs/<run_id>``."""
    return os.path.join(study_dir, "runs", run_id)


def run_sweep(
    study_dir: str,
    runs: Sequence[Run],
    make_config: Callable[[], ml_collections.ConfigDict],
    run_fn: Callable[[ml_collections.ConfigDict, str], Mapping],
    *,
    shard: tuple[int, int] = (0, 1),
    only: str | None = None,
) -> list[dict]:
    """Runs the selected runs, each in `study_dir/runs/<run_id>`, and returns their result records.

    Selected: `runs[j]` with `j % n == i` for `shard=(i, n)`, or the one run `only`. Every run's config is
    built before anything trains, so a bad override fails at once. A run whose result.json says 'ok' is
    skipped (its record is returned); failed and missing ones are run, and `run_fn` resumes from whatever
    its workdir holds. A failing run is recorded as 'failed' and the sweep goes on.
    """
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("run ids must be unique; use expand() to build runs")
    configs = {
        r.run_id: apply_overrides(make_config(), r.variant.overrides, seed=r.seed, variant=r.variant.name)
        for r in runs
    }
    results = []
    for run in _select(runs, shard, only):
        workdir = run_workdir(study_dir, run.run_id)
        result_path = os.path.join(workdir, "result.json")
        previous = _read_result(result_path)
        if previous is not None and previous.get("status") == "ok":
            logging.info("Skipping %s: already done.", run.run_id)
            results.append(previous)
            continue
        logging.info("Running %s (%s).", run.run_id, run.variant.overrides)
        os.makedirs(workdir, exist_ok=True)
        record = _execute(run, configs[run.run_id], workdir, run_fn)
        _write_atomic(result_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
        results.append(record)
    return results


def collect(study_dir: str) -> list[dict]:
    """Every `runs/**/result.json`, sorted by (variant, seed); rewrites `study_dir/results.jsonl`."""
    paths = glob.glob(os.path.join(study_dir, "runs", "**", "result.json"), recursive=True)
    results = sorted(filter(None, map(_read_result, paths)), key=lambda r: (r["variant"], r["seed"]))
    _write_atomic(os.path.join(study_dir, "results.jsonl"),
                  "".join(json.dumps(r, sort_keys=True) + "\n" for r in results))
    return results


def summarize(results: Sequence[Mapping], metric_keys: Sequence[str]) -> list[dict]:
    """Per variant, in order of first appearance: seed counts and mean / std of each metric over ok seeds.

    std is the sample standard deviation (ddof=1) when a metric has two or more values, else 0.0; a metric
    no ok seed reported has mean and std None.
    Rows: {"variant", "overrides", "n_ok", "n_failed", "mean": {key: ...}, "std": {key: ...}}.
    """
    rows = {}
    for r in results:
        row = rows.setdefault(r["variant"], {"variant": r["variant"], "overrides": r["overrides"], "n_ok": 0,
                                             "n_failed": 0, "values": {k: [] for k in metric_keys}})
        if r["status"] == "ok":
            row["n_ok"] += 1
            for k in metric_keys:
                if k in r["metrics"]:
                    row["values"][k].append(r["metrics"][k])
        else:
            row["n_failed"] += 1
    for row in rows.values():
        values = row.pop("values")
        row["mean"] = {k: statistics.fmean(v) if v else None for k, v in values.items()}
        row["std"] = {k: _std(v) for k, v in values.items()}
    return list(rows.values())


def _std(values: Sequence[float]) -> float | None:
    if not values:
        return None
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(mean: float | None, std: float | None) -> str:
    return "—" if mean is None else f"{mean:.4g} ± {std:.2g}"


def _report_markdown(study_dir, title, description, results, metric_keys, plots, extra_sections) -> str:
    summary = summarize(results, metric_keys)
    lines = [f"# {title}", "", description.strip(), "", "## Results", "",
             f"{len(results)} runs. Each cell: mean ± sample standard deviation (ddof=1; 0 for one seed) "
             "over the seeds that finished.", "",
             "| " + " | ".join(["variant", "seeds ok", "seeds failed", *metric_keys]) + " |",
             "|" + "---|" * (3 + len(metric_keys))]
    for row in summary:
        cells = [f"`{row['variant']}`", str(row["n_ok"]), str(row["n_failed"])]
        cells += [_cell(row["mean"][k], row["std"][k]) for k in metric_keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Variants", ""]
    for row in summary:
        overrides = ", ".join(f"`{k}={v!r}`" for k, v in row["overrides"].items()) or "defaults"
        lines.append(f"- `{row['variant']}`: {overrides}")
    failed = [r for r in results if r["status"] != "ok"]
    if failed:
        lines += ["", "## Failed runs", ""]
        for r in failed:
            message = " ".join(r["error"]["message"].split())  # one line, whatever the exception said
            lines.append(f"- `{r['run_id']}`: {r['error']['type']}: {message} (traceback in its result.json)")
    if plots:
        lines += ["", "## Plots", ""]
        for p in plots:
            rel = os.path.relpath(p, study_dir).replace(os.sep, "/")
            lines.append(f"![{os.path.splitext(os.path.basename(p))[0]}]({rel})")
    for section in extra_sections:
        lines += ["", section.strip()]
    return "\n".join(lines) + "\n"


def _results_csv(results: Sequence[Mapping]) -> str:
    metric_names = sorted({k for r in results for k in r["metrics"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", "variant", "seed", "status", "seconds", "error", "overrides", *metric_names])
    for r in results:
        error = f"{r['error']['type']}: {r['error']['message']}" if r["status"] != "ok" else ""
        writer.writerow([r["run_id"], r["variant"], r["seed"], r["status"], r["seconds"], error,
                         json.dumps(r["overrides"], sort_keys=True),
                         *(r["metrics"].get(k, "") for k in metric_names)])
    return out.getvalue()


def write_report(
    study_dir: str,
    title: str,
    description: str,
    results: Sequence[Mapping],
    metric_keys: Sequence[str],
    plots: Sequence[str] = (),
    extra_sections: Sequence[str] = (),
) -> str:
    """Writes `report.md` (summary table, variants, failed runs, plots, extra sections) and `results.csv`
    (one row per run, metrics flattened into columns); returns the report's path.

    Both depend only on the arguments (no timestamps), so the same results give byte-identical files.
    `plots` are image paths, linked relative to `study_dir`; `extra_sections` are markdown, appended as is.
    """
    report = os.path.join(study_dir, "report.md")
    _write_atomic(report, _report_markdown(study_dir, title, description, results, metric_keys, plots,
                                           extra_sections))
    _write_atomic(os.path.join(study_dir, "results.csv"), _results_csv(results))
    return report


def _parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(match[1]), int(match[2])


def _parse_seeds(text: str) -> list[int]:
    """'N' -> seeds 0..N-1; a comma-separated list ('0,5', or '7,' for seed 7 alone) -> those seeds."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or a comma-separated list, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected at least one distinct non-negative seed, got {text!r}")
    return seeds


def _format_seeds(seeds: Sequence[int]) -> str:
    """The inverse of `_parse_seeds`."""
    if list(seeds) == list(range(len(seeds))):
        return str(len(seeds))
    return ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else "")


def parse_study_args(
    argv: Sequence[str],
    default_workdir: str,
    default_seeds: int = 3,
    *,
    quick_by_default: bool = False,
    full_seeds: int | None = None,
) -> argparse.Namespace:
    """The flags every study script shares; `argv` excludes the program name.

    Namespace fields: workdir, quick, full, seeds (list[int]), shard ((i, n)), only, list, report_only.

    With `quick_by_default`, a study runs its quick setting unless `--full` is given (`--quick` is still
    accepted, and means the default); without `--seeds` it runs `default_seeds` seeds in the quick setting
    and `full_seeds` (default: `default_seeds`) in the full one. Otherwise `--quick` opts in and `full` is
    always False.
    """
    parser = argparse.ArgumentParser(description="Run (part of) a study sweep and write its report.")
    parser.add_argument("--workdir", default=default_workdir, help="the study directory")
    parser.add_argument("--quick", action="store_true",
                        help="the study's small, fast settings" + (" (the default)" if quick_by_default else ""))
    if quick_by_default:
        parser.add_argument("--full", action="store_true", help="the study's full settings (sized for a GPU)")
    parser.add_argument("--seeds", type=_parse_seeds, default=None,
                        help="N (seeds 0..N-1) or a comma-separated list; '7,' is seed 7 alone")
    parser.add_argument("--shard", type=_parse_shard, default=(0, 1),
                        help="i/n: run only runs j with j %% n == i")
    parser.add_argument("--only", metavar="RUN_ID", help="run only this run, e.g. attention/seed0")
    parser.add_argument("--list", action="store_true", help="print one command per run and exit")
    parser.add_argument("--report_only", action="store_true", help="only rewrite results.jsonl and report")
    args = parser.parse_args(list(argv))
    if args.only is not None and args.shard != (0, 1):
        parser.error("argument --only: not allowed with --shard")
    if args.list and args.report_only:
        parser.error("argument --list: not allowed with --report_only")
    if quick_by_default:
        if args.quick and args.full:
            parser.error("argument --full: not allowed with --quick")
        args.quick = not args.full
    else:
        args.full = False
    if args.seeds is None:
        count = full_seeds if args.full and full_seeds is not None else default_seeds
        args.seeds = list(range(count))
    return args


def list_commands(module: str, args: argparse.Namespace, runs: Sequence[Run]) -> list[str]:
    """One shell command per run, `python -m MODULE --workdir=W [--quick|--full] --seeds=S --only=RUN_ID`."""
    common = ["python", "-m", module, f"--workdir={args.workdir}"]
    common += ["--quick"] * args.quick + ["--full"] * getattr(args, "full", False)
    common.append(f"--seeds={_format_seeds(args.seeds)}")
    return [shlex.join([*common, f"--only={r.run_id}"]) for r in runs]


def run_study(
    args: argparse.Namespace,
    *,
    module: str,
    variants: Sequence[Variant],
    make_config: Callable[[], ml_collections.ConfigDict],
    run_fn: Callable[[ml_collections.ConfigDict, str], Mapping],
    title: str,
    description: str,
    metric_keys: Sequence[str],
    make_plots: Callable[[str, list[dict]], Sequence[str]] | None = None,
    extra_sections: Sequence[str] | Callable[[str, list[dict]], Sequence[str]] = (),
) -> int:
    """What a study's `main` does with parsed flags; returns the exit status (1 if a run failed).

    A full sweep ends with `collect` and `write_report` (plots from `make_plots(study_dir, results)`). A
    partial one (`--shard`, `--only`) writes only its runs' result.json files, so parallel shards never
    write the same file; run `--report_only` once they have all finished. `extra_sections` may be a
    function `(study_dir, results) -> sections`, called after `make_plots`, for sections made from results.
    """
    runs = expand(variants, args.seeds)
    if args.list:
        print("\n".join(list_commands(module, args, runs)))
        return 0
    failed = False
    if not args.report_only:
        results = run_sweep(args.workdir, runs, make_config, run_fn, shard=args.shard, only=args.only)
        failed = any(r["status"] != "ok" for r in results)
        if args.only is not None or args.shard != (0, 1):
            logging.info("Partial sweep done; run with --report_only when every shard has finished.")
            return int(failed)
    results = collect(args.workdir)
    plots = make_plots(args.workdir, results) if make_plots else ()
    sections = extra_sections(args.workdir, results) if callable(extra_sections) else extra_sections
    write_report(args.workdir, title, description, results, metric_keys, plots, sections)
    return int(failed)
