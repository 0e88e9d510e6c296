"""Negative sampling for NCF, framework-independent (NumPy), so both frameworks see the same samples.

MovieLens ratings become implicit feedback: every (user, item) a user rated is a positive. The model
is trained against negatives, items drawn uniformly for a user among those it has no positive
with, and evaluated by ranking the held-out positive among sampled negatives. As in the MLPerf
v0.6 NCF reference (mlcommons/training recommendation/pytorch: "The default of np.random.choice is
replace=True, so does pytorch random_()", logged as preproc_hp_sample_eval_replacement=True and
input_hp_sample_train_replacement=True), negatives are drawn *with replacement* and a draw that
hits a positive is redrawn:

- evaluation negatives: `eval_negatives_per_user` (999) per user, drawn once at preprocessing
  under the dataset seed, avoiding every item the user interacted with (train and held-out);
  duplicates are scored once (`distinct_mask`, the reference's `dup_mask`);
- training negatives: `negatives_per_positive` (4) per training positive, drawn anew every epoch
  from a generator seeded by (seed, epoch), avoiding the user's *training* positives (the model
  must not learn the held-out item from its absence).

Everything is vectorised: the draws of a block of users are made at once and checked against a
dense bitmap of the block's positives (block users x all items, 4 MB), redrawing only the rejected
draws; no Python loop runs per user or per rating. Results depend only on the inputs and the seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Salts that keep the generators of different purposes independent under the same seed.
_EVAL_STREAM = 0x4E434645  # "NCFE"
_TRAIN_STREAM = 0x4E434654  # "NCFT"
_BLOCK_BYTES = 1 << 22  # dense bitmap of one block of users x all items: cache-sized


def pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Sorted distinct int64 keys `user * n_items + item` of (user, item) pairs."""
    keys = np.sort(users.astype(np.int64) * n_items + items)  # SIMD quicksort: ~1 s for 20M
    if keys.size:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return keys


@dataclasses.dataclass(frozen=True)
class Positives:
    """Each user's positive items in CSR form: user u's items are items[indptr[u]:indptr[u+1]], sorted."""

    indptr: np.ndarray  # int64, n_users + 1
    items: np.ndarray  # int32
    n_items: int

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def users(self) -> np.ndarray:
        """The user of every entry of `items` (int32)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int32), np.diff(self.indptr))

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Positives:
        """From (user, item) pairs in any order; duplicate pairs are kept once."""
        return cls.from_keys(pair_keys(users, items, n_items), n_users, n_items)

    @classmethod
    def from_keys(cls, keys: np.ndarray, n_users: int, n_items: int) -> Positives:
        """From sorted, distinct keys `user * n_items + item` (pair_keys)."""
        # user boundaries by binary search and items by subtraction: no 64-bit division per key
        indptr = np.searchsorted(keys, np.arange(n_users + 1, dtype=np.int64) * n_items).astype(np.int64)
        offsets = np.repeat(np.arange(n_users, dtype=np.int64) * n_items, np.diff(indptr))
        return cls(indptr, (keys - offsets).astype(np.int32), int(n_items))

    @classmethod
    def from_sorted(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Positives:
        """From pairs already sorted by (user, item) with no duplicates (the prepared train file)."""
        counts = np.bincount(users, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, np.ascontiguousarray(items, dtype=np.int32), int(n_items))

    def keys(self) -> np.ndarray:
        """Sorted int64 keys `user * n_items + item` of the positives (pair_keys' form)."""
        return self.users.astype(np.int64) * self.n_items + self.items

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """For each (users[i], items[i]), whether it is a positive (for checks; sampling uses bitmaps)."""
        keys = self.keys()
        query = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        found = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
        return keys[found] == query if keys.size else np.zeros(query.shape, dtype=bool)

    def _block_positions(self, user0: int, user1: int) -> np.ndarray:
        """Positions of users user0..user1-1's positives in a (user1-user0, n_items) bitmap, flattened."""
        counts = np.diff(self.indptr[user0:user1 + 1])
        rows = np.repeat(np.arange(user1 - user0, dtype=np.int64) * self.n_items, counts)
        return rows + self.items[self.indptr[user0]:self.indptr[user1]]


def sample_negatives(rng: np.random.Generator, positives: Positives, per_user: np.ndarray) -> np.ndarray:
    """`per_user[u]` items drawn uniformly for each user u in turn, none among u's positives (int32,
    grouped by user in user order).

    Draws are with replacement; a draw that hits a positive is redrawn until none does. Users are
    processed in blocks whose positives fit a small dense bitmap (block users x all items), so the
    draws, the lookups and the redraws of a block stay in cache. Deterministic given the generator.
    """
    full = np.diff(positives.indptr) >= positives.n_items
    if np.any(full & (per_user > 0)):
        raise ValueError(f"user {int(np.argmax(full & (per_user > 0)))} interacted with every item: "
                         "no negative exists for it")
    n_users, n_items = positives.n_users, positives.n_items
    bounds = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(per_user, out=bounds[1:])
    out = np.empty(int(bounds[-1]), dtype=np.int32)
    block = max(1, _BLOCK_BYTES // max(n_items, 1))
    bitmap = np.zeros(block * n_items, dtype=bool)
    for user0 in range(0, n_users, block):
        user1 = min(user0 + block, n_users)
        begin, end = int(bounds[user0]), int(bounds[user1])
        if begin == end:
            continue
        positions = positives._block_positions(user0, user1)
        bitmap[positions] = True
        rows = np.repeat(np.arange(user1 - user0, dtype=np.int32) * np.int32(n_items), per_user[user0:user1])
        items = rng.integers(0, n_items, size=end - begin, dtype=np.int32)
        rejected = np.flatnonzero(bitmap[rows + items])
        while rejected.size:
            items[rejected] = rng.integers(0, n_items, size=rejected.size, dtype=np.int32)
            rejected = rejected[bitmap[rows[rejected] + items[rejected]]]
        bitmap[positions] = False
        out[begin:end] = items
    return out


def eval_rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([_EVAL_STREAM, int(seed)])))


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's training negatives and order: a function of (seed, epoch) only,
    so a resumed run and the other framework draw exactly the same samples."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([_TRAIN_STREAM, int(seed), int(epoch)])))


def sample_eval_negatives(all_positives: Positives, count: int, seed: int) -> np.ndarray:
    """(n_users, count) int32: per user, `count` items it never interacted with (with replacement)."""
    per_user = np.full(all_positives.n_users, count, dtype=np.int64)
    return sample_negatives(eval_rng(seed), all_positives, per_user).reshape(all_positives.n_users, count)


@dataclasses.dataclass(frozen=True)
class EpochSamples:
    """One epoch's shuffled training samples: positives (label 1) and their negatives (label 0)."""

    users: np.ndarray  # int32
    items: np.ndarray  # int32
    labels: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.users)


def epoch_samples(train: Positives, negatives_per_positive: int, seed: int, epoch: int) -> EpochSamples:
    """All training positives plus `negatives_per_positive` fresh negatives each, shuffled.

    The reference (CFTrainDataset / the v0.6 ncf.py) regenerates the negatives every epoch and
    shuffles positives and negatives together; the draws and the order come from
    `epoch_rng(seed, epoch)`, identical across frameworks, world sizes and resumed runs.
    """
    rng = epoch_rng(seed, epoch)
    positive_users = train.users
    negative_users = np.repeat(positive_users, negatives_per_positive)  # grouped by user, as the draws
    negative_items = sample_negatives(rng, train, np.diff(train.indptr) * negatives_per_positive)
    count = len(positive_users) * (1 + negatives_per_positive)
    order = rng.permutation(count)
    users = np.concatenate([positive_users, negative_users])[order]
    items = np.concatenate([train.items, negative_items])[order]
    labels = (order < len(positive_users)).astype(np.float32)
    return EpochSamples(users, items, labels)


def local_batches(n_samples: int, global_batch_size: int, rank: int = 0, world_size: int = 1):
    """Yield (start, stop, global_count) of this rank's slice of each global batch of an epoch.

    Global batch b covers samples [b*G, b*G+G) (the last one may be shorter); rank r takes an
    equal contiguous share of it. The union over ranks is the same global batch for any world
    size, so one optimizer step sees the same samples on 1 or N devices.
    """
    for start in range(0, n_samples, global_batch_size):
        stop = min(start + global_batch_size, n_samples)
        size = stop - start
        share = -(-size // world_size)
        local_start = min(start + rank * share, stop)
        local_stop = min(local_start + share, stop)
        yield local_start, local_stop, size


def steps_per_epoch(n_samples: int, global_batch_size: int) -> int:
    return -(-n_samples // global_batch_size)
