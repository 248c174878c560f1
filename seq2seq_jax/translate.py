"""Decodes a text file, one output line per input line, with a trained run.

    python -m seq2seq_jax.translate --workdir=/tmp/tiny --input=in.txt --output=out.txt \
        [--beam_size=5] [--checkpoint=best|latest] [--attention_plots=DIR]
    echo hello | python -m seq2seq_jax.translate --workdir=/tmp/tiny --input=- --output=-

A line is what ends in '\\n' (a '\\r' before it is dropped too; a last line without '\\n' counts). Only
that newline is stripped: empty lines and lines with characters the vocabulary lacks (read as UNK) are
decoded like any other, so the output has exactly as many lines as the input. A newline inside a
hypothesis (only possible if the target vocabulary holds one) is written as a space for the same reason.
Text is UTF-8. The output file is written whole at the end (tmp file + rename), so a failed run leaves
an existing output as it was.

``--attention_plots=DIR`` draws ``DIR/0000.png``, ``DIR/0001.png``, ... (numbered by input line): the
attention weights with the source tokens along the top and the output tokens (``</s>`` included) down
the side. An empty input line has no source token to attend to, so its plot is skipped (logged).
"""

import os
import sys

from absl import app, flags, logging

from seq2seq_jax import checkpointing
from seq2seq_jax import cli
from seq2seq_jax import inference
from seq2seq_jax import plotting
from seq2seq_jax import train

_WORKDIR = cli.workdir_flag()
_CHECKPOINT = cli.checkpoint_flag()
_BEAM_SIZE = cli.beam_size_flag()
_INPUT = flags.DEFINE_string("input", None, "Text file to translate, one source per line; '-' = stdin.")
_OUTPUT = flags.DEFINE_string("output", None, "Where the translations go, one per line; '-' = stdout.")
_ATTENTION_PLOTS = flags.DEFINE_string(
    "attention_plots", None, "Folder for one attention heatmap per input line (0000.png, ...); default: none.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Lines decoded together.", lower_bound=1)
for _name in ("workdir", "checkpoint", "beam_size"):
    flags.declare_key_flag(_name)


def split_lines(text: str) -> list[str]:
    """The lines of ``text``: split at '\\n' only (not at '\\r', '\\x0c', '\\u2028', ... as
    ``str.splitlines`` would), one '\\r' before it dropped, no empty line after a final '\\n'."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: str) -> list[str]:
    if path == "-":
        return split_lines(sys.stdin.read())
    if not os.path.isfile(path):
        cli.fail(f"input file {path!r} does not exist" if not os.path.exists(path) else
                 f"input {path!r} is not a file")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return split_lines(f.read())
    except UnicodeDecodeError as error:
        cli.fail(f"input file {path!r} is not UTF-8 text: {error}")


def write_lines(path: str, lines: list[str]) -> None:
    text = "".join(line.replace("\r", " ").replace("\n", " ") + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.require(_WORKDIR, _INPUT, _OUTPUT)
    cli.quiet_libraries()
    output, plots = _OUTPUT.value, _ATTENTION_PLOTS.value
    if output != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        cli.fail(f"the folder of --output={output!r} does not exist")
    if output != "-" and os.path.isdir(output):
        cli.fail(f"--output={output!r} is a folder")
    lines = read_lines(_INPUT.value)
    try:
        config, model, params, source_vocab, target_vocab = train.load_trained(_WORKDIR.value, _CHECKPOINT.value)
    except (FileNotFoundError, checkpointing.CheckpointError) as error:
        cli.fail(str(error))
    logging.info("translating %d lines with the %s checkpoint of %s", len(lines), _CHECKPOINT.value,
                 _WORKDIR.value)
    hypotheses = []
    translations = inference.translate(model, params, source_vocab, target_vocab, lines, config.eval,
                                       batch_size=_BATCH_SIZE.value, beam_size=_BEAM_SIZE.value,
                                       with_target_ids=True)
    for i, (hypothesis, attention, source_ids, target_ids) in enumerate(translations):
        hypotheses.append(hypothesis)
        if plots is None:
            continue
        if not source_ids or not target_ids:
            logging.warning("line %d: no attention plot (empty %s)", i + 1, "source" if not source_ids else "output")
            continue
        plotting.plot_attention(attention, cli.token_labels(source_vocab, source_ids, lines[i]),
                                cli.token_labels(target_vocab, target_ids), os.path.join(plots, f"{i:04d}.png"))
    write_lines(output, hypotheses)
    logging.info("wrote %d lines to %s", len(hypotheses), output)


if __name__ == "__main__":
    app.run(main)
