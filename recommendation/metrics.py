"""HR@K and NDCG@K over all users, vectorised (NumPy); the definition both frameworks follow.

Evaluation protocol (He et al. 2017, sec. 4.1; MLPerf NCF reference `val_epoch`): for each user,
the held-out positive is scored together with the user's sampled negatives; it is a hit when it
ranks in the top K. The reference puts the positive *last* in each user's row and takes a stable
top-K, so a negative scoring exactly as high as the positive ranks before it; it also scores a
duplicated negative item only once (`dup_mask`). Hence the rank used here:

    rank(u) = number of distinct negatives of u whose score >= the positive's score
    HR@K    = mean over users of [rank < K]
    NDCG@K  = mean over users of [rank < K] * log(2) / log(rank + 2)

Frameworks compute the same `rank` on their device (one comparison and a sum per user row) and
pass it to `hit_rate_and_ndcg`; `ranks` below is the NumPy version the tests compare them to.
Scores are logits: the sigmoid is monotone, and skipping it avoids ties from fp32 saturation.
"""

from __future__ import annotations

import math

import numpy as np


def distinct_mask(negatives: np.ndarray) -> np.ndarray:
    """(users, N) bool: True at the first occurrence of each item in its row (the reference's dup_mask,
    inverted). Vectorised per block of users with a first-position table (block x all items)."""
    n_users, count = negatives.shape
    mask = np.empty(negatives.shape, dtype=bool)
    if negatives.size == 0:
        return mask
    n_items = int(negatives.max()) + 1
    block = max(1, (1 << 22) // n_items)
    first = np.full(block * n_items, count, dtype=np.int32)
    columns = np.arange(count, dtype=np.int32)
    for user0 in range(0, n_users, block):
        rows = negatives[user0:user0 + block]
        flat = (np.arange(rows.shape[0], dtype=np.int64)[:, None] * n_items + rows).ravel()
        position = np.broadcast_to(columns, rows.shape).ravel()
        np.minimum.at(first, flat, position)
        mask[user0:user0 + block] = (first[flat] == position).reshape(rows.shape)
        first[flat] = count
    return mask


def ranks(positive_scores: np.ndarray, negative_scores: np.ndarray,
          valid: np.ndarray | None = None) -> np.ndarray:
    """(users,) int64: how many (distinct, where `valid` marks them) negatives score >= the positive."""
    beats = negative_scores >= positive_scores[:, None]
    if valid is not None:
        beats &= valid
    return beats.sum(axis=1, dtype=np.int64)


def hit_rate_and_ndcg(rank: np.ndarray, k: int) -> tuple[float, float]:
    """(HR@k, NDCG@k) averaged over all users from their positive's 0-based rank."""
    rank = np.asarray(rank, dtype=np.int64)
    if rank.size == 0:
        return math.nan, math.nan
    hit = rank < k
    gain = np.where(hit, math.log(2.0) / np.log(rank + 2.0), 0.0)
    return float(hit.mean()), float(gain.mean())


def hit_rate_and_ndcg_sums(rank: np.ndarray, k: int) -> tuple[float, float]:
    """Sums (not means) of hits and NDCG gains, for adding up partial results across batches/ranks."""
    rank = np.asarray(rank, dtype=np.int64)
    hit = rank < k
    return float(hit.sum()), float(np.where(hit, math.log(2.0) / np.log(rank + 2.0), 0.0).sum())


def evaluate_scores(scores: np.ndarray, k: int, valid: np.ndarray | None = None) -> tuple[float, float]:
    """HR@k and NDCG@k from a (users, N+1) score matrix whose *last* column is the positive
    (the reference's layout) and, optionally, the (users, N) distinct mask of the negatives."""
    return hit_rate_and_ndcg(ranks(scores[:, -1], scores[:, :-1], valid), k)
