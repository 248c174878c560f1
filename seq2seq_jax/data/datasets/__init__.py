"""Dataset registry: a `data.dataset` name → a TFDS builder that prepares to array_record files.

Names are `<dataset>` or `<dataset>/<config>`: `cmudict_g2p/no_stress`, `number_words/en_fr`, `dates`,
`synthetic/reverse`, `parallel_text`, `bible/es-en` (Spanish → English verse pairs from installed SWORD
modules, see `bible`), or any TFDS catalog translation set such as `wmt14_translate/fr-en`.
"""

import dataclasses

import tensorflow_datasets as tfds

from seq2seq_jax.data.datasets import _common
from seq2seq_jax.data.datasets import _spill
from seq2seq_jax.data.datasets.bible import Bible
from seq2seq_jax.data.datasets.cmudict_g2p import CmudictG2p
from seq2seq_jax.data.datasets.dates import Dates
from seq2seq_jax.data.datasets.number_words import NumberWords
from seq2seq_jax.data.datasets.parallel_text import ParallelText
from seq2seq_jax.data.datasets.synthetic import Synthetic

LOCAL_BUILDERS = {
    "cmudict_g2p": CmudictG2p,
    "number_words": NumberWords,
    "dates": Dates,
    "synthetic": Synthetic,
    "parallel_text": ParallelText,
    "bible": Bible,
}


def allowed_names() -> list[str]:
    """Every local `dataset/config` name, plus the pattern for catalog translation sets."""
    names = []
    for name, cls in LOCAL_BUILDERS.items():
        configs = [c.name for c in cls.BUILDER_CONFIGS]
        names += [f"{name}/{c}" for c in configs] if len(configs) > 1 else [name]
    return names + ["<any TFDS translation set, e.g. wmt14_translate/fr-en>"]


def _unknown(name: str, why: str = "") -> ValueError:
    return ValueError(f"data.dataset: unknown dataset {name!r}{why}; allowed: {', '.join(allowed_names())}.")


def _local_builder(cls, config_name: str | None, name: str, data_dir: str, kwargs: dict):
    if cls is ParallelText:
        if config_name:
            raise _unknown(name, " (parallel_text takes no config; set data.train_file etc.)")
        if unknown := sorted(set(kwargs) - {"train_file", "validation_file", "test_file", "merge_references"}):
            raise ValueError(f"data.{unknown[0]} does not apply to dataset 'parallel_text' (it takes "
                             "train_file, validation_file, test_file, merge_references).")
        return ParallelText(data_dir=data_dir, file_format="array_record", **kwargs)
    config = cls.builder_configs.get(config_name) if config_name else cls.BUILDER_CONFIGS[0]
    if config is None:
        raise _unknown(name)
    fields = {f.name for f in dataclasses.fields(config)}
    if unknown := sorted(set(kwargs) - fields):
        raise ValueError(f"data.{unknown[0]} does not apply to dataset {name!r} (it takes {sorted(fields)}).")
    config = _common.with_overrides(config, **kwargs)
    return cls(data_dir=data_dir, file_format="array_record", config=config)


def get_builder(name: str, data_dir: str, **kwargs) -> tfds.core.DatasetBuilder:
    """The builder for `name`, writing array_record files under `data_dir` (not yet prepared).

    Args:
      name: `dataset` or `dataset/config` (see module docstring).
      data_dir: TFDS data directory.
      **kwargs: local generated datasets: config overrides such as `num_train`; `parallel_text`:
        `train_file`, `validation_file`, `test_file`, `merge_references`. Catalog datasets take none.

    Raises:
      ValueError: naming `data.dataset` for an unknown name, or the field a keyword does not apply to.
    """
    _spill.install()  # a corpus over 1 GB spills to disk while it is prepared, with or without TensorFlow
    dataset, _, config_name = name.partition("/")
    if dataset in LOCAL_BUILDERS:
        return _local_builder(LOCAL_BUILDERS[dataset], config_name or None, name, data_dir, kwargs)
    # Importing the translate package registers the catalog translation sets (wmt*, ted_*, ...).
    import tensorflow_datasets.translate  # noqa: F401

    try:
        builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
        raise _unknown(name, f" ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if kwargs:
        raise ValueError(f"data.{sorted(kwargs)[0]} does not apply to the catalog dataset {name!r}.")
    return builder
