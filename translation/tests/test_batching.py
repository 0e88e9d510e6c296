"""Length batching: the reference's buckets, token budgets, determinism from (seed, epoch), sharding."""

from __future__ import annotations

import numpy as np
import pytest

from translation.batching import (
    Encoded,
    bucket_bounds,
    eval_batches,
    keep_within,
    sentence_batches,
    shard_batches,
    token_batches,
)


def lengths(seed=0, n=3000, high=60):
    rng = np.random.default_rng(seed)
    return rng.integers(2, high, n), rng.integers(2, high, n)


def test_bucket_bounds_are_the_references():
    # reference _create_min_max_boundaries(max_length=24, min_boundary=4, boundary_scale=2): the doc's example
    assert bucket_bounds(24, 4, 2.0) == ([0, 4, 8, 16], [4, 8, 16, 25])
    mins, maxs = bucket_bounds(256)
    assert mins[:5] == [0, 8, 9, 10, 11] and maxs[-1] == 257 and all(a < b for a, b in zip(mins, maxs))


def test_token_batches_cover_every_example_once_within_the_budget():
    source, target = lengths()
    batches = token_batches(source, target, max_tokens=1024, max_length=64, seed=1, epoch=1)
    seen = np.concatenate(batches)
    assert np.array_equal(np.sort(seen), np.arange(len(source)))
    _, maxs = bucket_bounds(64)
    for batch in batches:
        longest = np.maximum(source[batch], target[batch]).max()
        bucket_max = next(upper for upper in maxs if longest < upper)
        assert len(batch) * bucket_max <= 1024  # padded to the bucket's bound, within the token budget
        assert len(batch) * longest <= 1024


def test_token_batches_depend_on_seed_and_epoch_only():
    source, target = lengths()
    one = token_batches(source, target, 2048, 64, seed=3, epoch=2)
    two = token_batches(source, target, 2048, 64, seed=3, epoch=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two)) and len(one) == len(two)
    other = token_batches(source, target, 2048, 64, seed=3, epoch=3)
    assert not all(np.array_equal(a, b) for a, b in zip(one, other))


def test_too_long_examples_must_be_filtered_first():
    source, target = np.array([3, 300, 5]), np.array([4, 6, 257])
    assert keep_within(source, target, 256).tolist() == [0]
    with pytest.raises(ValueError, match="longer than max_length"):
        token_batches(source, target, 4096, 256, 0, 1)
    assert [b.tolist() for b in token_batches(source, target, 4096, 256, 0, 1, indices=keep_within(source, target, 256))] == [[0]]


def test_shards_split_steps_between_replicas():
    batches = [np.array([i]) for i in range(7)]
    assert [b[0] for b in shard_batches(batches, 0, 2)] == [0, 2, 4]
    assert [b[0] for b in shard_batches(batches, 1, 2)] == [1, 3, 5]  # the 7th batch would leave a replica idle
    assert len(shard_batches(batches, 0, 1)) == 7


def test_sentence_batches_are_the_references_buckets():
    # reference BucketingSampler: max_len 50, 5 buckets of width 10 by max(src // 10, tgt // 10)
    source, target = lengths(1, 1000)
    source, target = np.minimum(source, 50), np.minimum(target, 50)
    batches = sentence_batches(source, target, 32, seed=0, epoch=1, max_length=50)
    bucket = np.minimum(np.maximum(source // 10, target // 10), 4)
    assert all(len(batch) == 32 and len(set(bucket[batch])) == 1 for batch in batches)  # one bucket each
    seen = np.concatenate(batches)
    assert len(np.unique(seen)) == len(seen)
    per_bucket = np.bincount(bucket, minlength=5)
    assert len(seen) == sum(count // 32 * 32 for count in per_bucket)  # each bucket's incomplete batch sits out
    again = sentence_batches(source, target, 32, seed=0, epoch=1, max_length=50)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert not np.array_equal(np.concatenate(sentence_batches(source, target, 32, seed=0, epoch=2, max_length=50)), seen)


def test_sentence_batches_split_global_batches_between_replicas():
    source, target = lengths(2, 1000)
    source, target = np.minimum(source, 50), np.minimum(target, 50)
    batches = sentence_batches(source, target, 16, seed=3, epoch=1, max_length=50, world_size=2)
    bucket = np.minimum(np.maximum(source // 10, target // 10), 4)
    for step in range(len(batches) // 2):  # replica batches 2s and 2s+1 form global batch s: one bucket
        assert len(set(bucket[np.concatenate(batches[2 * step:2 * step + 2])])) == 1
    assert [b.tolist() for b in shard_batches(batches, 1, 2)] == [b.tolist() for b in batches[1::2]]


def test_encoded_round_trip_and_padding():
    sequences = [[5, 6, 1], [7, 1], [8, 9, 10, 11, 1]]
    encoded = Encoded.from_sequences(sequences)
    assert encoded.lengths.tolist() == [3, 2, 5] and encoded.sequence(2).tolist() == sequences[2]
    assert encoded.pad([1, 0]).tolist() == [[7, 1, 0], [5, 6, 1]]
    order = np.concatenate(eval_batches(encoded.lengths, 2))
    assert order.tolist() == [1, 0, 2]
