"""Length buckets and the epoch plan: numpy's quantiles from a histogram, each bucket's members written once
beside the encoded split, and epochs of batches computed one at a time, holding nothing per example."""

import os

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from seq2seq_jax import files
from seq2seq_jax.data import buckets

SHAPES = [(8, 8), (16, 8), (16, 24), (40, 40)]


def lengths(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(1, 41, num).astype(np.int32)
    return src, np.clip(src + rng.integers(-6, 7, num), 1, 40).astype(np.int32)


def bucket_of(src: int, tgt: int) -> int:
    """The plain definition: the first (smallest) shape that fits both lengths."""
    return next(b for b, (s, t) in enumerate(SHAPES) if src <= s and tgt <= t)


@hypothesis.given(st.lists(st.integers(0, 300), min_size=1, max_size=300), st.floats(0, 1))
def test_a_quantile_of_the_histogram_is_numpy_s_quantile_of_the_lengths(values, q):
    counts = np.bincount(np.array(values, np.int32))
    assert buckets.quantile(counts, q) == np.quantile(np.array(values, np.int32), q)


def test_the_histogram_is_read_a_chunk_at_a_time_from_a_file(tmp_path, monkeypatch):
    monkeypatch.setattr(buckets, "CHUNK", 7)
    src, _ = lengths(100)
    src.tofile(tmp_path / "src.bin")
    np.testing.assert_array_equal(buckets.histogram(files.FileArray(tmp_path / "src.bin", np.int32, 100)),
                                  np.bincount(src))
    np.testing.assert_array_equal(buckets.histogram(np.zeros(0, np.int32)), [0])


def test_members_are_each_bucket_s_indices_in_order_in_memory_and_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(buckets, "CHUNK", 64)  # several chunks
    src, tgt = lengths(1000)
    want = [[i for i in range(1000) if bucket_of(src[i], tgt[i]) == b] for b in range(len(SHAPES))]
    assert [m.tolist() for m in buckets.members(src, tgt, SHAPES)] == want
    on_disk = buckets.members(src, tgt, SHAPES, str(tmp_path))
    assert [np.asarray(m).tolist() for m in on_disk] == want
    assert all(isinstance(m, files.FileArray) for m in on_disk)


def test_members_on_disk_are_written_once_per_set_of_shapes(tmp_path, monkeypatch):
    src, tgt = lengths(200)
    buckets.members(src, tgt, SHAPES, str(tmp_path))
    monkeypatch.setattr(buckets, "_write_members", lambda *a: pytest.fail("written again"))
    buckets.members(src, tgt, SHAPES, str(tmp_path))
    monkeypatch.undo()
    buckets.members(src, tgt, SHAPES[1:], str(tmp_path))
    assert len([name for name in os.listdir(tmp_path) if not name.endswith(".lock")]) == 2


def test_an_interrupted_write_of_members_leaves_nothing(tmp_path, monkeypatch):
    src, tgt = lengths(200)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(buckets, "_member_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        buckets.members(src, tgt, SHAPES, str(tmp_path))
    assert [name for name in os.listdir(tmp_path) if not name.endswith(".lock")] == []


def test_a_split_of_2_to_the_31_examples_is_refused_before_any_work():
    too_many = np.broadcast_to(np.int32(1), (2**31,))  # no memory: one value seen 2**31 times
    with pytest.raises(ValueError, match=r"^2147483648 examples in one split: at most 2\*\*31 - 1 are supported\.$"):
        buckets.members(too_many, too_many, SHAPES)


def plan_batches(plan) -> list[tuple[int, list[int]]]:
    return [(b, rows.tolist()) for b, rows in (plan.batch(i) for i in range(len(plan)))]


@pytest.mark.parametrize("batch_size", [1, 16, 300])
def test_an_epoch_holds_each_example_once_but_the_remainder_in_a_bucket_that_fits_it(batch_size):
    src, tgt = lengths(1000)
    members = buckets.members(src, tgt, SHAPES)
    plan = buckets.EpochPlan(members, batch_size, seed=3, epoch=0)
    batches = plan_batches(plan)
    seen = [i for _, rows in batches for i in rows]
    assert len(seen) == len(set(seen)) == len(plan) * batch_size == 1000 - plan.remainder
    assert plan.remainder < batch_size
    for b, rows in batches:
        assert len(rows) == batch_size
        assert all(bucket_of(src[i], tgt[i]) <= b for i in rows), "carried rows come from smaller buckets"
    # The counts follow from the bucket sizes alone: the rows carried up, full batches, what is left.
    carry, full = 0, 0
    for m in members:
        full, carry = full + (carry + len(m)) // batch_size, (carry + len(m)) % batch_size
    assert (len(plan), plan.remainder) == (full, carry)


def test_the_plan_is_a_function_of_seed_and_epoch():
    members = buckets.members(*lengths(500), SHAPES)

    def plan(seed, epoch):
        return plan_batches(buckets.EpochPlan(members, 16, seed, epoch))

    assert plan(0, 0) == plan(0, 0)
    assert plan(0, 1) != plan(0, 0) != plan(1, 0)
    dropped = [set(range(500)) - {i for _, rows in plan(0, epoch) for i in rows} for epoch in range(3)]
    assert dropped[0] != dropped[1] != dropped[2], "the dropped remainder changes every epoch"


def test_batches_come_in_shuffled_order_not_bucket_by_bucket():
    members = buckets.members(*lengths(2000), SHAPES)
    order = [b for b, _ in plan_batches(buckets.EpochPlan(members, 8, seed=0, epoch=0))]
    assert order != sorted(order)
    first_half = set(order[:len(order) // 2])
    assert first_half == set(order), "every bucket appears early in the epoch"


def arrays_held(plan) -> int:
    """Bytes of the arrays a plan holds of its own (its members are the caller's, memory-mapped)."""
    return sum(a.nbytes for a in plan._carried_in) + plan._starts.nbytes


def test_a_plan_holds_the_same_memory_for_a_thousand_and_a_million_examples(tmp_path):
    small = buckets.EpochPlan(buckets.members(*lengths(1_000), SHAPES), 64, seed=0, epoch=0)
    large = buckets.EpochPlan(buckets.members(*lengths(1_000_000), SHAPES, str(tmp_path)), 64, seed=0, epoch=0)
    assert len(large) > 1000 * len(small) / 2
    assert arrays_held(large) <= len(SHAPES) * 64 * 8 + 100 >= arrays_held(small)
    bucket, rows = large.batch(len(large) - 1)
    assert len(rows) == 64 and 0 <= bucket < len(SHAPES)


def test_a_share_of_a_batch_is_that_slice_of_the_whole_batch():
    plan = buckets.EpochPlan(buckets.members(*lengths(500), SHAPES), 16, seed=0, epoch=0)
    for i in range(len(plan)):
        bucket, rows = plan.batch(i)
        assert [(b, r.tolist()) for b, r in (plan.batch(i, slice(4, 8)), plan.batch(i, slice(12, 16)))] == [
            (bucket, rows[4:8].tolist()), (bucket, rows[12:16].tolist())]


def test_asking_for_a_batch_past_the_epoch_is_an_index_error():
    plan = buckets.EpochPlan(buckets.members(*lengths(100), SHAPES), 16, seed=0, epoch=0)
    with pytest.raises(IndexError, match=rf"^batch {len(plan)} of an epoch of {len(plan)}$"):
        plan.batch(len(plan))
