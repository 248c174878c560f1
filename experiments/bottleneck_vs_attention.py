"""Does a fixed-length vector limit an encoder–decoder on long inputs? (Bahdanau et al. 2014, fig. 2)

    python -m experiments.bottleneck_vs_attention                   # quick: 2 variants x 3 seeds, ~3 min on 2 cores
    python -m experiments.bottleneck_vs_attention --setting=cpu     # the README's setting
    python -m experiments.bottleneck_vs_attention --setting=gpu --list   # one command per run, for a scheduler
    python -m experiments.bottleneck_vs_attention --help            # the question, settings and claims
"""

from experiments import claims
from experiments import study
from experiments import sweep

STUDY = study.Study(
    name="bottleneck_vs_attention",
    title="Fixed-vector bottleneck vs additive attention, by source length",
    question="Does a fixed-length vector limit an encoder–decoder on long inputs, where attention does not? "
             "(Bahdanau, Cho & Bengio 2014, sec. 1 and fig. 2)",
    description="""
"A potential issue with this encoder–decoder approach is that a neural network needs to be able to compress
all the necessary information of a source sentence into a fixed-length vector ... the performance of a
basic encoder–decoder deteriorates rapidly as the length of an input sentence increases" (Bahdanau et al.
2014; the bottleneck model is Sutskever et al. 2014's). Two models of equal size (same cell, embeddings and
hidden size) differ only in the decoder: `bottleneck` starts from the encoder's final state and sees nothing
else of the source; `attention` uses Bahdanau's additive attention over all encoder states at every step.

Task: English number names -> digits (`seq2seq_jax/configs/number_digits.py`): sources of 1-14 words
(3-110 characters in the gpu setting), outputs of at most 9 digits, so the comparison is about carrying the
source, not about generating long outputs; the first digit depends on the first words, which the bottleneck
must keep to the end of the sentence.
""",
    config="number_digits.py",
    variants=[
        sweep.Variant("bottleneck", {"model.decoder": "bottleneck"}),
        sweep.Variant("attention", {"model.decoder": "attention", "model.attention": "additive"}),
    ],
    settings={
        "quick": study.Setting(3, note="~2-3 min on 2 idle CPU cores (6 runs of ~20 s)"),
        "cpu": study.Setting(3, note="~4 min on 2 idle CPU cores (6 runs of ~35 s)"),
        "gpu": study.Setting(3, note="character sources, LSTM 256, 20k steps"),
    },
    claims=[
        claims.Claim("Attention beats the fixed vector on the longest sources (test seq_acc, longest bucket)",
                    better="attention", worse="bottleneck", metric="test/seq_acc", bucket=-1,
                    paper="Bahdanau et al. 2014, table 1: RNNsearch-50 26.75 vs RNNencdec-50 17.82 BLEU (WMT'14 "
                          "en→fr); fig. 2: the gap grows with sentence length"),
        claims.Claim("Attention beats the fixed vector overall (test seq_acc)",
                    better="attention", worse="bottleneck", metric="test/seq_acc"),
    ],
    length_metrics=("seq_acc", "chrf"),
    heatmaps=("attention",),
    heatmap_count=4,
)


def main(argv=None) -> int:
    return study.main(STUDY, argv)


if __name__ == "__main__":
    raise SystemExit(main())
