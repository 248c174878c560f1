"""Shared test settings: silent broadcasting fails, every test runs on CPU in float32, one JAX compilation cache
for the session, XLA's fast compilation, no dataset prepared outside a temporary directory."""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tools' persistent compilation cache stays off in tests (never the user's ~/.cache); tests of the
# cache give it a directory of their own.
os.environ.setdefault("SEQ2SEQ_JAX_CACHE_DIR", "off")
# Datasets a test prepares without naming a data_dir go to this session's temporary directory (inherited by
# the subprocesses the tests start), never to the user's ~/.cache/seq2seq_jax.
_DATA_DIR = tempfile.TemporaryDirectory(prefix="seq2seq_jax_test_data_")
os.environ["SEQ2SEQ_JAX_DATA_DIR"] = _DATA_DIR.name
# JAX's persistent compilation cache, one directory for the session: its xdist workers and every subprocess a
# test starts inherit it. Most of a small run's time is compiling, and the tests train the same small configs
# again and again (a resumed run, a second tool on the same run), so a program compiled once is loaded after.
# Set before JAX is imported, so JAX reads it as its default; a worker inherits the controller's directory.
if "SEQ2SEQ_JAX_TEST_JIT_CACHE" not in os.environ:
    _JIT_CACHE = tempfile.TemporaryDirectory(prefix="seq2seq_jax_test_jit_cache_")
    os.environ["SEQ2SEQ_JAX_TEST_JIT_CACHE"] = _JIT_CACHE.name
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["SEQ2SEQ_JAX_TEST_JIT_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
# XLA's CPU backend at optimization level 0, for every test and every process a test starts: the suite compiles
# hundreds of small programs, and optimising them took ~30% of its time. Only code generation changes: both
# sides of every comparison run under the same flags (benchmarks/ measures with XLA's defaults). A user's own
# XLA_FLAGS (e.g. --xla_cpu_max_isa=AVX2) are kept, after these.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):  # an xdist worker inherits the controller's
    os.environ["XLA_FLAGS"] = f"{FAST_COMPILE} {os.environ.get('XLA_FLAGS', '')}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def fixed_mock_getitems(monkeypatch):
    """Works around a tfds 4.9.10 mocking bug: `mock_data` sets `__getitems__` on a MagicMock instance as an
    unbound `functools.partial`, so batched reads fail with "missing argument 'record_keys'". Real
    array_record data sources are unaffected; this reads the mock one item at a time instead."""
    # Imported by its own name: `tfds.core.data_sources.base` is an attribute only once something has imported
    # that module, which depends on what the process ran before (alone, this test would fail).
    from tensorflow_datasets.core.data_sources import base  # noqa: PLC0415 - only the tests that mock need it

    monkeypatch.setattr(base.BaseDataSource, "__getitems__", lambda self, keys: [self[k] for k in keys])


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory):
    """A run of the tiny config trained once for the CLI tests (evaluate, translate): 30 steps, one
    bucket shape, so one compilation of each step."""
    from seq2seq_jax import train  # noqa: PLC0415 - imported by the tests that train
    from seq2seq_jax.configs import tiny  # noqa: PLC0415

    config = tiny.get_config()
    config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
    config.data.num_train, config.data.num_validation, config.data.num_test = 200, 30, 30
    config.data.num_buckets = 1
    config.train.num_steps, config.train.log_every = 30, 10
    config.train.eval_every, config.train.checkpoint_every = 0, 30
    path = str(tmp_path_factory.mktemp("run"))
    train.train_and_evaluate(config, path)
    return path


@pytest.fixture(scope="session")
def load_trained_once():
    """``workdir.load_trained`` memoised for the session: each checkpoint a test loads this way is read once
    (a read builds the model's and optimizer's state first: seconds each)."""
    import functools  # noqa: PLC0415

    from seq2seq_jax import workdir as workdir_lib  # noqa: PLC0415

    return functools.cache(workdir_lib.load_trained)


@pytest.fixture(scope="session")
def tiny_translator(tiny_workdir, load_trained_once):
    """``Translator.from_workdir(tiny_workdir, beam_size=3, batch_size=4)``, loaded once for the session."""
    from seq2seq_jax import workdir as workdir_lib  # noqa: PLC0415
    from seq2seq_jax.translator import Translator  # noqa: PLC0415

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workdir_lib, "load_trained", load_trained_once)
        return Translator.from_workdir(tiny_workdir, beam_size=3, batch_size=4)


@pytest.fixture
def run_tool(monkeypatch, load_trained_once):
    """``run_tool(module, *flags)``: ``module.main`` as ``app.run`` calls it, its flags parsed afresh (a parse
    error raises ``flags.Error``), with the compilation cache off and the runs' checkpoints read once for the
    session (``load_trained_once``). FLAGS is left as the test found it."""
    from absl import flags  # noqa: PLC0415

    from seq2seq_jax import workdir as workdir_lib  # noqa: PLC0415

    monkeypatch.setenv("SEQ2SEQ_JAX_CACHE_DIR", "off")
    monkeypatch.setattr(workdir_lib, "load_trained", load_trained_once)
    was_parsed = flags.FLAGS.is_parsed()

    def run(module, *args):
        flags.FLAGS.unparse_flags()
        return module.main(flags.FLAGS(["prog", *args]))

    yield run
    flags.FLAGS.unparse_flags()
    if was_parsed:
        flags.FLAGS.mark_as_parsed()
