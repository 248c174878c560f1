"""A study's report: `report.md` (claims, summary, results table, plots, sections), `results.csv`, `claims.json`
and the plots (`seq2seq_jax.plotting`), generated from the runs' files alone, so regenerating it is byte-identical.
"""

from collections.abc import Callable, Mapping, Sequence
import csv
import io
import json
import math
import os
import statistics

import ml_collections

from experiments import claims as claims_lib
from experiments import sweep
from seq2seq_jax import cli
from seq2seq_jax import files
from seq2seq_jax import inference
from seq2seq_jax import logger
from seq2seq_jax import plotting
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.data import vocab as vocab_lib


# --- Reading the runs' test metrics by source length ---------------------------------------------------


def _bucket_label(lo: float, hi: float) -> str:
    """Integer lengths in [lo, hi): '≥ 11', '7–10' or '6'."""
    if math.isinf(hi):
        return f"≥ {lo:g}"
    return f"{lo:g}" if hi - 1 <= lo else f"{lo:g}–{hi - 1:g}"


def longest_source(study_dir: str, results: Sequence[Mapping]) -> int | None:
    """The longest test source in the by-length unit (the end of the last, open length bucket), from the
    first ok run's `eval/test_predictions.tsv` and source vocabulary."""
    for r in sweep.ok_results(results):
        workdir = sweep.run_workdir(study_dir, r["run_id"])
        config = sweep.run_json(study_dir, r, "config.json")
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
    for r in sweep.ok_results(results):
        saved = sweep.run_json(study_dir, r, "eval", "test.json")
        if saved is not None:
            return saved.get("length_unit", "tokens")
    return "tokens"


def by_length(study_dir: str, results: Sequence[Mapping], metric: str) -> tuple[list[dict], dict]:
    """Test `metric` per source-length bucket, over each variant's ok seeds.

    Returns `(buckets, table)`: buckets `[{'lo', 'hi', 'count', 'label'}]` sorted by `lo`, and table
    `{variant: [list of per-seed values per bucket]}` (an empty list where no seed has the bucket).
    """
    values, buckets = {}, {}
    for r in sweep.ok_results(results):
        saved = sweep.run_json(study_dir, r, "eval", "test.json")
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


# --- Tables -------------------------------------------------------------------------------------------


def summarize(results: Sequence[Mapping], metric_keys: Sequence[str]) -> list[dict]:
    """Per variant, in order of first appearance: seed counts and mean / std / n of each metric over ok seeds.

    std is the sample standard deviation (ddof=1) when a metric has two or more values, else None; a metric
    no ok seed reported has mean None and n 0.
    Rows: {"variant", "overrides", "n_ok", "n_failed", "mean": {key: ...}, "std": {key: ...}, "n": {key: ...}}.
    """
    rows = {}
    for r in results:
        row = rows.setdefault(r["variant"], {"variant": r["variant"], "overrides": r["overrides"], "n_ok": 0,
                                             "n_failed": 0, "values": {k: [] for k in metric_keys}})
        if r["status"] == "ok":
            row["n_ok"] += 1
            for k in metric_keys:
                if isinstance(r["metrics"].get(k), (int, float)):
                    row["values"][k].append(r["metrics"][k])
        else:
            row["n_failed"] += 1
    for row in rows.values():
        values = row.pop("values")
        row["mean"] = {k: statistics.fmean(v) if v else None for k, v in values.items()}
        row["std"] = {k: statistics.stdev(v) if len(v) > 1 else None for k, v in values.items()}
        row["n"] = {k: len(v) for k, v in values.items()}
    return list(rows.values())


def cell(mean: float | None, std: float | None, n: int) -> str:
    """A table cell: `mean ± std (n=k)`; one value alone as `mean (n=1)` (no ±: there is no spread); '—'."""
    if mean is None or n == 0:
        return "—"
    return f"{mean:.4g} (n=1)" if n == 1 or std is None else f"{mean:.4g} ± {std:.2g} (n={n})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def claims_section(claims: Sequence[Mapping], setting: str) -> str:
    rows = []
    for c in claims:
        interval = "—" if c["low"] is None else f"[{claims_lib.number(c['low'])}, {claims_lib.number(c['high'])}]"
        rows.append([c["claim"], f"`{c['quantity']}`", claims_lib.number(c["estimate"]), interval, c["n"], c["method"],
                     f"**{c['verdict']}**"])
    return ("## Claims\n\n"
            f"Setting `{setting}`. Each claim is a difference expected to be > 0, computed per seed from the "
            "runs below: mean over seeds, 95% interval, n = seeds with both variants finished. `reproduced`: "
            "the interval lies above 0; `not reproduced`: below 0; `inconclusive`: it contains 0 (or no "
            "interval: one seed of a metric without per-example outcomes). Also in `claims.json`.\n\n"
            + markdown_table(["claim", "quantity", "estimate", "95% interval", "n", "method", "verdict"],
                                   rows)
            + "".join(f"\n\n**{c['claim']}: {c['verdict']}.** Why: {c['why']}" for c in claims if c.get("why")))


# --- Sections and plots -------------------------------------------------------------------------------


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
        rows = [[b["label"], b["count"], *(cell(*_mean_std(column[j])) for column in table.values())]
                for j, b in enumerate(buckets)]
        lines += ["", f"### {metric}", "",
                  markdown_table(["source length", "test examples", *(f"`{v}`" for v in table)], rows)]
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
    rows = summarize(results, [f"test/{metric}"])
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
    for variant, rs in sweep.by_variant(results).items():
        seeds = [logger.read_metrics(sweep.run_workdir(study_dir, r["run_id"])) for r in rs]
        seeds = [rows for rows in seeds if any("train_loss" in row for row in rows)]
        if seeds:
            runs[variant] = seeds
    if not runs:
        return None
    return plotting.plot_training_curves(runs, "train_loss",
                                                    os.path.join(study_dir, "plots", "train_loss.png"), log_y=True)


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
    config, model, params, source_vocab, target_vocab = workdir_lib.load_trained(workdir)
    if pick is None:
        pick = lambda texts, n: spread_by_length(texts, n, lambda s: len(source_vocab.encode(s)))  # noqa: E731
    chosen = [sources[i] for i in pick(sources, k)]
    outputs = inference.translate(model, params, source_vocab, target_vocab, chosen, config.eval,
                                  with_target_ids=True)
    paths = []
    for j, (hyp, weights, source_ids, target_ids) in enumerate(outputs):
        name = f"{run_id.replace('/', '_')}_{j}.png"
        source_labels = cli.token_labels(source_vocab, source_ids, chosen[j])[: len(source_ids)]
        paths.append(plotting.plot_attention(weights, source_labels, cli.token_labels(target_vocab, target_ids),
                                             os.path.join(study_dir, "plots", "attention", name),
                                             title=f"{run_id} → {hyp}"))
    return paths


def make_plots(spec, study_dir: str, results: Sequence[Mapping]) -> list[str]:
    """A `study.Study`'s plots: by-length curves, the bar chart, training loss, attention maps and the
    study's own plots."""
    paths = [plot_by_length(study_dir, results, m) for m in spec.length_metrics]
    paths += [plot_overall(study_dir, results, spec.bar_metric) if spec.bar_metric else None,
              plot_training_loss(study_dir, results)]
    for variant in spec.heatmaps:
        done = sorted((r for r in sweep.ok_results(results) if r["variant"] == variant), key=lambda r: r["seed"])
        if done:
            paths += attention_heatmaps(study_dir, done[0]["run_id"], spec.heatmap_count, spec.heatmap_pick)
    if spec.plots:
        paths += spec.plots(study_dir, list(results))
    return [p for p in paths if p]


# --- Writing ------------------------------------------------------------------------------------------


def _report_markdown(study_dir, title, description, results, metric_keys, plots, head_sections,
                     extra_sections) -> str:
    summary = summarize(results, metric_keys)
    lines = [f"# {title}", "", description.strip()]
    for section in head_sections:
        lines += ["", section.strip()]
    rows = [[f"`{row['variant']}`", row["n_ok"], row["n_failed"],
             *(cell(row["mean"][k], row["std"][k], row["n"][k]) for k in metric_keys)] for row in summary]
    lines += ["", "## Results", "",
              f"{len(results)} runs. Each cell: mean ± sample standard deviation (ddof=1) over the seeds that "
              "finished, with their number n; a single seed shows its value alone.", "",
              markdown_table(["variant", "seeds ok", "seeds failed", *metric_keys], rows)]
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


def write(
    study_dir: str,
    title: str,
    description: str,
    results: Sequence[Mapping],
    metric_keys: Sequence[str],
    plots: Sequence[str] = (),
    extra_sections: Sequence[str] = (),
    head_sections: Sequence[str] = (),
) -> str:
    """Writes `report.md` (head sections, summary table, variants, failed runs, plots, extra sections) and
    `results.csv` (one row per run, metrics flattened into columns, wall times included); returns the
    report's path.

    The report depends only on the arguments (no timestamps, no wall times), so the same results give a
    byte-identical report, however often the runs were interrupted and resumed. `plots` are image paths,
    linked relative to `study_dir`; sections are markdown, put before the results or after the plots.
    """
    report = os.path.join(study_dir, "report.md")
    files.write_atomic(report, _report_markdown(study_dir, title, description, results, metric_keys, plots,
                                           head_sections, extra_sections))
    files.write_atomic(os.path.join(study_dir, "results.csv"), _results_csv(results))
    return report


def write_report(spec, study_dir: str, setting: str, results: Sequence[Mapping], setup: str) -> str:
    """A `study.Study`'s whole report from its finished runs alone: `claims.json`, `summary.md`, then
    `report.md` (claims and summary first; `setup` is the last section) and `results.csv`."""
    claims = claims_lib.evaluate_claims(spec.claims, study_dir, results)
    files.save_json(os.path.join(study_dir, "claims.json"),
                            [{**c, "study": spec.name, "setting": setting} for c in claims])
    plots = make_plots(spec, study_dir, results)
    sections = [by_length_section(study_dir, results, spec.length_metrics)] if spec.length_metrics else []
    sections += list(spec.sections(study_dir, list(results))) if spec.sections else []
    sections.append(setup)
    head = [claims_section(claims, setting)] if claims else []
    if spec.summary:
        head.append(spec.summary(study_dir, list(results)))
        files.write_atomic(os.path.join(study_dir, "summary.md"), head[-1] + "\n")
    return write(study_dir, spec.title, f"{spec.question}\n\n{spec.description.strip()}", results, spec.metric_keys,
                 plots, sections, head_sections=head)
