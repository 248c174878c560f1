"""Data parallelism over every device of every process, with JAX's own machinery.

One mesh axis, ``'data'``, spans ``jax.devices()``: each process puts its rows of a batch on its own
devices (``shard_batch``), parameters are replicated, and a jitted step sees the global batch, so its
sums are exact global sums. Results that every process needs whole (decoded tokens) come back with
``to_host``. Files are written by process 0 only (``is_main_process``); orbax checkpoints, which every
process saves together, are the exception.
"""

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh(devices=None) -> Mesh:
    """``devices`` (default: all devices of all processes) along one ``'data'`` axis."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """This process's numpy batch -> global arrays split along the batch axis of ``mesh``.

    The rows must divide by this process's devices in ``mesh`` (``pad_rows`` does it for evaluation).
    """
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def pad_rows(batch: dict, multiple: int) -> dict:
    """``batch`` with rows appended up to a multiple of ``multiple``: zeros, and ``index`` -1 (padding)."""
    rows = len(next(iter(batch.values())))
    extra = -rows % multiple
    if not extra:
        return batch
    return {k: np.concatenate([v, np.full((extra, *v.shape[1:]), -1 if k == "index" else 0, v.dtype)])
            for k, v in batch.items()}


def to_host(tree):
    """Arrays -> numpy with every row, on every process (which must all call it for a global array)."""
    return jax.tree.map(lambda x: multihost_utils.process_allgather(x, tiled=True)
                        if isinstance(x, jax.Array) and not x.is_fully_addressable else np.asarray(x), tree)


def is_main_process() -> bool:
    """Whether this process writes the run's files (config, metrics, TensorBoard, evaluations)."""
    return jax.process_index() == 0
