"""Plots: each draws the series, labels and values it is given (read back from the figure), writes a readable
PNG, and refuses empty or non-finite data."""

import math
import os

import matplotlib.image
import numpy as np
import pytest

from seq2seq_jax import plotting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path) -> np.ndarray:
    """The image at `path` after checking it is a non-empty PNG; [height, width, channels]."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    return image


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting functions draw, kept instead of saved: assert what they show."""
    figures = []
    monkeypatch.setattr(plotting, "_save", lambda fig, path: figures.append(fig) or path)
    return figures


def test_attention_heatmap_is_as_wide_as_the_source_and_as_tall_as_the_output(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.dirichlet(np.ones(12), size=3)  # [tgt_len=3, src_len=12], rows sum to 1
    src = [f"s{j}" for j in range(12)]
    tgt = ["t0", "t1", "t2"]

    path = plotting.plot_attention(wide, src, tgt, str(tmp_path / "wide.png"), title="alignment")
    height, width, _ = read_png(path).shape
    assert path == str(tmp_path / "wide.png")
    assert width > 1.5 * height

    height, width, _ = read_png(plotting.plot_attention(wide.T, tgt, src, str(tmp_path / "tall.png"))).shape
    assert height > 1.5 * width


def test_attention_rejects_mismatched_tokens_and_nan(tmp_path):
    weights = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        plotting.plot_attention(weights, ["a", "b"], ["x", "y", "z"], str(tmp_path / "a.png"))
    weights[1, 1] = np.nan
    with pytest.raises(ValueError, match="weights contains NaN"):
        plotting.plot_attention(weights, ["a", "b", "c"], ["x", "y"], str(tmp_path / "a.png"))
    with pytest.raises(ValueError, match="weights is empty"):
        plotting.plot_attention(np.zeros((0, 0)), [], [], str(tmp_path / "a.png"))


def test_metric_vs_length_draws_a_line_per_model_and_the_seeds_band(tmp_path, drawn):
    curves = {
        "RNNsearch-50": ([10, 20, 30, 40], [28.0, 27.5, 27.0, 26.0], ([27.0, 27.0, 26.0, 25.0], [29.0] * 4)),
        "RNNenc-50": ([10, 20, 30, 40], [25.0, 22.0, 17.0, 12.0], None),
    }
    plotting.plot_metric_vs_length(curves, str(tmp_path / "bleu.png"), "length (words)", "BLEU", "t")
    [ax] = drawn[0].axes
    assert [line.get_label() for line in ax.lines] == ["RNNsearch-50", "RNNenc-50"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [25.0, 22.0, 17.0, 12.0])
    [band] = ax.collections  # only the model with a band has one, spanning its low..high values
    y = band.get_paths()[0].vertices[:, 1]
    assert (y.min(), y.max()) == (25.0, 29.0)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("length (words)", "BLEU")


def test_metric_vs_length_refuses_what_it_cannot_draw(tmp_path):
    path = str(tmp_path / "x.png")
    with pytest.raises(ValueError, match="RNNenc-50: y_values contains NaN"):
        plotting.plot_metric_vs_length({"RNNenc-50": ([10, 20], [1.0, math.nan], None)}, path, "x", "y", "t")
    with pytest.raises(ValueError, match="x_values has 3 points, y_values 2"):
        plotting.plot_metric_vs_length({"a": ([1, 2, 3], [1.0, 2.0], None)}, path, "", "")
    with pytest.raises(ValueError, match="a: band needs 2 low and high values"):
        plotting.plot_metric_vs_length({"a": ([1, 2], [1.0, 2.0], ([1.0], [2.0]))}, path, "", "")
    with pytest.raises(ValueError, match="curves is empty"):
        plotting.plot_metric_vs_length({}, path, "x", "y", "t")
    assert not os.path.exists(path)


def test_training_curves_are_the_mean_over_seeds_with_their_range(tmp_path, drawn):
    run = [
        {"step": 100, "train_loss": 3.0},
        {"step": 100, "eval_bleu": 1.0},  # an eval row: no train_loss, skipped
        {"step": 200, "train_loss": 2.0},
        {"step": 300, "train_loss": 1.5},
        {"step": 200, "train_loss": 2.1},  # logged again after a resume: the later row wins
    ]
    other_seed = [{"step": s, "train_loss": 1.0} for s in (100, 200)]  # step 300 missing: left out
    plotting.plot_training_curves({"lstm": [run, other_seed], "rnn": [run[:3]]}, "train_loss",
                                  str(tmp_path / "l.png"), log_y=True)
    [ax] = drawn[0].axes
    assert [line.get_label() for line in ax.lines] == ["lstm (n=2)", "rnn (n=1)"]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [100, 200])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [2.0, 1.55])  # mean of (3.0, 1.0) and (2.1, 1.0)
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [3.0, 2.0])
    [band] = ax.collections  # the seeds' range, for the label with two seeds only
    assert (band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()) == (1.0, 3.0)
    assert (ax.get_yscale(), ax.get_xlabel(), ax.get_ylabel()) == ("log", "step", "train_loss")
    with pytest.raises(ValueError, match="no row of any run has the key 'eval_loss'"):
        plotting.plot_training_curves({"lstm": [run]}, "eval_loss", str(tmp_path / "l.png"))
    with pytest.raises(ValueError, match="rnn: train_loss contains NaN"):
        nan_run = {"rnn": [[{"step": 1, "train_loss": math.nan}]]}
        plotting.plot_training_curves(nan_run, "train_loss", str(tmp_path / "n.png"))


def test_gradient_flow_on_a_log_axis_leaves_out_underflowed_zeros(tmp_path, drawn):
    distances = np.arange(50)
    curves = {"rnn": (distances, 0.8**distances),
              "lstm": (distances, np.full(50, 0.5), (np.full(50, 0.4), np.ones(50)))}
    curves["rnn"][1][-1] = 0.0  # underflow: masked on the log axis, not an error
    plotting.plot_gradient_flow(curves, str(tmp_path / "g.png"), "gradient flow")
    [ax] = drawn[0].axes
    assert [line.get_label() for line in ax.lines] == ["rnn", "lstm"]
    np.testing.assert_allclose(ax.lines[0].get_ydata()[:3], [1.0, 0.8, 0.64])
    assert ax.get_yscale() == "log" and ax.get_title() == "gradient flow"
    assert ax.get_xlabel() == "distance from the output (time steps)"
    [band] = ax.collections
    assert (band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()) == (0.4, 1.0)
    with pytest.raises(ValueError, match="rnn: norms must be >= 0"):
        plotting.plot_gradient_flow({"rnn": ([0, 1], [1.0, -1.0])}, str(tmp_path / "g.png"))
    with pytest.raises(ValueError, match="rnn: norms contains NaN"):
        plotting.plot_gradient_flow({"rnn": ([0, 1], [1.0, math.nan])}, str(tmp_path / "g.png"))


def test_bars_show_each_mean_with_its_std_and_say_when_the_axis_does_not_start_at_0(tmp_path, drawn):
    table = {"bottleneck": (0.41, 0.02), "attention": (0.87, 0.01), "attention, no reverse": (0.85, 0.0)}
    plotting.plot_bars(table, str(tmp_path / "b.png"), ylabel="sequence accuracy", title="ablation")
    [ax] = drawn[0].axes
    assert [tick.get_text() for tick in ax.get_xticklabels()] == list(table)
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], [0.41, 0.87, 0.85])
    assert ax.get_ylabel() == "sequence accuracy" and ax.get_ylim()[0] == 0  # far apart: the axis starts at 0
    plotting.plot_bars({"a": (0.95, 0.01), "b": (0.97, 0.01)}, str(tmp_path / "c.png"), ylabel="accuracy")
    [ax] = drawn[1].axes
    assert ax.get_ylabel() == "accuracy (axis does not start at 0)" and ax.get_ylim()[0] > 0.9
    with pytest.raises(ValueError, match="table contains NaN"):
        plotting.plot_bars({"a": (math.nan, 0.0)}, str(tmp_path / "b.png"), "y")
    with pytest.raises(ValueError, match="table is empty"):
        plotting.plot_bars({}, str(tmp_path / "b.png"), "y")


def test_each_plot_writes_a_png(tmp_path):
    """The real save path: a PNG of the figure's size at 100 dpi."""
    path = plotting.plot_bars({"a": (1.0, 0.1)}, str(tmp_path / "b.png"), "y")
    assert read_png(path).shape[:2] == (400, 400)
    path = plotting.plot_gradient_flow({"rnn": ([0, 1], [1.0, 0.5])}, str(tmp_path / "g.png"))
    assert read_png(path).shape[:2] == (400, 600)
