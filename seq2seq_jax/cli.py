"""What the command-line tools (``main``, ``evaluate``, ``translate``, ``score``, ``average``) share.

* Flags more than one tool takes (``--workdir``, ``--checkpoint``, ``--beam_size``, ``--length_penalty``,
  ``--output``) are defined here, once, on ``absl.flags.FLAGS``: absl refuses a flag name defined by two modules, and
  tests import all three tools into one process. Each tool calls the ``*_flag()`` it uses at import time,
  so its ``--help`` lists only its own flags.
* ``workdirs`` reads a ``--workdir`` that lists several runs (``A,B``: an ensemble).
* ``require`` turns a missing flag into absl's usage error. It is checked in ``main`` rather than with
  ``flags.mark_flag_as_required``, whose validators are global and would fire for every tool in a process
  that imported several.
* ``fail`` ends a tool with one line on stderr and exit status 1 (no traceback) for expected failures: a
  missing workdir or input file, a split the dataset lacks. ``load_or_fail`` does so for a run that cannot be
  loaded (``--verbosity=1`` logs the traceback first).
* ``quiet_libraries`` drops orbax's INFO chatter (a dozen lines per checkpoint read or write) from the
  absl log; its warnings and errors still show, except its reports of a full disk (a traceback per writer
  thread), which the tool reports in one line (``checkpointing.DiskFullError``); ``--verbosity=1`` shows them.
* ``open_output`` writes a tool's output file (``translate``, ``score``) to ``OUTPUT.tmp`` first and renames
  it at the end, so a failed run leaves an existing output as it was; ``written_over`` tells whether that
  would write over one of the tool's input files.
* ``enable_compilation_cache`` turns on JAX's persistent compilation cache, so a second command on the
  same shapes (a translate after another, the runs of a sweep) loads its programs instead of compiling.
"""

import contextlib
import logging as std_logging
import os
import sys

import jax
from absl import app, flags, logging

from seq2seq_jax import checkpointing
from seq2seq_jax.data.vocab import SPECIALS, TokenVocab

_HOLDERS: dict[str, flags.FlagHolder] = {}


def _once(name: str, define):
    """The flag ``name``, defined by ``define()`` on first use (absl forbids defining it twice)."""
    if name not in _HOLDERS:
        _HOLDERS[name] = define()
    return _HOLDERS[name]


def workdir_flag() -> flags.FlagHolder:
    return _once("workdir", lambda: flags.DEFINE_string(
        "workdir", None, "The run's directory: config.json, checkpoints/, best/, vocab/, eval/, metrics.jsonl. "
        "evaluate, translate and score: several runs separated by commas (A,B) are an ensemble."))


def workdirs(value: str) -> list[str]:
    """The runs a ``--workdir`` value names: one path, or several separated by commas (an ensemble, for
    ``evaluate`` and ``translate``). A value that exists as written is one path, commas and all. An empty
    entry (``A,,B``, a trailing comma) ends the tool with one line."""
    if "," not in value or os.path.exists(value):
        return [value]
    paths = value.split(",")
    if not all(paths):
        fail(f"--workdir={value!r} names an empty path: separate the runs of an ensemble by single commas")
    return paths


def checkpoint_flag() -> flags.FlagHolder:
    return _once("checkpoint", lambda: flags.DEFINE_string(
        "checkpoint", "best", "Parameters to load: 'best' (selected on validation; the latest if none was saved), "
        "'latest', or the name of an averaged checkpoint (seq2seq_jax.average's --output, e.g. 'averaged')."))


def output_flag() -> flags.FlagHolder:
    return _once("output", lambda: flags.DEFINE_string(
        "output", None, "translate: the file for the translations, one per line (default, or '-': stdout); score: the "
        "file for the JSON rows of scores (default, or '-': stdout); "
        "average: the name of the new checkpoint, written to <workdir>/<output> (default: 'averaged')."))


def beam_size_flag() -> flags.FlagHolder:
    return _once("beam_size", lambda: flags.DEFINE_integer(
        "beam_size", None, "Beam size (1 = greedy); default: the run's eval.beam_size.", lower_bound=1))


def length_penalty_flag() -> flags.FlagHolder:
    return _once("length_penalty", lambda: flags.DEFINE_float(
        "length_penalty", None, "GNMT length-penalty alpha of beam search; default: the run's eval.length_penalty.",
        lower_bound=0.0))


@contextlib.contextmanager
def open_output(path: str):
    """stdout for '-'; else ``path.tmp``, renamed to ``path`` only if the block ends without error."""
    if path == "-":
        yield sys.stdout
        return
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def written_over(output: str, path: str) -> str | None:
    """Which file that writing ``output`` writes (``output``, or first ``output.tmp``) is the existing file
    ``path``, however either is spelt (``os.path.samefile``: links, ``..``, a hard link); None if neither."""
    return next((p for p in (output, f"{output}.tmp")
                 if os.path.exists(p) and os.path.exists(path) and os.path.samefile(p, path)), None)


def require(*holders: flags.FlagHolder) -> None:
    """absl's usage error naming the first of ``holders`` that was not given."""
    for holder in holders:
        if holder.value is None:
            raise app.UsageError(f"--{holder.name} is required")


def fail(message: str) -> None:
    """Ends the tool: ``message`` on stderr, exit status 1."""
    sys.exit(f"error: {message}")


def load_or_fail(load, workdirs: list[str]):
    """``load()``, which reads the runs in ``workdirs``; or the tool ends with one line when they cannot be read:
    no run or checkpoint there (FileNotFoundError, ``checkpointing.CheckpointError``), a damaged file of the
    run (a ValueError: its config.json or vocabulary), runs of an ensemble that tokenise differently (a
    ValueError naming them). The line names the run unless the message does; ``--verbosity=1`` logs the
    traceback before it."""
    try:
        return load()
    except (FileNotFoundError, checkpointing.CheckpointError, ValueError) as error:
        logging.debug("cannot load %s", ",".join(workdirs), exc_info=True)
        named = len(workdirs) > 1 or workdirs[0] in str(error)
        fail(str(error) if named else f"the run in {workdirs[0]}: {error}")


class _DropLibraryInfo(std_logging.Filter):
    """Keeps records below WARNING only if they come from outside the ``libraries``' source trees, and
    drops the libraries' reports of a full disk unless absl's verbosity is 1 or more."""

    def __init__(self, libraries=("orbax",)):
        super().__init__()
        self._parts = tuple(f"{os.sep}{name}{os.sep}" for name in libraries)

    def filter(self, record: std_logging.LogRecord) -> bool:
        if not any(p in record.pathname for p in self._parts):
            return True
        if record.levelno < std_logging.WARNING:
            return False
        disk_full = "No space left on device" in record.getMessage() or (
            record.exc_info is not None and checkpointing.is_disk_full(record.exc_info[1]))
        return not disk_full or logging.get_verbosity() >= 1


def quiet_libraries() -> None:
    """Filters orbax's INFO/DEBUG records out of absl's handler (orbax logs through absl's logger)."""
    handler = logging.get_absl_handler()
    if not any(isinstance(f, _DropLibraryInfo) for f in handler.filters):
        handler.addFilter(_DropLibraryInfo())


CACHE_DIR_ENV = "SEQ2SEQ_JAX_CACHE_DIR"


def compilation_cache_dir() -> str | None:
    """``$SEQ2SEQ_JAX_CACHE_DIR``, by default ``~/.cache/seq2seq_jax/jax_cache``; None when it is ``off``."""
    path = os.environ.get(CACHE_DIR_ENV, os.path.join(os.path.expanduser("~"), ".cache", "seq2seq_jax", "jax_cache"))
    return None if path.strip().lower() in ("", "off") else path


def enable_compilation_cache() -> str | None:
    """Points JAX's persistent compilation cache at `compilation_cache_dir` (unless JAX was given a cache
    directory of its own, e.g. ``$JAX_COMPILATION_CACHE_DIR``, which is kept) and caches every program,
    however fast it compiled. Returns the directory in use, or None when the cache is off."""
    path = compilation_cache_dir()
    if path is None:
        return None
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", path)
    # JAX's defaults skip programs that compile in under a second: most of ours on CPU.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def token_labels(vocab, ids, text: str | None = None) -> list[str]:
    """Tick labels for ``ids``: characters or words (from ``text`` when given, so unknown ones show as
    written), SentencePiece pieces, and ``<s>``/``</s>`` for specials; a space shows as '␣'."""
    if text is not None and isinstance(vocab, TokenVocab):
        labels = vocab.split(text)
    else:
        labels = []
        for i in map(int, ids):
            if i < len(SPECIALS):
                labels.append(SPECIALS[i])
            elif isinstance(vocab, TokenVocab):
                labels.append(vocab.tokens[i - len(SPECIALS)] if i < vocab.size else SPECIALS[3])
            else:
                labels.append(vocab.piece(i))  # SentencePieceVocab: the piece, e.g. '▁le'
    return ["␣" if label == " " else label for label in labels]
