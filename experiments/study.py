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
error naming it). The flags are absl flags (`parse_args`, a fresh set per call, so `main` can run one study
after another in one process); a bad command line is one `error:` line and exit status 2.

The layers: this module (a study as data, its flags, running it) hands the runs to `experiments.sweep`
(runs, workdirs, resume, results.jsonl); `experiments.claims` computes the claims' estimates and verdicts;
`experiments.report` writes `report.md`, `claims.json`, `results.csv` and `plots/` from the runs' files
only, so `--report_only` rewrites them byte for byte.
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import importlib
import os
import shlex
import sys

from absl import flags
from absl import logging
import ml_collections

from experiments import claims as claims_lib
from experiments import command_line
from experiments import report
from experiments import sweep
from seq2seq_jax import logger
from seq2seq_jax import train
from seq2seq_jax.configs import compare
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
#
# absl flags on a FlagValues of the call's own (not absl.flags.FLAGS): a study's defaults and help are its
# own, and a process that also imported `seq2seq_jax.main` (the tests do) holds that tool's `--config` (a
# config file) and `--workdir` on FLAGS. So `parse_args` defines the flags afresh for each call, and nothing is
# left behind for the next study. `--config.SECTION.FIELD=VALUE` overrides become absl flags of their own (one
# per field on the command line, as `ml_collections.config_flags` does it; the parsers are in
# `experiments.command_line`), their values Python literals; they are then set on the config by
# `sweep.apply_overrides` (`ConfigDict.update_from_flattened_dict`), which checks each field and its type.
# config_flags itself parses a value by the field's type, which cannot set an int placeholder to None
# (`--config.data.max_source_length=None`), refuses list fields (`data.bucket_boundaries`) and makes
# `--config.eval.length_edges=None` the tuple `(None,)`.


def _help(spec: Study) -> str:
    lines = [spec.question, "", "Settings (--setting; the config file's argument after ':'):"]
    for name in SETTINGS:
        s = spec.settings[name]
        lines.append(f"  {name:6s} {s.seeds} seeds; --config={config_path(spec)}:{name}"
                     + (f" + {dict(s.overrides)}" if s.overrides else "") + (f". {s.note}" if s.note else ""))
    lines += ["", "Claims:"] + [f"  - {c.text}" for c in spec.claims]
    lines += ["", "Variants: " + ", ".join(v.name for v in spec.variants)]
    return "\n".join(lines)


def _define_flags(spec: Study, values: flags.FlagValues) -> None:
    """The flags every study takes, on `values`."""
    common = {"flag_values": values, "module_name": spec.module}
    flags.DEFINE_bool("help", False, "show this help and exit", short_name="h", **common)
    flags.DEFINE_enum("setting", "quick", SETTINGS, "the study's size", **common)
    flags.DEFINE(command_line.SeedsParser(), "seeds", None, "N (seeds 0..N-1) or a comma-separated list; '7,' is seed 7 "
                 "alone (default: the setting's)", **common)
    flags.DEFINE_string("workdir", os.path.join("runs", spec.name), "the study directory", **common)
    flags.DEFINE_bool("list", False, "print one command per run and exit", **common)
    flags.DEFINE(command_line.ShardParser(), "shard", "0/1", "i/n: run only runs j with j % n == i",
                 serializer=command_line.ShardSerializer(), **common)
    flags.DEFINE_string("only", None, "run only this run, e.g. attention/seed0", **common)
    flags.DEFINE_bool("report_only", False, "only rewrite the report from the finished runs (fails if runs "
                      "failed or are missing)", **common)


def usage(spec: Study) -> str:
    """The study's `--help`: its question, settings, claims and variants, then its flags."""
    values = flags.FlagValues()
    _define_flags(spec, values)
    return "\n".join([f"usage: python -m {spec.module} [--FLAG=VALUE ...] [--config.SECTION.FIELD=VALUE ...]",
                      "", _help(spec), values.get_help(include_special_flags=False), "", command_line.CONFIG_HELP])


@dataclasses.dataclass(frozen=True)
class Args:
    """A study's command line: its flags, `overrides` (the `--config.*` flags, `{"train.num_steps": 7}`) and
    `config`, the config every run of the sweep starts from."""

    setting: str
    seeds: list[int]
    workdir: str
    list: bool
    shard: tuple[int, int]
    only: str | None
    report_only: bool
    overrides: dict
    config: ml_collections.ConfigDict


def _parse(spec: Study, argv: Sequence[str]) -> Args:
    values = flags.FlagValues()
    _define_flags(spec, values)
    try:
        argv = values.read_flags_from_files(list(argv), force_gnu=False)  # --flagfile=F: F's lines, in place
    except flags.Error as error:
        raise command_line.UsageError(str(error).removeprefix("ERROR:: ")) from None
    names = command_line.override_names(argv)
    for name in names:
        try:
            flags.DEFINE(command_line.ValueParser(), name, None, f"an override of config field {name[len(command_line.CONFIG_PREFIX):]}",
                         flag_values=values)
        except flags.Error as error:  # a name absl refuses, e.g. one with a space
            raise command_line.UsageError(f"argument --{name}: {error}") from None
    try:
        rest = values([f"python -m {spec.module}", *argv])[1:]
    except flags.Error as error:
        raise command_line.UsageError(command_line.flag_error(error)) from None
    if values.help:
        print(usage(spec))
        raise SystemExit(0)
    if rest:
        raise command_line.UsageError(f"unrecognized argument {rest[0]!r} (config overrides are "
                          f"--{command_line.CONFIG_PREFIX}SECTION.FIELD=VALUE)")
    overrides = {name[len(command_line.CONFIG_PREFIX):]: values[name].value for name in names}
    if sweep.SEED_KEY in overrides:
        raise command_line.UsageError(f"--config.{sweep.SEED_KEY}: seeds come from --seeds")
    for variant in spec.variants:
        clash = sorted(set(overrides) & set(variant.overrides))
        if clash:
            raise command_line.UsageError(f"--config.{clash[0]}: variant {variant.name!r} sets this field; it is what the "
                              "study varies")
    if values.only is not None and values.shard != (0, 1):
        raise command_line.UsageError("argument --only: not allowed with --shard")
    if values.list and values.report_only:
        raise command_line.UsageError("argument --list: not allowed with --report_only")
    seeds = values.seeds if values.seeds is not None else list(range(spec.settings[values.setting].seeds))
    try:
        config = base_config(spec, values.setting, overrides)
    except ValueError as error:
        raise command_line.UsageError(str(error)) from None
    return Args(setting=values.setting, seeds=seeds, workdir=values.workdir, list=values.list, shard=values.shard,
                only=values.only, report_only=values.report_only, overrides=overrides, config=config)


def parse_args(spec: Study, argv: Sequence[str]) -> Args:
    """The flags every study takes; `argv` excludes the program name. `--help` prints `usage(spec)` and
    exits 0; a bad command line is one line on stderr and exit status 2 (SystemExit)."""
    try:
        return _parse(spec, argv)
    except command_line.UsageError as error:
        print(f"python -m {spec.module}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _study_argv(spec: Study, args) -> list[str]:
    argv = ["python", "-m", spec.module, f"--workdir={args.workdir}", f"--setting={args.setting}",
            f"--seeds={command_line.format_seeds(args.seeds)}"]
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
    base, mine = compare.flat(default.get_config()), compare.flat(config)
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
