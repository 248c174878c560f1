"""Scores given translations with a trained run, as fairseq-generate's ``--score-reference`` and OpenNMT's
``-tgt`` gold scores do: how likely the model finds each target line given its source line.

    python -m seq2seq_jax.score --workdir=runs/tiny --source=src.txt --target=tgt.txt [--output=scores.jsonl] \\
        [--checkpoint=best|latest|NAME]

Line i of ``--target`` is scored against line i of ``--source`` (lines end in '\\n', a '\\r' before it and a
byte-order mark at the start are dropped, bytes that are not UTF-8 are read as U+FFFD, as ``translate``
reads them). The output (``--output``, else stdout) has one JSON row per pair, ``{"logprob": ..., "tokens":
..., "perplexity": ...}``: the teacher-forced natural-log probability of the target and its ``</s>``, their
number, and ``exp(-logprob / tokens)`` (``seq2seq_jax.Translator.score``). A summary goes to stderr at the
end: pairs, target tokens, total log-probability and the overall perplexity ``exp(-sum logprob / sum
tokens)``. Both files are read whole; an ``--output`` file is written to ``OUTPUT.tmp`` and renamed at the end.

A bad request (a missing input, files of different line counts, no pair, an output that is an input or in
a missing folder, no run or checkpoint in the workdir) is one ``error:`` line and exit status 1, before
anything is written.
"""

import json
import math
import os
import sys

from absl import app, flags, logging

from seq2seq_jax import checkpointing
from seq2seq_jax import cli
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
    try:
        translator = Translator.from_workdir(_WORKDIR.value, _CHECKPOINT.value)
    except (FileNotFoundError, checkpointing.CheckpointError) as error:
        cli.fail(str(error))
    logging.info("scoring %d pairs with the %s checkpoint of %s", len(sources), _CHECKPOINT.value, _WORKDIR.value)
    rows = translator.score(sources, targets)
    with cli.open_output(output) as out:
        out.write("".join(json.dumps(row) + "\n" for row in rows))
    logprob, tokens = sum(row["logprob"] for row in rows), sum(row["tokens"] for row in rows)
    print(f"{len(rows)} pairs, {tokens} target tokens (</s> included): log-probability {logprob:.4f}, "
          f"perplexity {math.exp(-logprob / tokens):.4f}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
