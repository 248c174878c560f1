"""The user's own parallel text: per split, a TSV file or two line-aligned files.

A split's spec is either `path.tsv` (one `source<TAB>target` per line) or `src_path,tgt_path` (line i of one
file translates line i of the other). `train_file` is required; `validation_file` and `test_file` are
optional and their splits exist only when given (training needs both: `seq2seq_jax.main` refuses a
parallel_text run without them).

Files are UTF-8 (a leading byte-order mark is dropped) and are split into lines at '\n' only, so U+2028,
U+0085, form feeds and the other characters `str.splitlines` breaks at stay inside a line; a '\r' before
the '\n' is dropped (CRLF files). A pair whose source or target is blank (empty lines included) is skipped;
the skipped lines are counted and logged. Everything else that is wrong raises one `DataFileError` (a
`ValueError`) naming the split's field, the file and, where it applies, the line: a missing, unreadable or
empty file, invalid UTF-8, a NUL byte (a binary or UTF-16 file), a TSV line without exactly one tab, two
files of different lengths.

By default (`merge_references=True`) the lines of the validation and test files that share a source are
one example whose `references` are all their distinct targets (file order; `target` is the first), so every
metric scores a hypothesis against each of them, as for a dictionary with several pronunciations per word
or a test set with several translations per sentence; the number of merged lines is logged. Training
lines are never merged.

The config name is a hash of every file's path, size and modification time, so editing a file makes a new
prepared dataset rather than silently reusing the stale one.
"""

import codecs
import dataclasses
import hashlib
import os

import tensorflow_datasets as tfds
from absl import logging

from seq2seq_jax.data.datasets import _common

# Splits whose lines with one source are merged into one multi-reference example.
MERGED_SPLITS = ("validation", "test")


class DataFileError(ValueError):
    """A data file that cannot be read as documented; the message names the config field, file and line."""


@dataclasses.dataclass(eq=False)
class ParallelTextConfig(tfds.core.BuilderConfig):
    """Split name → file spec (`path.tsv` or `src_path,tgt_path`), and whether to merge references."""

    files: dict[str, str] = dataclasses.field(default_factory=dict)
    merge_references: bool = True


def read_lines(path: str, split: str) -> list[str]:
    """The lines of a UTF-8 text file, split at '\\n' only (BOM and CRLF handled); `DataFileError` if bad."""
    where = f"data.{split}_file: file {path!r} for the {split} split"
    if not os.path.isfile(path):
        raise DataFileError(f"{where} does not exist (or is not a file).")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise DataFileError(f"{where} cannot be read: {error.strerror}.") from None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataFileError(f"{where}, line {line}: not valid UTF-8 ({error.reason}: "
                            f"{data[error.start:error.end]!r}); save the file as UTF-8.") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise DataFileError(f"{where}, line {line}: contains a NUL byte; is it a binary or UTF-16 file? "
                            "Save it as UTF-8 text.")
    if not text:
        raise DataFileError(f"{where} is empty.")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline ending the last line
    return [line.removesuffix("\r") for line in lines]


def read_pairs(spec: str, split: str) -> list[tuple[str, str]]:
    """(source, target) pairs from a split's file spec, blank pairs skipped (logged); `DataFileError` if bad."""
    paths = [p.strip() for p in spec.split(",")]
    if len(paths) == 1:
        pairs = []
        for number, line in enumerate(read_lines(paths[0], split), start=1):
            fields = line.split("\t")
            if len(fields) != 2 and line.strip():
                raise DataFileError(f"data.{split}_file: {paths[0]!r} line {number}: expected 'source<TAB>target' "
                                    f"(exactly one tab), found {len(fields) - 1} tabs: {line[:80]!r}")
            pairs.append((fields[0], fields[1]) if len(fields) == 2 else ("", ""))
    elif len(paths) == 2:
        sources, targets = (read_lines(p, split) for p in paths)
        if len(sources) != len(targets):
            raise DataFileError(f"data.{split}_file: {paths[0]!r} has {len(sources)} lines but {paths[1]!r} has "
                                f"{len(targets)}; line-aligned source and target files need as many lines.")
        pairs = list(zip(sources, targets))
    else:
        raise DataFileError(f"data.{split}_file: expected 'path.tsv' or 'src_path,tgt_path', got {spec!r}.")
    blank = [number for number, (s, t) in enumerate(pairs, start=1) if not s.strip() or not t.strip()]
    if len(blank) == len(pairs):
        raise DataFileError(f"data.{split}_file: {spec!r} has no line with both a source and a target.")
    if blank:
        logging.warning("data.%s_file %r: skipped %d of %d lines whose source or target is blank (first: line %d).",
                        split, spec, len(blank), len(pairs), blank[0])
        skipped = set(blank)
        pairs = [pair for number, pair in enumerate(pairs, start=1) if number not in skipped]
    return pairs


def merge_references(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(source, distinct targets in file order) per distinct source, in order of first appearance."""
    targets: dict[str, list[str]] = {}
    for source, target in pairs:
        targets.setdefault(source, []).append(target)
    return [(source, list(dict.fromkeys(refs))) for source, refs in targets.items()]


def files_fingerprint(files: dict[str, str]) -> str:
    """A short hash of the split → path mapping and each file's size and modification time."""
    parts = []
    for split, spec in sorted(files.items()):
        for path in (p.strip() for p in spec.split(",")):
            stat = os.stat(path)
            parts.append(f"{split}:{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class ParallelText(tfds.core.GeneratorBasedBuilder):
    """Parallel text from local files; see the module docstring."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Lines split at '\\n' only (BOM, CRLF handled); blank pairs skipped; validation and test lines "
                 "with one source merged into one multi-reference example.",
    }

    def __init__(self, *, train_file: str | None = None, validation_file: str | None = None,
                 test_file: str | None = None, merge_references: bool = True,
                 config: ParallelTextConfig | None = None, **kwargs):
        """Takes the split files, or a `config` holding them (how TFDS itself re-creates a pickled builder)."""
        if config is None:
            specs = {"train": train_file, "validation": validation_file, "test": test_file}
            files = {split: spec for split, spec in specs.items() if spec}
            if "train" not in files:
                raise ValueError("data.train_file: parallel_text needs a training file ('path.tsv' or 'src,tgt').")
            for split, spec in files.items():
                for path in (p.strip() for p in spec.split(",")):
                    if not os.path.isfile(path):
                        read_lines(path, split)  # raises the error naming it
            name = f"files-{files_fingerprint(files)}" + ("" if merge_references else "-unmerged")
            config = ParallelTextConfig(name=name, files=files, merge_references=merge_references)
        super().__init__(config=config, **kwargs)
        # The files are read (and checked) only to prepare them: their name holds their sizes and times, so a
        # prepared dataset of that name is of these very files, and a later start reads none of their text.
        self._examples = None if self.is_prepared() else {
            split: self._read_split(spec, split, config.merge_references) for split, spec in config.files.items()}

    @staticmethod
    def _read_split(spec: str, split: str, merge: bool) -> list[dict]:
        pairs = read_pairs(spec, split)
        if not merge or split not in MERGED_SPLITS:
            return [_common.example(source, target) for source, target in pairs]
        merged = merge_references(pairs)
        if len(merged) < len(pairs):
            logging.info("data.%s_file: %d lines merged into examples with several references (%d examples from "
                         "%d lines); data.merge_references=False keeps every line apart.", split,
                         len(pairs) - len(merged), len(merged), len(pairs))
        return [_common.example(source, refs[0], refs) for source, refs in merged]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_common.features(), supervised_keys=("source", "target"))

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files.
        return {split: self._generate_examples(examples) for split, examples in self._examples.items()}

    def _generate_examples(self, examples: list[dict]):
        yield from enumerate(examples)
