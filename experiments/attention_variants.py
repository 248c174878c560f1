"""Which attention score, and does input feeding help? Additive vs dot vs general, with/without feeding.

    python -m experiments.attention_variants                  # quick: 6 variants x 3 seeds, ~8 min on 2 cores
    python -m experiments.attention_variants --setting=cpu    # the README's setting
    python -m experiments.attention_variants --help           # the question, settings and claims
"""

from experiments import claims
from experiments import study
from experiments import sweep

SCORES = ("additive", "dot", "general")

STUDY = study.Study(
    name="attention_variants",
    title="Attention variants: additive vs dot vs general score, with and without input feeding",
    question="Does input feeding help, and how do the additive, dot and general attention scores compare? "
             "(Luong, Pham & Manning 2015, sec. 3.1 and 3.3)",
    description="""
Luong et al. (2015) compare Bahdanau's additive score (v^T tanh(W s + U h)) with the multiplicative `dot`
(h_t^T h_s) and `general` (h_t^T W h_s) scores, and find that input feeding (sec. 3.3: the previous
attentional vector joins the next input, so the model knows its past alignments) adds about 1 BLEU. Six
variants: {additive, dot, general} x {without, with input feeding}, same cell and sizes. `dot` needs the
encoder's annotations and the decoder state to be the same size, which holds here (unidirectional
encoder). Task: English number names -> digits (`seq2seq_jax/configs/number_digits.py`).
""",
    config="number_digits.py",
    variants=[
        sweep.Variant(f"{score}{suffix}", {"model.decoder": "attention", "model.attention": score,
                                           "model.bidirectional": False, "model.input_feeding": feed})
        for score in SCORES
        for suffix, feed in (("", False), ("_feed", True))
    ],
    settings={
        "quick": study.Setting(3, note="~6 min on 2 idle CPU cores (18 runs of ~20 s)"),
        "cpu": study.Setting(3, note="~12-13 min on 2 idle CPU cores (18 runs of ~40 s)"),
        "gpu": study.Setting(3, note="character sources, LSTM 256, 20k steps"),
    },
    claims=[
        claims.Claim("Input feeding helps additive attention (test seq_acc)", better="additive_feed",
                    worse="additive", metric="test/seq_acc",
                    paper="Luong et al. 2015, table 1: +1.3 BLEU from input feeding (WMT'14 en→de)",
                    caveat="Luong et al. measured it on WMT'14 with 4-layer LSTMs trained for 10-12 epochs, with "
                           "sentence-long outputs; here every attention variant, with or without it, gets nearly "
                           "every number name right (see the study's results table), so there is no room for a gain. A "
                           "task with long outputs, where the decoder must track what it has already translated, "
                           "is where input feeding could show."),
    ],
    heatmaps=SCORES,
    heatmap_count=1,
)


def main(argv=None) -> int:
    return study.main(STUDY, argv)


if __name__ == "__main__":
    raise SystemExit(main())
