"""Which attention score, and does input feeding help? Additive vs dot vs general, with/without feeding.

Claims tested: Luong, Pham & Manning (2015, sec. 3.1 and table 4) find the multiplicative `general` score
(h_t^T W h_s) competitive with Bahdanau's additive score (v^T tanh(W s + U h)), and the parameter-free `dot`
score weaker for global attention; input feeding (sec. 3.3: the previous attentional vector joins the
next input, so the model knows its past alignments) adds about 1 BLEU. Six variants: {additive, dot,
general} x {without, with input feeding}, all with the same cell and sizes. `dot` needs the encoder's
annotations and the decoder state to be the same size, which holds here (unidirectional encoder, one
hidden size); the model raises a ValueError otherwise.

Task: English number names -> digits (see `experiments/common.py`).

    python -m experiments.attention_variants                 # quick: 6 variants x 1 seed on CPU, ~5 min
    python -m experiments.attention_variants --full          # GPU setting, 3 seeds
    python -m experiments.attention_variants --full --list   # one command per run

Writes report.md (overall and by-length tables), results.jsonl, results.csv and plots/ under --workdir
(default runs/attention_variants), with attention maps of each score without input feeding.
"""

from collections.abc import Mapping, Sequence

from experiments import common
from experiments import sweep

SCORES = ("additive", "dot", "general")

VARIANTS = [
    sweep.Variant(f"{score}{suffix}", {"model.decoder": "attention", "model.attention": score,
                                       "model.bidirectional": False, "model.input_feeding": feed})
    for score in SCORES
    for suffix, feed in (("", False), ("_feed", True))
]

STUDY = common.Study(
    module="experiments.attention_variants",
    title="Attention variants: additive vs dot vs general score, with and without input feeding",
    description=common.description(__doc__, 2),
    variants=VARIANTS,
    num_steps=(400, 20_000),
    seeds=(1, 3),
    heatmaps=SCORES,
    heatmap_count=1,
)


def main(argv: Sequence[str] | None = None, *, overrides: Mapping | None = None) -> int:
    return common.main(argv, spec=STUDY, overrides=overrides)


if __name__ == "__main__":
    raise SystemExit(main())
