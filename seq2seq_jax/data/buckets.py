"""Length buckets and the training epochs' batch plan, in host memory that does not grow with the corpus.

A batch holds examples of one bucket, the smallest `(src_len, tgt_len)` shape that fits both of an
example's lengths. The shapes come from the training lengths' quantiles, computed from their histogram
(`histogram`, `quantile`), which is read a chunk at a time. Each bucket's member indices are written once
beside the encoded training split (`members`), so a later start reads them where indexed instead of scanning
the split. An epoch's batches are computed when asked for (`EpochPlan`): each bucket's members are permuted
one index at a time by grain's `index_shuffle` (a keyed bijection of `[0, n)`, the one grain's global
shuffle uses), the few left over (fewer than one batch) roll up into the next larger bucket, whose shape
fits them, and the batch order is permuted the same way. No array per example is held in memory, so a
start and its first batch cost the same at 10k and at 40M pairs, as fairseq's indexed datasets and grain's
lazy shuffle do it.
"""

from collections.abc import Sequence
import contextlib
import hashlib
import json
import os

from grain.experimental import index_shuffle
import numpy as np

from seq2seq_jax import files

CHUNK = 1 << 20  # Lengths read at a time.
ROUNDS = 4  # index_shuffle's rounds, as grain's own shuffle.
_FORMAT = 1  # Bump when the members files' layout or meaning changes.


def chunks(array):
    """`array` (in memory, or a file's, `files.FileArray`) `CHUNK` values at a time."""
    for start in range(0, len(array), CHUNK):
        yield np.asarray(array[start:start + CHUNK])


def histogram(lengths: np.ndarray) -> np.ndarray:
    """`counts[n]`: how many of `lengths` (non-negative integers) equal `n`."""
    counts = np.zeros(1, np.int64)
    for chunk in chunks(lengths):
        found = np.bincount(chunk)
        if len(found) > len(counts):
            counts = np.pad(counts, (0, len(found) - len(counts)))
        counts[:len(found)] += found
    return counts


def quantile(counts: np.ndarray, q: float) -> float:
    """`np.quantile(lengths, q)` (its default, linear method, computed as numpy computes it) of the lengths
    whose `histogram` is `counts`: the sorted lengths around position `(n - 1) q`, interpolated."""
    n = int(counts.sum())
    position = (n - 1) * q
    below = np.floor(position)
    ends = np.cumsum(counts)  # sorted[k] is the first length whose end exceeds k
    a, b = (int(np.searchsorted(ends, min(k, n - 1), side="right")) for k in (below, below + 1))
    gamma = position - below
    return b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma  # numpy's _lerp


def assign(src_lengths: np.ndarray, tgt_lengths: np.ndarray, shapes: Sequence[tuple[int, int]]) -> np.ndarray:
    """Index of the smallest of `shapes` (sorted) that fits both lengths, per example (-1: none fits)."""
    bucket = np.full(len(src_lengths), -1, dtype=np.int16)
    for b, (s, t) in reversed(list(enumerate(shapes))):
        bucket[(src_lengths <= s) & (tgt_lengths <= t)] = b
    return bucket


def _member_chunks(src_lengths, tgt_lengths, shapes):
    start = 0
    for src, tgt in zip(chunks(src_lengths), chunks(tgt_lengths)):
        bucket = assign(src, tgt, shapes)
        yield [np.flatnonzero(bucket == b).astype(np.int32) + np.int32(start) for b in range(len(shapes))]
        start += len(src)


def members(src_lengths: np.ndarray, tgt_lengths: np.ndarray, shapes: Sequence[tuple[int, int]],
            directory: str | None = None) -> list[np.ndarray]:
    """Each bucket's example indices, ascending. With `directory` (the encoded split's own), they are written
    there once per set of shapes (under a lock, renamed into place) and read from there where indexed."""
    if len(src_lengths) >= 2**31:
        raise ValueError(f"{len(src_lengths)} examples in one split: at most 2**31 - 1 are supported.")
    if directory is None:
        parts = list(_member_chunks(src_lengths, tgt_lengths, shapes))
        return [np.concatenate([p[b] for p in parts]) if parts else np.zeros(0, np.int32) for b in range(len(shapes))]
    key = hashlib.sha256(json.dumps([_FORMAT, [list(map(int, s)) for s in shapes]]).encode()).hexdigest()[:16]
    path = os.path.join(directory, f"buckets-{key}")
    with files.file_lock(f"{path}.lock", what=f"the bucket members {path}"):
        if not os.path.isdir(path):
            _write_members(path, _member_chunks(src_lengths, tgt_lengths, shapes), len(shapes))
    with open(os.path.join(path, "counts.json"), encoding="utf-8") as f:
        counts = json.load(f)
    return [files.open_array(os.path.join(path, f"{b}.bin"), np.int32, n) for b, n in enumerate(counts)]


def _write_members(path: str, parts, num_buckets: int) -> None:
    """Writes each bucket's indices to `<b>.bin` and their counts to `counts.json` (`files.atomic_directory`)."""
    with files.atomic_directory(path) as temporary:
        counts = [0] * num_buckets
        with contextlib.ExitStack() as stack:
            handles = [stack.enter_context(open(os.path.join(temporary, f"{b}.bin"), "wb")) for b in range(num_buckets)]
            for part in parts:
                for b, indices in enumerate(part):
                    indices.tofile(handles[b])
                    counts[b] += len(indices)
        files.save_json(os.path.join(temporary, "counts.json"), counts)


class EpochPlan:
    """The training batches of one epoch, `(bucket, example indices)` each, computed when asked for.

    Bucket b's pool is the rows carried up from bucket b - 1, then b's members in the order of a keyed
    permutation (`index_shuffle`, one key per seed, epoch and bucket); its full batches are cut from the
    pool, and what is left (fewer than `batch_size`) is carried up. The last bucket's remainder is dropped,
    different examples every epoch. The batches' order is a keyed permutation too. `len(plan)` and
    `remainder` do not depend on the seed or epoch.
    """

    def __init__(self, members: Sequence[np.ndarray], batch_size: int, seed: int, epoch: int):
        self._members, self._batch_size = members, batch_size
        keys = np.random.SeedSequence([seed, epoch]).generate_state(len(members) + 1)
        self._bucket_keys, self._order_key = [int(k) for k in keys[:-1]], int(keys[-1])
        self._carried_in, starts = [], [0]
        carry = np.zeros(0, np.int64)
        for b, bucket_members in enumerate(members):
            self._carried_in.append(carry)
            pool = len(carry) + len(bucket_members)
            full = pool // batch_size
            starts.append(starts[-1] + full)
            carry = self._pool(b, np.arange(full * batch_size, pool))
        self._starts = np.array(starts)
        self.remainder = len(carry)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _pool(self, b: int, positions: np.ndarray) -> np.ndarray:
        """Entries `positions` of bucket b's pool: the rows carried in, then its permuted members."""
        carried, bucket_members = self._carried_in[b], self._members[b]
        own = positions - len(carried)
        shuffled = [index_shuffle(int(i), max_index=len(bucket_members) - 1, seed=self._bucket_keys[b], rounds=ROUNDS)
                    for i in own[own >= 0]]
        rows = np.empty(len(positions), np.int64)
        rows[own < 0] = carried[positions[own < 0]]
        rows[own >= 0] = bucket_members[np.array(shuffled, np.int64)] if shuffled else []
        return rows

    def batch(self, i: int, rows: slice = slice(None)) -> tuple[int, np.ndarray]:
        """The bucket and example indices of the epoch's `i`-th batch (only its `rows`: a process's share)."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} of an epoch of {len(self)}")
        j = index_shuffle(i, max_index=len(self) - 1, seed=self._order_key, rounds=ROUNDS)
        b = int(np.searchsorted(self._starts, j, side="right")) - 1
        first = (j - int(self._starts[b])) * self._batch_size
        return b, self._pool(b, np.arange(first, first + self._batch_size)[rows])
