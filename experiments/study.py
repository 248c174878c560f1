"""The study framework: a study is data (a `Study`), run by `main` with the same flags for every study.

A study file `experiments/NAME.py` declares its question, its claims, its variants and its settings, and
calls `main`:

    STUDY = study.Study(
        name="bottleneck_vs_attention", title=..., question="Does a fixed vector fail on long inputs?",
        config="number_digits.py",                       # seq2seq_jax/configs/<file>: get_config(setting)
        variants=[sweep.Variant("bottleneck", {"model.decoder": "bottleneck"}), ...],
        claims=[claims.Claim("attention − bottleneck test seq_acc, longest sources > 0",
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
error naming it).

The layers: this module (a study as data, its flags, running it) hands the runs to `experiments.sweep`
(runs, workdirs, resume, results.jsonl); `experiments.claims` computes the claims' estimates and verdicts;
`experiments.report` writes `report.md`, `claims.json`, `results.csv` and `plots/` from the runs' files
only, so `--report_only` rewrites them byte for byte.
"""

import argparse
import ast
from collections.abc import Callable, Mapping, Sequence
import dataclasses
import importlib
import os
import re
import shlex
import sys

from absl import logging
import ml_collections

from experiments import claims as claims_lib
from experiments import report
from experiments import sweep
from seq2seq_jax import logger
from seq2seq_jax import train
from seq2seq_jax.configs import default

SETTINGS = ("quick", "cpu", "gpu")


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
    claims: Sequence[claims_lib.Claim] = ()
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


def train_run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """`train.train_and_evaluate`, plus the machine it ran on."""
    machine = {f"machine/{key}": value for key, value in logger.machine().items()}
    return {**train.train_and_evaluate(config, workdir), **machine}


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
    report.write_report(spec, args.workdir, args.setting, results, setup_section(spec, args, results))
    missing = len(runs) - len(results)
    failed = sum(r["status"] != "ok" for r in results)
    if missing or failed:
        print(f"{args.workdir}: {failed} run(s) failed and {missing} not finished; see report.md",
              file=sys.stderr)
    return int(bool(failed or (missing and args.report_only)))


# --- The report's setup section ----------------------------------------------------------------------


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
    for r in sweep.ok_results(results):
        m = r["metrics"]
        key = (f"{m.get('machine/platform')}, {m.get('machine/cpu_count')} CPUs, jax "
               f"{m.get('machine/jax_version')} backend `{m.get('machine/jax_backend')}` "
               f"({m.get('machine/device_count')} × {m.get('machine/device')})")
        machines[key] = machines.get(key, 0) + 1
    lines += ["", "Machines the runs ran on (wall times per run are in `results.csv`):", ""]
    lines += [f"- {key}: {count} runs" for key, count in machines.items()]
    return "\n".join(lines)
