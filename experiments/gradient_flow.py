"""Vanishing gradients made visible: how far back the loss reaches into the encoder, per cell.

Claim (Bengio, Simard & Frasconi 1994; Hochreiter & Schmidhuber 1997; Pascanu, Mikolov & Bengio 2013):
in a vanilla tanh RNN, ∂L/∂h_t is a product of per-step Jacobians `diag(tanh') W_hh`, so its norm falls
off geometrically with the distance from the output; the LSTM's additive cell path (and the GRU's gated
update) lets it reach much further, which is why Sutskever et al. (2014) used LSTMs for long sentences.

What is measured, per cell (vanilla `rnn`, `gru`, `lstm`; plus the vanilla RNN with orthogonal recurrent
weights, the classic remedy at initialisation), each a bottleneck encoder–decoder (Sutskever 2014: the
source reaches the decoder only through the encoder's final state, so every gradient to h_t runs through
the recurrence):

(a) ‖∂L/∂h_t‖ for every encoder step t = 0..T-1 of a batch of probe strings of one length T, against the
    distance T-1-t from the encoder's last step, at initialisation (the very parameters the run started
    from) and after training (the checkpoint the test split was scored with); L is the teacher-forced
    cross-entropy of each example's target (mean over its tokens). `h_t` is the cell's hidden output (`h`
    of the LSTM's `(c, h)`): the encoder is re-run as an explicit `lax.scan` over the cell's `apply`
    with the trained encoder parameters, adding a zero perturbation `eps_t` to `h_t` at every step, and
    ∂L/∂eps_t = ∂L/∂h_t. Norms are per example, then averaged over the batch (and over seeds in the plot).
(b) Sequence accuracy on `synthetic/copy` against source length (test split, by length bucket).

    python -m experiments.gradient_flow --quick                  # 2-5 min on 2 CPU cores (1 seed)
    python -m experiments.gradient_flow --workdir=runs/gradient_flow --seeds=3

Writes `report.md` (tables + plots `gradient_flow_init.png`, `gradient_flow_trained.png`,
`copy_accuracy_vs_length.png`), `results.csv` and, per run, `gradient_flow.json`.
"""

import functools
import math
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from experiments import study_utils
from experiments import sweep
from seq2seq_jax import cells
from seq2seq_jax import checkpointing
from seq2seq_jax import plotting
from seq2seq_jax import train
from seq2seq_jax.configs import default
from seq2seq_jax.data.vocab import EOS
from seq2seq_jax.model import DTYPES, EncoderOutput, Seq2Seq, shift_right
from seq2seq_jax.recurrent import reverse_sequences, time_mask

TITLE = "Gradient flow and copy accuracy: vanilla RNN vs GRU vs LSTM"

VARIANTS = [
    sweep.Variant("rnn", {"model.cell": "rnn"}),
    sweep.Variant("rnn_orthogonal", {"model.cell": "rnn", "model.init": "orthogonal"}),
    sweep.Variant("gru", {"model.cell": "gru"}),
    sweep.Variant("lstm", {"model.cell": "lstm"}),
]

# (length range, model, training budget): full and --quick. `quick` takes ~2 min for the 4 runs on 2 idle
# CPU cores (~5 min on a loaded machine); `full` was not timed on a CPU (4 x 3 runs of 5000 steps at up to
# 41 tokens a side; expect one to two hours on 2 cores, a few minutes per run on a GPU).
SETTINGS = {
    "full": {"data.synthetic_max_length": 40, "data.num_train": 50_000, "model.hidden_size": 128,
             "train.num_steps": 5000, "train.eval_every": 1000, "train.checkpoint_every": 1000},
    "quick": {"data.synthetic_max_length": 20, "data.num_train": 10_000, "model.hidden_size": 64,
              "train.num_steps": 1000, "train.eval_every": 0, "train.checkpoint_every": 1000},
}


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """The shared base config: a bottleneck encoder–decoder on copy, Sutskever's U(-0.08, 0.08) init."""
    config = default.get_config()
    config.model.decoder = "bottleneck"
    config.model.embedding_size = 32
    config.model.init = "uniform"  # Sutskever 2014, sec. 3.4; the rnn_orthogonal variant overrides it
    config.model.init_scale = 0.08
    config.model.forget_bias = 1.0  # LSTM only (Jozefowicz et al. 2015); the other cells have no forget gate
    config.data.dataset = "synthetic/copy"
    config.data.synthetic_min_length = 1
    config.data.synthetic_alphabet_size = 10
    config.data.num_validation = 500
    config.data.num_test = 1000
    config.data.num_buckets = 3
    config.train.batch_size = 64
    config.train.learning_rate = 3e-3  # 1e-3 barely starts to copy in 500 steps of --quick
    config.train.max_grad_norm = 5.0
    config.train.log_every = 100
    # Copy strings have no spaces, so whitespace-token metrics (token_acc, per) would see one token: use
    # characters (cer) next to whole-string accuracy.
    config.eval.metrics = ("seq_acc", "cer")
    config.eval.max_validation_examples = 500
    config.eval.num_length_buckets = 8
    # The gradient probe: a batch of random strings of one length (None = data.synthetic_max_length).
    config.gradient_flow = ml_collections.ConfigDict({"probe_length": ml_collections.config_dict.placeholder(int),
                                                      "probe_batch": 64, "probe_seed": 1234})
    return sweep.apply_overrides(config, SETTINGS["quick" if quick else "full"], variant="base")


# --- The measurement -------------------------------------------------------------------------------


def _perturb_hidden(carry, eps):
    """The carry with `eps [batch, hidden]` added to its hidden output (`h` of an LSTM's `(c, h)`)."""
    if isinstance(carry, tuple):
        c, h = carry
        return c, h + eps
    return carry + eps


def encode_perturbed(model: Seq2Seq, params, inputs, lengths, eps) -> EncoderOutput:
    """The model's encoder as an explicit `lax.scan` over its cell, with `h_t <- h_t + eps_t`.

    Args:
      inputs: `[batch, src_len]` int; lengths: `[batch]`; eps: `[batch, src_len, hidden]`, indexed by the
        step at which the encoder reads the token (so with `reverse_source`, step 0 reads the last token).
    Returns:
      The `EncoderOutput` of `Seq2Seq.encode` (equal to it when `eps` is zero); `eps` at padding steps has
      no effect. Only a one-layer unidirectional encoder is supported.
    """
    c = model.config
    if c.num_layers != 1 or c.bidirectional:
        raise ValueError("encode_perturbed needs model.num_layers=1 and model.bidirectional=False, got "
                         f"{c.num_layers} and {c.bidirectional}")
    if c.reverse_source:
        inputs = reverse_sequences(inputs, lengths)
    encoder = params["encoder"]
    x = jnp.take(encoder["embed"]["embedding"], inputs, axis=0).astype(DTYPES[c.dtype])  # [batch, src_len, emb]
    cell = cells.make_cell(c.cell, c.hidden_size, init=c.init, init_scale=c.init_scale,
                           forget_bias=c.forget_bias, dtype=DTYPES[c.dtype])
    variables = {"params": encoder["rnn"]["l0_fwd"]}
    is_real = time_mask(lengths, inputs.shape[1])  # [batch, src_len]

    def step(carry, xs):
        x_t, real_t, eps_t = xs  # [batch, emb], [batch], [batch, hidden]
        new, _ = cell.apply(variables, carry, x_t)
        new = _perturb_hidden(new, eps_t)
        keep = real_t[:, None]  # [batch, 1]
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, carry)
        return new, jnp.where(keep, cells.hidden_of(new), 0.0)

    carry = cell.initialize_carry(jax.random.key(0), x[:, 0].shape)
    # time-major for lax.scan: [src_len, batch, ...]
    final, outputs = jax.lax.scan(step, carry, (x.swapaxes(0, 1), is_real.T, eps.swapaxes(0, 1)))
    annotations = outputs.swapaxes(0, 1)  # [batch, src_len, hidden]
    if c.reverse_source:
        annotations = reverse_sequences(annotations, lengths)
    return EncoderOutput(annotations=annotations, mask=time_mask(lengths, inputs.shape[1]), finals=(final,))


def example_losses(model: Seq2Seq, params, batch, eps):
    """`[batch]` teacher-forced cross-entropy of each example, averaged over its target tokens."""
    encoded = encode_perturbed(model, params, batch["inputs"], batch["input_lengths"], eps)
    logits = model.apply({"params": params}, encoded, shift_right(batch["targets"]), method=Seq2Seq.decode)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])  # [batch, tgt_len]
    mask = time_mask(batch["target_lengths"], batch["targets"].shape[1])
    return jnp.sum(losses * mask, axis=1) / jnp.maximum(batch["target_lengths"], 1)


@functools.partial(jax.jit, static_argnums=0)
def hidden_gradients(model: Seq2Seq, params, batch):
    """`[batch, src_len, hidden]`: ∂L_b/∂h_{b,t}, t in the order the encoder reads the source.

    L = Σ_b L_b; examples do not interact, so row b of ∂L/∂eps is ∂L_b/∂h_b.
    """
    batch_size, src_len = batch["inputs"].shape
    eps = jnp.zeros((batch_size, src_len, model.config.hidden_size), jnp.float32)
    return jax.grad(lambda e: jnp.sum(example_losses(model, params, batch, e)))(eps)


def gradient_profile(model: Seq2Seq, params, batch) -> np.ndarray:
    """Mean over the batch of ‖∂L_b/∂h_t‖ at distance d = T-1-t, d = 0..T-1, for a batch of one length T."""
    lengths = np.asarray(batch["input_lengths"])
    if not np.all(lengths == lengths[0]) or lengths[0] != batch["inputs"].shape[1]:
        raise ValueError("gradient_profile needs unpadded sources of a single length")
    norms = np.linalg.norm(np.asarray(hidden_gradients(model, params, batch), np.float64), axis=-1)
    return norms.mean(axis=0)[::-1]  # [T]: index d is distance d from the encoder's last step


def probe_batch(config, source_vocab, target_vocab) -> dict:
    """`probe_batch` random strings of `probe_length` symbols of the task's alphabet, and their targets."""
    g, d = config.gradient_flow, config.data
    task = d.dataset.partition("/")[2]
    targets_of = {"copy": lambda s: s, "reverse": lambda s: s[::-1]}
    if task not in targets_of:
        raise ValueError(f"the gradient probe supports synthetic/copy and synthetic/reverse, not {d.dataset!r}")
    length = g.probe_length or d.synthetic_max_length
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz"[:d.synthetic_alphabet_size or 26]))
    rng = np.random.default_rng(g.probe_seed)
    strings = ["".join(rng.choice(alphabet, size=length)) for _ in range(g.probe_batch)]
    inputs = np.array([source_vocab.encode(s) for s in strings], np.int32)
    targets = np.array([target_vocab.encode(targets_of[task](s)) + [EOS] for s in strings], np.int32)
    if inputs.shape != (g.probe_batch, length):
        raise ValueError("the source vocabulary must map each probe symbol to one token")
    return {"inputs": inputs, "input_lengths": np.full(g.probe_batch, length, np.int32),
            "targets": targets, "target_lengths": np.full(g.probe_batch, targets.shape[1], np.int32)}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains (or resumes) one run, then measures the gradient profile at init and after training."""
    final = train.train_and_evaluate(config, workdir)
    _, model, params, source_vocab, target_vocab = train.load_trained(workdir)
    init_params = train.create_train_state(model, config).params  # the very init this run started from
    batch = probe_batch(config, source_vocab, target_vocab)
    profiles = {"init": gradient_profile(model, init_params, batch), "trained": gradient_profile(model, params, batch)}
    record = {"probe_length": int(batch["inputs"].shape[1]), "probe_batch": int(batch["inputs"].shape[0]),
              **{k: v.tolist() for k, v in profiles.items()}}
    checkpointing.save_json(f"{workdir}/gradient_flow.json", record)
    final["probe_length"] = record["probe_length"]
    for stage, norms in profiles.items():
        final[f"grad_{stage}/d0"] = float(norms[0])
        final[f"grad_{stage}/dmax"] = float(norms[-1])
        # ‖∂L/∂h‖ lost per step back, on average: log10(norm at T-1 / norm at 0) / (T-1).
        final[f"grad_{stage}/log10_per_step"] = float(np.log10(norms[-1] / norms[0]) / max(len(norms) - 1, 1)) \
            if norms[0] > 0 and norms[-1] > 0 else float("-inf")
    return final


# --- Report ------------------------------------------------------------------------------------------


def _profiles(study_dir, results) -> dict[str, dict[str, np.ndarray]]:
    """variant -> stage -> mean profile over its seeds (runs without gradient_flow.json left out)."""
    out = {}
    for variant, rs in study_utils.by_variant(results).items():
        records = [study_utils.run_json(study_dir, r, "gradient_flow.json") for r in rs]
        records = [rec for rec in records if rec]
        if records:
            out[variant] = {stage: np.mean([rec[stage] for rec in records], axis=0) for stage in ("init", "trained")}
    return out


def _by_length(study_dir, results) -> dict[str, list[list[dict]]]:
    """variant -> per seed, the test split's `by_length` buckets."""
    out = {}
    for variant, rs in study_utils.by_variant(results).items():
        tests = [study_utils.run_json(study_dir, r, "eval", "test.json") for r in rs]
        tests = [t["by_length"] for t in tests if t]
        if tests:
            out[variant] = tests
    return out


def _bucket_range(bucket: dict, longest: int) -> tuple[int, int]:
    """The source lengths `[first, last]` of a `by_length` bucket `[lo, hi)`; `hi` may be inf."""
    return int(bucket["lo"]), longest if math.isinf(bucket["hi"]) else int(bucket["hi"]) - 1


def _longest(study_dir, results) -> int:
    """The longest source of the copy data (`data.synthetic_max_length` of the runs' configs)."""
    configs = [study_utils.run_json(study_dir, r, "config.json") for r in results
               if r["status"] == "ok"]
    return max((c["data"]["synthetic_max_length"] or 20 for c in configs if c), default=20)


def make_plots(study_dir: str, results: list[dict]) -> list[str]:
    plots = []
    profiles = _profiles(study_dir, results)
    for stage, when in (("init", "at initialisation"), ("trained", "after training")):
        curves = {v: (np.arange(len(p[stage])), p[stage]) for v, p in profiles.items()}
        if curves:
            plots.append(plotting.plot_gradient_flow(curves, f"{study_dir}/gradient_flow_{stage}.png",
                                                     title=f"‖∂L/∂h_t‖ {when} (mean over batch and seeds)"))
    curves, longest = {}, _longest(study_dir, results)
    for variant, seeds in _by_length(study_dir, results).items():
        if len({len(s) for s in seeds}) != 1:
            continue  # bucket edges differ between seeds; the table still shows each
        mids = [sum(_bucket_range(b, longest)) / 2 for b in seeds[0]]
        values = np.array([[b["seq_acc"] for b in s] for s in seeds])  # [seeds, buckets]
        curves[variant] = (mids, values.mean(0), values.std(0, ddof=1) if len(seeds) > 1 else None)
    if curves:
        plots.append(plotting.plot_metric_vs_length(curves, f"{study_dir}/copy_accuracy_vs_length.png",
                                                    xlabel="source length (bucket centre)",
                                                    ylabel="test sequence accuracy",
                                                    title="Copy task: sequence accuracy vs length"))
    return plots


def _label(bucket: dict, longest: int) -> str:
    first, last = _bucket_range(bucket, longest)
    return str(first) if first == last else f"{first}–{last}"


def make_sections(study_dir: str, results: list[dict]) -> list[str]:
    sections = []
    profiles = _profiles(study_dir, results)
    if profiles:
        length = max(len(p["init"]) for p in profiles.values())
        distances = sorted({d for d in (0, 1, 2, 5, 10, 20, 30, length - 1) if d < length})
        rows = [[f"`{v}`", stage, *(study_utils.fmt(p[stage][d], 3) if d < len(p[stage]) else "—"
                                    for d in distances)]
                for v, p in profiles.items() for stage in ("init", "trained")]
        sections.append(
            "## Gradient norm by distance from the output\n\n"
            f"‖∂L/∂h_t‖ for probe strings of length T = {length}, at distance d = T−1−t from the encoder's "
            "last step; mean over the probe batch, then over seeds (from each run's `gradient_flow.json`).\n\n"
            + study_utils.markdown_table(["variant", "stage", *(f"d={d}" for d in distances)], rows))
    by_length = _by_length(study_dir, results)
    if by_length:
        longest, rows = _longest(study_dir, results), []
        for variant, seeds in by_length.items():
            for k, buckets in enumerate(seeds):
                rows.append([f"`{variant}`", k + 1, *(f"{_label(b, longest)}: {b['seq_acc']:.3f}"
                                                      for b in buckets)])
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        sections.append(
            "## Copy accuracy by source length\n\n"
            "Test sequence accuracy per source-length bucket (`eval/test.json` → `by_length`), one row per "
            "seed; each cell is `lengths: accuracy`.\n\n"
            + study_utils.markdown_table(["variant", "seed #", *(f"bucket {i + 1}" for i in range(width - 2))],
                                         rows))
    return sections


DESCRIPTION = """
Bottleneck encoder–decoders (Sutskever et al. 2014) on `synthetic/copy`, one per recurrent cell, all with
Sutskever's U(−0.08, 0.08) initialisation (and LSTM forget bias 1.0) except `rnn_orthogonal` (orthogonal
recurrent weights). Claim under test: the vanilla RNN's ‖∂L/∂h_t‖ vanishes geometrically with the distance
from the output, the LSTM's and GRU's much less, and copy accuracy on long strings follows.
`grad_<stage>/log10_per_step` is log10(‖∂L/∂h‖ at distance T−1 / at distance 0) / (T−1): the orders of
magnitude lost per step back (0 = no decay).
"""

METRIC_KEYS = ["test/seq_acc", "test/cer", "grad_init/log10_per_step", "grad_trained/log10_per_step"]


def main(argv, config_overrides: dict | None = None, variants=None) -> int:
    """`config_overrides` (dotted keys) go on top of the chosen setting and `variants` (a subset of
    `VARIANTS`) replaces the list: both for tests' smaller budgets."""
    args = study_utils.parse_args(argv, default_workdir="runs/gradient_flow")

    def make_config():
        return sweep.apply_overrides(get_config(args.quick), config_overrides or {}, variant="base")

    return study_utils.run_study(
        args, module="experiments.gradient_flow", variants=variants or VARIANTS, make_config=make_config, run_fn=run,
        title=TITLE, description=DESCRIPTION, metric_keys=METRIC_KEYS, make_plots=make_plots,
        make_sections=make_sections)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
