"""The study framework: a study is data (a `Study`), run by `main` with the same flags for every study.

A study file `experiments/NAME.py` declares its question, its claims, its variants and its settings, and
calls `main`:

    STUDY = study.Study(
        name="bottleneck_vs_attention", title=..., question="Does a fixed vector fail on long inputs?",
        config="number_digits.py",                       # seq2seq_jax/configs/<file>: get_config(setting)
        variants=[sweep.Variant("bottleneck", {"model.decoder": "bottleneck"}), ...],
        claims=[study.Claim("attention − bottleneck test seq_acc, longest sources > 0",
                            better="attention", worse="bottleneck", metric="test/seq_acc", bucket=-1)])

    if __name__ == "__main__":
        raise SystemExit(study.main(STUDY))

Every study takes

    python -m experiments.NAME [--setting=quick|cpu|gpu] [--seeds=N] [--workdir=DIR] [--list]
        [--shard=i/n] [--only=RUN_ID] [--report_only] [--config.x.y=v ...]

`quick` (the default) is minutes on a 2-core CPU, `cpu` the setting behind the README's numbers, `gpu` the
full size for one accelerator. Each run is a plain training run: the report lists, per variant, the
`python -m seq2seq_jax.main --config=seq2seq_jax/configs/<file>:<setting> --config...` command that
reproduces it. `--config.x.y=v` overrides apply to every run of the sweep (a field no config has is an
error naming it). The report (`report.md`, `claims.json`, `results.csv`, `plots/`) is generated from the
runs' files only, so `--report_only` rewrites it byte for byte.

Claims: each compares two variants on one quantity, per seed (paired by seed). Over n >= 2 seeds, the
estimate is the mean difference with a paired-t 95% interval; with one seed, a paired bootstrap over the
test examples both variants were scored on (for per-example metrics: seq_acc, wer). Verdict: `reproduced` if the interval lies above 0,
`not reproduced` if below, `inconclusive` otherwise.
"""

import argparse
import ast
from collections.abc import Callable, Mapping, Sequence
import dataclasses
import importlib
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys

from absl import logging
import jax
import ml_collections
import numpy as np
from scipy import stats

from experiments import sweep
from seq2seq_jax import checkpointing
from seq2seq_jax import inference
from seq2seq_jax import logger
from seq2seq_jax import metrics as metrics_lib
from seq2seq_jax import plotting
from seq2seq_jax import train
from seq2seq_jax.configs import default
from seq2seq_jax.data import vocab as vocab_lib

SETTINGS = ("quick", "cpu", "gpu")
# Metrics that are an average of a per-example 0/1 outcome: with one seed, their claims are bootstrapped
# over the test examples (paired: both variants scored on each resample).
PER_EXAMPLE = ("seq_acc", "wer")
BOOTSTRAP_SAMPLES = 4000


@dataclasses.dataclass(frozen=True)
class Claim:
    """`better − worse` on `metric` is expected to be > 0 (`worse − better` when `lower_is_better`).

    `metric` is a key of a run's final metrics (`test/seq_acc`, `grad_init/log10_per_step`); with `bucket`
    (an index into the test split's source-length buckets, -1 = the longest sources) the metric after
    `test/` is read from that bucket of `eval/test.json`. `paper` is the published finding, for the README;
    `caveat` what in this study's settings may hide it, printed whenever the claim is not reproduced.
    """

    text: str
    better: str
    worse: str
    metric: str
    bucket: int | None = None
    lower_is_better: bool = False
    paper: str = ""
    caveat: str = ""


@dataclasses.dataclass(frozen=True)
class Setting:
    """A setting of a study: seeds, the study's own overrides on top of its config file's setting, and a
    note for `--help` (what it costs)."""

    seeds: int = 3
    overrides: Mapping = dataclasses.field(default_factory=dict)
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Study:
    """A study as data; see the module docstring.

    `run_fn(config, workdir) -> metrics` trains one run (default: `train_run`); `heatmap_pick(sources, k)`
    chooses the test sentences of the attention maps (default: `k` of spread lengths); `plots` and `sections`
    (`(study_dir, results) -> paths | markdown sections`) add the study's own figures and tables; `summary`
    (`(study_dir, results) -> markdown`) is a short section that follows the claims in `report.md` and is also
    written to `summary.md`, which `experiments.readme_results` quotes in the README.
    """

    name: str
    title: str
    question: str
    description: str
    config: str
    variants: Sequence[sweep.Variant]
    settings: Mapping[str, Setting]
    claims: Sequence[Claim] = ()
    metric_keys: Sequence[str] = ("test/seq_acc", "test/chrf", "test/cer", "validation/seq_acc")
    length_metrics: Sequence[str] = ("seq_acc",)
    bar_metric: str | None = "seq_acc"
    heatmaps: Sequence[str] = ()
    heatmap_count: int = 2
    heatmap_pick: Callable[[Sequence[str], int], list[int]] | None = None
    run_fn: Callable[[ml_collections.ConfigDict, str], Mapping] | None = None
    plots: Callable[[str, list], Sequence[str]] | None = None
    sections: Callable[[str, list], Sequence[str]] | None = None
    summary: Callable[[str, list], str] | None = None

    def __post_init__(self):
        if set(self.settings) != set(SETTINGS):
            raise ValueError(f"study {self.name!r} must define the settings {list(SETTINGS)}")
        names = [v.name for v in self.variants]
        for claim in self.claims:
            if claim.better not in names or claim.worse not in names:
                raise ValueError(f"claim {claim.text!r} names a variant not in {names}")

    @property
    def module(self) -> str:
        return f"experiments.{self.name}"


# --- Configs ------------------------------------------------------------------------------------------


def config_path(spec: Study) -> str:
    """The config file, as `seq2seq_jax.main --config=` takes it (relative to the repository root)."""
    return f"seq2seq_jax/configs/{spec.config}"


def base_config(spec: Study, setting: str, overrides: Mapping | None = None) -> ml_collections.ConfigDict:
    """The config file's `get_config(setting)`, the study's setting overrides, then `overrides` (the
    command line's `--config.*`): the config every run of the sweep starts from."""
    module = importlib.import_module(f"seq2seq_jax.configs.{spec.config.removesuffix('.py')}")
    config = module.get_config(setting)
    config = sweep.apply_overrides(config, spec.settings[setting].overrides, source=f"study {spec.name!r}")
    return sweep.apply_overrides(config, overrides or {}, source="--config")


def _flag_value(value) -> str:
    return value if isinstance(value, str) else repr(value)


def reproduce_command(spec: Study, setting: str, overrides: Mapping, variant: sweep.Variant, seed: int,
                      workdir: str) -> str:
    """The plain training command of one run of the study."""
    items = {**spec.settings[setting].overrides, **overrides, **variant.overrides, sweep.SEED_KEY: seed}
    argv = ["python", "-m", "seq2seq_jax.main", f"--config={config_path(spec)}:{setting}"]
    argv += [f"--config.{k}={_flag_value(v)}" for k, v in items.items()]
    return shlex.join([*argv, f"--workdir={workdir}"])


# --- Command line -------------------------------------------------------------------------------------


def _parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(match[1]), int(match[2])


def _parse_seeds(text: str) -> list[int]:
    """'N' -> seeds 0..N-1; a comma-separated list ('0,5', or '7,' for seed 7 alone) -> those seeds."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or a comma-separated list, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected at least one distinct non-negative seed, got {text!r}")
    return seeds


def format_seeds(seeds: Sequence[int]) -> str:
    """The inverse of `_parse_seeds`."""
    if list(seeds) == list(range(len(seeds))):
        return str(len(seeds))
    return ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else "")


def _parse_value(text: str):
    """A `--config.x=v` value: a Python literal (3, 1e-3, True, ('a', 'b')), true/false, or a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _help(spec: Study) -> str:
    lines = [spec.question, "", "Settings (--setting; the config file's argument after ':'):"]
    for name in SETTINGS:
        s = spec.settings[name]
        lines.append(f"  {name:6s} {s.seeds} seeds; --config={config_path(spec)}:{name}"
                     + (f" + {dict(s.overrides)}" if s.overrides else "") + (f". {s.note}" if s.note else ""))
    lines += ["", "Claims:"] + [f"  - {c.text}" for c in spec.claims]
    lines += ["", "Variants: " + ", ".join(v.name for v in spec.variants)]
    return "\n".join(lines)


def parse_args(spec: Study, argv: Sequence[str]) -> argparse.Namespace:
    """The flags every study takes; `argv` excludes the program name. Namespace fields: setting, seeds,
    workdir, list, shard, only, report_only and overrides (the `--config.*` flags as a dict)."""
    parser = argparse.ArgumentParser(prog=f"python -m {spec.module}", description=_help(spec),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=SETTINGS, default="quick", help="the study's size (default: quick)")
    parser.add_argument("--seeds", type=_parse_seeds, default=None,
                        help="N (seeds 0..N-1) or a comma-separated list; '7,' is seed 7 alone "
                             "(default: the setting's)")
    parser.add_argument("--workdir", default=os.path.join("runs", spec.name), help="the study directory")
    parser.add_argument("--list", action="store_true", help="print one command per run and exit")
    parser.add_argument("--shard", type=_parse_shard, default=(0, 1), help="i/n: run only runs j with j %% n == i")
    parser.add_argument("--only", metavar="RUN_ID", help="run only this run, e.g. attention/seed0")
    parser.add_argument("--report_only", action="store_true",
                        help="only rewrite the report from the finished runs (fails if runs failed or are missing)")
    parser.epilog = ("--config.SECTION.FIELD=VALUE (repeatable) overrides a field of every run's config, "
                     "e.g. --config.train.num_steps=200")
    args, rest = parser.parse_known_args(list(argv))
    args.overrides = {}
    for item in rest:
        match = re.fullmatch(r"--config\.([\w.]+)=(.*)", item, re.S)
        if not match:
            parser.error(f"unrecognized argument {item!r} (config overrides are --config.SECTION.FIELD=VALUE)")
        args.overrides[match[1]] = _parse_value(match[2])
    if sweep.SEED_KEY in args.overrides:
        parser.error(f"--config.{sweep.SEED_KEY}: seeds come from --seeds")
    for variant in spec.variants:
        clash = sorted(set(args.overrides) & set(variant.overrides))
        if clash:
            parser.error(f"--config.{clash[0]}: variant {variant.name!r} sets this field; it is what the study varies")
    if args.only is not None and args.shard != (0, 1):
        parser.error("argument --only: not allowed with --shard")
    if args.list and args.report_only:
        parser.error("argument --list: not allowed with --report_only")
    if args.seeds is None:
        args.seeds = list(range(spec.settings[args.setting].seeds))
    try:
        args.config = base_config(spec, args.setting, args.overrides)
    except ValueError as error:
        parser.error(str(error))
    return args


def _study_argv(spec: Study, args) -> list[str]:
    argv = ["python", "-m", spec.module, f"--workdir={args.workdir}", f"--setting={args.setting}",
            f"--seeds={format_seeds(args.seeds)}"]
    return argv + [f"--config.{k}={_flag_value(v)}" for k, v in args.overrides.items()]


def list_commands(spec: Study, args, runs: Sequence[sweep.Run]) -> list[str]:
    """One shell command per run: the study's own flags plus `--only=RUN_ID`."""
    return [shlex.join([*_study_argv(spec, args), f"--only={r.run_id}"]) for r in runs]


# --- Running ------------------------------------------------------------------------------------------


def machine() -> dict:
    """Where a run ran, as string/number metrics (they land in results.jsonl and results.csv)."""
    device = jax.devices()[0]
    return {"machine/platform": platform.platform(), "machine/cpu_count": os.cpu_count() or 0,
            "machine/jax_backend": jax.default_backend(), "machine/device": device.device_kind,
            "machine/device_count": jax.device_count(), "machine/jax_version": jax.__version__}


def train_run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """`train.train_and_evaluate`, plus the machine it ran on."""
    return {**train.train_and_evaluate(config, workdir), **machine()}


def main(spec: Study, argv: Sequence[str] | None = None) -> int:
    """Runs (part of) the study and writes its report; returns the exit status.

    1 if a run failed, or, with `--report_only`, if a run of the sweep failed or has not finished; 75
    (`train.EXIT_PREEMPTED`, for a scheduler to requeue) if SIGTERM/SIGINT stopped it after saving. A
    partial sweep (`--shard`, `--only`) writes only its runs' result.json files, so parallel shards never
    write the same file; run `--report_only` once they have all finished.
    """
    args = parse_args(spec, sys.argv[1:] if argv is None else argv)
    runs = sweep.expand(spec.variants, args.seeds)
    if args.list:
        print("\n".join(list_commands(spec, args, runs)))
        return 0
    try:
        if not args.report_only:
            done = sweep.run_sweep(args.workdir, runs, lambda: args.config, spec.run_fn or train_run,
                                   shard=args.shard, only=args.only)
            if args.only is not None or args.shard != (0, 1):
                logging.info("Partial sweep done; run with --report_only when every shard has finished.")
                return int(any(r["status"] != "ok" for r in done))
        results = sweep.collect(args.workdir, runs)
        sweep.check_configs(args.workdir, results, sweep.run_configs(runs, lambda: args.config))
    except ValueError as error:  # a finished run with another config: nothing has trained or been reported
        print(f"error: {error}", file=sys.stderr)
        return 2
    except train.Preempted as error:  # the run saved its step; rerunning the same command resumes it
        print(f"preempted: {error}", file=sys.stderr)
        return train.EXIT_PREEMPTED
    write_report(spec, args, results)
    missing = len(runs) - len(results)
    failed = sum(r["status"] != "ok" for r in results)
    if missing or failed:
        print(f"{args.workdir}: {failed} run(s) failed and {missing} not finished; see report.md",
              file=sys.stderr)
    return int(bool(failed or (missing and args.report_only)))


# --- Reading runs -------------------------------------------------------------------------------------


def ok_results(results: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in results if r["status"] == "ok"]


def by_variant(results: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    """The 'ok' results grouped by variant, variants in order of first appearance."""
    groups: dict[str, list[Mapping]] = {}
    for r in ok_results(results):
        groups.setdefault(r["variant"], []).append(r)
    return groups


def run_json(study_dir: str, result: Mapping, *path: str):
    """The JSON at `path` inside the workdir of the run of `result`, or None if absent."""
    full = os.path.join(sweep.run_workdir(study_dir, result["run_id"]), *path)
    if not os.path.exists(full):
        return None
    with open(full, encoding="utf-8") as f:
        return json.load(f)  # by_length's last bucket ends at Infinity, which json reads as inf


def _bucket_label(lo: float, hi: float) -> str:
    """Integer lengths in [lo, hi): '≥ 11', '7–10' or '6'."""
    if math.isinf(hi):
        return f"≥ {lo:g}"
    return f"{lo:g}" if hi - 1 <= lo else f"{lo:g}–{hi - 1:g}"


def longest_source(study_dir: str, results: Sequence[Mapping]) -> int | None:
    """The longest test source in the by-length unit (the end of the last, open length bucket), from the
    first ok run's `eval/test_predictions.tsv` and source vocabulary."""
    for r in ok_results(results):
        workdir = sweep.run_workdir(study_dir, r["run_id"])
        config = run_json(study_dir, r, "config.json")
        path = os.path.join(workdir, "eval", "test_predictions.tsv")
        if config is None or not os.path.exists(path):
            continue
        kind = config["data"]["source_vocab"]
        vocab = vocab_lib.load_vocab(os.path.join(workdir, "vocab", vocab_lib.vocab_filename(kind, "source_vocab")))
        with open(path, encoding="utf-8") as f:
            sources = [line.split("\t", 1)[0] for line in f.read().split("\n")[1:] if line]
        eval_config = ml_collections.ConfigDict(config["eval"])
        return max((inference.source_length(s, len(vocab.encode(s)), eval_config) for s in sources), default=None)
    return None


def length_unit(study_dir: str, results: Sequence[Mapping]) -> str:
    """What the runs' by-length buckets count ('tokens' or 'words'), from the first ok run's `eval/test.json`."""
    for r in ok_results(results):
        saved = run_json(study_dir, r, "eval", "test.json")
        if saved is not None:
            return saved.get("length_unit", "tokens")
    return "tokens"


def by_length(study_dir: str, results: Sequence[Mapping], metric: str) -> tuple[list[dict], dict]:
    """Test `metric` per source-length bucket, over each variant's ok seeds.

    Returns `(buckets, table)`: buckets `[{'lo', 'hi', 'count', 'label'}]` sorted by `lo`, and table
    `{variant: [list of per-seed values per bucket]}` (an empty list where no seed has the bucket).
    """
    values, buckets = {}, {}
    for r in ok_results(results):
        saved = run_json(study_dir, r, "eval", "test.json")
        if saved is None:
            continue
        per_variant = values.setdefault(r["variant"], {})
        for row in saved.get("by_length", []):
            key = (float(row["lo"]), float(row["hi"]))
            buckets.setdefault(key, int(row["count"]))
            if metric in row:
                per_variant.setdefault(key, []).append(float(row[metric]))
    keys = sorted(buckets)
    table = {variant: [per_bucket.get(key, []) for key in keys] for variant, per_bucket in values.items()}
    rows = [{"lo": lo, "hi": hi, "count": buckets[(lo, hi)], "label": _bucket_label(lo, hi)} for lo, hi in keys]
    return rows, table


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None, int]:
    if not values:
        return None, None, 0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values)


# --- Claims -------------------------------------------------------------------------------------------


def claim_estimate(pairs: Sequence[tuple[float, float]],
                   outcomes: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> dict:
    """The expected-positive difference `a − b` over seeds: `{estimate, low, high, n, method}`.

    `pairs` are `(a, b)` per seed (paired by seed). n >= 2: mean difference, paired-t 95% interval.
    n = 1 with `outcomes = [(a_values, b_values)]`, the per-example values both variants' metric averages
    over the same test examples (in the same order): a paired bootstrap over the examples, each resample
    scoring both variants on the same examples (fixed seed, so a report regenerates identically). Otherwise
    the interval is None.
    """
    diffs = [a - b for a, b in pairs]
    n = len(diffs)
    if n == 0:
        return {"estimate": None, "low": None, "high": None, "n": 0, "method": "no finished runs"}
    mean = statistics.fmean(diffs)
    if n >= 2:
        sd = statistics.stdev(diffs)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        return {"estimate": mean, "low": mean - half, "high": mean + half, "n": n, "sd": sd,
                "method": f"paired t over {n} seeds"}
    if outcomes and len(outcomes[0][0]) > 0:
        per_example = np.asarray(outcomes[0][0], float) - np.asarray(outcomes[0][1], float)  # [examples]
        rng = np.random.default_rng(0)
        boot = np.concatenate([per_example[rng.integers(0, len(per_example), (500, len(per_example)))].mean(1)
                               for _ in range(BOOTSTRAP_SAMPLES // 500)])  # [BOOTSTRAP_SAMPLES]
        low, high = np.percentile(boot, [2.5, 97.5])
        return {"estimate": mean, "low": float(low), "high": float(high), "n": 1,
                "method": f"paired bootstrap over {len(per_example)} test examples, one seed"}
    return {"estimate": mean, "low": None, "high": None, "n": 1, "method": "one seed, no interval"}


def verdict(low: float | None, high: float | None) -> str:
    if low is not None and low > 0:
        return "reproduced"
    if high is not None and high < 0:
        return "not reproduced"
    return "inconclusive"


MAX_SEEDS_NEEDED = 1000


def seeds_needed(estimate: float, sd: float) -> int | None:
    """The fewest seeds whose paired-t 95% interval would exclude 0, were the mean difference and its
    seed-to-seed spread what they are now; None if that is over `MAX_SEEDS_NEEDED` (or no difference)."""
    if sd == 0:
        return 2 if estimate else None
    for n in range(2, MAX_SEEDS_NEEDED + 1):
        if stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) < abs(estimate):
            return n
    return None


def why(c: Mapping, caveat: str = "") -> str:
    """Why a claim's verdict is what it is, from its numbers (and the claim's `caveat`); '' if reproduced."""
    if c["verdict"] == "reproduced":
        return ""
    if c["verdict"] == "no data":
        text = "no seed finished both variants."
    elif c["low"] is None:
        text = "one seed, and this metric has no per-example outcomes to bootstrap: run `--seeds=3` or more."
    elif c["verdict"] == "not reproduced":
        text = (f"the whole interval lies below 0: in this setting the {'seeds' if c['n'] > 1 else 'test examples'} "
                "agree on the opposite of the claim.")
    elif c["n"] == 1:
        text = (f"one seed: the difference {_number(c['estimate'])} is within the test examples' sampling noise "
                f"(interval [{_number(c['low'])}, {_number(c['high'])}]); run `--seeds=3` or more.")
    elif c["estimate"] <= 0:
        text = (f"the mean difference {_number(c['estimate'])} is not above 0 and the interval contains 0: no sign "
                "of the claimed effect in this setting.")
    else:
        needed = seeds_needed(c["estimate"], c["sd"])
        text = (f"the mean difference {_number(c['estimate'])} is smaller than its interval's half-width "
                f"{_number((c['high'] - c['low']) / 2)}: the seeds disagree (sd of the per-seed differences "
                f"{_number(c['sd'])}). " + (f"At this difference and spread, about {needed} seeds would give an "
                                            f"interval that excludes 0 (`--seeds={needed}`)." if needed else
                                            "No affordable number of seeds would separate a difference this small "
                                            "from the spread."))
    return text + (f" {caveat}" if caveat else "")


def _claim_value(study_dir: str, result: Mapping, claim: Claim) -> float | None:
    """`claim.metric` of one run (of its length bucket, for a bucket claim), or None."""
    if claim.bucket is None:
        value = result["metrics"].get(claim.metric)
    else:
        rows = (run_json(study_dir, result, "eval", "test.json") or {}).get("by_length", [])
        if not rows or not -len(rows) <= claim.bucket < len(rows):
            return None
        value = rows[claim.bucket].get(claim.metric.removeprefix("test/"))
    return None if not isinstance(value, (int, float)) or not math.isfinite(value) else float(value)


def example_outcomes(study_dir: str, result: Mapping, claim: Claim) -> np.ndarray | None:
    """The per-example values of a `PER_EXAMPLE` claim metric for one run, in test order (of its length
    bucket, for a bucket claim): 1/0 for a right/wrong sequence (`seq_acc`), 0/1 for `wer`; None if the
    metric is not per-example or the run kept no predictions."""
    metric = claim.metric.rpartition("/")[2]
    workdir = sweep.run_workdir(study_dir, result["run_id"])
    path = os.path.join(workdir, "eval", "test_predictions.tsv")
    if metric not in PER_EXAMPLE or not claim.metric.startswith("test/") or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        rows = [line.split("\t") for line in f.read().split("\n")[1:] if line]
    _, _, source_vocab, target_vocab = train.load_run(workdir)
    tokenize = metrics_lib.vocab_tokenizer(target_vocab)
    right = np.array([metrics_lib.sequence_accuracy([hyp], [refs.split(" | ")], tokenize)
                      for _, hyp, refs in rows])  # [examples]
    if claim.bucket is not None:
        saved, config = run_json(study_dir, result, "eval", "test.json"), run_json(study_dir, result, "config.json")
        buckets = saved.get("by_length", [])
        if not -len(buckets) <= claim.bucket < len(buckets):
            return None
        lo, hi = buckets[claim.bucket]["lo"], buckets[claim.bucket]["hi"]
        eval_config = ml_collections.ConfigDict(config["eval"])
        lengths = np.array([inference.source_length(source, len(source_vocab.encode(source)), eval_config)
                            for source, _, _ in rows])
        right = right[(lengths >= lo) & (lengths < hi)]
    return right if metric == "seq_acc" else 1.0 - right


def evaluate_claims(spec: Study, study_dir: str, results: Sequence[Mapping]) -> list[dict]:
    """Each claim's estimate, interval, n and verdict from the finished runs (paired by seed)."""
    out = []
    for claim in spec.claims:
        values, runs = {}, {}
        for r in ok_results(results):
            if r["variant"] in (claim.better, claim.worse):
                value = _claim_value(study_dir, r, claim)
                if value is not None:
                    values[(r["variant"], r["seed"])], runs[(r["variant"], r["seed"])] = value, r
        seeds = sorted({s for v, s in values if (claim.better, s) in values and (claim.worse, s) in values})
        hi, lo = (claim.worse, claim.better) if claim.lower_is_better else (claim.better, claim.worse)
        pairs = [(values[(hi, s)], values[(lo, s)]) for s in seeds]
        outcomes = None
        if len(seeds) == 1:  # one seed: the examples are what an interval can be drawn from
            both = [example_outcomes(study_dir, runs[(v, seeds[0])], claim) for v in (hi, lo)]
            outcomes = [tuple(both)] if all(o is not None for o in both) and len(both[0]) == len(both[1]) else None
        stats_ = claim_estimate(pairs, outcomes)
        where = "" if claim.bucket is None else f", length bucket {claim.bucket}"
        c = {"claim": claim.text, "quantity": f"{hi} − {lo}: {claim.metric}{where}", **stats_,
             "seeds": seeds, "verdict": verdict(stats_["low"], stats_["high"]) if stats_["n"] else "no data",
             "paper": claim.paper}
        out.append({**c, "why": why(c, claim.caveat)})
    return out


def _number(value) -> str:
    return "—" if value is None else f"{value:.3g}"


def claims_section(claims: Sequence[Mapping], setting: str) -> str:
    rows = []
    for c in claims:
        interval = "—" if c["low"] is None else f"[{_number(c['low'])}, {_number(c['high'])}]"
        rows.append([c["claim"], f"`{c['quantity']}`", _number(c["estimate"]), interval, c["n"], c["method"],
                     f"**{c['verdict']}**"])
    return ("## Claims\n\n"
            f"Setting `{setting}`. Each claim is a difference expected to be > 0, computed per seed from the "
            "runs below: mean over seeds, 95% interval, n = seeds with both variants finished. `reproduced`: "
            "the interval lies above 0; `not reproduced`: below 0; `inconclusive`: it contains 0 (or no "
            "interval: one seed of a metric without per-example outcomes). Also in `claims.json`.\n\n"
            + sweep.markdown_table(["claim", "quantity", "estimate", "95% interval", "n", "method", "verdict"],
                                   rows)
            + "".join(f"\n\n**{c['claim']}: {c['verdict']}.** Why: {c['why']}" for c in claims if c.get("why")))


# --- Report sections and plots ------------------------------------------------------------------------


def by_length_section(study_dir: str, results: Sequence[Mapping], metrics: Sequence[str]) -> str:
    """Markdown: one table per metric, rows = source-length buckets, columns = variants."""
    lines = ["## Test metrics by source length", "",
             f"Source length in source {length_unit(study_dir, results)}; the buckets (the config's "
             "`eval.length_edges`, else quantiles of the test split's source lengths) are the same for every run. "
             "Each cell: mean ± sample std over seeds (n = seeds); one seed alone shows its value."]
    for metric in metrics:
        buckets, table = by_length(study_dir, results, metric)
        if not buckets or not table:
            continue
        rows = [[b["label"], b["count"], *(sweep.cell(*_mean_std(column[j])) for column in table.values())]
                for j, b in enumerate(buckets)]
        lines += ["", f"### {metric}", "",
                  sweep.markdown_table(["source length", "test examples", *(f"`{v}`" for v in table)], rows)]
    return "\n".join(lines)


def _centres(buckets: Sequence[Mapping], longest: int | None) -> list[float]:
    """Each bucket's centre in source tokens; the last, open bucket ends at `longest`."""
    ends = [b["hi"] - 1 if not math.isinf(b["hi"]) else (longest if longest is not None else b["lo"])
            for b in buckets]
    return [(b["lo"] + max(end, b["lo"])) / 2 for b, end in zip(buckets, ends)]


def plot_by_length(study_dir: str, results: Sequence[Mapping], metric: str) -> str | None:
    """`plots/by_length_<metric>.png` (Bahdanau et al. 2014, fig. 2): a line per variant through the mean
    over seeds at bucket centres, with the seeds' range as a band."""
    buckets, table = by_length(study_dir, results, metric)
    x_all = _centres(buckets, longest_source(study_dir, results)) if buckets else []
    curves = {}
    for variant, cells in table.items():
        points = [(x, statistics.fmean(v), min(v), max(v)) for x, v in zip(x_all, cells) if v]
        if points:
            x, y, low, high = zip(*points)
            curves[variant] = (x, y, (low, high) if max(map(len, cells)) > 1 else None)
    if not curves:
        return None
    seeds = max(len(v) for cells in table.values() for v in cells)
    unit = length_unit(study_dir, results)
    return plotting.plot_metric_vs_length(
        curves, os.path.join(study_dir, "plots", f"by_length_{metric}.png"),
        xlabel=f"source length ({unit}; centre of each test bucket)", ylabel=f"test {metric}",
        title=f"test {metric} by source length " + (f"(mean of {seeds} seeds, band = their range)" if seeds > 1
                                                    else "(one seed)"))


def plot_overall(study_dir: str, results: Sequence[Mapping], metric: str) -> str | None:
    """`plots/overall_<metric>.png`: a bar per variant, test `metric` mean ± std over seeds."""
    rows = sweep.summarize(results, [f"test/{metric}"])
    key = f"test/{metric}"
    table = {r["variant"]: (r["mean"][key], r["std"][key] or 0.0) for r in rows if r["mean"][key] is not None}
    if not table:
        return None
    seeds = max(r["n"][key] for r in rows)
    return plotting.plot_bars(table, os.path.join(study_dir, "plots", f"overall_{metric}.png"),
                              ylabel=f"test {metric}",
                              title=f"test {metric} " + ("(mean ± std over seeds)" if seeds > 1 else "(one seed)"))


def plot_training_loss(study_dir: str, results: Sequence[Mapping]) -> str | None:
    """`plots/train_loss.png`: training loss against step, every seed of each variant (mean and band)."""
    runs = {}
    for variant, rs in by_variant(results).items():
        seeds = [logger.read_metrics(sweep.run_workdir(study_dir, r["run_id"])) for r in rs]
        seeds = [rows for rows in seeds if any("train_loss" in row for row in rows)]
        if seeds:
            runs[variant] = seeds
    if not runs:
        return None
    return plotting.plot_training_curves(runs, "train_loss",
                                                    os.path.join(study_dir, "plots", "train_loss.png"), log_y=True)


def _token_labels(vocab: vocab_lib.Vocab, ids: Sequence[int]) -> list[str]:
    specials = {vocab_lib.PAD: "<pad>", vocab_lib.BOS: "<s>", vocab_lib.EOS: "</s>", vocab_lib.UNK: "<unk>"}
    return [specials.get(int(i)) or vocab.decode([int(i)]) for i in ids]


def spread_by_length(sources: Sequence[str], k: int, length: Callable[[str], int]) -> list[int]:
    """Indices of `k` sources at evenly spaced quantiles of length (shortest..longest), ties by index."""
    order = sorted(range(len(sources)), key=lambda i: (length(sources[i]), i))
    if k <= 1 or len(order) <= 1:
        return order[-1:] if k >= 1 else []
    picks = [order[round(j * (len(order) - 1) / (k - 1))] for j in range(k)]
    return list(dict.fromkeys(picks))


def attention_heatmaps(study_dir: str, run_id: str, k: int,
                       pick: Callable[[Sequence[str], int], list[int]] | None = None) -> list[str]:
    """Attention maps (Bahdanau 2014, fig. 3) of a trained run for `k` test sentences, decoded with the run's
    best parameters: `plots/attention/<run_id with / as _>_<j>.png`. `pick(sources, k)` chooses the
    sentences' indices; by default `k` of spread lengths in source tokens."""
    workdir = sweep.run_workdir(study_dir, run_id)
    with open(os.path.join(workdir, "eval", "test_predictions.tsv"), encoding="utf-8") as f:
        sources = [line.split("\t", 1)[0] for line in f.read().split("\n")[1:] if line]
    config, model, params, source_vocab, target_vocab = train.load_trained(workdir)
    if pick is None:
        pick = lambda texts, n: spread_by_length(texts, n, lambda s: len(source_vocab.encode(s)))  # noqa: E731
    chosen = [sources[i] for i in pick(sources, k)]
    outputs = inference.translate(model, params, source_vocab, target_vocab, chosen, config.eval,
                                  with_target_ids=True)
    paths = []
    for j, (hyp, weights, source_ids, target_ids) in enumerate(outputs):
        name = f"{run_id.replace('/', '_')}_{j}.png"
        paths.append(plotting.plot_attention(weights, _token_labels(source_vocab, source_ids),
                                             _token_labels(target_vocab, target_ids),
                                             os.path.join(study_dir, "plots", "attention", name),
                                             title=f"{run_id} → {hyp}"))
    return paths


def _settings_line(config: ml_collections.ConfigDict) -> str:
    """`key = value` for every field where `config` differs from `configs/default.py`."""
    base, mine = sweep.flat_config(default.get_config()), sweep.flat_config(config)
    return ", ".join(f"`{k} = {mine[k]!r}`" for k in sorted(mine) if mine[k] != base.get(k))


def setup_section(spec: Study, args, results: Sequence[Mapping]) -> str:
    """Markdown: the study's command, the base config, each variant's plain training command, the machines.

    No wall times: they would differ between an interrupted and an uninterrupted sweep (results.csv has them).
    """
    seed = args.seeds[0]
    lines = ["## Command, setting and machine", "",
             f"Command: `{shlex.join(_study_argv(spec, args))}`", "",
             f"Setting: **{args.setting}**, config `{config_path(spec)}:{args.setting}`. Base config (fields "
             f"differing from `seq2seq_jax/configs/default.py`): {_settings_line(args.config)}.", "",
             f"Each run is a plain training run; seed {seed} of each variant is reproduced by:", ""]
    lines += [f"- `{v.name}`: `{reproduce_command(spec, args.setting, args.overrides, v, seed, os.path.join(args.workdir, 'runs', v.name, f'seed{seed}'))}`"
              for v in spec.variants]
    machines = {}
    for r in ok_results(results):
        m = r["metrics"]
        key = (f"{m.get('machine/platform')}, {m.get('machine/cpu_count')} CPUs, jax "
               f"{m.get('machine/jax_version')} backend `{m.get('machine/jax_backend')}` "
               f"({m.get('machine/device_count')} × {m.get('machine/device')})")
        machines[key] = machines.get(key, 0) + 1
    lines += ["", "Machines the runs ran on (wall times per run are in `results.csv`):", ""]
    lines += [f"- {key}: {count} runs" for key, count in machines.items()]
    return "\n".join(lines)


def make_plots(spec: Study, study_dir: str, results: Sequence[Mapping]) -> list[str]:
    """By-length curves, the bar chart, training loss, attention maps and the study's own plots."""
    paths = [plot_by_length(study_dir, results, m) for m in spec.length_metrics]
    paths += [plot_overall(study_dir, results, spec.bar_metric) if spec.bar_metric else None,
              plot_training_loss(study_dir, results)]
    for variant in spec.heatmaps:
        done = sorted((r for r in ok_results(results) if r["variant"] == variant), key=lambda r: r["seed"])
        if done:
            paths += attention_heatmaps(study_dir, done[0]["run_id"], spec.heatmap_count, spec.heatmap_pick)
    if spec.plots:
        paths += spec.plots(study_dir, list(results))
    return [p for p in paths if p]


def write_report(spec: Study, args, results: Sequence[Mapping]) -> str:
    """`claims.json`, then `report.md` (claims first) and `results.csv` from the finished runs alone."""
    study_dir = args.workdir
    claims = evaluate_claims(spec, study_dir, results)
    checkpointing.save_json(os.path.join(study_dir, "claims.json"),
                            [{**c, "study": spec.name, "setting": args.setting} for c in claims])
    plots = make_plots(spec, study_dir, results)
    sections = [by_length_section(study_dir, results, spec.length_metrics)] if spec.length_metrics else []
    sections += list(spec.sections(study_dir, list(results))) if spec.sections else []
    sections.append(setup_section(spec, args, results))
    head = [claims_section(claims, args.setting)] if claims else []
    if spec.summary:
        head.append(spec.summary(study_dir, list(results)))
        checkpointing.write_atomic(os.path.join(study_dir, "summary.md"), head[-1] + "\n")
    return sweep.write_report(study_dir, spec.title, f"{spec.question}\n\n{spec.description.strip()}", results,
                              spec.metric_keys, plots, sections, head_sections=head)
