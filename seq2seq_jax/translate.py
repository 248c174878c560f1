"""Translates text line by line with a trained run, as fairseq-interactive and JoeyNMT's translate do.

    python -m seq2seq_jax.translate --workdir=runs/tiny --input=in.txt --output=out.txt \\
        [--beam_size=5] [--length_penalty=0.6] [--max_length=50] [--nbest=3] [--batch_size=128] \\
        [--checkpoint=best|latest|NAME] [--attention_plots=DIR]
    echo hello | python -m seq2seq_jax.translate --workdir=runs/tiny
    python -m seq2seq_jax.translate --workdir=runs/a,runs/b < in.txt    # an ensemble of two runs
    python -m seq2seq_jax.translate --workdir=runs/tiny --sampling_temperature=0.8 --sampling_top_k=10 --seed=1

Input is ``--input`` (a file; ``-`` or omitted: stdin), output ``--output`` (omitted or ``-``: stdout).
Results are written as soon as their batch is decoded: from a pipe, the lines already available (at
least one, at most ``64 * batch_size``) are decoded together, so interactive use answers each line
before the next is typed; a file is read in chunks of ``64 * batch_size`` lines, each sorted by length
into a few padded source widths (``inference.source_width``), decoded in batches of ``--batch_size``
and written back in input order, with progress on stderr. Compiled programs are kept in JAX's
persistent cache (``cli.enable_compilation_cache``), so a second call compiles nothing.

A line is what ends in '\\n' (a '\\r' before it is dropped too, and a byte-order mark at the start of
the input; a last line without '\\n' counts): the output has exactly one line per input line. An empty
line gives an empty line, without decoding. Bytes that are not UTF-8 are read as U+FFFD and characters
the vocabulary lacks as UNK, each with a warning naming the line; a source longer than the run's
``data.max_source_length`` (or, for a run without one, ``DEFAULT_MAX_SOURCE_LENGTH``) tokens is cut to
it, with a warning. A tab or newline inside a hypothesis is written as a space.

``--nbest=N`` writes TSV rows ``line<TAB>rank<TAB>score<TAB>hypothesis`` (lines and ranks from 1), the N
best of the beam in its order, ``score`` its ``log p(Y|X) / lp(Y)``; hypotheses that did not end by
``--max_length`` rank after every one that did. An empty line gives one row with an empty score.

An ``--output`` file is written to ``OUTPUT.tmp`` and renamed at the end, so a failed run leaves an
existing output as it was. ``--attention_plots=DIR`` draws ``DIR/0000.png``, ``DIR/0001.png``, ...
(numbered by input line from 0): the weights of the best hypothesis, source tokens along the top and
output tokens (``</s>`` included) down the side; an empty line has none (logged). A run with the
bottleneck decoder has no attention to draw: it is translated as asked, with one warning and no plots.

``--workdir=A,B`` (runs separated by commas) decodes with the ensemble of the runs (``ensemble.py``: the
renormalised mean of their per-step log-probabilities), each with the parameters of ``--checkpoint``; the
runs must tokenise alike (refused in one line otherwise, naming two runs and what differs), and the
default beam, length penalty, output limits and longest source are the first run's. An ensemble has no
attention of its own: ``--attention_plots`` with one is refused.

``--sampling_temperature=T`` and/or ``--sampling_top_k=K`` sample each line instead of searching
(``sampling.py``): each token drawn from the model's distribution at temperature ``T`` (default 1, > 0)
over its ``K`` most likely tokens (default 0: all; ``K=1`` is greedy decoding), one sample per line.
``--seed=S`` (default 0) and the line's number in the input fix its sample, whatever the batching, so a
rerun reproduces the output. Sampling keeps no beam: ``--beam_size`` above 1 or ``--nbest`` with it is
refused, and so is ``--seed`` without it.

The run is read and decoded through a ``seq2seq_jax.Translator`` (``translator.py``), the same from Python;
this command keeps the run's ``eval.beam_size`` as its default beam, where a ``Translator`` defaults to the
test-time beam (``eval.test_beam_size`` when set).
"""

import contextlib
import math
import os
import select
import stat
import sys

import tqdm
from absl import app, flags, logging

from seq2seq_jax import cli
from seq2seq_jax import inference
from seq2seq_jax import plotting
from seq2seq_jax import sampling as sampling_lib
from seq2seq_jax.data.vocab import UNK
from seq2seq_jax.translator import DEFAULT_MAX_SOURCE_LENGTH, Translator, max_source_length  # noqa: F401

CHUNK_BATCHES = 64  # lines read at once = CHUNK_BATCHES * batch_size: sorted by length together

_WORKDIR = cli.workdir_flag()
_CHECKPOINT = cli.checkpoint_flag()
_BEAM_SIZE = cli.beam_size_flag()
_INPUT = flags.DEFINE_string("input", "-", "Text file to translate, one source per line; '-' = stdin.")
_OUTPUT = cli.output_flag()
_NBEST = flags.DEFINE_integer(
    "nbest", None, "Write the N best hypotheses of the beam as TSV: line, rank, score, hypothesis.", lower_bound=1)
_LENGTH_PENALTY = cli.length_penalty_flag()
_MAX_LENGTH = flags.DEFINE_integer(
    "max_length", None, "Longest output in tokens; default: eval.max_output_ratio * source length + "
    "eval.max_output_extra.", lower_bound=1)
_ATTENTION_PLOTS = flags.DEFINE_string(
    "attention_plots", None, "Folder for one attention heatmap per input line (0000.png, ...); default: none.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Lines decoded together.", lower_bound=1)
_TEMPERATURE = flags.DEFINE_float(
    "sampling_temperature", None, "Sample each line at this temperature (> 0) instead of searching; default: no "
    "sampling (1 where only --sampling_top_k is given).")
_TOP_K = flags.DEFINE_integer(
    "sampling_top_k", None, "Sample each line, each token among the K most likely (0: all, 1: greedy); default: no "
    "sampling (0 where only --sampling_temperature is given).", lower_bound=0)
_SEED = flags.DEFINE_integer(
    "seed", None, "Seed of sampling; with the line's number it fixes the line's sample. Default: 0.", lower_bound=0,
    upper_bound=2**32 - 1)
for _name in ("workdir", "checkpoint", "beam_size", "length_penalty", "output"):
    flags.declare_key_flag(_name)


class LineReader:
    """The lines of a file descriptor, split at b'\\n' only (not at '\\r', '\\x0c', '\\u2028', ... as
    ``str.splitlines`` would), read without waiting for more than the first line of a batch."""

    def __init__(self, fd: int):
        self._fd, self._buffer, self._eof = fd, b"", False
        self._lines: list[bytes] = []

    def _read(self) -> None:
        data = os.read(self._fd, 1 << 20)
        if not data:
            self._eof = True
            if self._buffer:  # a last line without '\n'
                self._lines.append(self._buffer)
                self._buffer = b""
            return
        *complete, self._buffer = (self._buffer + data).split(b"\n")
        self._lines.extend(complete)

    def _ready(self) -> bool:
        return select.select([self._fd], [], [], 0)[0] != []

    def next_lines(self, limit: int) -> list[bytes]:
        """Up to ``limit`` lines (without '\\n'): waits for the first, then takes what can be read without
        waiting (a regular file never waits). An empty list at the end of the input."""
        while not self._lines and not self._eof:
            self._read()
        while len(self._lines) < limit and not self._eof and self._ready():
            self._read()
        lines, self._lines = self._lines[:limit], self._lines[limit:]
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def decode_line(raw: bytes, number: int) -> str:
    """``raw`` as UTF-8 text; invalid bytes become U+FFFD, with a warning naming line ``number``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        logging.warning("line %d: not UTF-8 (%s); invalid bytes read as U+FFFD", number, error.reason)
        return raw.decode("utf-8", errors="replace")


def output_rows(number: int, translation: inference.Translation, nbest: bool) -> str:
    """The output text of input line ``number``: its best hypothesis, or one TSV row per hypothesis."""
    clean = [h.replace("\r", " ").replace("\n", " ") for h in translation.hypotheses]
    if not nbest:
        return clean[0] + "\n"
    return "".join(f"{number}\t{rank}\t{'' if score is None else repr(score)}\t{h.replace(chr(9), ' ')}\n"
                   for rank, (h, score) in enumerate(zip(clean, translation.scores), start=1))


@contextlib.contextmanager
def open_input(path: str):
    """The file descriptor of ``path`` ('-': stdin), and whether it is a regular file."""
    if path == "-":
        fd = sys.stdin.fileno()
        yield fd, stat.S_ISREG(os.fstat(fd).st_mode)
        return
    if not os.path.isfile(path):
        cli.fail(f"input file {path!r} does not exist" if not os.path.exists(path) else f"input {path!r} is not a file")
    with open(path, "rb") as f:
        yield f.fileno(), True


def file_in_the_way(folder: str) -> str | None:
    """The file (not a folder) at ``folder`` or at the nearest of its parents that exists, which keeps
    ``folder`` from being made; None if there is none."""
    path = os.path.abspath(folder)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return None if os.path.isdir(path) else path


def sampling_options(beam_size: int | None, nbest: int | None) -> sampling_lib.Sampling | None:
    """The ``Sampling`` the flags ask for, None without ``--sampling_*``; a request that mixes sampling with a
    beam, or a bad value, ends the tool with one line."""
    temperature, top_k, seed = _TEMPERATURE.value, _TOP_K.value, _SEED.value
    if temperature is None and top_k is None:
        if seed is not None:
            cli.fail(f"--seed={seed} seeds sampling only: add --sampling_temperature or --sampling_top_k")
        return None
    if beam_size is not None and beam_size > 1:
        cli.fail(f"--beam_size={beam_size} cannot be combined with sampling (--sampling_temperature, "
                 "--sampling_top_k): sampling draws each token and keeps no beam; drop one of them")
    if nbest is not None:
        cli.fail(f"--nbest={nbest} ranks a beam's hypotheses and cannot be combined with sampling, which writes "
                 "one sample per line")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        cli.fail(f"--sampling_temperature={temperature} must be a number > 0 (near 0 samples the most likely token, "
                 "as greedy decoding does)")
    return sampling_lib.Sampling(temperature=1.0 if temperature is None else temperature, top_k=top_k or 0,
                                 seed=seed or 0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.require(_WORKDIR)
    cli.quiet_libraries()
    cli.enable_compilation_cache()
    output, plots, nbest = _OUTPUT.value or "-", _ATTENTION_PLOTS.value, _NBEST.value
    if output != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        cli.fail(f"the folder of --output={output!r} does not exist")
    if output != "-" and os.path.isdir(output):
        cli.fail(f"--output={output!r} is a folder")
    if output != "-" and _INPUT.value != "-" and (written := cli.written_over(output, _INPUT.value)):
        cli.fail(f"--input={_INPUT.value!r} and --output={output!r} are the same file: the translation would "
                 "replace its source; write it to another file" if written == output else f"--input="
                 f"{_INPUT.value!r} is {written!r}, the temporary file of --output: rename it or write elsewhere")
    sampling = sampling_options(_BEAM_SIZE.value, nbest)
    workdirs = cli.workdirs(_WORKDIR.value)
    if plots is not None and len(workdirs) > 1:
        cli.fail(f"--attention_plots: an ensemble of {len(workdirs)} runs has no attention weights of its own (each "
                 "run attends on its own); plot one run's with --workdir=RUN")
    if plots is not None and (blocker := file_in_the_way(plots)):
        cli.fail(f"--attention_plots={plots!r} is a file, not a folder" if blocker == os.path.abspath(plots) else
                 f"--attention_plots={plots!r} cannot be a folder: {blocker!r} is a file")
    with open_input(_INPUT.value) as (fd, is_file):
        options = dict(length_penalty=_LENGTH_PENALTY.value, batch_size=_BATCH_SIZE.value)
        translator = cli.load_or_fail(lambda: Translator.from_runs(workdirs, _CHECKPOINT.value, **options), workdirs)
        config = translator.config
        if plots is not None and config.model.decoder == "bottleneck":  # its attention weights are all 0
            logging.warning("--attention_plots: the run in %s has a bottleneck decoder, which has no attention; "
                            "translating without plots", _WORKDIR.value)
            plots = None
        # The run's validation beam, as ever (a Translator's own default is its test-time beam).
        beam_size = config.eval.beam_size if _BEAM_SIZE.value is None else _BEAM_SIZE.value
        if nbest is not None and nbest > beam_size:
            cli.fail(f"--nbest={nbest} needs a beam at least as wide: --beam_size={beam_size}")
        limit, limit_origin = max_source_length(config)
        logging.info("translating %s with the %s checkpoint of %s (%s)", _INPUT.value, _CHECKPOINT.value,
                     _WORKDIR.value, f"beam {beam_size}" if sampling is None else f"sampling: {sampling}")
        reader, number = LineReader(fd), 0
        progress = tqdm.tqdm(unit=" lines", disable=not is_file, file=sys.stderr)
        try:
            with cli.open_output(output) as out:
                while raw_lines := reader.next_lines(CHUNK_BATCHES * _BATCH_SIZE.value):
                    lines = [decode_line(raw, number + k + 1) for k, raw in enumerate(raw_lines)]
                    if number == 0 and lines[0].startswith("\ufeff"):
                        lines[0] = lines[0][1:]  # a byte-order mark is not text
                    options = (dict(beam_size=beam_size) if sampling is None else
                               dict(sampling=sampling, first_line=number))  # lines before this chunk: number
                    translations = translator.translations(lines, nbest=nbest, with_attention=plots is not None,
                                                           max_len=_MAX_LENGTH.value, **options)
                    for k, (line, translation) in enumerate(zip(lines, translations)):
                        _report(number + k + 1, translation, limit, limit_origin)
                        if plots is not None:
                            _plot(plots, number + k, line, translation, translator.source_vocab,
                                  translator.target_vocab)
                    out.write("".join(output_rows(number + k + 1, t, bool(nbest)) for k, t in enumerate(translations)))
                    out.flush()
                    number += len(lines)
                    progress.update(len(lines))
        except BrokenPipeError:  # whoever read stdout went away (e.g. `| head`): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
            sys.exit(1)
        progress.close()
    logging.info("wrote %d lines to %s", number, output)


def _report(number, translation, limit, limit_origin):
    """Warnings for what was not decoded as written: unknown characters, a cut source."""
    if UNK in translation.source_ids:
        logging.warning("line %d: %d tokens unknown to the source vocabulary, read as UNK", number,
                        translation.source_ids.count(UNK))
    if translation.truncated:
        logging.warning("line %d: %d tokens, cut to the first %d (%s)", number, translation.input_length, limit,
                        limit_origin)


def _plot(folder, index, line, translation, source_vocab, target_vocab):
    source_ids, target_ids = translation.source_ids, translation.target_ids[0]
    if not source_ids or not target_ids:
        logging.warning("line %d: no attention plot (empty %s)", index + 1, "source" if not source_ids else "output")
        return
    labels = cli.token_labels(source_vocab, source_ids, line)[: len(source_ids)]
    plotting.plot_attention(translation.attention, labels, cli.token_labels(target_vocab, target_ids),
                            os.path.join(folder, f"{index:04d}.png"))


if __name__ == "__main__":
    app.run(main)
