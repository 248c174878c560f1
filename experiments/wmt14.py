"""WMT'14 French → English: the fixed-vector bottleneck vs additive attention, with SentencePiece.

Claim (Bahdanau, Cho & Bengio 2014, fig. 2 and table 1): an encoder–decoder that reads the source through
one fixed vector degrades as sentences grow, while soft attention over the annotations does not, and
scores higher BLEU overall (their RNNsearch-50 vs RNNencdec-50 on WMT'14 en→fr; Sutskever et al. 2014
recover much of the gap with deep LSTMs and a reversed source).

Variants (LSTMs of the same size): `bottleneck` (Sutskever 2014: reversed source, the decoder starts from
the encoder's final state and sees nothing else) vs `attention` (Bahdanau 2014: bidirectional encoder,
additive attention). Data: `wmt14_translate/fr-en` from the TFDS catalog (fr → en; `data.reverse_pair`
flips it), one SentencePiece unigram vocabulary per side trained on the training split. Validation during
training is greedy on a subset; the chosen checkpoint is then decoded on newstest2014 greedily (`test/*`)
and with a beam (`test_beam/*`). BLEU and chrF are sacrebleu's, on detokenised output.

Sized for one GPU/TPU (the default); `--quick` is a tiny model for a smoke test. The first run downloads
and prepares the data (needs internet and tens of GB of disk) into `data.data_dir`, which defaults to
`$SEQ2SEQ_JAX_DATA_DIR` or `~/.cache/seq2seq_jax/tensorflow_datasets`; to put it elsewhere, export
`SEQ2SEQ_JAX_DATA_DIR=/big/disk/tfds` before running (every run of the sweep reads it from there):

    SEQ2SEQ_JAX_DATA_DIR=/big/disk/tfds python -m experiments.wmt14 --workdir=runs/wmt14 --seeds=1
    python -m experiments.wmt14 --workdir=runs/wmt14 --list      # one command per run, for a scheduler

Caveat: the data pipeline reads and encodes a whole split in host memory; WMT'14 fr-en's training split
has about 40.8M sentence pairs, so preparing it needs a host with plenty of RAM (tens of GB) and takes a
long time on first use. `data.max_source_length`/`max_target_length` filter every split, test included
(the count is logged); the limits here drop only a small fraction of newstest2014.
"""

import sys

import ml_collections

from experiments import study_utils
from experiments import sweep
from seq2seq_jax import plotting
from seq2seq_jax import train
from seq2seq_jax.configs import default

TITLE = "WMT'14 fr→en: bottleneck vs attention"

VARIANTS = [
    sweep.Variant("bottleneck", {"model.decoder": "bottleneck", "model.reverse_source": True}),
    sweep.Variant("attention", {"model.decoder": "attention", "model.bidirectional": True}),
]

SETTINGS = {
    # One GPU/TPU: about Bahdanau's RNNsearch size (1000 hidden, 620 embedding) with subword vocabularies.
    "full": {"data.vocab_size": 16_000, "data.max_source_length": 80, "data.max_target_length": 80,
             "data.num_buckets": 6, "model.embedding_size": 512, "model.hidden_size": 1024,
             "model.attention_size": 1024, "model.dropout": 0.2, "train.batch_size": 128,
             "train.num_steps": 200_000, "train.learning_rate": 5e-4, "train.warmup_steps": 4000,
             "train.eval_every": 10_000, "train.checkpoint_every": 5000, "train.log_every": 200,
             "eval.max_validation_examples": 1000, "wmt14.test_beam_size": 5},
    # A smoke test on any machine (e.g. with tfds.testing.mock_data): tiny model, a few steps.
    "quick": {"data.vocab_size": 500, "data.max_source_length": 64, "data.max_target_length": 64,
              "data.num_buckets": 2, "model.embedding_size": 32, "model.hidden_size": 64,
              "model.attention_size": 64, "train.batch_size": 16, "train.num_steps": 200,
              "train.warmup_steps": 20, "train.eval_every": 0, "train.checkpoint_every": 200,
              "train.log_every": 50, "eval.max_validation_examples": 100, "wmt14.test_beam_size": 2,
              "wmt14.test_beam_examples": 200},
}


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.cell = "lstm"
    config.data.dataset = "wmt14_translate/fr-en"
    config.data.source_vocab = "sentencepiece"
    config.data.target_vocab = "sentencepiece"
    config.train.schedule = "warmup_decay"
    config.train.max_grad_norm = 1.0
    config.eval.beam_size = 1  # greedy validation during training and greedy `test/*`
    config.eval.length_penalty = 0.6
    config.eval.max_output_ratio = 1.5
    config.eval.max_output_extra = 10
    config.eval.metrics = ("bleu", "chrf")
    config.eval.best_metric = "bleu"
    config.eval.best_mode = "max"
    config.wmt14 = ml_collections.ConfigDict({
        # Beam size of the final test decode (1 = skip it).
        "test_beam_size": 5,
        # Test sentences decoded with the beam (0 = all).
        "test_beam_examples": 0,
    })
    return sweep.apply_overrides(config, SETTINGS["quick" if quick else "full"], variant="base")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains (or resumes), then decodes the test split with a beam of `wmt14.test_beam_size`."""
    final = train.train_and_evaluate(config, workdir)
    if config.wmt14.test_beam_size > 1:
        final.update(study_utils.beam_test(config, workdir, beam_size=config.wmt14.test_beam_size,
                                           max_examples=config.wmt14.test_beam_examples,
                                           evaluated_step=final["evaluated_step"]))
    return final


def make_plots(study_dir: str, results: list[dict]) -> list[str]:
    """Test BLEU against source length (greedy, by length bucket), mean over seeds."""
    curves = {}
    for variant, rs in study_utils.by_variant(results).items():
        tests = [study_utils.run_json(study_dir, r, "eval", "test.json") for r in rs]
        buckets = [t["by_length"] for t in tests if t]
        if not buckets or len({len(b) for b in buckets}) != 1:
            continue
        x = [b["lo"] for b in buckets[0]]
        y = [sum(seed[k]["bleu"] for seed in buckets) / len(buckets) for k in range(len(x))]
        curves[variant] = (x, y, None)
    if not curves:
        return []
    return [plotting.plot_metric_vs_length(curves, f"{study_dir}/bleu_vs_length.png",
                                           xlabel="source length (SentencePiece tokens, bucket start)",
                                           ylabel="test BLEU (greedy)", title="newstest2014 BLEU by length")]


DESCRIPTION = """
LSTM encoder–decoders on WMT'14 fr→en with SentencePiece vocabularies: `bottleneck` (Sutskever 2014:
reversed source, fixed vector) vs `attention` (Bahdanau 2014: bidirectional encoder, additive attention).
`test/*`: greedy decoding of newstest2014; `test_beam/*`: beam search (size in `test_beam/beam_size`,
GNMT length penalty `eval.length_penalty`). BLEU and chrF: sacrebleu, 0–100.
"""

METRIC_KEYS = ["test_beam/bleu", "test_beam/chrf", "test/bleu", "test/chrf", "validation/bleu"]


def main(argv, config_overrides: dict | None = None, variants=None) -> int:
    """`config_overrides` (dotted keys) go on top of the chosen setting and `variants` (a subset of
    `VARIANTS`) replaces the list: both for tests' smaller budgets."""
    args = study_utils.parse_args(argv, default_workdir="runs/wmt14", seeds=1)

    def make_config():
        return sweep.apply_overrides(get_config(args.quick), config_overrides or {}, variant="base")

    return study_utils.run_study(
        args, module="experiments.wmt14", variants=variants or VARIANTS, make_config=make_config, run_fn=run,
        title=TITLE, description=DESCRIPTION, metric_keys=METRIC_KEYS, make_plots=make_plots)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
