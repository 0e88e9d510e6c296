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

Everything is vectorised: draws are made for all users at once and checked against a dense
per-block bitmap of positives (block of users x all items, ~16 MB), redrawing only the rejected
draws; no Python loop runs per user or per rating. Results depend only on the inputs and the seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Salts that keep the generators of different purposes independent under the same seed.
_EVAL_STREAM = 0x4E434645  # "NCFE"
_TRAIN_STREAM = 0x4E434654  # "NCFT"
_BLOCK_BYTES = 1 << 24  # dense bitmap block: users x items booleans per lookup block


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
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> "Positives":
        """From (user, item) pairs in any order; duplicate pairs are kept once."""
        return cls.from_keys(pair_keys(users, items, n_items), n_users, n_items)

    @classmethod
    def from_keys(cls, keys: np.ndarray, n_users: int, n_items: int) -> "Positives":
        """From sorted, distinct keys `user * n_items + item` (pair_keys)."""
        counts = np.bincount(keys // n_items, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, (keys % n_items).astype(np.int32), int(n_items))

    @classmethod
    def from_sorted(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> "Positives":
        """From pairs already sorted by (user, item) with no duplicates (the prepared train file)."""
        counts = np.bincount(users, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, np.ascontiguousarray(items, dtype=np.int32), int(n_items))

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """For each (users[i], items[i]), whether it is a positive. `users` must be sorted ascending.

        Users are taken in blocks; a dense boolean bitmap (block users x all items) is set from
        the block's positives, gathered at the queries, and cleared again: O(queries + positives).
        """
        result = np.zeros(len(users), dtype=bool)
        if len(users) == 0:
            return result
        n_items = self.n_items
        block = max(1, _BLOCK_BYTES // max(n_items, 1))
        bitmap = np.zeros(block * n_items, dtype=bool)
        first_block, last_block = int(users[0]) // block, int(users[-1]) // block
        bounds = np.arange(first_block, last_block + 2, dtype=np.int64) * block
        starts = np.searchsorted(users, bounds.astype(users.dtype) if users.dtype.kind in "iu" else bounds)
        for index, number in enumerate(range(first_block, last_block + 1)):
            begin, end = starts[index], starts[index + 1]
            if begin == end:
                continue
            user0 = number * block
            user1 = min(user0 + block, self.n_users)
            flat = self._block_positions(user0, user1)
            bitmap[flat] = True
            query = (users[begin:end].astype(np.int64) - user0) * n_items + items[begin:end]
            result[begin:end] = bitmap[query]
            bitmap[flat] = False
        return result

    def contains_rows(self, items: np.ndarray) -> np.ndarray:
        """`contains` for an (n_users, k) matrix whose row u holds user u's items (evaluation negatives)."""
        result = np.zeros(items.shape, dtype=bool)
        n_items = self.n_items
        block = max(1, _BLOCK_BYTES // max(n_items, 1))
        bitmap = np.zeros(block * n_items, dtype=bool)
        for user0 in range(0, self.n_users, block):
            user1 = min(user0 + block, self.n_users)
            flat = self._block_positions(user0, user1)
            bitmap[flat] = True
            rows = np.arange(user1 - user0, dtype=np.int64)[:, None] * n_items
            result[user0:user1] = bitmap[rows + items[user0:user1]]
            bitmap[flat] = False
        return result

    def _block_positions(self, user0: int, user1: int) -> np.ndarray:
        """Positions of users user0..user1-1's positives in a (user1-user0, n_items) bitmap, flattened."""
        counts = np.diff(self.indptr[user0:user1 + 1])
        rows = np.repeat(np.arange(user1 - user0, dtype=np.int64) * self.n_items, counts)
        return rows + self.items[self.indptr[user0]:self.indptr[user1]]


def sample_negatives(rng: np.random.Generator, users: np.ndarray, positives: Positives) -> np.ndarray:
    """One uniformly drawn item per entry of `users` (sorted) that is not among that user's positives.

    Draws are with replacement; a draw that hits a positive is redrawn (in rounds, vectorised)
    until none does. Deterministic given the generator state.
    """
    _check_has_negatives(positives)
    items = rng.integers(0, positives.n_items, size=len(users), dtype=np.int32)
    _redraw(rng, users, items, np.flatnonzero(positives.contains(users, items)), positives)
    return items


def _check_has_negatives(positives: Positives) -> None:
    full = np.diff(positives.indptr) >= positives.n_items
    if full.any():
        raise ValueError(f"user {int(np.argmax(full))} interacted with every item: no negative exists for it")


def _redraw(rng: np.random.Generator, users: np.ndarray, items: np.ndarray, rejected: np.ndarray,
            positives: Positives) -> None:
    """Redraw items[rejected] (positions in ascending user order) in place until none is a positive."""
    while rejected.size:
        items[rejected] = rng.integers(0, positives.n_items, size=rejected.size, dtype=np.int32)
        rejected = rejected[positives.contains(users[rejected], items[rejected])]


def eval_rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([_EVAL_STREAM, int(seed)])))


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's training negatives and order: a function of (seed, epoch) only,
    so a resumed run and the other framework draw exactly the same samples."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([_TRAIN_STREAM, int(seed), int(epoch)])))


def sample_eval_negatives(all_positives: Positives, count: int, seed: int) -> np.ndarray:
    """(n_users, count) int32: per user, `count` items it never interacted with (with replacement)."""
    _check_has_negatives(all_positives)
    rng = eval_rng(seed)
    items = rng.integers(0, all_positives.n_items, size=(all_positives.n_users, count), dtype=np.int32)
    rejected = np.flatnonzero(all_positives.contains_rows(items))  # row-major: ascending users
    flat = items.reshape(-1)
    users = (rejected // max(count, 1)).astype(np.int32)
    redrawn = flat[rejected]
    _redraw(rng, users, redrawn, np.arange(rejected.size), all_positives)
    flat[rejected] = redrawn
    return items


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
    negative_users = np.repeat(positive_users, negatives_per_positive)
    negative_items = sample_negatives(rng, negative_users, train)
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
