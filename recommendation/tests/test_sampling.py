"""Negative sampling: never a positive, deterministic under the seed, vectorised over all users."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommendation import sampling
from recommendation.sampling import Positives


def random_positives(seed: int, n_users: int = 50, n_items: int = 40, density: float = 0.3):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(mask)
    order = rng.permutation(users.size)  # any order, with duplicates
    users = np.concatenate([users[order], users[:5]])
    items = np.concatenate([items[order], items[:5]])
    return Positives.from_pairs(users, items, n_users, n_items), mask


@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(2, 30))
@settings(max_examples=40, deadline=None)
def test_positives_match_a_set(seed, n_users, n_items):
    positives, mask = random_positives(seed, n_users, n_items)
    assert np.array_equal(np.diff(positives.indptr), mask.sum(1))
    rng = np.random.default_rng(seed + 1)
    users, items = rng.integers(0, n_users, 200), rng.integers(0, n_items, 200)
    assert np.array_equal(positives.contains(users, items), mask[users, items])
    per_user = rng.integers(0, 4, n_users) * (mask.sum(1) < n_items)
    drawn = sampling.sample_negatives(rng, positives, per_user)
    assert drawn.size == per_user.sum() and not mask[np.repeat(np.arange(n_users), per_user), drawn].any()


def test_sampling_spans_many_blocks(monkeypatch):
    monkeypatch.setattr(sampling, "_BLOCK_BYTES", 3 * 40)  # 3 users per bitmap block
    positives, mask = random_positives(3, n_users=50, n_items=40)
    per_user = np.arange(50) % 4
    drawn = sampling.sample_negatives(np.random.default_rng(0), positives, per_user)
    assert not mask[np.repeat(np.arange(50), per_user), drawn].any()
    monkeypatch.undo()
    again = sampling.sample_negatives(np.random.default_rng(0), positives, per_user)
    assert not mask[np.repeat(np.arange(50), per_user), again].any()


def test_negatives_avoid_positives_and_cover_the_rest():
    positives, mask = random_positives(0, n_users=20, n_items=30, density=0.5)
    users = np.repeat(np.arange(20), 2000)
    items = sampling.sample_negatives(np.random.default_rng(0), positives, np.full(20, 2000))
    assert not mask[users, items].any()
    seen = np.zeros_like(mask)
    seen[users, items] = True
    assert np.array_equal(seen, ~mask)  # every non-positive item is reachable (uniform over them)


def test_negatives_are_uniform_over_the_non_positives():
    positives, mask = random_positives(1, n_users=1, n_items=20, density=0.5)
    counts = np.bincount(sampling.sample_negatives(np.random.default_rng(1), positives, np.array([200_000])),
                         minlength=20)
    allowed = counts[~mask[0]]
    expected = 200_000 / allowed.size
    assert np.all(np.abs(allowed - expected) < 5 * np.sqrt(expected))  # 5 sigma


def test_a_user_with_every_item_is_refused():
    positives = Positives.from_pairs(np.zeros(3, np.int32), np.arange(3), 1, 3)
    with pytest.raises(ValueError, match="user 0 interacted with every item"):
        sampling.sample_negatives(np.random.default_rng(0), positives, np.array([2]))


def test_eval_negatives_are_deterministic_and_avoid_all_interactions():
    positives, mask = random_positives(2, n_users=40, n_items=60)
    first = sampling.sample_eval_negatives(positives, 99, seed=7)
    assert first.shape == (40, 99) and first.dtype == np.int32
    assert not mask[np.arange(40)[:, None], first].any()
    assert np.array_equal(first, sampling.sample_eval_negatives(positives, 99, seed=7))
    assert not np.array_equal(first, sampling.sample_eval_negatives(positives, 99, seed=8))


def test_epoch_samples_hold_every_positive_and_fresh_negatives():
    positives, mask = random_positives(4)
    one = sampling.epoch_samples(positives, 4, seed=3, epoch=1)
    n_train = len(positives.items)
    assert len(one) == 5 * n_train
    assert one.labels.dtype == np.float32 and one.labels.sum() == n_train
    is_positive = one.labels == 1
    assert np.array_equal(mask[one.users, one.items], is_positive)
    pairs = np.sort(one.users[is_positive].astype(np.int64) * 40 + one.items[is_positive])
    assert np.array_equal(pairs, positives.users.astype(np.int64) * 40 + positives.items)
    assert np.array_equal(np.bincount(one.users[~is_positive], minlength=50), 4 * np.diff(positives.indptr))
    assert len(np.unique(one.labels[:20])) == 2  # shuffled, not positives first

    again = sampling.epoch_samples(positives, 4, seed=3, epoch=1)
    for name in ("users", "items", "labels"):
        assert np.array_equal(getattr(one, name), getattr(again, name))
    assert not np.array_equal(one.items, sampling.epoch_samples(positives, 4, seed=3, epoch=2).items)
    assert not np.array_equal(one.items, sampling.epoch_samples(positives, 4, seed=4, epoch=1).items)


@pytest.mark.parametrize("n_samples, batch, world", [(100, 32, 1), (100, 32, 2), (100, 32, 3), (7, 8, 4),
                                                     (64, 16, 4)])
def test_local_batches_split_every_global_batch(n_samples, batch, world):
    per_rank = [list(sampling.local_batches(n_samples, batch, rank, world)) for rank in range(world)]
    assert all(len(batches) == sampling.steps_per_epoch(n_samples, batch) for batches in per_rank)
    for step, shares in enumerate(zip(*per_rank)):
        covered = np.concatenate([np.arange(start, stop) for start, stop, _ in shares])
        begin = step * batch
        assert np.array_equal(covered, np.arange(begin, min(begin + batch, n_samples)))
        assert {count for _, _, count in shares} == {len(covered)}
