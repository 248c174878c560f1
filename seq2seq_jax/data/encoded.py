"""Encoded splits: each example's token ids stored ragged, and the training split's encoding cache on disk.

Row i of a split is `src_flat[src_offsets[i]:src_offsets[i] + src_lengths[i]]` (targets likewise, with their
EOS). Evaluation splits are small and are encoded in memory at every start. The training split is encoded
once, a chunk of records at a time, into `<cache_dir>/<key>/`; every later start (a resumed run, another
seed or variant with the same vocabularies, `evaluate`) opens those files and reads a batch's rows from them
where indexed (`files.FileArray`) instead of reading and encoding the split again, as fairseq's indexed
datasets do (through a memory map there). The lengths' histograms, which the bucket shapes need, are counted
once and kept in `meta.json`, and each bucket's members are written beside the arrays (`buckets.members`). So
a start reads no per-example data, and then only the ids and lengths its batches use: start-up time and host
memory do not grow with the corpus. `key` hashes everything the ids depend on (the prepared split's files,
both vocabularies, the length limits and the pair's direction), so a changed input makes a new cache instead
of reusing a stale one. Writes go to a
temporary directory renamed into place, under a file lock: processes started together encode once, and an
interrupted write leaves nothing behind.
"""

from collections.abc import Iterator, Sequence
import contextlib
import dataclasses
import hashlib
import json
import os

import ml_collections
import numpy as np
from absl import logging

from seq2seq_jax import files
from seq2seq_jax.data import buckets
from seq2seq_jax.data import vocab as vocab_lib

FORMAT = 2  # Bump when the files' layout or meaning changes: old caches are then ignored.
CHUNK = 10_000  # Records read and encoded at a time.
_ARRAYS = {"src_flat": np.int32, "src_lengths": np.int32, "tgt_flat": np.int32, "tgt_lengths": np.int32,
           "record_index": np.int64}


class RecordExamples(Sequence):
    """A TFDS data source's records as `{'source', 'target', 'references'}` str dicts, read when indexed.

    `keys` names the source and target features of a dataset without `source`/`references` features (its
    `supervised_keys`); `reverse` swaps source and target (the target becomes the only reference).
    """

    def __init__(self, source, keys: tuple[str, str] | None = None, reverse: bool = False):
        self._source, self._keys, self._reverse = source, keys, reverse

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, i):
        if isinstance(i, slice):
            indices = range(len(self))[i]
            return [self._example(r) for r in self._source.__getitems__(indices)] if len(indices) else []
        return self._example(self._source[range(len(self))[i]])

    def _example(self, record) -> dict:
        if self._keys is None:
            src, tgt = _text(record["source"]), _text(record["target"])
            refs = [_text(x) for x in record["references"]]
        else:
            src, tgt = _text(record[self._keys[0]]), _text(record[self._keys[1]])
            refs = [tgt]
        if self._reverse:
            src, tgt, refs = tgt, src, [src]
        return {"source": src, "target": tgt, "references": refs}


class Kept(Sequence):
    """The examples of `examples` at `index` (those the length limits kept), in order, read when indexed."""

    def __init__(self, examples: Sequence[dict], index: np.ndarray):
        self._examples, self._index = examples, index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._examples[int(j)] for j in self._index[i]]
        return self._examples[int(self._index[i])]


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class SpilledTexts(Sequence):
    """The `source` and `target` texts of `examples`, read once (`CHUNK` records at a time) into `directory`
    as UTF-8 bytes with their offsets, then read from there, as `{'source', 'target'}` dicts. A new run's
    first start reads the training texts three times (each side's vocabulary, then the encoder): from
    these files instead of decoding every TFDS record three times."""

    def __init__(self, examples: Sequence[dict], directory: str):
        self._len = len(examples)
        os.makedirs(directory, exist_ok=True)
        paths = {f"{f}.{part}": os.path.join(directory, f"{f}.{part}") for f in ("source", "target")
                 for part in ("bin", "len")}
        with contextlib.ExitStack() as stack:
            handles = {name: stack.enter_context(open(path, "wb")) for name, path in paths.items()}
            for start in range(0, self._len, CHUNK):
                chunk = examples[start:start + CHUNK]
                for field in ("source", "target"):
                    data = [example[field].encode("utf-8") for example in chunk]
                    handles[f"{field}.bin"].write(b"".join(data))
                    np.array([len(d) for d in data], np.int64).tofile(handles[f"{field}.len"])
        self._columns = {}
        for field in ("source", "target"):
            lengths = np.asarray(files.open_array(paths[f"{field}.len"], np.int64, self._len))
            blob = files.open_array(paths[f"{field}.bin"], np.uint8, int(lengths.sum()))
            self._columns[field] = (blob, _offsets(lengths), lengths)

    def __len__(self) -> int:
        return self._len

    def _texts(self, field: str, start: int, stop: int) -> list[str]:
        """The texts of examples `start` to `stop`: one read of the file."""
        blob, offsets, lengths = self._columns[field]
        first, end = int(offsets[start]), int(offsets[stop - 1] + lengths[stop - 1])
        data = blob[first:end].tobytes()
        return [data[a:a + n].decode("utf-8")
                for a, n in zip((offsets[start:stop] - first).tolist(), lengths[start:stop].tolist())]

    def __getitem__(self, i):
        if isinstance(i, slice):
            indices = range(len(self))[i]
            if indices.step != 1:
                return [self[j] for j in indices]
            if not indices:
                return []
            sources, targets = (self._texts(f, indices.start, indices.stop) for f in ("source", "target"))
            return [{"source": s, "target": t} for s, t in zip(sources, targets)]
        i = range(len(self))[i]
        return self[i:i + 1][0]


def texts(examples: Sequence[dict], field: str) -> Iterator[str]:
    """`example[field]` of every example, read `CHUNK` at a time (a vocabulary's training text)."""
    for start in range(0, len(examples), CHUNK):
        for example in examples[start:start + CHUNK]:
            yield example[field]


@dataclasses.dataclass
class EncodedSplit:
    """One split's kept examples and their ids, ragged; arrays may be files read where indexed (`FileArray`)."""

    examples: Sequence[dict]
    src_flat: np.ndarray
    src_offsets: np.ndarray
    src_lengths: np.ndarray
    tgt_flat: np.ndarray  # Targets include their EOS.
    tgt_offsets: np.ndarray
    tgt_lengths: np.ndarray
    num_filtered: int
    num_truncated: int
    src_length_counts: np.ndarray  # [n]: how many sources have n tokens (`buckets.histogram`); targets likewise.
    tgt_length_counts: np.ndarray
    directory: str | None = None  # Where the arrays are read from (the training split's cache), if they are.


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return (np.cumsum(lengths, dtype=np.int64) - lengths).astype(np.int64)


def _encode_chunks(examples: Sequence[dict], source_vocab: vocab_lib.Vocab, target_vocab: vocab_lib.Vocab,
                   c: ml_collections.ConfigDict, counts: dict) -> Iterator[dict[str, np.ndarray]]:
    """The kept examples' arrays (`_ARRAYS`), `CHUNK` records at a time; counts filtered/truncated ones."""
    max_src, max_tgt = c.max_source_length or np.inf, c.max_target_length or np.inf
    for start in range(0, len(examples), CHUNK):
        kept, sources, targets = [], [], []
        for i, ex in enumerate(examples[start:start + CHUNK], start=start):
            src, tgt = source_vocab.encode(ex["source"]), target_vocab.encode(ex["target"])
            if len(src) > max_src or len(tgt) > max_tgt:
                if c.length_policy == "filter":
                    counts["filtered"] += 1
                    continue
                counts["truncated"] += 1
                src, tgt = src[:c.max_source_length], tgt[:c.max_target_length]
            kept.append(i)
            sources.append(src)
            targets.append(tgt + [vocab_lib.EOS])
        yield {"src_flat": np.fromiter((t for s in sources for t in s), np.int32),
               "src_lengths": np.array([len(s) for s in sources], np.int32),
               "tgt_flat": np.fromiter((t for s in targets for t in s), np.int32),
               "tgt_lengths": np.array([len(s) for s in targets], np.int32),
               "record_index": np.array(kept, np.int64)}


def _check_not_empty(split: str, c: ml_collections.ConfigDict, num_kept: int, num_examples: int) -> None:
    if not num_kept:
        raise ValueError(
            f"The {split} split of dataset {c.dataset!r} is empty after length filtering with "
            f"data.max_source_length={c.max_source_length}, data.max_target_length={c.max_target_length} "
            f"({num_examples} examples before); raise the limits or use data.length_policy='truncate'.")


def _log_counts(split: str, c: ml_collections.ConfigDict, counts: dict, num_examples: int) -> None:
    if counts["filtered"] or counts["truncated"]:
        logging.info("%s split: %d of %d examples %s by the length limits (source %s, target %s).", split,
                     counts["filtered"] or counts["truncated"], num_examples,
                     "filtered" if counts["filtered"] else "truncated", c.max_source_length, c.max_target_length)


def encode(split: str, examples: Sequence[dict], source_vocab: vocab_lib.Vocab, target_vocab: vocab_lib.Vocab,
           c: ml_collections.ConfigDict) -> EncodedSplit:
    """`examples` encoded in memory, with the length policy of data config `c` applied."""
    counts = {"filtered": 0, "truncated": 0}
    chunks = list(_encode_chunks(examples, source_vocab, target_vocab, c, counts))
    arrays = {name: np.concatenate([chunk[name] for chunk in chunks]) if chunks else np.zeros(0, dtype)
              for name, dtype in _ARRAYS.items()}
    arrays.update({f"{side}_offsets": _offsets(arrays[f"{side}_lengths"]) for side in ("src", "tgt")})
    _log_counts(split, c, counts, len(examples))
    _check_not_empty(split, c, len(arrays["record_index"]), len(examples))
    return _split(examples, arrays, counts["filtered"], counts["truncated"])


def _split(examples: Sequence[dict], arrays: dict[str, np.ndarray], filtered: int, truncated: int,
           counts: dict[str, np.ndarray] | None = None, directory: str | None = None) -> EncodedSplit:
    """The split of `arrays` (`_ARRAYS` and both sides' offsets) over the examples of `examples` they kept;
    `counts`: both sides' length histograms, if already counted."""
    kept = examples if len(arrays["record_index"]) == len(examples) else Kept(examples, arrays["record_index"])
    counts = counts or {side: buckets.histogram(arrays[f"{side}_lengths"]) for side in ("src", "tgt")}
    return EncodedSplit(kept, arrays["src_flat"], arrays["src_offsets"], arrays["src_lengths"], arrays["tgt_flat"],
                        arrays["tgt_offsets"], arrays["tgt_lengths"], filtered, truncated, counts["src"],
                        counts["tgt"], directory)


def cache_key(prepared: str, source_vocab: bytes, target_vocab: bytes, c: ml_collections.ConfigDict) -> str:
    """A hash of what the training split's ids depend on: `prepared` (the prepared split's identity), both
    vocabularies' files, and the length limits, policy and direction in data config `c`."""
    limits = json.dumps([c.max_source_length, c.max_target_length, c.length_policy, c.reverse_pair, FORMAT])
    digest = hashlib.sha256()
    for part in (prepared.encode(), source_vocab, target_vocab, limits.encode()):
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()[:24]


def _write(directory: str, chunks: Iterator[dict[str, np.ndarray]], counts: dict, num_examples: int) -> None:
    """Writes the chunks' arrays, both sides' offsets and `meta.json` into `directory` (`files.atomic_directory`)."""
    with files.atomic_directory(directory) as temporary:
        sizes = dict.fromkeys(_ARRAYS, 0)
        with contextlib.ExitStack() as stack:
            handles = {name: stack.enter_context(open(os.path.join(temporary, f"{name}.bin"), "wb"))
                       for name in _ARRAYS}
            for chunk in chunks:
                for name, values in chunk.items():
                    values.tofile(handles[name])
                    sizes[name] += len(values)
        length_counts = {}
        for side in ("src", "tgt"):
            lengths = files.open_array(os.path.join(temporary, f"{side}_lengths.bin"), np.int32,
                                       sizes[f"{side}_lengths"])
            _offsets(lengths).tofile(os.path.join(temporary, f"{side}_offsets.bin"))
            length_counts[f"{side}_length_counts"] = buckets.histogram(lengths).tolist()
        files.save_json(os.path.join(temporary, "meta.json"),
                        {"format": FORMAT, "sizes": sizes, "num_records": num_examples, **counts, **length_counts})


def _load(directory: str, examples: Sequence[dict]) -> EncodedSplit:
    with open(os.path.join(directory, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta["num_records"] != len(examples):
        raise ValueError(f"the encoded training split in {directory} was written from {meta['num_records']} "
                         f"records, but the dataset now has {len(examples)}; delete that directory.")
    sizes = meta["sizes"]
    arrays = {name: files.open_array(os.path.join(directory, f"{name}.bin"), dtype, sizes[name])
              for name, dtype in _ARRAYS.items()}
    arrays.update({f"{side}_offsets": files.open_array(os.path.join(directory, f"{side}_offsets.bin"), np.int64,
                                                       sizes[f"{side}_lengths"]) for side in ("src", "tgt")})
    counts = {side: np.array(meta[f"{side}_length_counts"], np.int64) for side in ("src", "tgt")}
    return _split(examples, arrays, meta["filtered"], meta["truncated"], counts, directory)


def cached(split: str, examples: Sequence[dict], source_vocab: vocab_lib.Vocab, target_vocab: vocab_lib.Vocab,
           c: ml_collections.ConfigDict, directory: str, texts: Sequence[dict] | None = None) -> EncodedSplit:
    """`examples` encoded into `directory` once (under a lock), then read from there where indexed. `texts`: the
    same examples' texts read from elsewhere for the encoding (`SpilledTexts`), if given."""
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    with files.file_lock(f"{directory}.lock", what=f"the encoding cache {directory}"):
        if not os.path.isdir(directory):
            counts = {"filtered": 0, "truncated": 0}
            logging.info("Encoding the %s split (%d examples) once into %s.", split, len(examples), directory)
            if texts is not None and len(texts) != len(examples):
                raise ValueError(f"{len(texts)} texts for the {len(examples)} examples of the {split} split")
            _write(directory, _encode_chunks(examples if texts is None else texts, source_vocab, target_vocab, c,
                                             counts), counts, len(examples))
        else:
            logging.info("Reading the encoded %s split from %s.", split, directory)
    encoded = _load(directory, examples)
    _log_counts(split, c, {"filtered": encoded.num_filtered, "truncated": encoded.num_truncated}, len(examples))
    _check_not_empty(split, c, len(encoded.src_lengths), len(examples))
    return encoded
