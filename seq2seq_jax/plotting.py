"""Figures for the studies: attention maps, metric-vs-length curves, training curves, gradient flow, bars.

Each function draws on its own `matplotlib.figure.Figure` (Agg canvas, no pyplot state, safe in scripts
and threads), saves a PNG at `path`, creating its folder, and returns the path. Non-finite or empty
inputs raise ValueError rather than produce a silently blank figure.
"""

from collections.abc import Mapping, Sequence
import os
import textwrap

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

DPI = 100


def _finite(name: str, values) -> np.ndarray:
    """`values` as a non-empty float array; ValueError naming `name` if it is empty or non-finite."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _nonempty(name: str, mapping: Mapping) -> None:
    if not mapping:
        raise ValueError(f"{name} is empty: nothing to plot")


def _title(ax, title: str | None) -> None:
    """A title wrapped to the axes' width, so a long one is not clipped at the figure's edge."""
    if title:
        width = max(20, int(ax.figure.get_figwidth() * 10))  # ~10 characters per inch at the default size
        ax.set_title("\n".join(textwrap.wrap(title, width)))


def _save(fig: Figure, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def plot_attention(
    weights, source_tokens: Sequence[str], target_tokens: Sequence[str], path: str, title: str | None = None
) -> str:
    """Heatmap of attention weights `[tgt_len, src_len]`, as in Bahdanau et al. (2014), fig. 3.

    Source tokens run along the top (x), output tokens down the side (y); grey scale from 0 (black) to
    1 (white), with a colorbar. The figure's size grows with the number of tokens, so each cell stays about square.
    """
    weights = _finite("weights", weights)
    expected = (len(target_tokens), len(source_tokens))
    if weights.shape != expected:
        raise ValueError(
            f"weights has shape {weights.shape}, expected [len(target_tokens), len(source_tokens)] {expected}"
        )
    cell = 0.35  # inches per token
    fig = Figure(figsize=(2.5 + cell * expected[1], 1.5 + cell * expected[0]), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="gray", vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="attention weight", shrink=0.8)
    ax.set_xticks(range(expected[1]), source_tokens, rotation=90)
    ax.set_yticks(range(expected[0]), target_tokens)
    ax.xaxis.tick_top()
    _title(ax, title)
    return _save(fig, path)


def plot_metric_vs_length(
    curves: Mapping[str, tuple], path: str, xlabel: str, ylabel: str, title: str | None = None
) -> str:
    """One line per label from `(x_values, y_values, band)`, as in Bahdanau et al. (2014), fig. 2; `band` is
    None or `(low_values, high_values)` (e.g. the range of the seeds), drawn as a shaded band."""
    _nonempty("curves", curves)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for label, (x, y, band) in curves.items():
        x, y = _finite(f"{label}: x_values", x), _finite(f"{label}: y_values", y)
        if x.shape != y.shape:
            raise ValueError(f"{label}: x_values has {x.size} points, y_values {y.size}")
        line, = ax.plot(x, y, label=label, marker="o")
        if band is not None:
            low, high = (_finite(f"{label}: band", b) for b in band)
            if low.shape != x.shape or high.shape != x.shape:
                raise ValueError(f"{label}: band needs {x.size} low and high values")
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    _title(ax, title)
    return _save(fig, path)


def plot_training_curves(
    runs: Mapping[str, Sequence[Sequence[Mapping]]], key: str, path: str, log_y: bool = False
) -> str:
    """`key` against `step` for every seed of each label: the mean over seeds as a line, the range of the
    seeds as a band (one seed: its line alone). `runs` maps a label to one list of `metrics.jsonl` rows per
    seed; steps logged by only some seeds are left out; a resumed run's later row of a step wins.
    """
    _nonempty("runs", runs)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for label, seeds in runs.items():
        by_step = [{int(row["step"]): row[key] for row in rows if key in row} for rows in seeds]
        by_step = [b for b in by_step if b]
        if not by_step:
            continue
        steps = sorted(set.intersection(*(set(b) for b in by_step)))
        values = _finite(f"{label}: {key}", [[b[s] for s in steps] for b in by_step])  # [seeds, steps]
        line, = ax.plot(steps, values.mean(0), label=f"{label} (n={len(by_step)})")
        if len(by_step) > 1:
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.25, lw=0)
    if not ax.lines:
        raise ValueError(f"no row of any run has the key {key!r}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.legend()
    ax.grid(alpha=0.3)
    _title(ax, f"{key}: mean over seeds, band = min–max of the seeds")
    return _save(fig, path)


def plot_gradient_flow(curves: Mapping[str, tuple], path: str, title: str | None = None) -> str:
    """‖∂L/∂h_t‖ against distance from the output, log y axis; a line per `label: (distances, norms)`, or
    `(distances, norms, (low, high))` to shade a band (e.g. the range over seeds) around the line.

    Norms must be >= 0; exact zeros (underflow) cannot be drawn on a log axis and are left out.
    """
    _nonempty("curves", curves)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for label, (distances, norms, *band) in curves.items():
        distances, norms = _finite(f"{label}: distances", distances), _finite(f"{label}: norms", norms)
        if distances.shape != norms.shape:
            raise ValueError(f"{label}: distances has {distances.size} points, norms {norms.size}")
        if np.any(norms < 0):
            raise ValueError(f"{label}: norms must be >= 0")
        line, = ax.plot(distances, norms, label=label)
        if band and band[0] is not None:
            low, high = (_finite(f"{label}: band", b) for b in band[0])
            ax.fill_between(distances, low, high, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("distance from the output (time steps)")
    ax.set_ylabel(r"$\|\partial L / \partial h_t\|$")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    _title(ax, title)
    return _save(fig, path)


def plot_bars(
    table: Mapping[str, tuple[float, float]], path: str, ylabel: str, title: str | None = None
) -> str:
    """One bar per label at `mean` with a ±`std` error bar, for ablation summaries.

    When the bars differ by little compared with their height, the y axis starts near the lowest bar
    (not at 0, which would hide the differences) and the axis label says so.
    """
    _nonempty("table", table)
    labels = list(table)
    values = _finite("table", [table[label] for label in labels])  # [num_labels, 2]: mean, std
    if values.shape != (len(labels), 2):
        raise ValueError("table values must be (mean, std) pairs")
    fig = Figure(figsize=(max(4.0, 1.0 + 0.8 * len(labels)), 4), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(len(labels)), values[:, 0], yerr=values[:, 1], capsize=4, color="0.6", edgecolor="0.2")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    low, high = (values[:, 0] - values[:, 1]).min(), (values[:, 0] + values[:, 1]).max()
    if low > 0 and high - low < 0.5 * high:
        margin = 0.1 * (high - low) or 0.05 * high
        ax.set_ylim(low - margin, high + margin)
        ylabel = f"{ylabel} (axis does not start at 0)"
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    _title(ax, title)
    return _save(fig, path)
