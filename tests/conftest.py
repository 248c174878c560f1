"""Shared test settings: silent broadcasting fails, every test runs on CPU in float32, no compilation cache."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tools' persistent compilation cache stays off in tests (never the user's ~/.cache); tests of the
# cache give it a directory of their own.
os.environ.setdefault("SEQ2SEQ_JAX_CACHE_DIR", "off")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def fixed_mock_getitems(monkeypatch):
    """Works around a tfds 4.9.10 mocking bug: `mock_data` sets `__getitems__` on a MagicMock instance as an
    unbound `functools.partial`, so batched reads fail with "missing argument 'record_keys'". Real
    array_record data sources are unaffected; this reads the mock one item at a time instead."""
    import tensorflow_datasets as tfds  # noqa: PLC0415 - only the tests that mock catalog data need it

    monkeypatch.setattr(tfds.core.data_sources.base.BaseDataSource, "__getitems__",
                        lambda self, keys: [self[k] for k in keys])
