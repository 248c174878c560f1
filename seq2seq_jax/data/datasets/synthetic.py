"""Synthetic string tasks: copy, reverse, sort and addition, with seeded, disjoint splits.

`copy`, `reverse`, `sort`: a string of `min_length..max_length` symbols (the first `alphabet_size` of
'a'..'z', no spaces) maps to itself, reversed or sorted. `addition`: two numbers of `min_length..max_length`
digits each, "123+45" → "168". Lengths are uniform; sources are distinct and no source is in two splits.
"""

import dataclasses
import string

import numpy as np
import tensorflow_datasets as tfds

from seq2seq_jax.data.datasets import _common

TASKS = ("copy", "reverse", "sort", "addition")


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
    """One task, its lengths (symbols, or digits per operand for `addition`), alphabet and split sizes."""

    task: str = "copy"
    min_length: int = 1
    max_length: int = 20
    alphabet_size: int = 26
    num_train: int = 50_000
    num_validation: int = 2_000
    num_test: int = 2_000
    seed: int = 0


def _target(task: str, source: str) -> str:
    if task == "copy":
        return source
    if task == "reverse":
        return source[::-1]
    if task == "sort":
        return "".join(sorted(source))
    left, right = source.split("+")
    return str(int(left) + int(right))


class Synthetic(tfds.core.GeneratorBasedBuilder):
    """Copy, reverse, sort and addition; see the module docstring."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "1.1.0": "Splits are a random partition of the distinct sources (1.0.0 gave validation "
                              "nearly all the shortest ones, and training none)."}
    BUILDER_CONFIGS = [SyntheticConfig(name=task, task=task) for task in TASKS]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_common.features(), supervised_keys=("source", "target"))

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated offline.
        c = self.builder_config
        if c.task not in TASKS:
            raise ValueError(f"Unknown synthetic task {c.task!r}; allowed: {TASKS}.")
        if not 1 <= c.min_length <= c.max_length:
            raise ValueError(f"Need 1 <= min_length <= max_length, got {c.min_length}, {c.max_length}.")
        if not 2 <= c.alphabet_size <= 26:
            raise ValueError(f"alphabet_size must be in 2..26, got {c.alphabet_size}.")
        symbols = np.array(list(string.ascii_lowercase[:c.alphabet_size]))

        def draw_number(rng: np.random.Generator) -> str:
            digits = rng.integers(0, 10, size=rng.integers(c.min_length, c.max_length + 1))
            return str(int("".join(map(str, digits))))  # Leading zeros dropped: "007" is written "7".

        def draw(rng: np.random.Generator) -> str:
            if c.task == "addition":
                return f"{draw_number(rng)}+{draw_number(rng)}"
            return "".join(rng.choice(symbols, size=rng.integers(c.min_length, c.max_length + 1)))

        sizes = {"train": c.num_train, "validation": c.num_validation, "test": c.num_test}
        sources = _common.fill_splits(draw, sizes, seed=c.seed)
        return {split: self._generate_examples(c.task, items) for split, items in sources.items()}

    def _generate_examples(self, task: str, sources: list[str]):
        for i, source in enumerate(sources):
            yield i, _common.example(source, _target(task, source))
