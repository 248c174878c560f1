"""Helpers shared by the gradient-flow, G2P and WMT'14 studies, on top of `experiments.sweep`.

* `parse_args`: `sweep.parse_study_args`, with fewer default seeds under `--quick`.
* `run_study`: `sweep.run_study`, plus report sections computed from the results (tables that need the
  numbers, not only the config), still generated from `results.jsonl` alone.
* `by_variant`, `read_json`, `run_json`: reading what each run left in its workdir.
* `beam_test`: the test split of a trained run decoded again with a beam.
* `markdown_table`, `fmt`: report helpers.
"""

from collections.abc import Callable, Mapping, Sequence
import copy
import functools
import json
import os

import jax

from experiments import sweep
from seq2seq_jax import inference
from seq2seq_jax import train
from seq2seq_jax.data import pipeline


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
    make_sections: Callable[[str, list[dict]], Sequence[str]] | None = None,
    **kwargs,
) -> int:
    """`sweep.run_study`, with `make_sections(study_dir, results)` appended to the report as markdown
    (computed from the collected results, so the report still depends only on `results.jsonl` and the
    run directories), and `--list` commands that keep the study's extra switches."""
    if args.list and getattr(args, "extra_argv", None):
        runs = sweep.expand(kwargs["variants"], args.seeds)
        print("\n".join(f"{c} {' '.join(args.extra_argv)}" for c in sweep.list_commands(kwargs["module"], args, runs)))
        return 0
    return sweep.run_study(args, extra_sections=make_sections or (), **kwargs)


def read_json(path: str):
    """The JSON at `path`, or None if the file does not exist."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_json(study_dir: str, result: Mapping, *path: str):
    """The JSON at ``path`` inside the workdir of the run that produced ``result`` (None if absent)."""
    return read_json(os.path.join(sweep.run_workdir(study_dir, result["run_id"]), *path))


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


def beam_test(config, workdir: str, *, beam_size: int, max_examples: int = 0, evaluated_step: int = 0) -> dict:
    """Decodes the test split of a trained run with `beam_size`; `{'test_beam/<metric>': value, ...}`.

    `train_and_evaluate` decodes validation and test with the same `eval.beam_size`; a study that wants
    cheap greedy validation during training but a beam for the final test score trains with beam 1 and
    calls this afterwards. The parameters are the ones `test/*` was computed with (the `best` checkpoint);
    writes `eval/test_beam.json` and `eval/test_beam_predictions.tsv`. `max_examples=0` decodes all.
    """
    _, model, params, _, _ = train.load_trained(workdir)
    data = pipeline.get_data(config.data, batch_size=config.train.batch_size, seed=config.train.seed,
                             vocab_dir=os.path.join(workdir, "vocab"))
    eval_config = copy.deepcopy(config.eval)
    eval_config.beam_size = beam_size
    result = inference.evaluate_split(model, params, data, "test", eval_config,
                                      eval_step=jax.jit(functools.partial(train.eval_step, model=model)),
                                      max_examples=max_examples)
    result["split"] = "test_beam"  # -> eval/test_beam.json, eval/test_beam_predictions.tsv
    train.write_eval(workdir, result, evaluated_step)
    return {f"test_beam/{k}": v for k, v in train.scalar_metrics(result).items()}
