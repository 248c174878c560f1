"""Does reading the source backwards help? (Sutskever, Vinyals & Le 2014, sec. 3.3)

Claim tested: reversing the words of the source sentence (not the target) "introduces many short term
dependencies" between the first source and first target words and markedly improves the LSTM
encoder–decoder (test perplexity 5.8 -> 4.7, BLEU 25.9 -> 30.6 in their paper). We expect the gain to be
large for the fixed-vector (bottleneck) decoder and small for the attention decoder, which can reach any
source position at every step. Four variants: {bottleneck, attention} x {forward, reversed source}, same
cell and sizes.

Task: English number names -> digits (see `experiments/common.py`): the first digits depend on the first
words, so a forward-reading bottleneck must carry them across the whole sentence, and a reversed one reads
them last.

    python -m experiments.reverse_source                 # quick: 4 variants x 1 seed on CPU, ~5 min
    python -m experiments.reverse_source --full          # GPU setting, 3 seeds
    python -m experiments.reverse_source --full --list   # one command per run

Writes report.md (overall and by-length tables), results.jsonl, results.csv and plots/ under --workdir
(default runs/reverse_source), with attention maps of the reversed attention model (its encoder puts the
annotations back in source order, so the maps are drawn against the source as written).
"""

from collections.abc import Mapping, Sequence

from experiments import common
from experiments import sweep

VARIANTS = [
    sweep.Variant(f"{decoder}{suffix}", {"model.decoder": decoder, "model.reverse_source": reverse})
    for decoder in ("bottleneck", "attention")
    for suffix, reverse in (("", False), ("_reversed", True))
]

STUDY = common.Study(
    module="experiments.reverse_source",
    title="Source reversal (Sutskever et al. 2014, sec. 3.3) with bottleneck and attention decoders",
    description=common.description(__doc__, 2),
    variants=VARIANTS,
    num_steps=(1000, 20_000),
    seeds=(1, 3),
    heatmaps=("attention_reversed",),
)


def main(argv: Sequence[str] | None = None, *, overrides: Mapping | None = None) -> int:
    return common.main(argv, spec=STUDY, overrides=overrides)


if __name__ == "__main__":
    raise SystemExit(main())
