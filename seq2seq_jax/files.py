"""Safe files: atomic writes (a crash never leaves half a file) and exclusive locks (a killed process never
leaves a stale one). Every layer that writes uses them: checkpoints, datasets and vocabularies, logs, eval
files, study reports. And raw array files read where indexed (the encoded training data)."""

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


class FileArray:
    """The ``count`` values of a raw 1-D array file, read with ``os.pread`` where indexed (a slice is one read, an
    integer array one read per value), not memory-mapped as fairseq's indexed datasets are. Pages read through a
    map stay mapped, whole large folios at a time, and count in this process's resident memory until the kernel
    reclaims them; pages read with ``pread`` sit in the page cache only. ``np.asarray`` reads the whole file."""

    def __init__(self, path: str, dtype, count: int):
        self.filename, self.dtype, self._count = os.fspath(path), np.dtype(dtype), int(count)
        self._fd = os.open(self.filename, os.O_RDONLY)
        size = os.fstat(self._fd).st_size
        if size < self._count * self.dtype.itemsize:
            os.close(self._fd)
            self._fd = None
            raise ValueError(f"{self.filename} holds {size} bytes, fewer than {self._count} values of {self.dtype}")

    def __len__(self) -> int:
        return self._count

    @property
    def shape(self) -> tuple[int]:
        return (self._count,)

    def _read(self, start: int, count: int) -> np.ndarray:
        size = self.dtype.itemsize
        data = os.pread(self._fd, count * size, start * size) if count else b""
        return np.frombuffer(data, self.dtype).copy()  # writable, like numpy's fancy indexing

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if step == 1:
                return self._read(start, max(stop - start, 0))
            index = np.arange(start, stop, step)
        if np.ndim(index) == 0:
            i = int(index)
            if not -self._count <= i < self._count:
                raise IndexError(f"index {i} is out of bounds for {self.filename} of {self._count} values")
            return self._read(i % self._count, 1)[0]
        indices = np.asarray(index)
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise IndexError(f"{self.filename} is indexed by integers, not {indices.dtype}")
        flat = indices.ravel().astype(np.int64)
        if flat.size and (flat.min() < -self._count or flat.max() >= self._count):
            raise IndexError(f"indices in [{flat.min()}, {flat.max()}] are out of bounds for {self.filename} of "
                             f"{self._count} values")
        size = self.dtype.itemsize
        data = b"".join(os.pread(self._fd, size, i * size) for i in (flat % self._count).tolist())
        return np.frombuffer(data, self.dtype).reshape(indices.shape).copy()

    def __array__(self, dtype=None, copy=None):
        values = self._read(0, self._count)
        return values if dtype is None else values.astype(dtype)

    def __reduce__(self):  # a copy (another process) opens the file again
        return FileArray, (self.filename, self.dtype, self._count)

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None


def open_array(path: str, dtype, count: int) -> np.ndarray | FileArray:
    """The ``count`` values of a raw array file, read where indexed (``FileArray``); an empty array, and no open
    file, when ``count`` is 0."""
    if not count:
        return np.zeros(0, dtype)
    return FileArray(path, dtype, count)
