"""What every benchmark records besides its numbers: the machine and the threads each side may use."""

import ctypes
import importlib.metadata
import os
import platform
import resource
import sys
import time

import jax
import jax.extend
import numpy as np

from seq2seq_jax import malloc
from seq2seq_jax.configs import default


def machine() -> dict:
    """What the numbers were measured on (the study runs' ``machine/...`` fields, plus Python and torch)."""
    from seq2seq_jax import logger  # noqa: PLC0415 - the timed workers skip it

    info = logger.machine()
    try:
        torch_version = importlib.metadata.version("torch")  # optional extra 'bench'
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    return {**info, "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch_version}


# Peak FLOP/s of a CPU = cores x FMA units a core x fp32 lanes a vector x 2 (an FMA is a multiply and an add)
# x clock. Two FMA units a core is an assumption, true of Intel's cores since Haswell and AMD's since Zen 2, not
# of every AVX-512 part (some have one); a VM's clock is usually the nominal one, not the turbo.
FMA_UNITS_PER_CORE = 2


def peak_flops(info: dict) -> dict | None:
    """``{"flops_per_s", "formula"}``: the fp32 peak of ``machine()``'s CPU (avx512f: 16 lanes; avx2 and fma:
    8), or None when its vector width or clock is unknown."""
    extensions = set(info.get("cpu_vector_extensions", "").split())
    lanes, isa = (16, "avx512f") if "avx512f" in extensions else (8, "avx2+fma") if {"avx2", "fma"} <= extensions \
        else (None, None)
    cores, mhz = info.get("cpu_cores"), info.get("cpu_mhz")
    if lanes is None or not cores or not mhz:
        return None
    return {"flops_per_s": cores * FMA_UNITS_PER_CORE * lanes * 2 * mhz * 1e6,
            "formula": f"{cores} cores × {FMA_UNITS_PER_CORE} FMA units (assumed) × {lanes} fp32 lanes ({isa}) × 2 "
                       f"FLOPs per FMA × {mhz:g} MHz ({info.get('cpu_mhz_source')})"}


def matmul_flops(fn, *args) -> int:
    """The matmul FLOPs of one call of ``fn(*args)``, counted on its jaxpr: ``2 * M * N * K`` for every
    ``dot_general``, a ``scan``'s body ``length`` times, the costlier branch of a ``cond``, every other nested
    jaxpr (jit, remat, custom derivatives) once; elementwise work is not counted.

    Not XLA's ``compiled.cost_analysis()['flops']``: XLA counts a while loop's body once, whatever its trip
    count (a scan of 1, 10 or 100 matmuls reports the same FLOPs), so for a scanned RNN it is short by about
    the sequence length. A ``while`` loop other than a scan has no static trip count here: ValueError."""
    return _jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def _jaxpr_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[d] for d in contracting]))
        elif name == "scan":
            total += eqn.params["length"] * _jaxpr_flops(eqn.params["jaxpr"].jaxpr)
        elif name == "cond":
            total += max(_jaxpr_flops(branch.jaxpr) for branch in eqn.params["branches"])
        elif name == "while":
            raise ValueError("a while loop's trip count is not static: its FLOPs cannot be counted")
        else:
            for value in eqn.params.values():
                if isinstance(value, jax.extend.core.ClosedJaxpr):
                    total += _jaxpr_flops(value.jaxpr)
                elif isinstance(value, jax.extend.core.Jaxpr):
                    total += _jaxpr_flops(value)
    return total


def threads(impl: str) -> dict:
    """The intra-op threads of ``impl``: PyTorch's setting, or the CPUs XLA's CPU client may use (its
    thread pool has one thread per CPU of the process's affinity mask), with ``XLA_FLAGS``; on a GPU also the
    device and (the peer) its float32 matmul precision; and the process's ``malloc`` (``seq2seq_jax.malloc``)."""
    if impl == "torch":
        import torch  # optional extra 'bench'
        out = {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}
        if torch.cuda.is_available():
            out.update(torch_device=torch.cuda.get_device_name(), float32_matmul=torch.get_float32_matmul_precision())
    else:
        out = {"xla_cpus": len(os.sched_getaffinity(0)), "xla_flags": os.environ.get("XLA_FLAGS", "")}
        if jax.default_backend() != "cpu":
            out["jax_device"] = jax.devices()[0].device_kind
    return {**out, "malloc": malloc.name()}


def page_faults() -> int:
    """This process's minor page faults so far (``ru_minflt``): a page touched for the first time since it was
    mapped. A step that reallocates a freshly mapped buffer takes one per 4 KiB of it (``seq2seq_jax.malloc``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def model_config(cell, decoder, hidden, embed, remat=False):
    """``config`` of the default run with these sizes: 1 layer, unidirectional, additive attention, no dropout
    (``model.remat`` as given)."""
    config = default.get_config()
    config.model.update(dict(cell=cell, decoder=decoder, hidden_size=hidden, attention_size=hidden,
                             embedding_size=embed, num_layers=1, bidirectional=False, dropout=0.0, remat=remat))
    return config


def synthetic_batch(batch, src_len, tgt_len, vocab, seed=0) -> dict:
    """A padded numpy batch of random tokens, lengths uniform in ``[len // 2, len]`` (at least 1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for side, length in (("input", src_len), ("target", tgt_len)):
        lengths = rng.integers(max(1, length // 2), length + 1, size=batch).astype(np.int32)
        tokens = rng.integers(4, vocab, size=(batch, length)).astype(np.int32)
        out[f"{side}s"] = np.where(np.arange(length)[None, :] < lengths[:, None], tokens, 0).astype(np.int32)
        out[f"{side}_lengths"] = lengths
    return out


def num_params(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


def unmap_freed_memory() -> bool:
    """Has glibc give every allocation of 1 MiB or more its own mapping, unmapped when freed (``mallopt
    M_MMAP_THRESHOLD``, which also stops glibc raising that threshold as large blocks are freed): the resident
    memory then follows the live tensors instead of keeping freed pages (with the default, the PyTorch peer's
    resident memory after one step at length 160 grew by 1.8x its tensor peak, 4.2x under its profiler).
    Slower to allocate; for memory measurements only. Returns whether it applied (glibc only)."""
    try:
        return ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20) == 1  # M_MMAP_THRESHOLD = -3 in <malloc.h>
    except (OSError, AttributeError):
        return False


def max_rss_bytes() -> int:
    """This process's peak resident set size so far: on Linux its memory's high-water mark (``VmHWM`` of
    ``/proc/self/status``), not ``ru_maxrss``, which a process started by another one inherits from that one's
    peak (a worker of ``benchmarks.run`` would report at least the runner's); ``ru_maxrss`` (bytes) on macOS."""
    if sys.platform == "darwin":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
