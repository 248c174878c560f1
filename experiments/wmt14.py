"""WMT'14 French → English: the fixed-vector bottleneck vs additive attention, with SentencePiece.

    SEQ2SEQ_JAX_DATA_DIR=/big/disk/tfds python -m experiments.wmt14 --setting=gpu --seeds=1
    python -m experiments.wmt14 --setting=gpu --list      # one command per run, for a scheduler

The first run downloads and prepares the data (internet, tens of GB of disk) into `data.data_dir`
(`$SEQ2SEQ_JAX_DATA_DIR` or `~/.cache/seq2seq_jax/tensorflow_datasets`). The data pipeline reads a whole
split into host memory; the ~40.8M training pairs need a host with tens of GB of RAM.
"""

from experiments import claims
from experiments import study
from experiments import sweep

STUDY = study.Study(
    name="wmt14",
    title="WMT'14 fr→en: bottleneck vs attention",
    question="On real translation (WMT'14 fr→en), does attention beat the fixed-vector encoder–decoder? "
             "(Bahdanau, Cho & Bengio 2014, table 1 and fig. 2)",
    description="""
LSTM encoder–decoders on `wmt14_translate/fr-en` with one SentencePiece vocabulary per side
(`seq2seq_jax/configs/wmt14.py`): `bottleneck` (Sutskever 2014: reversed source, fixed vector) vs
`attention` (Bahdanau 2014: bidirectional encoder, additive attention). Validation during training is
greedy on 1000 sentences; the selected checkpoint decodes newstest2014 with a beam (`eval.test_beam_size`,
GNMT length penalty `eval.length_penalty`). BLEU and chrF: sacrebleu, 0–100, on detokenised output.
`data.max_source_length`/`max_target_length` filter every split, test included (the count is logged).
""",
    config="wmt14.py",
    variants=[
        sweep.Variant("bottleneck", {"model.decoder": "bottleneck", "model.bidirectional": False,
                                     "model.reverse_source": True}),
        sweep.Variant("attention", {"model.decoder": "attention", "model.bidirectional": True}),
    ],
    settings={
        "quick": study.Setting(1, note="a smoke test of the pipeline (tiny model, 200 steps)"),
        "cpu": study.Setting(1, note="a small model on short sentences: hours on 2 CPU cores, not a result"),
        "gpu": study.Setting(1, note="RNNsearch size, 200k steps: days on one GPU"),
    },
    claims=[
        claims.Claim("Attention beats the fixed vector (newstest2014 BLEU)", better="attention",
                    worse="bottleneck", metric="test/bleu",
                    paper="Bahdanau et al. 2014, table 1: RNNsearch-50 26.75 vs RNNencdec-50 17.82 BLEU (en→fr)"),
    ],
    metric_keys=("test/bleu", "test/chrf", "validation/bleu", "test/beam_size"),
    length_metrics=("bleu",),
    bar_metric="bleu",
)


def main(argv=None) -> int:
    return study.main(STUDY, argv)


if __name__ == "__main__":
    raise SystemExit(main())
