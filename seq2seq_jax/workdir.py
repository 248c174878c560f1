"""A run's workdir: what is in it, and reading a trained run back.

    workdir/
      config.json          the run's config (``save_config``; written when training really starts)
      .lock                names the process training there (``files.file_lock``)
      vocab/               its vocabularies (``data.vocab``)
      checkpoints/         orbax checkpoints, ``best/`` and averaged ones beside them (``checkpointing``)
      eval/NAME.json       an evaluation's metrics, ``eval/NAME_predictions.tsv`` its outputs (``write_eval``)
      metrics.jsonl, run_info.json, TensorBoard events   (``logger``)
"""

import json
import os

import ml_collections

from seq2seq_jax import checkpointing
from seq2seq_jax import files
from seq2seq_jax import parallel
from seq2seq_jax.configs import compare
from seq2seq_jax.data import vocab as vocab_lib
from seq2seq_jax.model import create_model
from seq2seq_jax.optim import create_train_state

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
VOCAB_DIR = "vocab"
EVAL_DIR = "eval"


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    files.save_json(os.path.join(workdir, CONFIG_FILE), json.loads(config.to_json_best_effort()))


def check_resumable(config: ml_collections.ConfigDict, workdir: str) -> bool:
    """Whether ``workdir`` holds a started run; if it does and ``config`` cannot resume it
    (``compare.differences(..., resume=True)``), a ``ValueError`` names the fields that differ."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except ValueError as error:
        raise ValueError(f"{path} is damaged ({error}); restore it or use a new --workdir") from None
    differing = compare.differences(saved, config, resume=True)
    if differing:
        raise ValueError(f"workdir {workdir} holds a run with a different config ({'; '.join(differing)}); use a "
                         "new --workdir or the same model, data and optimizer settings")
    return True


def scalar_metrics(result: dict) -> dict:
    """The scalar part of an evaluation result."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def write_eval(workdir: str, result: dict, step: int, name: str | None = None) -> None:
    """``eval/<name>.json`` (metrics, by length) and ``eval/<name>_predictions.tsv``, each written atomically;
    ``name`` defaults to the split (``seq2seq_jax.evaluate`` passes e.g. ``test_beam4`` to keep the
    training-time files). Every process holds the same result; the main process alone writes it."""
    if not parallel.is_main_process():
        return
    name = result["split"] if name is None else name
    saved = {k: v for k, v in result.items() if k not in ("predictions", "attention")}
    files.save_json(os.path.join(workdir, EVAL_DIR, f"{name}.json"), {**saved, "step": step})
    rows = [f"{source}\t{hyp}\t{' | '.join(refs)}\n" for source, hyp, refs in result["predictions"]]
    files.write_atomic(os.path.join(workdir, EVAL_DIR, f"{name}_predictions.tsv"),
                       "source\thypothesis\treferences\n" + "".join(rows))


def load_run(workdir: str):
    """``(config, model, source_vocab, target_vocab)`` of the run in ``workdir``, from its ``config.json`` and
    ``vocab/`` (no dataset, no checkpoint); a ``FileNotFoundError`` if ``workdir`` holds no such run, a
    ``ValueError`` naming the file if its config or a vocabulary is damaged."""
    config_path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir!r} does not exist")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} not found: {workdir!r} is not a training workdir")
    with open(config_path) as f:
        try:
            config = ml_collections.ConfigDict(json.load(f))
        except ValueError as error:  # json.JSONDecodeError, or bytes that are not UTF-8
            raise ValueError(f"{config_path} is damaged and cannot be read ({type(error).__name__}: {error})") from None
    vocabs = []
    for side in ("source", "target"):
        kind = config.data[f"{side}_vocab"]
        path = os.path.join(workdir, VOCAB_DIR, vocab_lib.vocab_filename(kind, f"{side}_vocab"))
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: the run in {workdir!r} saved no {side} vocabulary")
        vocabs.append(vocab_lib.load_vocab(path))
    return config, create_model(config, vocabs[0].size, vocabs[1].size), vocabs[0], vocabs[1]


def load_trained(workdir: str, checkpoint: str = "best"):
    """``(config, model, params, source_vocab, target_vocab)`` of a trained run in ``workdir``.

    ``checkpoint`` is ``'best'`` (the validation-selected parameters, falling back to the latest when
    no best was saved yet), ``'latest'``, or the name of an averaged checkpoint (``seq2seq_jax.average``).
    Needs no dataset: the vocabularies are in ``workdir/vocab``.
    """
    config, model, source_vocab, target_vocab = load_run(workdir)
    if checkpoint not in checkpointing.SELECTIONS:
        averaged, step = checkpointing.open_averaged(workdir, checkpoint)  # checked before the state is built
        try:
            state, _, _ = checkpointing.restore_step(averaged, step, create_train_state(model, config))
        finally:
            averaged.close()
        return config, model, state.params, source_vocab, target_vocab
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):  # before Checkpoints(), which creates it
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train the run first")
    checkpoints = checkpointing.Checkpoints(workdir, keep=config.train.keep_checkpoints)
    try:
        if checkpoints.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train the run first")
        state, _, _ = checkpoints.restore(create_train_state(model, config),
                                          best=checkpoint == "best" and checkpoints.has_best())
    finally:
        checkpoints.close()
    return config, model, state.params, source_vocab, target_vocab
