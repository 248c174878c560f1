"""Which ``malloc`` this process runs, and the one that makes CPU train steps faster.

XLA's CPU client allocates a compiled program's temporary buffer (every activation the backward pass keeps,
the gradients, Adam's update: tens of MB for a small model) anew at every execution and frees it after.
glibc's ``malloc`` serves a block that large with its own ``mmap`` and unmaps it when freed (above 32 MiB
always; ``M_MMAP_THRESHOLD`` cannot go higher), so each step touches fresh pages: the kernel takes one page
fault, and zeroes a page, per 4 KiB of that buffer, every step. tcmalloc (``libtcmalloc-minimal4`` on
Debian, preloaded with ``LD_PRELOAD``) keeps freed blocks for reuse, so the same step takes almost none.
``python -m benchmarks.run`` times the train step under both (page faults a step included): see
benchmarks/RESULTS.md. It must be preloaded before the process starts, which is why this module only says so.
"""

import ctypes.util

TCMALLOC = "tcmalloc_minimal"  # Debian's libtcmalloc-minimal4: LD_PRELOAD=libtcmalloc_minimal.so.4
KNOWN = ("tcmalloc", "jemalloc", "mimalloc")


def name() -> str:
    """``'tcmalloc'``, ``'jemalloc'`` or ``'mimalloc'`` if one is loaded into this process (from its memory map,
    Linux), else ``'glibc'`` (or ``'unknown'`` where there is no ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    return next((k for k in KNOWN if f"lib{k}" in maps), "glibc")


def tcmalloc_library() -> str | None:
    """The file name to preload tcmalloc with (``LD_PRELOAD=<it>``), or None if it is not installed."""
    return ctypes.util.find_library(TCMALLOC)


def hint(backend: str) -> str | None:
    """One line for the log when a CPU run uses glibc's ``malloc``: how to start it with tcmalloc; else None."""
    if backend != "cpu" or name() != "glibc":
        return None
    library = tcmalloc_library()
    how = (f"start it with LD_PRELOAD={library}" if library else
           "install tcmalloc (Debian: apt-get install libtcmalloc-minimal4) and start it with "
           "LD_PRELOAD=libtcmalloc_minimal.so.4")
    return (f"this CPU run uses glibc's malloc, which unmaps XLA's per-step buffer after every step (one page fault "
            f"per 4 KiB of it, each step); {how} for faster steps (seq2seq_jax/malloc.py, benchmarks/RESULTS.md)")
