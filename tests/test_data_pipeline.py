"""Input pipeline: bucketed padded batches, nothing dropped silently, reproducible and checkpointable order."""

import itertools
import os
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from seq2seq_jax.data import config as config_lib
from seq2seq_jax.data import pipeline
from seq2seq_jax.data.vocab import EOS, PAD

BATCH = 16


def make_config(data_dir, **overrides):
    c = config_lib.get_data_config()
    c.dataset = "synthetic/reverse"
    c.data_dir = str(data_dir)
    c.num_train, c.num_validation, c.num_test = 500, 45, 40
    c.update(overrides)
    return c


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def data(data_dir, tmp_path_factory):
    return pipeline.get_data(make_config(data_dir), batch_size=BATCH, seed=0,
                             vocab_dir=str(tmp_path_factory.mktemp("vocab")))


def unpadded(batch, row):
    """(source ids, target ids with EOS) of one batch row, cut at its lengths."""
    return (batch["inputs"][row, :batch["input_lengths"][row]].tolist(),
            batch["targets"][row, :batch["target_lengths"][row]].tolist())


def assert_well_formed(data, batch):
    shape = (batch["inputs"].shape[1], batch["targets"].shape[1])
    assert shape in data.bucket_shapes
    assert all(v.dtype == np.int32 for v in batch.values())
    positions_src = np.arange(shape[0])[None, :]
    positions_tgt = np.arange(shape[1])[None, :]
    assert np.all(batch["inputs"][positions_src >= batch["input_lengths"][:, None]] == PAD)
    assert np.all(batch["targets"][positions_tgt >= batch["target_lengths"][:, None]] == PAD)
    real = batch["target_lengths"] > 0
    assert np.all(batch["targets"][real, batch["target_lengths"][real] - 1] == EOS)
    assert np.all(batch["inputs"][positions_src < batch["input_lengths"][:, None]] != PAD)


def test_buckets_are_few_fixed_shapes_covering_the_longest_example(data):
    assert 1 <= len(data.bucket_shapes) <= 4
    assert data.bucket_shapes == sorted(data.bucket_shapes)
    assert all(s % 8 == 0 and t % 8 == 0 for s, t in data.bucket_shapes)
    assert data.bucket_shapes[-1] == (24, 24), "reverse strings are at most 20 long (+ EOS), rounded up to 8"


def test_training_batches_have_exactly_batch_rows_and_bucket_shapes(data):
    for batch in itertools.islice(data.train_iterator(), 2 * data.batches_per_epoch):
        assert batch["inputs"].shape[0] == BATCH and set(batch) == {
            "inputs", "input_lengths", "targets", "target_lengths"}
        assert_well_formed(data, batch)
        assert np.all(batch["input_lengths"] > 0)


def test_training_epoch_sees_every_example_but_the_reported_remainder(data):
    seen = []
    for batch in itertools.islice(data.train_iterator(), data.batches_per_epoch):
        seen += [tuple(data.source_vocab.decode(r)) for r in batch["inputs"]]
    assert len(seen) == len(set(seen)) == 500 - data.train_remainder
    assert data.train_remainder == 500 % BATCH


def test_dropped_remainder_differs_between_epochs(data):
    def epoch_sources(epoch):
        it = data.train_iterator()
        it.set_state({"next_index": epoch * data.batches_per_epoch})
        return {data.source_vocab.decode(r) for b in itertools.islice(it, data.batches_per_epoch)
                for r in b["inputs"]}
    assert epoch_sources(0) != epoch_sources(1)


def test_targets_are_reversed_sources_with_eos(data):
    batch = next(data.train_iterator())
    for row in range(BATCH):
        src, tgt = unpadded(batch, row)
        assert tgt[-1] == EOS
        assert data.target_vocab.decode(tgt) == data.source_vocab.decode(src)[::-1]


def test_eval_covers_every_example_exactly_once_in_a_fixed_order(data):
    for split in ("validation", "test"):
        batches = list(data.eval_batches(split))
        index = np.concatenate([b["index"] for b in batches])
        real = index[index >= 0]
        assert sorted(real.tolist()) == list(range(len(data.examples(split))))
        assert [b["index"].tolist() for b in data.eval_batches(split)] == [b["index"].tolist() for b in batches]
        for batch in batches:
            assert batch["inputs"].shape[0] == BATCH
            assert_well_formed(data, batch)
            for row in np.flatnonzero(batch["index"] >= 0):
                example = data.examples(split)[batch["index"][row]]
                src, tgt = unpadded(batch, row)
                assert data.source_vocab.decode(src) == example["source"]
                assert data.target_vocab.decode(tgt) == example["target"]
                assert example["references"] == [example["target"]]


def test_eval_padding_rows_are_all_pad_with_zero_lengths(data):
    padded = [b for b in data.eval_batches("validation") if np.any(b["index"] < 0)]
    assert padded, "45 validation examples cannot fill every batch of 16"
    for batch in padded:
        pad = batch["index"] < 0
        assert np.all(batch["inputs"][pad] == PAD) and np.all(batch["targets"][pad] == PAD)
        assert np.all(batch["input_lengths"][pad] == 0) and np.all(batch["target_lengths"][pad] == 0)


def test_restored_iterator_yields_the_same_next_batches(data):
    it = data.train_iterator()
    for _ in range(data.batches_per_epoch - 2):  # The next batches cross an epoch boundary.
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    restored = data.train_iterator()
    restored.set_state(state)
    for want, got in zip(expected, (next(restored) for _ in range(4))):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])


def test_same_seed_same_order_different_seed_different_order(data_dir, data, tmp_path):
    def first_inputs(d):
        return [b["inputs"].tolist() for b in itertools.islice(d.train_iterator(), 5)]
    again = pipeline.get_data(make_config(data_dir), batch_size=BATCH, seed=0, vocab_dir=str(tmp_path))
    other = pipeline.get_data(make_config(data_dir), batch_size=BATCH, seed=1, vocab_dir=str(tmp_path))
    assert first_inputs(again) == first_inputs(data)
    assert first_inputs(other) != first_inputs(data)


def test_epochs_are_reshuffled(data):
    it = data.train_iterator()
    first = [next(it)["inputs"].tolist() for _ in range(data.batches_per_epoch)]
    second = [next(it)["inputs"].tolist() for _ in range(data.batches_per_epoch)]
    assert first != second


def test_vocabularies_are_saved_and_reloaded_from_vocab_dir(data_dir, tmp_path):
    first = pipeline.get_data(make_config(data_dir), batch_size=BATCH, seed=0, vocab_dir=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["source_vocab.json", "target_vocab.json"]
    second = pipeline.get_data(make_config(data_dir), batch_size=BATCH, seed=0, vocab_dir=str(tmp_path))
    assert second.source_vocab.tokens == first.source_vocab.tokens
    with pytest.raises(ValueError, match=r"data\.source_vocab: .*holds a 'char' vocabulary.*asks for 'word'"):
        c = make_config(data_dir, source_vocab="word")
        os.rename(tmp_path / "source_vocab.json", tmp_path / "x")
        with open(tmp_path / "x") as f, open(tmp_path / "source_vocab.json", "w") as g:
            g.write(f.read())
        pipeline.get_data(c, batch_size=BATCH, seed=0, vocab_dir=str(tmp_path))


def test_explicit_bucket_boundaries_are_used(data_dir, tmp_path):
    d = pipeline.get_data(make_config(data_dir, bucket_boundaries=[(10, 12), (20, 21)]), batch_size=BATCH,
                          seed=0, vocab_dir=str(tmp_path))
    assert d.bucket_shapes == [(10, 12), (20, 21)]
    for batch in itertools.islice(d.train_iterator(), 10):
        assert_well_formed(d, batch)


def test_bucket_boundaries_too_small_for_the_data_is_an_error(data_dir, tmp_path):
    with pytest.raises(ValueError, match=r"data\.bucket_boundaries: the largest bucket \(8, 8\) does not fit"):
        pipeline.get_data(make_config(data_dir, bucket_boundaries=[(8, 8)]), batch_size=BATCH, seed=0,
                          vocab_dir=str(tmp_path))


def test_length_filter_is_counted_and_applied(data_dir, tmp_path):
    d = pipeline.get_data(make_config(data_dir, max_source_length=10, max_target_length=10), batch_size=BATCH,
                          seed=0, vocab_dir=str(tmp_path))
    assert all(n > 0 for n in d.num_filtered.values())
    assert len(d.examples("validation")) + d.num_filtered["validation"] == 45
    assert d.bucket_shapes[-1] == (16, 16)
    for batch in itertools.islice(d.train_iterator(), 10):
        assert batch["input_lengths"].max() <= 10 and batch["target_lengths"].max() <= 11


def test_length_truncation_is_counted_and_keeps_every_example(data_dir, tmp_path):
    d = pipeline.get_data(make_config(data_dir, max_source_length=10, max_target_length=5, length_policy="truncate"),
                          batch_size=BATCH, seed=0, vocab_dir=str(tmp_path))
    assert d.num_filtered == {"train": 0, "validation": 0, "test": 0}
    assert d.num_truncated["validation"] > 0 and len(d.examples("validation")) == 45
    batch = next(d.eval_batches("validation"))
    assert batch["target_lengths"].max() <= 6 and batch["input_lengths"].max() <= 10


def test_split_empty_after_filtering_names_split_dataset_and_limits(data_dir, tmp_path):
    c = make_config(data_dir, dataset="synthetic/copy", synthetic_min_length=5, max_source_length=3)
    with pytest.raises(ValueError, match=r"The train split of dataset 'synthetic/copy' is empty after length "
                                         r"filtering with data\.max_source_length=3"):
        pipeline.get_data(c, batch_size=BATCH, seed=0, vocab_dir=str(tmp_path))


@pytest.mark.parametrize("field, value, match", [
    ("dataset", "nope", r"data\.dataset: unknown dataset 'nope'.*allowed: .*synthetic/reverse"),
    ("length_policy", "clip", r"data\.length_policy = 'clip' is invalid; allowed: 'filter', 'truncate'"),
    ("source_vocab", "bpe", r"data\.source_vocab = 'bpe' is invalid; allowed: 'char', 'word', 'sentencepiece'"),
    ("num_buckets", 0, r"data\.num_buckets = 0 is invalid"),
])
def test_bad_config_fields_are_named(data_dir, tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        pipeline.get_data(make_config(data_dir, **{field: value}), batch_size=BATCH, seed=0, vocab_dir=str(tmp_path))


def test_parallel_text_with_word_and_sentencepiece_vocabularies(tmp_path):
    lines = [f"the number {i}\tle nombre {i}" for i in range(200)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.tsv").write_text("the number 7\tle nombre 7\n")
    c = make_config(tmp_path / "tfds", dataset="parallel_text", train_file=str(tmp_path / "train.tsv"),
                    test_file=str(tmp_path / "test.tsv"), source_vocab="word", target_vocab="sentencepiece",
                    vocab_size=40, num_train=None, num_validation=None, num_test=None)
    d = pipeline.get_data(c, batch_size=8, seed=0, vocab_dir=str(tmp_path / "vocab"))
    assert sorted(os.listdir(tmp_path / "vocab")) == ["source_vocab.json", "target_vocab.model"]
    batch = next(d.eval_batches("test"))
    assert d.source_vocab.decode(batch["inputs"][0]) == "the number 7"
    assert d.target_vocab.decode(batch["targets"][0]) == "le nombre 7"
    with pytest.raises(ValueError, match=r"no 'validation' split.*data\.validation_file"):
        d.examples("validation")


def test_parallel_text_without_train_file_names_the_field(tmp_path):
    with pytest.raises(ValueError, match=r"data\.train_file = None is invalid"):
        pipeline.get_data(make_config(tmp_path, dataset="parallel_text"), batch_size=8, seed=0,
                          vocab_dir=str(tmp_path))


@pytest.mark.parametrize("reverse", [False, True])
def test_catalog_pair_maps_xx_en_to_source_xx_unless_reversed(tmp_path, fixed_mock_getitems, reverse):
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        c = make_config(tmp_path, dataset="wmt14_translate/fr-en", reverse_pair=reverse)
        c.num_train = c.num_validation = c.num_test = None
        d = pipeline.get_data(c, batch_size=8, seed=0, vocab_dir=str(tmp_path / str(reverse)))
        records = list(tfds.data_source("wmt14_translate/fr-en", split="validation", data_dir=str(tmp_path)))
    src, tgt = ("en", "fr") if reverse else ("fr", "en")
    assert [(e["source"], e["target"]) for e in d.examples("validation")] == [(r[src], r[tgt]) for r in records]
    batch = next(d.train_iterator())
    assert batch["inputs"].shape[0] == 8
    assert "tensorflow" not in sys.modules


def test_a_bucket_smaller_than_a_batch_moves_up_instead_of_failing(data_dir, tmp_path):
    # 500 examples in 8 buckets of batch 128: some bucket holds fewer than one batch.
    d = pipeline.get_data(make_config(data_dir, num_buckets=8), batch_size=128, seed=0, vocab_dir=str(tmp_path))
    iterator = d.train_iterator(prefetch=0)
    seen = [next(iterator) for _ in range(2 * d.batches_per_epoch)]
    assert all(b["inputs"].shape[0] == 128 for b in seen)
    assert d.batches_per_epoch * 128 + d.train_remainder == len(d.examples("train"))
