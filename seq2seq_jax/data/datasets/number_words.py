"""Numbers written out with `num2words`: digits → English words, and English words → French/German/Spanish.

`en_fr` is a real translation with reordering: "ninety-seven" → "quatre-vingt-dix-sept". Numbers are drawn
(seeded) by first drawing a digit count uniformly in 1..`max_digits`, then a number with that many digits,
so source lengths are spread from "zero" to ~110-character phrases: this dataset drives the accuracy vs
source length study. Numbers are distinct and no number is in two splits.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from num2words import num2words

from seq2seq_jax.data.datasets import _common

# Config name → (source language, target language); 'digits' means the number's decimal digits.
PAIRS = {"digits_en": ("digits", "en"), "en_fr": ("en", "fr"), "en_de": ("en", "de"), "en_es": ("en", "es")}


@dataclasses.dataclass(eq=False)
class NumberWordsConfig(tfds.core.BuilderConfig):
    """A language pair, the largest digit count (numbers are in 0 .. 10**max_digits - 1) and split sizes."""

    source_lang: str = "en"
    target_lang: str = "fr"
    max_digits: int = 9
    num_train: int = 50_000
    num_validation: int = 2_000
    num_test: int = 2_000
    seed: int = 0


def write(number: int, lang: str) -> str:
    """`number` in `lang`, or as decimal digits for `lang='digits'`."""
    return str(number) if lang == "digits" else num2words(number, lang=lang)


def draw_number(rng: np.random.Generator, max_digits: int) -> int:
    """A number whose digit count is uniform in 1..`max_digits` (so magnitudes are log-uniform-ish)."""
    digits = int(rng.integers(1, max_digits + 1))
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return int(rng.integers(low, 10**digits))


class NumberWords(tfds.core.GeneratorBasedBuilder):
    """Number names across languages; see the module docstring."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "1.1.0": "Splits are a random partition of the distinct numbers (1.0.0 gave validation "
                              "nearly all the one- and two-digit numbers, and training none)."}
    BUILDER_CONFIGS = [
            NumberWordsConfig(name=name, source_lang=src, target_lang=tgt) for name, (src, tgt) in PAIRS.items()
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_common.features(), supervised_keys=("source", "target"))

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated offline.
        c = self.builder_config
        sizes = {"train": c.num_train, "validation": c.num_validation, "test": c.num_test}
        numbers = _common.fill_splits(lambda rng: draw_number(rng, c.max_digits), sizes, seed=c.seed)
        return {split: self._generate_examples(items) for split, items in numbers.items()}

    def _generate_examples(self, numbers: list[int]):
        c = self.builder_config
        for number in numbers:
            yield number, _common.example(write(number, c.source_lang), write(number, c.target_lang))
