"""Safe files: atomic writes (a crash never leaves half a file) and exclusive locks (a killed process never
leaves a stale one). Every layer that writes uses them: checkpoints, datasets and vocabularies, logs, eval
files, study reports. And raw array files memory-mapped for reading (the encoded training data)."""

import contextlib
import fcntl
import json
import os
import shutil
import socket

import numpy as np
from absl import logging


class WorkdirBusyError(RuntimeError):
    """Another live process holds the lock of a workdir (or of a data directory being prepared)."""


def write_atomic(path: str, content: str | bytes) -> None:
    """Writes ``content`` to ``path`` atomically (tmp file, fsync, rename): a crash never leaves half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb" if isinstance(content, bytes) else "w", **({} if isinstance(content, bytes) else
                                                                  {"encoding": "utf-8"})) as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    logging.debug("wrote %s", path)


def save_json(path: str, value) -> None:
    """Writes ``value`` as JSON atomically (see ``write_atomic``)."""
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str):
    """Yields a new temporary directory beside ``path``, renamed to ``path`` when the block ends and removed
    if it raises: an interrupted write never leaves a half-written directory."""
    temporary = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    try:
        yield temporary
        os.rename(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


@contextlib.contextmanager
def file_lock(path: str, *, blocking: bool = True, what: str = "it"):
    """Holds an exclusive ``flock`` on ``path`` (created if needed), which names this process (pid@host).

    The kernel drops the lock when its process ends, however it ends, so a crashed or killed process never
    leaves a stale lock. ``blocking=False``: a lock held by another process raises ``WorkdirBusyError``
    naming the holder (``what`` says what is locked).
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise WorkdirBusyError(f"{what} is in use by {holder} (lock {path}); wait for it to end or use "
                                   "another --workdir") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def map_array(path: str, dtype, count: int) -> np.ndarray:
    """The ``count`` values of a raw array file, memory-mapped read-only (an empty array, and no map, when
    ``count`` is 0). Sequential scans read the file itself (``np.fromfile``), not the map: pages read through a
    map stay mapped, and count in this process's resident memory, until the kernel reclaims them."""
    if not count:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))
