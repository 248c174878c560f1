"""Do vanilla RNNs forget long inputs? Vanilla RNN vs GRU vs LSTM, bottleneck and attention decoders.

    python -m experiments.cell_ablation                  # quick: 6 variants x 3 seeds, ~8 min on 2 cores
    python -m experiments.cell_ablation --setting=cpu    # the README's setting
    python -m experiments.cell_ablation --help           # the question, settings and claims
"""

from experiments import claims
from experiments import study
from experiments import sweep

STUDY = study.Study(
    name="cell_ablation",
    title="Recurrent cell ablation: vanilla RNN vs GRU vs LSTM, bottleneck and attention",
    question="Does a vanilla RNN forget long inputs that gated cells (GRU, LSTM) carry? (Bengio et al. 1994; "
             "Hochreiter & Schmidhuber 1997)",
    description="""
A plain tanh RNN has trouble learning long-range dependencies (vanishing gradients), which is why Sutskever
et al. (2014) use the LSTM and Bahdanau et al. (2014) a gated unit. We expect the vanilla RNN to lose most
on long sources with the bottleneck decoder, where everything must survive to the last encoder step, and
attention to narrow the gap. Six variants: {rnn, gru, lstm} x {bottleneck, attention}, same sizes; the
LSTM's forget-gate bias starts at 1 (Jozefowicz et al. 2015). Task: English number names -> digits
(`seq2seq_jax/configs/number_digits.py`); in the gpu setting sources are characters (up to 110 steps). A
run that diverges (non-finite loss) is reported as failed, with its error, and the sweep goes on.
""",
    config="number_digits.py",
    variants=[
        sweep.Variant(f"{cell}_{decoder}", {"model.cell": cell, "model.decoder": decoder})
        for cell in ("rnn", "gru", "lstm")
        for decoder in ("bottleneck", "attention")
    ],
    settings={
        "quick": study.Setting(3, note="~6 min on 2 idle CPU cores (18 runs of ~20 s)"),
        "cpu": study.Setting(3, note="~10 min on 2 idle CPU cores (18 runs of ~35 s)"),
        "gpu": study.Setting(3, note="character sources (3-110 steps), LSTM 256, 20k steps"),
    },
    claims=[
        claims.Claim("A GRU carries long sources through the fixed vector better than a vanilla RNN "
                    "(test seq_acc, longest bucket)", better="gru_bottleneck", worse="rnn_bottleneck",
                    metric="test/seq_acc", bucket=-1,
                    paper="Bengio et al. 1994; Hochreiter & Schmidhuber 1997 (qualitative)"),
        claims.Claim("An LSTM carries long sources through the fixed vector better than a vanilla RNN "
                    "(test seq_acc, longest bucket)", better="lstm_bottleneck", worse="rnn_bottleneck",
                    metric="test/seq_acc", bucket=-1,
                    paper="Bengio et al. 1994; Hochreiter & Schmidhuber 1997 (qualitative)"),
    ],
)


def main(argv=None) -> int:
    return study.main(STUDY, argv)


if __name__ == "__main__":
    raise SystemExit(main())
