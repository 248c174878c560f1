"""Scores given translations with a trained run, as fairseq-generate's ``--score-reference`` and OpenNMT's
``-tgt`` gold scores do: how likely the model finds each target line given its source line.

    python -m seq2seq_jax.score --workdir=runs/tiny --source=src.txt --target=tgt.txt [--output=scores.jsonl] \\
        [--checkpoint=best|latest|NAME]
    python -m seq2seq_jax.score --workdir=runs/a,runs/b ...   # the ensemble's log-probability (ensemble.py)

Line i of ``--target`` is scored against line i of ``--source`` (lines end in '\\n', a '\\r' before it and a
byte-order mark at the start are dropped, bytes that are not UTF-8 are read as U+FFFD, as ``translate``
reads them). The output (``--output``, else stdout) has one JSON row per pair, ``{"logprob": ..., "tokens":
..., "perplexity": ...}``: the teacher-forced natural-log probability of the target and its ``</s>``, their
number, and ``exp(-logprob / tokens)`` (``seq2seq_jax.Translator.score``). A summary goes to stderr at the
end: pairs, target tokens, total log-probability and the overall perplexity ``exp(-sum logprob / sum
tokens)``, then the same by source length (``by_length``: the run's ``eval.length_unit``, ``eval.length_edges``
or ``eval.num_length_buckets``, as ``evaluate`` buckets its metrics), the probe of Bahdanau et al. (2014)'s
fig. 2 on references: does the fixed vector find long references less likely than attention does? Both files
are read whole; an ``--output`` file is written to ``OUTPUT.tmp`` and renamed at the end.

A bad request (a missing input, files of different line counts, no pair, an output that is an input or in
a missing folder, no run or checkpoint in the workdir, a damaged run, runs of an ensemble that tokenise
differently) is one ``error:`` line and exit status 1, before anything is written.
"""

import json
import math
import os
import sys

from absl import app, flags, logging

from seq2seq_jax import cli, inference, metrics
from seq2seq_jax.translator import Translator

_WORKDIR = cli.workdir_flag()
_CHECKPOINT = cli.checkpoint_flag()
_SOURCE = flags.DEFINE_string("source", None, "Source sentences, one per line.")
_TARGET = flags.DEFINE_string("target", None, "Target sentences to score, one per line, paired with --source's.")
_OUTPUT = cli.output_flag()
for _name in ("workdir", "checkpoint", "output"):
    flags.declare_key_flag(_name)


def read_lines(flag: flags.FlagHolder) -> list[str]:
    """The lines of the file ``--flag`` names, as ``translate`` splits and decodes them."""
    path = flag.value
    if not os.path.isfile(path):
        cli.fail(f"--{flag.name}={path!r} " + ("does not exist" if not os.path.exists(path) else "is not a file"))
    with open(path, "rb") as f:
        data = f.read()
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":  # the file ends with '\n' (or is empty)
        raw_lines.pop()
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            logging.warning("--%s line %d: not UTF-8 (%s); invalid bytes read as U+FFFD", flag.name, number, error.reason)
            lines.append(raw.decode("utf-8", errors="replace"))
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]  # a byte-order mark is not text
    return lines


def source_lengths(sources: list[str], translator: Translator) -> list[int]:
    """Each source's length in the run's ``eval.length_unit`` (``inference.source_length``): its tokens, cut to
    the model's longest source as ``Translator.score`` cuts them, or its words."""
    cut = translator.max_source_len
    return [inference.source_length(source, min(len(translator.source_vocab.encode(source)), cut),
                                    translator.config.eval) for source in sources]


def by_length(rows: list[dict], lengths: list[int], eval_config) -> list[dict]:
    """``rows`` (``Translator.score``'s) summed per source-length bucket ``[lo, hi)`` of ``eval_config``
    (``inference.length_buckets``: its ``length_edges``, else ``num_length_buckets`` quantiles of ``lengths``):
    ``{"lo", "hi", "pairs", "tokens", "logprob", "perplexity"}`` for each non-empty bucket."""
    edges = inference.length_buckets(lengths, eval_config)
    buckets = []
    for lo, hi in zip(edges, edges[1:]):
        inside = [row for row, length in zip(rows, lengths) if lo <= length < hi]
        if inside:
            logprob, tokens = sum(r["logprob"] for r in inside), sum(r["tokens"] for r in inside)
            buckets.append({"lo": lo, "hi": hi, "pairs": len(inside), "tokens": tokens, "logprob": logprob,
                            "perplexity": metrics.perplexity(-logprob, tokens)})
    return buckets


def format_by_length(buckets: list[dict], unit: str) -> str:
    lines = [f"by source length ({unit}):", "  source length   pairs   tokens   log-probability   perplexity"]
    for b in buckets:
        span = f"{b['lo']:g}+" if math.isinf(b["hi"]) else f"{b['lo']:g}-{b['hi'] - 1:g}"
        lines.append(f"  {span:>13s}   {b['pairs']:5d}   {b['tokens']:6d}   {b['logprob']:15.4f}   "
                     f"{b['perplexity']:10.4f}")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.require(_WORKDIR, _SOURCE, _TARGET)
    cli.quiet_libraries()
    cli.enable_compilation_cache()
    output = _OUTPUT.value or "-"
    if output != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        cli.fail(f"the folder of --output={output!r} does not exist")
    if output != "-" and os.path.isdir(output):
        cli.fail(f"--output={output!r} is a folder")
    for flag in (_SOURCE, _TARGET):
        if output != "-" and cli.written_over(output, flag.value):
            cli.fail(f"--{flag.name}={flag.value!r} and --output={output!r} are the same file (or its temporary "
                     "file): the scores would replace it; write them to another file")
    sources, targets = read_lines(_SOURCE), read_lines(_TARGET)
    if len(sources) != len(targets):
        cli.fail(f"--source={_SOURCE.value!r} has {len(sources)} lines but --target={_TARGET.value!r} has "
                 f"{len(targets)}: each line of one is scored against the same line of the other")
    if not sources:
        cli.fail(f"no pair to score: --source={_SOURCE.value!r} and --target={_TARGET.value!r} are empty")
    workdirs = cli.workdirs(_WORKDIR.value)
    translator = cli.load_or_fail(lambda: Translator.from_runs(workdirs, _CHECKPOINT.value), workdirs)
    logging.info("scoring %d pairs with the %s checkpoint of %s", len(sources), _CHECKPOINT.value, _WORKDIR.value)
    rows = translator.score(sources, targets)
    with cli.open_output(output) as out:
        out.write("".join(json.dumps(row) + "\n" for row in rows))
    logprob, tokens = sum(row["logprob"] for row in rows), sum(row["tokens"] for row in rows)
    print(f"{len(rows)} pairs, {tokens} target tokens (</s> included): log-probability {logprob:.4f}, "
          f"perplexity {math.exp(-logprob / tokens):.4f}", file=sys.stderr)
    unit = translator.config.eval.get("length_unit", "tokens")  # get: runs made before the field
    buckets = by_length(rows, source_lengths(sources, translator), translator.config.eval)
    print(format_by_length(buckets, unit), file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
