"""The user's own parallel text: per split, a TSV file or two line-aligned files.

A split's spec is either `path.tsv` (one `source<TAB>target` per line) or `src_path,tgt_path` (line i of one
file translates line i of the other). `train_file` is required; `validation_file` and `test_file` are
optional and their splits exist only when given. Files are checked when the builder is made, and any
problem raises one `ValueError` naming the split, the file and, for a bad TSV line, the line number.

The config name is a hash of every file's path, size and modification time, so editing a file makes a new
prepared dataset rather than silently reusing the stale one.
"""

import dataclasses
import hashlib
import os

import tensorflow_datasets as tfds

from seq2seq_jax.data.datasets import _common


@dataclasses.dataclass(eq=False)
class ParallelTextConfig(tfds.core.BuilderConfig):
    """Split name → file spec (`path.tsv` or `src_path,tgt_path`)."""

    files: dict[str, str] = dataclasses.field(default_factory=dict)


def _read_lines(path: str, split: str) -> list[str]:
    if not os.path.isfile(path):
        raise ValueError(f"data.{split}_file: file {path!r} for the {split} split does not exist.")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        raise ValueError(f"data.{split}_file: file {path!r} for the {split} split is empty.")
    return lines


def read_pairs(spec: str, split: str) -> list[tuple[str, str]]:
    """(source, target) pairs from a split's file spec; raises `ValueError` on any malformed input."""
    paths = [p.strip() for p in spec.split(",")]
    if len(paths) == 1:
        pairs = []
        for number, line in enumerate(_read_lines(paths[0], split), start=1):
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(
                        f"data.{split}_file: {paths[0]!r} line {number}: expected 'source<TAB>target' (exactly one tab), "
                        f"found {len(fields) - 1} tabs: {line[:80]!r}")
            pairs.append((fields[0], fields[1]))
        return pairs
    if len(paths) == 2:
        sources, targets = (_read_lines(p, split) for p in paths)
        if len(sources) != len(targets):
            raise ValueError(
                    f"data.{split}_file: {paths[0]!r} has {len(sources)} lines but {paths[1]!r} has {len(targets)}; "
                    "line-aligned source and target files must have the same number of lines.")
        return list(zip(sources, targets))
    raise ValueError(f"data.{split}_file: expected 'path.tsv' or 'src_path,tgt_path', got {spec!r}.")


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

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def __init__(self, *, train_file: str | None = None, validation_file: str | None = None,
                 test_file: str | None = None, config: ParallelTextConfig | None = None, **kwargs):
        """Takes the split files, or a `config` holding them (how TFDS itself re-creates a pickled builder)."""
        if config is None:
            specs = {"train": train_file, "validation": validation_file, "test": test_file}
            files = {split: spec for split, spec in specs.items() if spec}
            if "train" not in files:
                raise ValueError("data.train_file: parallel_text needs a training file ('path.tsv' or 'src,tgt').")
            self._pairs = {split: read_pairs(spec, split) for split, spec in files.items()}
            config = ParallelTextConfig(name=f"files-{files_fingerprint(files)}", files=files)
        else:
            self._pairs = {split: read_pairs(spec, split) for split, spec in config.files.items()}
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_common.features(), supervised_keys=("source", "target"))

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files.
        return {split: self._generate_examples(pairs) for split, pairs in self._pairs.items()}

    def _generate_examples(self, pairs: list[tuple[str, str]]):
        for i, (source, target) in enumerate(pairs):
            yield i, _common.example(source, target)
