"""``seq2seq_jax.malloc`` names the process's malloc, and its reason holds: under glibc a jitted program's
temporary buffer is mapped afresh, page by page, at every call; under tcmalloc it is reused."""

import os
import pathlib
import subprocess
import sys

import pytest

from seq2seq_jax import malloc

TCMALLOC = malloc.tcmalloc_library()
needs_tcmalloc = pytest.mark.skipif(TCMALLOC is None, reason="tcmalloc is not installed (libtcmalloc-minimal4)")

# A jitted program whose temporary buffer is 64 MiB (above glibc's largest mmap threshold, 32 MiB): the outer
# product is materialised for the sort, and only its first row comes back. Prints the malloc's name, the
# buffer's bytes and the minor page faults per call after a warm-up call.
PROGRAM = """
import resource, jax, jax.numpy as jnp
from seq2seq_jax import malloc
f = jax.jit(lambda a, b: jnp.sort(jnp.outer(a, b), axis=1)[0])
a = b = jnp.arange(4096, dtype=jnp.float32)
temp = f.lower(a, b).compile().memory_analysis().temp_size_in_bytes
f(a, b).block_until_ready()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    f(a, b).block_until_ready()
print(malloc.name(), temp, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 5)
"""


def _run(preload: str | None) -> tuple[str, int, float]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update({"LD_PRELOAD": preload} if preload else {})
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True,
                         timeout=300)
    name, temp, faults = out.stdout.split()
    return name, int(temp), float(faults)


def _transparent_huge_pages_always() -> bool:
    path = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return path.exists() and "[always]" in path.read_text()


@pytest.mark.skipif(_transparent_huge_pages_always(), reason="huge pages: one fault per 2 MiB, not per 4 KiB")
def test_under_glibc_each_call_faults_in_the_temporary_buffer_page_by_page():
    name, temp, faults = _run(preload=None)
    assert name == "glibc" and temp >= 64 * 2**20
    assert faults >= 0.9 * temp / 4096, (temp, faults)


@needs_tcmalloc
def test_under_tcmalloc_the_temporary_buffer_is_reused():
    name, temp, faults = _run(preload=TCMALLOC)
    assert name == "tcmalloc"
    # Not none: tcmalloc gives some freed pages back to the system as it goes (gperftools' release rate), the
    # more so while other processes allocate; alone it took ~3 faults a call, beside the test suite ~3,400.
    assert faults < 0.5 * temp / 4096, (temp, faults)


def test_the_hint_names_tcmalloc_for_a_cpu_run_under_glibc_only(monkeypatch):
    monkeypatch.setattr(malloc, "name", lambda: "glibc")
    assert "LD_PRELOAD=" in malloc.hint("cpu")
    assert malloc.hint("gpu") is None and malloc.hint("tpu") is None
    monkeypatch.setattr(malloc, "tcmalloc_library", lambda: None)
    assert "apt-get install libtcmalloc-minimal4" in malloc.hint("cpu")
    monkeypatch.setattr(malloc, "name", lambda: "tcmalloc")
    assert malloc.hint("cpu") is None
