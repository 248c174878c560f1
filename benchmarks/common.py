"""What every benchmark records besides its numbers: the machine and the threads each side may use."""

import importlib.metadata
import os
import platform
import time

import jax
import numpy as np

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


def threads(impl: str) -> dict:
    """The intra-op threads of ``impl``: PyTorch's setting, or the CPUs XLA's CPU client may use (its
    thread pool has one thread per CPU of the process's affinity mask), with ``XLA_FLAGS``."""
    if impl == "torch":
        import torch  # optional extra 'bench'
        return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}
    return {"xla_cpus": len(os.sched_getaffinity(0)), "xla_flags": os.environ.get("XLA_FLAGS", "")}


def model_config(cell, decoder, hidden, embed):
    """``config`` of the default run with these sizes: 1 layer, unidirectional, additive attention, no dropout."""
    config = default.get_config()
    config.model.update(dict(cell=cell, decoder=decoder, hidden_size=hidden, attention_size=hidden,
                             embedding_size=embed, num_layers=1, bidirectional=False, dropout=0.0))
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


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
