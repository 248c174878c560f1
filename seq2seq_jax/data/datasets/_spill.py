"""TFDS's shuffler, able to spill to disk without TensorFlow.

While it prepares a split, TFDS (4.9) holds the serialised examples in memory up to 1 GB, then moves them to
temporary bucket files through `tf.io.gfile`, which is TensorFlow's: without TensorFlow, preparing a corpus
of more than ~1 GB of examples (~3M sentence pairs of 20 words) ends in `ModuleNotFoundError: No module named
'tensorflow'`. This project does not depend on TensorFlow, so where it is not installed `install()` gives
TFDS's shuffler module the few `tf` names it uses, backed by `etils.epath` (which TFDS itself depends on).
"""

import importlib.util
import types

from etils import epath
from tensorflow_datasets.core import shuffle


class _NotRaised(Exception):
    """Stands in for `tf.errors.ResourceExhaustedError`, which the shuffler catches: epath raises OSError."""


_TF_FILES = types.SimpleNamespace(
    io=types.SimpleNamespace(gfile=types.SimpleNamespace(
        GFile=lambda path, mode: epath.Path(path).open(mode),
        exists=lambda path: epath.Path(path).exists(),
        remove=lambda path: epath.Path(path).unlink())),
    errors=types.SimpleNamespace(ResourceExhaustedError=_NotRaised))


def install() -> None:
    """Lets the shuffler spill to disk when TensorFlow is not installed (a no-op where it is)."""
    if importlib.util.find_spec("tensorflow") is None:
        shuffle.tf = _TF_FILES
