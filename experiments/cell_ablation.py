"""Do vanilla RNNs forget long inputs? Vanilla RNN vs GRU vs LSTM, bottleneck and attention decoders.

Claim tested: a plain tanh RNN has trouble learning long-range dependencies (vanishing gradients; Bengio
et al. 1994, Hochreiter & Schmidhuber 1997), which is why Sutskever et al. (2014) use the LSTM and Bahdanau
et al. (2014) a gated unit. We expect the vanilla RNN to lose most on long sources with the bottleneck
decoder, where everything must survive to the last step, and attention to narrow (not close) the gap.
Six variants: {rnn, gru, lstm} x {bottleneck, attention}, same embedding and hidden sizes.

Task: English number names -> digits (see `experiments/common.py`).

    python -m experiments.cell_ablation                 # quick: 6 variants x 1 seed on CPU, ~5 min
    python -m experiments.cell_ablation --full          # GPU setting, 3 seeds
    python -m experiments.cell_ablation --full --list   # one command per run

Writes report.md (overall and by-length tables), results.jsonl, results.csv and plots/ under --workdir
(default runs/cell_ablation). A run that diverges (non-finite loss, most likely the vanilla RNN) is
reported as failed, with its error, and the sweep goes on.
"""

from collections.abc import Mapping, Sequence

from experiments import common
from experiments import sweep

VARIANTS = [
    sweep.Variant(f"{cell}_{decoder}", {"model.cell": cell, "model.decoder": decoder})
    for cell in ("rnn", "gru", "lstm")
    for decoder in ("bottleneck", "attention")
]

STUDY = common.Study(
    module="experiments.cell_ablation",
    title="Recurrent cell ablation: vanilla RNN vs GRU vs LSTM, bottleneck and attention",
    description=common.description(__doc__, 2),
    variants=VARIANTS,
    num_steps=(700, 20_000),
    seeds=(1, 3),
)


def main(argv: Sequence[str] | None = None, *, overrides: Mapping | None = None) -> int:
    return common.main(argv, spec=STUDY, overrides=overrides)


if __name__ == "__main__":
    raise SystemExit(main())
