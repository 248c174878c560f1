"""Evaluates one split of a trained run's own dataset, overall and by source length.

    python -m seq2seq_jax.evaluate --workdir=/tmp/tiny --split=test [--beam_size=5] [--length_penalty=0.6] \
        [--checkpoint=best|latest|NAME]

The run's ``config.json`` fixes the dataset, model and decoding settings, and ``vocab/`` its vocabularies;
by default a split is decoded as training decoded it (test with ``eval.test_beam_size`` where set, so the
training-time ``eval/test.json`` is reproduced); ``--beam_size`` and ``--length_penalty`` override the beam
and ``eval.length_penalty``. The
result is written to ``eval/<name>.json`` (metrics overall and by source length, sacrebleu's signatures),
with the predictions in ``eval/<name>_predictions.tsv``, and that JSON alone is printed on stdout; a
readable report of it goes to stderr with the log. ``<name>`` is the split when the settings are the run's
own (rewriting the training-time file with the same numbers); any other setting is appended so the
training-time files are kept: ``test_beam5``, ``test_beam5_lp0.6``, ``test_latest``, ``test_averaged`` (the
checkpoint ``averaged`` written by ``seq2seq_jax.average``).

``--workdir=A,B`` (runs separated by commas) evaluates the ensemble of the runs (``ensemble.py``: the
renormalised mean of their per-step log-probabilities), each with the parameters of ``--checkpoint``, on the
first run's dataset and decoding settings; the loss and perplexity are the ensemble's too. The runs must
tokenise alike (refused in one line otherwise, naming two runs and what differs). The result goes to the
first run's ``eval/`` as ``<name>_ensemble<K>_<digest>.json`` (and ``_predictions.tsv``), ``K`` the number of
runs and ``<digest>`` 8 hex digits of a hash of their absolute paths in order, so it never replaces the
run's own files nor another ensemble's; the JSON lists the runs and their checkpoints' steps
(``"ensemble"``).

Expected failures (no workdir or checkpoint, a split the dataset lacks, a bad flag value) end with one
message and exit status 1, before anything is written. Runs on one process.
"""

import contextlib
import functools
import hashlib
import os
import sys

import jax
from absl import app, flags, logging

from seq2seq_jax import checkpointing
from seq2seq_jax import cli
from seq2seq_jax import ensemble as ensemble_lib
from seq2seq_jax import inference
from seq2seq_jax import train
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.data import pipeline
from seq2seq_jax.model import shift_right
from seq2seq_jax.translator import load_runs

_WORKDIR = cli.workdir_flag()
_CHECKPOINT = cli.checkpoint_flag()
_BEAM_SIZE = cli.beam_size_flag()
_SPLIT = flags.DEFINE_enum("split", "test", list(pipeline.SPLITS), "Split of the run's dataset to evaluate.")
_LENGTH_PENALTY = cli.length_penalty_flag()
for _name in ("workdir", "checkpoint", "beam_size", "length_penalty"):
    flags.declare_key_flag(_name)


def result_name(split: str, eval_config, beam_size: int | None, length_penalty: float | None,
                checkpoint: str) -> str:
    """``split``, plus ``_beam<N>`` / ``_lp<A>`` / ``_<checkpoint>`` for each setting that is not the run's own
    (its beam for ``split``: ``inference.split_beam_size``)."""
    name = split
    if beam_size is not None and beam_size != inference.split_beam_size(eval_config, split):
        name += f"_beam{beam_size}"
    if length_penalty is not None and length_penalty != eval_config.length_penalty:
        name += f"_lp{length_penalty:g}"
    if checkpoint != "best":
        name += f"_{checkpoint}"
    return name


def ensemble_name(workdirs) -> str:
    """The suffix of an ensemble's result files: ``_ensemble<K>_<8 hex digits of a hash of the runs' absolute
    paths, in order>``."""
    digest = hashlib.sha1("\n".join(os.path.abspath(w) for w in workdirs).encode()).hexdigest()[:8]
    return f"_ensemble{len(workdirs)}_{digest}"


def ensemble_eval_step(params, batch, *, ensemble: ensemble_lib.Ensemble):
    """``train.eval_step`` of an ensemble: the loss sums of its renormalised mean log-probabilities."""
    logits = ensemble_lib.teacher_forced_logits(ensemble, params, batch["inputs"], batch["input_lengths"],
                                                shift_right(batch["targets"]))
    return train.token_losses(logits, batch["targets"], batch["target_lengths"])


def _checkpoint_step(workdir: str, checkpoint: str) -> int:
    """Step of the checkpoint ``workdir.load_trained(workdir, checkpoint)`` loads."""
    if checkpoint not in checkpointing.SELECTIONS:
        return checkpointing.averaged_step(workdir, checkpoint)
    checkpoints = checkpointing.Checkpoints(workdir)
    try:
        if checkpoint == "best" and checkpoints.has_best():
            return int(checkpoints.best.latest_step())
        return int(checkpoints.latest_step())
    finally:
        checkpoints.close()


def format_report(result: dict, metric_names) -> str:
    """The overall metrics, one per line, then the by-length table."""
    lines = [f"{result['split']}: {result['num_examples']} examples, beam size {result['beam_size']}, "
             f"length penalty {result['length_penalty']:g}, {result['checkpoint']} checkpoint (step "
             f"{result['step']})"]
    overall = ["loss", "perplexity", "teacher_forced_token_acc", *metric_names]
    width = max(map(len, overall))
    lines += [f"  {key:<{width}}  {result[key]:.4f}" for key in overall]
    lines.append(f"by source length ({result.get('length_unit', 'tokens')}):")
    header = f"  {'length':<12}{'count':>7}" + "".join(f"{name:>{max(len(name), 8) + 2}}" for name in metric_names)
    lines.append(header)
    for row in result["by_length"]:
        span = f"[{row['lo']:g}, {row['hi']:g})"
        lines.append(f"  {span:<12}{row['count']:>7}" +
                     "".join(f"{row[name]:>{max(len(name), 8) + 2}.4f}" for name in metric_names))
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.require(_WORKDIR)
    cli.quiet_libraries()
    cli.enable_compilation_cache()
    workdirs, split, checkpoint = cli.workdirs(_WORKDIR.value), _SPLIT.value, _CHECKPOINT.value
    workdir = workdirs[0]  # an ensemble's dataset, settings and eval/ folder are its first run's
    config, model, params, _, _ = cli.load_or_fail(lambda: load_runs(workdirs, checkpoint), workdirs)
    eval_step = (functools.partial(ensemble_eval_step, ensemble=model) if isinstance(model, ensemble_lib.Ensemble)
                 else functools.partial(train.eval_step, model=model))
    eval_config = config.eval.copy_and_resolve_references()
    eval_config.beam_size = inference.split_beam_size(config.eval, split) if _BEAM_SIZE.value is None else _BEAM_SIZE.value
    if _LENGTH_PENALTY.value is not None:
        eval_config.length_penalty = _LENGTH_PENALTY.value
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds the result alone (TFDS prints to it)
        try:
            data = pipeline.get_data(config.data, batch_size=config.train.batch_size, seed=config.train.seed,
                                     vocab_dir=os.path.join(workdir, "vocab"))
            data.examples(split)
        except ValueError as error:  # e.g. a parallel_text run without a test file, or a data file gone bad
            cli.fail(str(error))
        logging.info("evaluating the %s split of %s (%s checkpoint)", split, _WORKDIR.value, checkpoint)
        result = inference.evaluate_split(model, params, data, split, eval_config, eval_step=jax.jit(eval_step))
    step = _checkpoint_step(workdir, checkpoint)
    result.update(length_penalty=float(eval_config.length_penalty), checkpoint=checkpoint)
    name = result_name(split, config.eval, _BEAM_SIZE.value, _LENGTH_PENALTY.value, checkpoint)
    if len(workdirs) > 1:
        name += ensemble_name(workdirs)
        result["ensemble"] = [{"workdir": os.path.abspath(w), "step": _checkpoint_step(w, checkpoint)}
                              for w in workdirs]
    workdir_lib.write_eval(workdir, result, step, name)
    print(format_report({**result, "step": step}, list(eval_config.metrics)), file=sys.stderr)
    path = os.path.join(workdir, "eval", f"{name}.json")
    with open(path) as f:  # what was saved, so stdout and the file cannot disagree
        sys.stdout.write(f.read())
    logging.info("wrote %s", path)


if __name__ == "__main__":
    app.run(main)
