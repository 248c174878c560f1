"""Helpers shared by the gradient-flow, G2P and WMT'14 studies, on top of `experiments.sweep`.

* `parse_args`: `sweep.parse_study_args`, with fewer default seeds under `--quick`.
* `run_study`: `sweep.run_study`, plus report sections computed from the results (tables that need the
  numbers, not only the config), still generated from `results.jsonl` alone.
* `by_variant`, `read_json`, `run_dir`: reading what each run left in its workdir.
* `markdown_table`: a plain markdown table.
"""

from collections.abc import Callable, Mapping, Sequence
import json
import os

from experiments import sweep


def parse_args(argv: Sequence[str], default_workdir: str, *, seeds: int = 3, quick_seeds: int = 1,
               flags: Sequence[str] = ()):
    """`sweep.parse_study_args`; `--seeds` defaults to `quick_seeds` under `--quick`, else `seeds`.

    `flags` are extra boolean switches of the study (e.g. `gpu` for `--gpu`), set as attributes of the
    result; `args.extra_argv` repeats them, so `--list` prints commands that keep them.
    """
    argv = list(argv)
    present = {flag: f"--{flag}" in argv for flag in flags}
    argv = [a for a in argv if not (a.startswith("--") and a[2:] in flags)]
    args = sweep.parse_study_args(argv, default_workdir=default_workdir,
                                  default_seeds=quick_seeds if "--quick" in argv else seeds)
    for flag, value in present.items():
        setattr(args, flag, value)
    args.extra_argv = [f"--{flag}" for flag in flags if present[flag]]
    return args


def run_study(
    args,
    *,
    make_plots: Callable[[str, list[dict]], Sequence[str]] | None = None,
    make_sections: Callable[[str, list[dict]], Sequence[str]] | None = None,
    **kwargs,
) -> int:
    """`sweep.run_study`, with `make_sections(study_dir, results)` appended to the report as markdown.

    `sweep.run_study` takes fixed `extra_sections`; here they are filled in from the collected results
    inside the `make_plots` callback, which `sweep.run_study` calls with those results just before it
    writes the report. So the sections, like the rest of the report, depend only on `results.jsonl` and
    the run directories.
    """
    if args.list and getattr(args, "extra_argv", None):
        runs = sweep.expand(kwargs["variants"], args.seeds)
        print("\n".join(f"{c} {' '.join(args.extra_argv)}" for c in sweep.list_commands(kwargs["module"], args, runs)))
        return 0
    sections: list[str] = []

    def plots_and_sections(study_dir, results):
        sections[:] = make_sections(study_dir, results) if make_sections else []
        return make_plots(study_dir, results) if make_plots else []

    return sweep.run_study(args, make_plots=plots_and_sections, extra_sections=sections, **kwargs)


def run_dir(study_dir: str, result: Mapping) -> str:
    """The workdir of the run that produced `result`."""
    return os.path.join(study_dir, "runs", result["run_id"])


def read_json(path: str):
    """The JSON at `path`, or None if the file does not exist."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def by_variant(results: Sequence[Mapping]) -> dict[str, list[dict]]:
    """The 'ok' results grouped by variant, variants in order of first appearance."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        if r["status"] == "ok":
            groups.setdefault(r["variant"], []).append(r)
    return groups


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value, digits: int = 4) -> str:
    """A number with `digits` significant digits; '—' for None."""
    return "—" if value is None else f"{value:.{digits}g}"


def write_json(path: str, value) -> None:
    """`value` as indented JSON at `path`, written through a temporary file and a rename."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
