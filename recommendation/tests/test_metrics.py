"""HR@10 / NDCG@10: the vectorised definition equals the MLPerf reference's per-user loop."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from recommendation import metrics


def reference_hr_ndcg(score_of, negatives, positives, k):
    """mlcommons/training recommendation/pytorch/ncf.py (v0.5) eval_one, user by user: the items are
    the negatives then the positive, deduplicated by a dict, ranked by heapq.nlargest."""
    hits, ndcgs = [], []
    for user, (items, positive) in enumerate(zip(negatives.tolist(), positives.tolist())):
        items = items + [positive]
        map_item_score = {item: score_of[user, item] for item in items}
        ranked = heapq.nlargest(k, map_item_score, key=map_item_score.get)
        hits.append(int(positive in ranked))
        ndcgs.append(next((math.log(2) / math.log(i + 2) for i, item in enumerate(ranked) if item == positive), 0.0))
    return float(np.mean(hits)), float(np.mean(ndcgs))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_metrics_equal_the_reference_loop(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, n_negatives = 300, 60, 40
    score_of = rng.integers(0, 12, (n_users, n_items)).astype(np.float32)  # coarse: many ties
    positives = rng.integers(0, n_items, n_users)
    negatives = rng.integers(0, n_items, (n_users, n_negatives))
    negatives = np.where(negatives == positives[:, None], (negatives + 1) % n_items, negatives)  # never the positive
    rows = np.arange(n_users)[:, None]
    scores = np.concatenate([score_of[rows, negatives], score_of[np.arange(n_users), positives][:, None]], axis=1)
    hr, ndcg = metrics.evaluate_scores(scores, 10, metrics.distinct_mask(negatives))
    expected_hr, expected_ndcg = reference_hr_ndcg(score_of, negatives, positives, 10)
    assert hr == pytest.approx(expected_hr, abs=1e-12)
    assert ndcg == pytest.approx(expected_ndcg, abs=1e-12)
    assert 0.1 < hr < 0.9  # the case is not degenerate


def test_ties_count_against_the_positive_and_duplicates_once():
    # user 0: two negatives tie with the positive -> rank 2; user 1: one negative item three times
    # above the positive -> rank 1 (scored once); user 2: nothing beats it -> rank 0
    negatives = np.array([[5, 6, 7], [4, 4, 4], [1, 2, 3]])
    scores = np.array([[1.0, 1.0, 0.5, 1.0], [2.0, 2.0, 2.0, 1.0], [0.1, 0.2, 0.3, 0.9]])
    valid = metrics.distinct_mask(negatives)
    assert valid.tolist() == [[True, True, True], [True, False, False], [True, True, True]]
    rank = metrics.ranks(scores[:, -1], scores[:, :-1], valid)
    assert rank.tolist() == [2, 1, 0]
    hr, ndcg = metrics.hit_rate_and_ndcg(rank, k=2)
    assert hr == pytest.approx(2 / 3)
    assert ndcg == pytest.approx((math.log(2) / math.log(3) + 1.0) / 3)
    assert metrics.hit_rate_and_ndcg_sums(rank, k=2) == pytest.approx((2.0, math.log(2) / math.log(3) + 1.0))


def test_distinct_mask_over_many_blocks():
    rng = np.random.default_rng(5)
    negatives = rng.integers(0, 3000, (2000, 50))  # 3000 items: blocks of ~1400 users
    expected = np.array([[item not in row[:index] for index, item in enumerate(row.tolist())]
                         for row in negatives])
    assert np.array_equal(metrics.distinct_mask(negatives), expected)
