"""What the study scripts share: the task, the command line, by-length tables and plots, attention maps.

A study script is data (its variants, title, description and step counts) plus one call to `main`:

    VARIANTS = [sweep.Variant("bottleneck", {"model.decoder": "bottleneck"}), ...]

    def main(argv=None, *, overrides=None):
        return common.main(argv, overrides=overrides, spec=common.Study(module=..., variants=VARIANTS, ...))

The task (`task_config`) is English number names -> their decimal digits (`number_words/digits_en` with
`data.reverse_pair=True`): "sixty-seven million, three hundred and twenty-six thousand, five hundred and
fifty-one" -> "67326551". Digit counts are uniform in 1..9, so sources run from 1 to 14 words (3 to 110
characters) while targets stay at most 9 characters: decoding is cheap, and what varies is how much source
the model must carry. The first target digit depends on the first source words, which a fixed-vector
encoder must keep across the whole sentence.
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import json
import math
import os
import platform
import shlex
import statistics

import jax
import ml_collections

from experiments import sweep
from seq2seq_jax import inference
from seq2seq_jax import logger
from seq2seq_jax import plotting
from seq2seq_jax import train
from seq2seq_jax.configs import default
from seq2seq_jax.data import vocab as vocab_lib

# Config keys left out of the report's settings list: they describe the machine, not the experiment.
_MACHINE_KEYS = ("data.data_dir",)


def task_config(full: bool) -> ml_collections.ConfigDict:
    """English number names -> digits; the quick setting fits 2 CPU cores, the full one a GPU.

    quick: sources as words (1-14 tokens), GRU with 128 units, 20k training examples, batch 64; a study sets
    `train.num_steps`. full: sources as characters (3-110 tokens, a harder test of the fixed vector), LSTM
    with 256 units, 50k training examples, batch 128, periodic validation picks the best checkpoint.
    """
    c = default.get_config()
    c.data.dataset = "number_words/digits_en"
    c.data.reverse_pair = True
    c.data.target_vocab = "char"
    # Targets are at most 9 digits + EOS, whatever the source length.
    c.eval.max_output_ratio = 0.0
    c.eval.max_output_extra = 12
    c.eval.metrics = ("seq_acc", "chrf", "cer")
    c.eval.num_length_buckets = 5
    c.train.schedule = "warmup_decay"
    if full:
        c.data.source_vocab = "char"
        c.data.num_validation = 2000
        c.data.num_test = 2000
        c.model.cell = "lstm"
        c.model.embedding_size = 64
        c.model.hidden_size = c.model.attention_size = 256
        c.train.batch_size = 128
        c.train.learning_rate = 1e-3
        c.train.warmup_steps = 500
        c.train.num_steps = 20_000
        c.train.eval_every = c.train.checkpoint_every = 2000
        c.train.log_every = 100
        c.eval.max_validation_examples = 2000
    else:
        c.data.source_vocab = "word"
        c.data.num_train = 20_000
        c.data.num_validation = 300
        c.data.num_test = 1000
        c.data.num_buckets = 3
        c.model.cell = "gru"
        c.model.embedding_size = 32
        c.model.hidden_size = c.model.attention_size = 128
        c.train.batch_size = 64
        c.train.learning_rate = 3e-3
        c.train.warmup_steps = 50
        c.train.num_steps = 1000
        # Validation only at the end: no periodic decoding, one checkpoint.
        c.train.eval_every = 0
        c.train.checkpoint_every = 100_000
        c.train.log_every = 25
        c.eval.max_validation_examples = 0
    return c


def machine() -> dict:
    """Where a run ran, as string/number metrics (they land in results.jsonl and results.csv)."""
    device = jax.devices()[0]
    return {"machine/platform": platform.platform(), "machine/cpu_count": os.cpu_count() or 0,
            "machine/jax_backend": jax.default_backend(), "machine/device": device.device_kind,
            "machine/device_count": jax.device_count(), "machine/jax_version": jax.__version__}


def train_run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """`train.train_and_evaluate`, plus the machine it ran on."""
    return {**train.train_and_evaluate(config, workdir), **machine()}


# --- Reading runs ---------------------------------------------------------------------------------------


def ok_results(results: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in results if r["status"] == "ok"]


def _bucket_label(lo: float, hi: float) -> str:
    """Integer lengths in [lo, hi): '≥ 11', '7–10' or '6'."""
    if math.isinf(hi):
        return f"≥ {lo:g}"
    return f"{lo:g}" if hi - 1 <= lo else f"{lo:g}–{hi - 1:g}"


def description(doc: str, paragraphs: int) -> str:
    """The first `paragraphs` blank-line-separated paragraphs of a study's docstring: its report's intro."""
    return "\n\n".join(doc.strip().split("\n\n")[:paragraphs])


def by_length(study_dir: str, results: Sequence[Mapping], metric: str) -> tuple[list[dict], dict]:
    """Test `metric` per source-length bucket, mean ± std over each variant's ok seeds.

    Reads `runs/<run_id>/eval/test.json` (`by_length`). Buckets come from the test split's source lengths,
    so runs on the same data share them; a bucket is keyed by its edges, and a variant missing a bucket
    (or the metric) has None there.
    Returns `(buckets, table)`: buckets `[{'lo', 'hi', 'count', 'label'}]` sorted by `lo`, and
    table `{variant: [(mean, std, n_seeds) or None per bucket]}` in the order of `results`.
    """
    values, buckets = {}, {}
    for r in ok_results(results):
        path = os.path.join(sweep.run_workdir(study_dir, r["run_id"]), "eval", "test.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)  # by_length's last bucket ends at Infinity, which json reads as inf
        per_variant = values.setdefault(r["variant"], {})
        for row in saved.get("by_length", []):
            key = (float(row["lo"]), float(row["hi"]))
            buckets.setdefault(key, int(row["count"]))
            if metric in row:
                per_variant.setdefault(key, []).append(float(row[metric]))
    keys = sorted(buckets)
    table = {}
    for variant, per_bucket in values.items():
        cells = []
        for key in keys:
            v = per_bucket.get(key, [])
            cells.append((statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v)) if v else None)
        table[variant] = cells
    rows = [{"lo": lo, "hi": hi, "count": buckets[(lo, hi)], "label": _bucket_label(lo, hi)} for lo, hi in keys]
    return rows, table


def by_length_section(study_dir: str, results: Sequence[Mapping], metrics: Sequence[str]) -> str:
    """Markdown: one table per metric, rows = source-length buckets, columns = variants."""
    lines = ["## Test metrics by source length", "",
             "Source length in source tokens; buckets are quantiles of the test split's source lengths (the "
             "same for every run). Each cell: mean ± sample std over the seeds that finished (n in brackets "
             "when fewer than all)."]
    for metric in metrics:
        buckets, table = by_length(study_dir, results, metric)
        if not buckets or not table:
            continue
        seeds = {v: max((c[2] for c in cells if c), default=0) for v, cells in table.items()}
        lines += ["", f"### {metric}", "",
                  "| source length | test examples | " + " | ".join(f"`{v}`" for v in table) + " |",
                  "|---|---|" + "---|" * len(table)]
        for j, b in enumerate(buckets):
            cells = []
            for v, column in table.items():
                c = column[j]
                cells.append("—" if c is None else
                             f"{c[0]:.4g} ± {c[1]:.2g}" + (f" (n={c[2]})" if c[2] < seeds[v] else ""))
            lines.append(f"| {b['label']} | {b['count']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_by_length(study_dir: str, results: Sequence[Mapping], metric: str) -> str | None:
    """`by_length_<metric>.png`: one line per variant, error bars = std over seeds (Bahdanau 2014, fig. 2)."""
    buckets, table = by_length(study_dir, results, metric)
    curves = {}
    for variant, cells in table.items():
        points = [(b["lo"], c[0], c[1]) for b, c in zip(buckets, cells) if c is not None]
        if points:
            x, y, err = zip(*points)
            curves[variant] = (x, y, err)
    if not curves:
        return None
    return plotting.plot_metric_vs_length(
        curves, os.path.join(study_dir, "plots", f"by_length_{metric}.png"),
        xlabel="source length (tokens; lower edge of each test bucket)", ylabel=f"test {metric}",
        title=f"test {metric} by source length (mean ± std over seeds)")


def plot_overall(study_dir: str, results: Sequence[Mapping], metric: str) -> str | None:
    """`overall_<metric>.png`: a bar per variant, test `metric` mean ± std over seeds."""
    rows = sweep.summarize(results, [f"test/{metric}"])
    table = {r["variant"]: (r["mean"][f"test/{metric}"], r["std"][f"test/{metric}"]) for r in rows
             if r["mean"][f"test/{metric}"] is not None}
    if not table:
        return None
    return plotting.plot_bars(table, os.path.join(study_dir, "plots", f"overall_{metric}.png"),
                              ylabel=f"test {metric}", title=f"test {metric} (mean ± std over seeds)")


def plot_training_loss(study_dir: str, results: Sequence[Mapping]) -> str | None:
    """`train_loss.png`: training loss against step, the lowest ok seed of each variant."""
    runs = {}
    for r in sorted(ok_results(results), key=lambda r: r["seed"]):
        if r["variant"] not in runs:
            runs[r["variant"]] = logger.read_metrics(sweep.run_workdir(study_dir, r["run_id"]))
    runs = {k: v for k, v in runs.items() if any("train_loss" in row for row in v)}
    if not runs:
        return None
    return plotting.plot_training_curves(runs, "train_loss", os.path.join(study_dir, "plots", "train_loss.png"),
                                         log_y=True)


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


def attention_heatmaps(study_dir: str, run_id: str, k: int) -> list[str]:
    """Attention maps (Bahdanau 2014, fig. 3) of a trained run for `k` test sentences of spread lengths.

    Sentences come from the run's `eval/test_predictions.tsv`, re-decoded with the run's best parameters and
    decoding settings; PNGs go to `plots/attention/<run_id with / as _>_<j>.png`.
    """
    workdir = sweep.run_workdir(study_dir, run_id)
    with open(os.path.join(workdir, "eval", "test_predictions.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    config, model, params, source_vocab, target_vocab = train.load_trained(workdir)
    sources = [row[0] for row in rows]
    chosen = [sources[i] for i in spread_by_length(sources, k, lambda s: len(source_vocab.encode(s)))]
    paths = []
    outputs = inference.translate(model, params, source_vocab, target_vocab, chosen, config.eval)
    for j, (hyp, weights, source_ids) in enumerate(outputs):
        target_ids = target_vocab.encode(hyp)
        target_ids = (target_ids + [vocab_lib.EOS])[: weights.shape[0]]
        target = _token_labels(target_vocab, target_ids)
        target += [f"#{i}" for i in range(len(target), weights.shape[0])]  # a hypothesis that did not re-encode
        name = f"{run_id.replace('/', '_')}_{j}.png"
        paths.append(plotting.plot_attention(weights, _token_labels(source_vocab, source_ids), target,
                                             os.path.join(study_dir, "plots", "attention", name),
                                             title=f"{run_id} → {hyp}"))
    return paths


# --- The study driver ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Study:
    """A study as data: see the module docstring.

    `num_steps` and `seeds` are `(quick, full)` pairs; `heatmaps` names the variants whose lowest ok seed
    gets `heatmap_count` attention maps; `length_metrics` get a by-length table and plot, `bar_metric` a
    bar chart.
    """

    module: str
    title: str
    description: str
    variants: Sequence[sweep.Variant]
    num_steps: tuple[int, int]
    seeds: tuple[int, int]
    heatmaps: Sequence[str] = ()
    heatmap_count: int = 2
    length_metrics: Sequence[str] = ("seq_acc", "chrf")
    bar_metric: str = "seq_acc"
    metric_keys: Sequence[str] = ("test/seq_acc", "test/chrf", "test/cer", "validation/seq_acc",
                                  "test/perplexity", "step")

    @property
    def default_workdir(self) -> str:
        return os.path.join("runs", self.module.rpartition(".")[2])


def make_config(spec: Study, full: bool, overrides: Mapping | None = None) -> ml_collections.ConfigDict:
    """The study's base config in one setting; `overrides` (tests: a smaller task) are applied last."""
    config = task_config(full)
    config.train.num_steps = spec.num_steps[int(full)]
    return sweep.apply_overrides(config, overrides or {}, variant="<base config>")


def _settings(config: ml_collections.ConfigDict) -> list[str]:
    """`key = value` for every field where `config` differs from `configs/default.py`."""
    def flat(c, prefix=""):
        out = {}
        for key, value in c.items():
            if isinstance(value, ml_collections.ConfigDict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out
    base, mine = flat(default.get_config()), flat(config)
    return [f"`{k} = {mine[k]!r}`" for k in sorted(mine) if k not in _MACHINE_KEYS and mine[k] != base.get(k)]


def command_line(spec: Study, args) -> str:
    """The command that runs the whole study as `args` did (whatever partial flags were given)."""
    argv = ["python", "-m", spec.module, f"--workdir={args.workdir}"] + ["--full"] * args.full
    return shlex.join(argv + [f"--seeds={sweep._format_seeds(args.seeds)}"])


def setup_section(spec: Study, args, config, results: Sequence[Mapping], overrides: Mapping | None) -> str:
    """Markdown: the command, the setting (config fields that differ from the default), the machines."""
    lines = ["## Command, setting and machine", "",
             f"Command: `{command_line(spec, args)}`" + ("" if not overrides else
                                                          f" (test overrides: `{dict(overrides)!r}`)"), "",
             f"Setting: **{'full' if args.full else 'quick'}**. Base config (fields differing from "
             "`seq2seq_jax/configs/default.py`; each variant's overrides are listed above): " +
             ", ".join(_settings(config)) + ".", ""]
    machines = {}
    for r in ok_results(results):
        m = r["metrics"]
        key = (f"{m.get('machine/platform')}, {m.get('machine/cpu_count')} CPUs, jax "
               f"{m.get('machine/jax_version')} backend `{m.get('machine/jax_backend')}` "
               f"({m.get('machine/device_count')} × {m.get('machine/device')})")
        machines.setdefault(key, []).append(r["seconds"])
    total = sum(r["seconds"] for r in results)
    lines.append(f"Run time: {total:.0f} s summed over {len(results)} runs (each run's wall time, including "
                 "data loading, compilation and evaluation; a sequential sweep takes about this long plus "
                 "its report).")
    lines += ["", "Machines the runs ran on:", ""]
    lines += [f"- {key}: {len(s)} runs, {min(s):.0f}–{max(s):.0f} s each" for key, s in machines.items()]
    return "\n".join(lines)


def make_plots(spec: Study, study_dir: str, results: Sequence[Mapping]) -> list[str]:
    """By-length curves, the bar chart, training loss and attention maps; a plot with no data is left out."""
    paths = [plot_by_length(study_dir, results, m) for m in spec.length_metrics]
    paths += [plot_overall(study_dir, results, spec.bar_metric), plot_training_loss(study_dir, results)]
    for variant in spec.heatmaps:
        done = sorted((r for r in ok_results(results) if r["variant"] == variant), key=lambda r: r["seed"])
        if done:
            paths += attention_heatmaps(study_dir, done[0]["run_id"], spec.heatmap_count)
    return [p for p in paths if p]


def main(argv: Sequence[str] | None, *, spec: Study, overrides: Mapping | None = None) -> int:
    """Parses the shared flags (quick by default, `--full` for the GPU setting) and runs the study.

    `overrides` are config overrides applied to the base config of either setting; tests use them to run
    the same code path on a tiny task.
    """
    import sys  # local: only the command line reads it

    args = sweep.parse_study_args(sys.argv[1:] if argv is None else argv, spec.default_workdir,
                                  default_seeds=spec.seeds[0], quick_by_default=True, full_seeds=spec.seeds[1])
    config = make_config(spec, args.full, overrides)

    def sections(study_dir, results):
        return [by_length_section(study_dir, results, spec.length_metrics),
                setup_section(spec, args, config, results, overrides)]

    return sweep.run_study(args, module=spec.module, variants=spec.variants,
                           make_config=lambda: config, run_fn=train_run, title=spec.title,
                           description=spec.description, metric_keys=list(spec.metric_keys),
                           make_plots=lambda d, r: make_plots(spec, d, r), extra_sections=sections)
