"""Input pipeline: TFDS array_record data source → encoded, length-bucketed, padded numpy batches (grain).

Each split is encoded into flat token arrays (`encoded.py`): the evaluation splits in memory at every start,
the training split once, into a cache whose files every later start reads where indexed; a batch reads its
rows from them. Batches come in a few fixed `(src_len, tgt_len)` shapes (`bucket_shapes`), so a model compiles
one step function per shape.

Batch dict (numpy, int32):
  inputs          [batch, src_len]  source tokens (no BOS/EOS), then PAD
  input_lengths   [batch]
  targets         [batch, tgt_len]  target tokens, EOS, then PAD
  target_lengths  [batch]           counts the EOS
  index           [batch]           eval batches only: example index in `examples(split)`, -1 for padding rows

Training order: every epoch, each bucket's examples are shuffled with `(seed, epoch)` and cut into full
batches; the few left over roll up into the next larger bucket (they fit its shape), and only the last
bucket's remainder (< batch_size examples, different ones every epoch) is dropped. The batch order is then
shuffled too. Each batch of this plan is computed when a grain `MapDataset` asks for it (`buckets.EpochPlan`:
no array per example in memory), and grain's `DatasetIterator` is checkpointable with
`get_state()`/`set_state()`. With several processes (`grain.sharding.ShardByJaxProcess`),
`batch_size` is each process's share: all plan the same global batches and each takes its own slice, so
the training batches do not depend on the number of processes. Evaluation splits every bucket between them.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence

import grain
import ml_collections
import numpy as np
from absl import logging

from seq2seq_jax import files
from seq2seq_jax.data import buckets
from seq2seq_jax.data import config as config_lib
from seq2seq_jax.data import datasets
from seq2seq_jax.data import encoded as encoded_lib
from seq2seq_jax.data import vocab as vocab_lib
from seq2seq_jax.data.datasets._common import SPLITS
from seq2seq_jax.data.vocab import PAD

# Bucket lengths derived from quantiles are rounded up to a multiple of this.
LENGTH_MULTIPLE = 8
# Under `data_dir`: the training splits' encodings, one directory per key (`encoded.cached`).
ENCODED_DIR = "encoded"


def _gather(flat, offsets: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Rows `[offsets[i], offsets[i] + lengths[i])` of `flat` (in memory, or a file's: one read a row) padded with
    PAD to `[len(offsets), width]`."""
    rows = np.full((len(offsets), width), PAD, np.int32)
    for i, (start, length) in enumerate(zip(offsets.tolist(), lengths.tolist())):
        rows[i, :length] = flat[start:start + min(length, width)]
    return rows


def _round_up(x: int, multiple: int = LENGTH_MULTIPLE) -> int:
    return max(multiple, -(-int(x) // multiple) * multiple)


def _builder_kwargs(c: ml_collections.ConfigDict) -> dict:
    """The config fields that parametrise the chosen dataset's builder (unset fields left out)."""
    fields = {
        "train_file": "train_file", "validation_file": "validation_file", "test_file": "test_file",
        "merge_references": "merge_references",
        "num_train": "num_train", "num_validation": "num_validation", "num_test": "num_test",
        "synthetic_min_length": "min_length", "synthetic_max_length": "max_length",
        "synthetic_alphabet_size": "alphabet_size",
    }
    return {kwarg: c.get(field) for field, kwarg in fields.items() if c.get(field) is not None}  # get: older runs' configs


def _vocab(kind: str, name: str, texts, vocab_dir: str, vocab_size: int,
           reuse: bool) -> tuple[vocab_lib.Vocab, str]:
    """Loads `vocab_dir/<name>.{json,model}` if present and `reuse`, else builds it from `texts` and saves it
    there (atomically); returns it and its file."""
    path = os.path.join(vocab_dir, vocab_lib.vocab_filename(kind, name))
    if reuse and os.path.exists(path):
        vocab = vocab_lib.load_vocab(path)
        if vocab.kind != kind:
            raise ValueError(f"data.{name}: {path} holds a {vocab.kind!r} vocabulary, but the config asks for {kind!r}.")
        logging.info("Loaded %s vocabulary (%d ids) from %s.", kind, vocab.size, path)
        return vocab, path
    vocab = vocab_lib.build_vocab(kind, texts, vocab_size=vocab_size if kind == "sentencepiece" else None)
    os.makedirs(vocab_dir, exist_ok=True)
    vocab.save(path)
    logging.info("Built %s vocabulary (%d ids) from the training split; saved to %s.", kind, vocab.size, path)
    return vocab, path


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class Data:
    """Encoded splits, vocabularies and batch iterators for one dataset; make it with `get_data`.

    `raw` maps each split to its examples (`{'source', 'target', 'references'}` dicts, any sequence). With
    `cache_dir` (and `prepared`, the prepared data's identity), the training split is encoded once into
    `cache_dir` and read from there where indexed on every later start (`encoded.cached`); without, it is
    encoded in memory like the other splits.
    """

    def __init__(self, c: ml_collections.ConfigDict, raw: dict[str, Sequence[dict]], *, batch_size: int,
                 seed: int, vocab_dir: str, reuse_vocab: bool = True, cache_dir: str | None = None,
                 prepared: str = ""):
        self.batch_size = batch_size
        self.seed = seed
        self._config = c
        with contextlib.ExitStack() as stack:
            train_texts = None  # Records to build vocabularies from: read them once, into files (SpilledTexts).
            if cache_dir is not None and not (reuse_vocab and all(
                    os.path.exists(os.path.join(vocab_dir, vocab_lib.vocab_filename(kind, name)))
                    for kind, name in ((c.source_vocab, "source_vocab"), (c.target_vocab, "target_vocab")))):
                os.makedirs(cache_dir, exist_ok=True)
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="texts-", dir=cache_dir))
                train_texts = encoded_lib.SpilledTexts(raw["train"], folder)
            texts = raw["train"] if train_texts is None else train_texts
            self.source_vocab, source_file = _vocab(c.source_vocab, "source_vocab",
                                                    encoded_lib.texts(texts, "source"), vocab_dir,
                                                    c.vocab_size, reuse_vocab)
            self.target_vocab, target_file = _vocab(c.target_vocab, "target_vocab",
                                                    encoded_lib.texts(texts, "target"), vocab_dir,
                                                    c.vocab_size, reuse_vocab)
            self._splits = {}
            for split, examples in raw.items():
                if split == "train" and cache_dir is not None:
                    key = encoded_lib.cache_key(prepared, _read_bytes(source_file), _read_bytes(target_file), c)
                    self._splits[split] = encoded_lib.cached(split, examples, self.source_vocab, self.target_vocab,
                                                             c, os.path.join(cache_dir, key), train_texts)
                else:
                    self._splits[split] = encoded_lib.encode(split, examples, self.source_vocab, self.target_vocab,
                                                             c)
        self.num_filtered = {split: s.num_filtered for split, s in self._splits.items()}
        self.num_truncated = {split: s.num_truncated for split, s in self._splits.items()}
        self.bucket_shapes = self._bucket_shapes()
        self._members = {name: buckets.members(split.src_lengths, split.tgt_lengths, self.bucket_shapes,
                                               split.directory) for name, split in self._splits.items()}
        shard = grain.sharding.ShardByJaxProcess()
        self._shard_index, self._shard_count = shard.shard_index, shard.shard_count
        self._plans: dict[int, buckets.EpochPlan] = {}
        self._train_plan_sizes()
        logging.info("Buckets (src_len, tgt_len): %s; train examples per bucket: %s.", self.bucket_shapes,
                     [len(m) for m in self._members["train"]])

    # --- Buckets ---

    def _bucket_shapes(self) -> list[tuple[int, int]]:
        """Explicit `data.bucket_boundaries`, or training-length quantiles; the last covers every split."""
        c = self._config
        max_src = max(len(s.src_length_counts) - 1 for s in self._splits.values())  # the histograms' last bin
        max_tgt = max(len(s.tgt_length_counts) - 1 for s in self._splits.values())
        if c.bucket_boundaries is not None:
            shapes = sorted((int(s), int(t)) for s, t in c.bucket_boundaries)
            if any(s2 < s1 or t2 < t1 for (s1, t1), (s2, t2) in zip(shapes, shapes[1:])):
                raise ValueError(f"data.bucket_boundaries = {c.bucket_boundaries} must grow in both lengths.")
            if shapes[-1][0] < max_src or shapes[-1][1] < max_tgt:
                raise ValueError(
                    f"data.bucket_boundaries: the largest bucket {shapes[-1]} does not fit the longest example "
                    f"(source {max_src}, target {max_tgt} with EOS); add a bucket or set data.max_source_length/"
                    "data.max_target_length.")
            return shapes
        train = self._splits["train"]
        quantiles = np.arange(1, c.num_buckets) / c.num_buckets
        shapes = [(_round_up(buckets.quantile(train.src_length_counts, q)),
                   _round_up(buckets.quantile(train.tgt_length_counts, q))) for q in quantiles]
        return sorted(set(shapes + [(_round_up(max_src), _round_up(max_tgt))]))

    def _batch(self, split: encoded_lib.EncodedSplit, rows: np.ndarray, bucket: int) -> dict[str, np.ndarray]:
        """A padded batch of `rows` (-1 = padding row) in `bucket_shapes[bucket]`."""
        src_len, tgt_len = self.bucket_shapes[bucket]
        real = rows >= 0
        safe = np.where(real, rows, 0)
        src_lengths = np.where(real, split.src_lengths[safe], 0)
        tgt_lengths = np.where(real, split.tgt_lengths[safe], 0)
        return {
            "inputs": _gather(split.src_flat, split.src_offsets[safe], src_lengths, src_len),
            "input_lengths": src_lengths.astype(np.int32),
            "targets": _gather(split.tgt_flat, split.tgt_offsets[safe], tgt_lengths, tgt_len),
            "target_lengths": tgt_lengths.astype(np.int32),
        }

    # --- Training ---

    @property
    def _global_batch_size(self) -> int:
        """Rows of a training batch over all processes: each one takes its slice of every global batch, so
        the batches (and a resumed run) do not depend on the number of processes."""
        return self.batch_size * self._shard_count

    def _train_plan_sizes(self) -> None:
        """Batches per epoch and the examples dropped per epoch (fixed: they do not depend on the shuffle)."""
        plan = self._epoch_plan(0)
        self.batches_per_epoch, self.train_remainder = len(plan), plan.remainder
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"The train split of dataset {self._config.dataset!r} has fewer examples ({plan.remainder}) than "
                f"one batch of {self._global_batch_size}.")
        logging.info("Training: %d batches of %d per epoch; %d examples per epoch left out at random (the "
                     "remainder, reshuffled every epoch).", self.batches_per_epoch, self._global_batch_size,
                     plan.remainder)

    def _epoch_plan(self, epoch: int) -> buckets.EpochPlan:
        """The training batches of `epoch`; the last two epochs' plans are kept."""
        if epoch not in self._plans:
            if len(self._plans) >= 2:
                del self._plans[min(self._plans)]
            self._plans[epoch] = buckets.EpochPlan(self._members["train"], self._global_batch_size, self.seed, epoch)
        return self._plans[epoch]

    def _train_batch(self, step: int, _) -> dict[str, np.ndarray]:
        epoch, i = divmod(step, self.batches_per_epoch)
        mine = slice(self._shard_index * self.batch_size, (self._shard_index + 1) * self.batch_size)
        bucket, rows = self._epoch_plan(epoch).batch(i, mine)
        return self._batch(self._splits["train"], rows, bucket)

    def train_iterator(self, *, prefetch: int = 4) -> grain.DatasetIterator:
        """Infinite training batches, exactly `batch_size` rows each; checkpoint with `get_state`/`set_state`."""
        dataset = grain.MapDataset.range(self.batches_per_epoch).repeat().map_with_index(self._train_batch)
        options = grain.ReadOptions(num_threads=1 if prefetch else 0, prefetch_buffer_size=prefetch)
        return iter(dataset.to_iter_dataset(options))

    # --- Evaluation ---

    def _split(self, split: str) -> encoded_lib.EncodedSplit:
        if split not in self._splits:
            raise ValueError(f"Dataset {self._config.dataset!r} has no {split!r} split (has {sorted(self._splits)}); "
                             f"for parallel_text set data.{split}_file.")
        return self._splits[split]

    def examples(self, split: str) -> list[dict]:
        """`{'source', 'target', 'references'}` of every example kept in `split`, indexed like eval 'index'."""
        return self._split(split).examples

    def eval_batches(self, split: str) -> Iterator[dict[str, np.ndarray]]:
        """This process's share of `split`, each example once, by bucket then index; last batches padded.

        Every process yields the same number of batches per bucket (padding rows have index -1).
        """
        data = self._split(split)
        for b, members in enumerate(self._members[split]):
            if not len(members):
                continue
            per_process = -(-len(members) // self._shard_count)
            num_batches = -(-per_process // self.batch_size)
            mine = members[self._shard_index::self._shard_count]
            rows = np.full(num_batches * self.batch_size, -1, dtype=np.int64)
            rows[:len(mine)] = mine
            for chunk in np.split(rows, num_batches):
                batch = self._batch(data, chunk, b)
                batch["index"] = chunk.astype(np.int32)
                yield batch


def prepare_lock_path(data_config: ml_collections.ConfigDict) -> str:
    """The file lock held while `data_config.dataset` is prepared in `data_config.data_dir`."""
    return os.path.join(data_config.data_dir, f".{data_config.dataset.replace('/', '_')}.prepare.lock")


def get_data(data_config: ml_collections.ConfigDict, *, batch_size: int, seed: int, vocab_dir: str,
             reuse_vocab: bool = True) -> Data:
    """Prepares `data_config.dataset` if needed, reads and encodes every split, and returns its `Data`.

    Vocabularies are built from the training split on first use and saved under `vocab_dir` (normally the
    run's workdir); later calls reload them (unless `reuse_vocab=False`: a new run rebuilds what a failed
    start left), so ids mean the same thing for the whole life of a run. Preparation holds a file lock in
    `data_dir`, so processes started together on a fresh data directory prepare each dataset once. The
    training split is encoded once into `data_dir/encoded/` and read from there by every later start with the
    same vocabularies (a local `data_dir` only; on cloud storage it is encoded in memory at each start).
    """
    config_lib.validate(data_config)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    local = "://" not in data_config.data_dir  # cloud storage (gs://...) has no file locks
    with files.file_lock(prepare_lock_path(data_config)) if local else contextlib.nullcontext():
        # The builder is made under the lock too: it reads what another process may just have prepared.
        builder = datasets.get_builder(data_config.dataset, data_config.data_dir, **_builder_kwargs(data_config))
        builder.download_and_prepare()  # a no-op for the processes that waited
    features = builder.info.features
    keys = None if "source" in features else builder.info.supervised_keys
    available = [s for s in SPLITS if s in builder.info.splits] or list(SPLITS)
    raw = {split: encoded_lib.RecordExamples(builder.as_data_source(split=split), keys, data_config.reverse_pair)
           for split in available}
    if "train" not in raw:
        raise ValueError(f"Dataset {data_config.dataset!r} has no train split.")
    # The training split is read a chunk at a time, when encoded; the evaluation splits (small) once, here.
    raw = {split: examples if split == "train" else examples[:] for split, examples in raw.items()}
    cache = local and os.path.isdir(builder.data_dir)  # (not so for tfds.testing.mock_data)
    return Data(data_config, raw, batch_size=batch_size, seed=seed, vocab_dir=vocab_dir, reuse_vocab=reuse_vocab,
                cache_dir=os.path.join(data_config.data_dir, ENCODED_DIR) if cache else None,
                prepared=_prepared_identity(builder) if cache else "")


def _prepared_identity(builder) -> str:
    """The prepared training split's identity: the dataset, its directory, and each of the split's files'
    name, size and modification time (a dataset prepared again gets new ones)."""
    directory = builder.data_dir
    parts = [builder.info.full_name, os.path.abspath(directory)]
    for name in sorted(os.listdir(directory)):
        if "-train." in name:
            stat = os.stat(os.path.join(directory, name))
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(parts)
