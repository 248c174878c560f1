"""Sweeps as data (after big_vision): variants x seeds, one workdir per run, resumable, failure-isolated.

`experiments.study` builds a study's runs and config from its data and hands them here:

    runs = sweep.expand([sweep.Variant("bottleneck", {"model.decoder": "bottleneck"}), ...], seeds=[0, 1, 2])
    results = sweep.run_sweep(study_dir, runs, make_config, run_fn)    # skips finished runs
    results = sweep.collect(study_dir, runs)                            # -> results.jsonl

(`experiments.report` writes report.md and results.csv from those results.)

Layout of a study directory:
    runs/<variant>/seed<k>/   the run's workdir (checkpoints, metrics.jsonl, ...) and result.json
    results.jsonl             every run's result.json, one per line, sorted by (variant, seed)
    report.md, results.csv    generated from results.jsonl only, so regenerating them is byte-identical

A finished run records the config it trained with (`config` in result.json, machine paths left out); a
later sweep whose config for that run differs refuses, naming the fields, instead of reporting the old run
under the new settings.
"""

from collections.abc import Callable, Mapping, Sequence
import copy
import dataclasses
import json
import os
import re
import time
import traceback

from absl import logging
import ml_collections

from seq2seq_jax import files
from seq2seq_jax import train
from seq2seq_jax.configs import compare

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,=+-]*")
SEED_KEY = "train.seed"
# Config fields that describe the machine, not the run: never part of a run's identity or its report.


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
    source: str | None = None,
) -> ml_collections.ConfigDict:
    """A copy of `config` with each dotted key set (`ConfigDict.update_from_flattened_dict`, on the copy
    locked), and `train.seed = seed` unless seed is None.

    Only existing fields can be set: an unknown key, or a value of the wrong type, is a ValueError naming
    the key and where it came from (`source`, default "variant '<variant>'"): typos must not silently
    train the default model.
    """
    source = f"variant {variant!r}" if source is None else source
    config = copy.deepcopy(config)
    was_locked = config.is_locked
    config.lock()  # unlocked, update_from_flattened_dict would add a field it does not find
    items = dict(overrides)
    if seed is not None:
        items[SEED_KEY] = seed
    for key, value in items.items():
        try:
            config.update_from_flattened_dict({key: value})
        except (KeyError, IndexError, AttributeError):  # no such field, index or section
            raise ValueError(f"{source}: unknown config key {key!r}") from None
        except TypeError as e:
            raise ValueError(f"{source}: cannot set {key!r} to {value!r}: {e}") from e
    if not was_locked:
        config.unlock()
    return config


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
    """Runs `run_fn` and returns the result record, 'ok' or 'failed' (any Exception is caught, except
    `train.Preempted`: a SIGTERM/SIGINT stops the whole sweep, as it would stop one run)."""
    record = {"run_id": run.run_id, "variant": run.variant.name, "seed": run.seed,
              "overrides": run.variant.overrides}
    start = time.perf_counter()
    try:
        metrics = run_fn(config, workdir)
        if not isinstance(metrics, Mapping):
            raise TypeError(f"run_fn must return a dict of metrics, got {type(metrics).__name__}")
        record.update(status="ok", metrics={k: _metric_value(k, v) for k, v in metrics.items()})
    except train.Preempted:  # saved, not failed: the sweep stops, and its next invocation resumes the run
        raise
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
    skipped (its record is returned) if it trained with the same config (`configs.compare.flat`), and refused with
    a ValueError naming the differing fields otherwise, before anything runs; failed and missing runs are
    run, and `run_fn` resumes from whatever its workdir holds. A failing run is recorded as 'failed' and
    the sweep goes on.
    """
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("run ids must be unique; use expand() to build runs")
    configs = run_configs(runs, make_config)
    selected = _select(runs, shard, only)
    previous = {r.run_id: _read_result(os.path.join(run_workdir(study_dir, r.run_id), "result.json"))
                for r in selected}
    check_configs(study_dir, [p for p in previous.values() if p is not None], configs)
    results = []
    for run in selected:
        workdir = run_workdir(study_dir, run.run_id)
        done = previous[run.run_id]
        if done is not None and done.get("status") == "ok":
            logging.info("Skipping %s: already done with this config.", run.run_id)
            results.append(done)
            continue
        logging.info("Running %s (%s).", run.run_id, run.variant.overrides)
        os.makedirs(workdir, exist_ok=True)
        record = _execute(run, configs[run.run_id], workdir, run_fn)
        record["config"] = compare.flat(configs[run.run_id])
        files.save_json(os.path.join(workdir, "result.json"), record)
        results.append(record)
    return results


def run_configs(runs: Sequence[Run], make_config: Callable[[], ml_collections.ConfigDict]) -> dict:
    """`{run_id: config}`: `make_config()` with each run's variant overrides and seed."""
    return {r.run_id: apply_overrides(make_config(), r.variant.overrides, seed=r.seed, variant=r.variant.name)
            for r in runs}


def check_configs(study_dir: str, results: Sequence[Mapping], configs: Mapping) -> None:
    """A ValueError naming each finished ('ok') result whose recorded config differs from `configs[run_id]`,
    and the differing fields: an old run must never be reported under new settings."""
    stale = []
    for r in results:
        if r.get("status") == "ok":
            differing = compare.differences(r.get("config"), configs[r["run_id"]])
            if differing:
                stale.append(f"{r['run_id']} ({', '.join(differing)})")
    if stale:
        raise ValueError(f"{study_dir}: finished runs trained with another config than the current one: "
                         f"{'; '.join(stale)}. Use a new --workdir, or delete those runs to redo them.")


def collect(study_dir: str, runs: Sequence[Run]) -> list[dict]:
    """The result.json of each of `runs` that has one, sorted by (variant, seed); rewrites
    `study_dir/results.jsonl`. Results of runs outside `runs` (other seeds or variants) are left out."""
    paths = [os.path.join(run_workdir(study_dir, r.run_id), "result.json") for r in runs]
    results = sorted(filter(None, map(_read_result, paths)), key=lambda r: (r["variant"], r["seed"]))
    files.write_atomic(os.path.join(study_dir, "results.jsonl"),
                  "".join(json.dumps(r, sort_keys=True) + "\n" for r in results))
    return results


def ok_results(results: Sequence[Mapping]) -> list[Mapping]:
    """The results of the runs that finished (status 'ok')."""
    return [r for r in results if r["status"] == "ok"]


def by_variant(results: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    """The 'ok' results grouped by variant, variants in order of first appearance."""
    groups: dict[str, list[Mapping]] = {}
    for r in ok_results(results):
        groups.setdefault(r["variant"], []).append(r)
    return groups


def run_json(study_dir: str, result: Mapping, *path: str):
    """The JSON at `path` inside the workdir of the run of `result`, or None if absent."""
    full = os.path.join(run_workdir(study_dir, result["run_id"]), *path)
    if not os.path.exists(full):
        return None
    with open(full, encoding="utf-8") as f:
        return json.load(f)  # by_length's last bucket ends at Infinity, which json reads as inf
