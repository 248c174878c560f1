"""The training split is encoded once into a cache whose files later starts read where indexed: the same
examples, ids and batches as encoding it in memory, a new cache for anything the ids depend on, nothing left by
an interrupted write, and a later start that reads none of the training text and maps none of the cache."""

import itertools
import json
import os
import pickle

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from seq2seq_jax import files
from seq2seq_jax.data import buckets
from seq2seq_jax.data import config as config_lib
from seq2seq_jax.data import datasets
from seq2seq_jax.data import encoded
from seq2seq_jax.data import pipeline
from seq2seq_jax.data import vocab as vocab_lib
from seq2seq_jax.data.datasets import parallel_text

WORDS = "uno dos tres cuatro cinco seis siete ocho nueve diez".split()


def corpus(directory, name: str, num_lines: int, seed: int) -> str:
    """A TSV of `num_lines` pairs of 1-9 random words (the target: the source reversed), some too long for
    `max_source_length=7`."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(num_lines):
        words = list(rng.choice(WORDS, size=rng.integers(1, 10)))
        lines.append(" ".join(words) + "\t" + " ".join(reversed(words)))
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def make_config(tmp_path, **overrides):
    c = config_lib.get_data_config()
    c.dataset = "parallel_text"
    c.data_dir = str(tmp_path / "tfds")
    c.train_file = corpus(tmp_path, "train.tsv", 300, seed=0)
    c.validation_file = corpus(tmp_path, "validation.tsv", 20, seed=1)
    c.test_file = corpus(tmp_path, "test.tsv", 20, seed=2)
    c.source_vocab = c.target_vocab = "word"
    c.max_source_length, c.length_policy = 7, "filter"
    c.update(overrides)
    return c


def get_data(c, vocab_dir):
    return pipeline.get_data(c, batch_size=8, seed=0, vocab_dir=str(vocab_dir))


def in_memory(c, vocab_dir) -> pipeline.Data:
    """`get_data`'s Data without the cache: every split read into a list and encoded in memory."""
    builder = datasets.get_builder("parallel_text", c.data_dir, train_file=c.train_file,
                                   validation_file=c.validation_file, test_file=c.test_file)
    raw = {split: encoded.RecordExamples(builder.as_data_source(split=split), None, c.reverse_pair)[:]
           for split in ("train", "validation", "test")}
    return pipeline.Data(c, raw, batch_size=8, seed=0, vocab_dir=str(vocab_dir))


def cache_entries(c) -> list[str]:
    directory = os.path.join(c.data_dir, pipeline.ENCODED_DIR)
    return sorted(name for name in os.listdir(directory) if not name.endswith(".lock"))


def batches(data, num: int) -> list[dict]:
    return list(itertools.islice(data.train_iterator(prefetch=0), num))


def assert_same_batches(want, got):
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_the_cached_training_split_equals_its_encoding_in_memory(tmp_path):
    c = make_config(tmp_path)
    data = get_data(c, tmp_path / "vocab")
    assert len(cache_entries(c)) == 1
    train = data._split("train")
    assert isinstance(train.src_flat, files.FileArray) and isinstance(train.tgt_lengths, files.FileArray)

    plain = in_memory(c, tmp_path / "vocab")
    assert data.num_filtered == plain.num_filtered and data.num_filtered["train"] > 0
    assert list(data.examples("train")) == list(plain.examples("train"))
    assert all(len(e["source"].split()) <= 7 for e in data.examples("train"))
    assert data.bucket_shapes == plain.bucket_shapes
    assert_same_batches(batches(plain, 2 * plain.batches_per_epoch), batches(data, 2 * data.batches_per_epoch))


def count_records_read(monkeypatch) -> list:
    records_read = []
    read_record = encoded.RecordExamples._example
    monkeypatch.setattr(encoded.RecordExamples, "_example",
                        lambda self, r: records_read.append(1) or read_record(self, r))
    return records_read


def test_a_new_run_reads_each_training_record_once_and_builds_what_reading_them_thrice_built(tmp_path,
                                                                                                monkeypatch):
    """Both vocabularies and the encoder read the training texts from one pass's files (SpilledTexts)."""
    c = make_config(tmp_path, source_vocab="sentencepiece", vocab_size=30)
    records_read = count_records_read(monkeypatch)
    data = get_data(c, tmp_path / "vocab")
    assert len(records_read) == 300 + 20 + 20  # each record once: no second or third pass over training
    plain = in_memory(c, tmp_path / "plain_vocab")  # from the records themselves
    for name in ("source_vocab.model", "target_vocab.json"):
        assert (tmp_path / "vocab" / name).read_bytes() == (tmp_path / "plain_vocab" / name).read_bytes()
    assert cache_entries(c) == cache_entries(c)[:1]  # the texts' files are gone
    assert list(data.examples("train")) == list(plain.examples("train"))
    assert_same_batches(batches(plain, plain.batches_per_epoch), batches(data, data.batches_per_epoch))


def test_spilled_texts_read_back_every_text_as_it_was(tmp_path):
    examples = [{"source": "año\tñandú", "target": ""}, {"source": "", "target": "line\nbreak 🙂"},
                {"source": "x", "target": "y", "references": ["y"]}]
    texts = encoded.SpilledTexts(examples, str(tmp_path / "texts"))
    assert len(texts) == 3 and texts[-1] == {"source": "x", "target": "y"}
    pairs = [{"source": e["source"], "target": e["target"]} for e in examples]
    assert texts[:] == pairs and texts[1:3] == pairs[1:3] and texts[::2] == pairs[::2] and texts[2:1] == []
    assert len(encoded.SpilledTexts([], str(tmp_path / "empty"))) == 0


def test_a_later_start_reads_no_training_text_and_encodes_nothing(tmp_path, monkeypatch):
    c = make_config(tmp_path)
    first = get_data(c, tmp_path / "vocab")

    def refuse(*args, **kwargs):
        raise AssertionError("a later start must not do this")

    records_read = count_records_read(monkeypatch)
    monkeypatch.setattr(encoded, "_write", refuse)
    monkeypatch.setattr(buckets, "_write_members", refuse)
    monkeypatch.setattr(vocab_lib, "build_vocab", refuse)
    monkeypatch.setattr(parallel_text, "read_pairs", refuse)
    again = get_data(c, tmp_path / "vocab")
    assert len(records_read) == 20 + 20  # the validation and test records, none of the 300 training ones
    assert_same_batches(batches(first, 5), batches(again, 5))
    assert cache_entries(c) == cache_entries(c)[:1]


def arrays_in_memory(value, seen=None) -> list[np.ndarray]:
    """Every numpy array reachable from `value` through containers, dataclasses and this package's objects."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list | tuple):
        children = list(value)
    elif type(value).__module__.startswith("seq2seq_jax") and hasattr(value, "__dict__"):
        children = list(vars(value).values())
    else:
        return []
    return [array for child in children for array in arrays_in_memory(child, seen)]


def test_a_later_start_holds_no_array_per_training_example_in_memory(tmp_path):
    c = make_config(tmp_path)
    get_data(c, tmp_path / "vocab")
    again = get_data(c, tmp_path / "vocab")
    batches(again, again.batches_per_epoch + 1)  # two epochs planned
    num_train = len(again.examples("train"))
    assert num_train > 200
    assert [a.shape for a in arrays_in_memory(again) if a.size >= num_train] == []


def test_a_cache_written_from_another_number_of_records_is_refused_naming_its_directory(tmp_path):
    c = make_config(tmp_path)
    get_data(c, tmp_path / "vocab")
    (entry,) = cache_entries(c)
    meta_path = os.path.join(c.data_dir, pipeline.ENCODED_DIR, entry, "meta.json")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    meta["num_records"] += 1  # as if written from another version of the split
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    with pytest.raises(ValueError, match=rf"^the encoded training split in .*{entry} was written from 301 "
                                         r"records, but the dataset now has 300; delete that directory\.$"):
        get_data(c, tmp_path / "vocab")


@pytest.mark.parametrize("change", [
    {"max_source_length": 8},
    {"length_policy": "truncate"},
    {"reverse_pair": True},
    {"source_vocab": "char"},
])
def test_anything_the_ids_depend_on_gets_a_cache_of_its_own(tmp_path, change):
    c = make_config(tmp_path)
    get_data(c, tmp_path / "vocab")
    changed = c.copy_and_resolve_references()
    changed.update(change)
    data = get_data(changed, tmp_path / "vocab2")
    assert len(cache_entries(c)) == 2
    assert_same_batches(batches(in_memory(changed, tmp_path / "vocab2"), 10), batches(data, 10))


def test_an_interrupted_encoding_leaves_nothing_and_the_next_start_encodes(tmp_path, monkeypatch):
    c = make_config(tmp_path)
    monkeypatch.setattr(encoded, "CHUNK", 50)
    encode_chunks = encoded._encode_chunks

    def interrupted(*args):
        chunks = encode_chunks(*args)
        yield next(chunks)
        raise KeyboardInterrupt  # the process is stopped after the first chunk was written

    monkeypatch.setattr(encoded, "_encode_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        get_data(c, tmp_path / "vocab")
    assert cache_entries(c) == []
    monkeypatch.setattr(encoded, "_encode_chunks", encode_chunks)
    data = get_data(c, tmp_path / "vocab")
    assert len(cache_entries(c)) == 1 and len(data.examples("train")) + data.num_filtered["train"] == 300


def test_a_prepared_parallel_text_is_not_read_again_until_a_file_changes(tmp_path, monkeypatch):
    c = make_config(tmp_path)
    get_data(c, tmp_path / "vocab")
    read_pairs = parallel_text.read_pairs
    monkeypatch.setattr(parallel_text, "read_pairs", lambda *a: pytest.fail("read a prepared file again"))
    builder = datasets.get_builder("parallel_text", c.data_dir, train_file=c.train_file,
                                   validation_file=c.validation_file, test_file=c.test_file)
    builder.download_and_prepare()
    with open(c.train_file, "a", encoding="utf-8") as f:
        f.write("once more\tmore once\n")
    monkeypatch.setattr(parallel_text, "read_pairs", read_pairs)
    assert len(get_data(c, tmp_path / "vocab").examples("train")) == len(get_data(c, tmp_path / "vocab3")
                                                                         .examples("train"))
    # The edited file is another prepared dataset: a cache for it with the old vocabulary, one with the new.
    assert len(cache_entries(c)) == 3


def test_a_corpus_too_big_for_tfds_s_memory_buffer_is_prepared_without_tensorflow(tmp_path, monkeypatch):
    from tensorflow_datasets.core import shuffle  # noqa: PLC0415

    monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 0)  # every example spills to the bucket files, as >1 GB do
    c = make_config(tmp_path)
    builder = datasets.get_builder("parallel_text", c.data_dir, train_file=c.train_file,
                                   validation_file=c.validation_file, test_file=c.test_file)
    builder.download_and_prepare()
    stored = sorted((e["source"], e["target"]) for e in encoded.RecordExamples(builder.as_data_source(split="train")))
    assert stored == sorted(parallel_text.read_pairs(c.train_file, "train"))
    assert not [name for name in os.listdir(builder.data_dir) if "bucket" in name or "incomplete" in name]


# --- The cache's files, read where indexed ------------------------------------------------------------------

INDICES = st.one_of(
    st.integers(-30, 29),
    st.builds(slice, st.none() | st.integers(-35, 35), st.none() | st.integers(-35, 35),
              st.none() | st.integers(1, 4) | st.integers(-4, -1)),
    st.lists(st.integers(-30, 29), max_size=12).map(lambda xs: np.array(xs, np.int64)),
    st.lists(st.integers(-30, 29), min_size=6, max_size=6).map(lambda xs: np.array(xs, np.int32).reshape(2, 3)))


@hypothesis.given(index=INDICES)
@hypothesis.settings(max_examples=200, deadline=None)
def test_a_file_array_reads_what_numpy_indexing_reads(tmp_path_factory, index):
    values = np.arange(30, dtype=np.int32) * 7 - 100
    path = tmp_path_factory.mktemp("array") / "values.bin"
    values.tofile(path)
    got = files.FileArray(path, np.int32, 30)[index]
    want = values[index]
    assert np.asarray(got).dtype == want.dtype and np.asarray(got).shape == np.shape(want)
    np.testing.assert_array_equal(got, want)


def test_a_file_array_refuses_indices_out_of_bounds_and_a_file_too_short(tmp_path):
    np.arange(10, dtype=np.int64).tofile(tmp_path / "values.bin")
    array = files.FileArray(tmp_path / "values.bin", np.int64, 10)
    for index in (10, -11, np.array([0, 10]), np.array([-11])):
        with pytest.raises(IndexError, match="out of bounds for .*values.bin of 10 values"):
            array[index]
    with pytest.raises(ValueError, match="values.bin holds 80 bytes, fewer than 11 values of int64"):
        files.FileArray(tmp_path / "values.bin", np.int64, 11)


def test_reading_rows_of_a_file_array_maps_none_of_the_file_and_a_copy_reopens_it(tmp_path):
    """A memory map would leave the pages (whole large folios) around each row it read mapped, counted in the
    process's resident memory, until the kernel reclaims them."""
    rows = np.arange(1 << 22, dtype=np.int32)  # 16 MiB
    rows.tofile(tmp_path / "rows.bin")
    array = files.FileArray(tmp_path / "rows.bin", np.int32, len(rows))
    picked = np.random.default_rng(0).integers(0, len(rows) - 8, 64)
    for start in picked:
        np.testing.assert_array_equal(array[start:start + 8], rows[start:start + 8])
    np.testing.assert_array_equal(array[picked], rows[picked])
    with open("/proc/self/maps", encoding="utf-8") as f:
        assert str(tmp_path / "rows.bin") not in f.read()
    copy = pickle.loads(pickle.dumps(array))
    assert len(pickle.dumps(array)) < 1000
    np.testing.assert_array_equal(copy[picked], rows[picked])
