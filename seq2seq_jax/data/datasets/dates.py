"""Human-readable dates in many `babel` locales and formats → ISO `YYYY-MM-DD`.

Each example draws (seeded) a day in `[start_date, end_date]`, a locale and a format ('short', 'medium',
'long', 'full'). Splits are disjoint **by date**: a day's stable hash puts it in train (90%), validation
(5%) or test (5%), so no test day is seen in training in any locale or format. Examples are distinct
(date, locale, format) triples. The default range 1950..2049 keeps two-digit years ('7/14/89') unambiguous
under the usual pivot (50..99 → 19xx, 00..49 → 20xx).
"""

import dataclasses
import datetime

import babel.dates
import numpy as np
import tensorflow_datasets as tfds

from seq2seq_jax.data.datasets import _common

LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pt_BR")
FORMATS = ("short", "medium", "long", "full")


@dataclasses.dataclass(eq=False)
class DatesConfig(tfds.core.BuilderConfig):
    """Date range (ISO strings, inclusive), locales, formats and split sizes."""

    start_date: str = "1950-01-01"
    end_date: str = "2049-12-31"
    locales: tuple[str, ...] = LOCALES
    formats: tuple[str, ...] = FORMATS
    num_train: int = 50_000
    num_validation: int = 2_000
    num_test: int = 2_000
    seed: int = 0


class Dates(tfds.core.GeneratorBasedBuilder):
    """Date normalisation; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [DatesConfig(name="default")]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_common.features(), supervised_keys=("source", "target"))

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated offline.
        c = self.builder_config
        start = datetime.date.fromisoformat(c.start_date)
        num_days = (datetime.date.fromisoformat(c.end_date) - start).days + 1
        sizes = {"train": c.num_train, "validation": c.num_validation, "test": c.num_test}
        rng = np.random.default_rng(c.seed)
        chosen = {split: {} for split in sizes}
        for _ in range(50 * sum(sizes.values())):
            if all(len(chosen[s]) == sizes[s] for s in sizes):
                break
            date = start + datetime.timedelta(days=int(rng.integers(num_days)))
            key = (date, c.locales[rng.integers(len(c.locales))], c.formats[rng.integers(len(c.formats))])
            split = _common.hash_split(date.isoformat())
            if len(chosen[split]) < sizes[split]:
                chosen[split].setdefault(key, None)  # A dict keeps draw order and drops repeats.
        if any(len(chosen[s]) < sizes[s] for s in sizes):
            raise ValueError(f"Date range {c.start_date}..{c.end_date} is too small for split sizes {sizes}.")
        return {split: self._generate_examples(list(keys)) for split, keys in chosen.items()}

    def _generate_examples(self, keys: list[tuple[datetime.date, str, str]]):
        for date, locale, fmt in keys:
            source = babel.dates.format_date(date, format=fmt, locale=locale)
            yield f"{date.isoformat()}/{locale}/{fmt}", _common.example(source, date.isoformat())
