"""Does reading the source backwards help? (Sutskever, Vinyals & Le 2014, sec. 3.3)

    python -m experiments.reverse_source                  # quick: 4 variants x 3 seeds, ~5 min on 2 cores
    python -m experiments.reverse_source --setting=cpu    # the README's setting
    python -m experiments.reverse_source --help           # the question, settings and claims
"""

from experiments import claims
from experiments import study
from experiments import sweep

STUDY = study.Study(
    name="reverse_source",
    title="Source reversal (Sutskever et al. 2014, sec. 3.3) with bottleneck and attention decoders",
    question="Does reversing the source help the fixed-vector encoder–decoder? (Sutskever, Vinyals & Le "
             "2014, sec. 3.3)",
    description="""
Reversing the words of the source (not the target) "introduces many short term dependencies" between the
first source and first target words and markedly improves the LSTM encoder–decoder (test perplexity 5.8 ->
4.7, BLEU 25.9 -> 30.6 in the paper). We expect the gain to be large for the bottleneck decoder and small
for the attention decoder, which can reach any source position at every step. Four variants: {bottleneck,
attention} x {forward, reversed source}, same cell and sizes. Task: English number names -> digits
(`seq2seq_jax/configs/number_digits.py`): the first digits depend on the first words, so a forward-reading
bottleneck must carry them across the whole sentence, and a reversed one reads them last. The attention
maps are of the reversed attention model (its encoder puts the annotations back in source order).
""",
    config="number_digits.py",
    variants=[
        sweep.Variant(f"{decoder}{suffix}", {"model.decoder": decoder, "model.reverse_source": reverse})
        for decoder in ("bottleneck", "attention")
        for suffix, reverse in (("", False), ("_reversed", True))
    ],
    settings={
        "quick": study.Setting(3, note="~4 min on 2 idle CPU cores (12 runs of ~20 s)"),
        "cpu": study.Setting(3, note="~7 min on 2 idle CPU cores (12 runs of ~35 s)"),
        "gpu": study.Setting(3, note="character sources, LSTM 256, 20k steps"),
    },
    claims=[
        claims.Claim("Reversing the source helps the fixed-vector model (test seq_acc)",
                    better="bottleneck_reversed", worse="bottleneck", metric="test/seq_acc",
                    paper="Sutskever et al. 2014, sec. 3.3: test perplexity 5.8 → 4.7, BLEU 25.9 → 30.6"),
    ],
    length_metrics=("seq_acc", "chrf"),
    heatmaps=("attention_reversed",),
)


def main(argv=None) -> int:
    return study.main(STUDY, argv)


if __name__ == "__main__":
    raise SystemExit(main())
