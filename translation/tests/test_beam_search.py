"""Beam search, both frameworks: hand-computed scores on a 3-token vocabulary (length normalization,
coverage penalty), beam 1 is greedy decoding, and the two implementations agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import torch

from translation.beam_search_pytorch import beam_search as torch_beam_search
from translation.beam_search_tensorflow import beam_search as tf_beam_search

EOS = 1
# token probabilities: from the start, and after token 2 (after token 0 everything is unlikely but EOS)
P_START = np.array([0.1321, math.exp(-1.0), 0.5])  # [EOS] alone: log p = -1.0
P_AFTER_2 = np.array([0.2, 0.6658, 0.1342])  # [2, EOS]: log p = log 0.5 + log 0.6658 = -1.1
P_AFTER_0 = np.array([0.01, 0.98, 0.01])
ATTENTION = [np.array([0.7, 0.3]), np.array([0.2, 0.8]), np.array([0.5, 0.5])]  # per step, over 2 source words


def table(ids_last: np.ndarray) -> np.ndarray:
    rows = np.stack([P_AFTER_2 if last == 2 else P_AFTER_0 if last == 0 else P_AFTER_0 for last in ids_last])
    return np.log(rows / rows.sum(axis=1, keepdims=True))


def torch_step(ids, step, cache):
    logits = np.log(np.broadcast_to(P_START, (ids.shape[0], 3))) if step == 0 else table(ids[:, -1].numpy())
    attention = np.broadcast_to(ATTENTION[min(step, 2)], (ids.shape[0], 2))
    return torch.tensor(logits, dtype=torch.float64), cache, torch.tensor(attention)


def tf_step(ids, step, cache):
    logits = np.log(np.broadcast_to(P_START, (ids.shape[0], 3))) if step == 0 else table(ids[:, -1].numpy())
    attention = np.broadcast_to(ATTENTION[min(step, 2)], (ids.shape[0], 2))
    return tf.constant(logits, tf.float64), cache, tf.constant(attention)


def search(framework: str, alpha: float, beta: float = 0.0, beam: int = 2, max_length: int = 3):
    if framework == "pytorch":
        sequences, scores = torch_beam_search(torch_step, torch.zeros(1, dtype=torch.long), {}, 3, beam, alpha, max_length,
                                              EOS, coverage_penalty=beta, source_mask=torch.ones(1, 2, dtype=torch.bool),
                                              dtype=torch.float64)
        return sequences.numpy(), scores.numpy()
    sequences, scores = tf_beam_search(tf_step, tf.zeros([1], tf.int32), {}, 3, beam, alpha, max_length, EOS,
                                       coverage_penalty=beta, source_mask=tf.ones([1, 2], tf.bool), dtype=tf.float64)
    return sequences.numpy(), scores.numpy()


SHORT = math.log(P_START[EOS] / P_START.sum())  # [EOS]: about -1.0
LONG = math.log(P_START[2] / P_START.sum()) + math.log(P_AFTER_2[EOS] / P_AFTER_2.sum())  # [2, EOS]: about -1.1


def norm(alpha, length):
    return ((5 + length) / 6) ** alpha


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_without_length_normalization_the_short_hypothesis_wins(framework):
    sequences, scores = search(framework, alpha=0.0)
    assert sequences[0, 0, :2].tolist() == [0, EOS]  # [EOS]: log p -1.0 beats [2, EOS]: -1.1
    assert scores[0, 0] == pytest.approx(SHORT, abs=1e-9)
    assert sequences[0, 1, :3].tolist() == [0, 2, EOS] and scores[0, 1] == pytest.approx(LONG, abs=1e-9)


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_length_normalization_prefers_the_longer_hypothesis(framework):
    # alpha 1: [EOS] scores -1.0 / ((5+1)/6) = -1.0, [2, EOS] scores -1.1 / ((5+2)/6) = -0.943
    sequences, scores = search(framework, alpha=1.0)
    assert sequences[0, 0, :3].tolist() == [0, 2, EOS]
    assert scores[0, 0] == pytest.approx(LONG / norm(1.0, 2), abs=1e-9)
    assert scores[0, 1] == pytest.approx(SHORT / norm(1.0, 1), abs=1e-9)


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_coverage_penalty_by_hand(framework):
    # beta 0.2, alpha 0: [EOS] attended 0.7 / 0.3 once: -1.0 + 0.2 (log 0.7 + log 0.3) = -1.3122;
    # [2, EOS] attended 0.9 / 1.1: -1.1 + 0.2 (log 0.9 + log 1) = -1.1211: the longer one wins
    sequences, scores = search(framework, alpha=0.0, beta=0.2)
    assert sequences[0, 0, :3].tolist() == [0, 2, EOS]
    assert scores[0, 0] == pytest.approx(LONG + 0.2 * math.log(0.9), abs=1e-9)
    assert scores[0, 1] == pytest.approx(SHORT + 0.2 * (math.log(0.7) + math.log(0.3)), abs=1e-9)


def greedy(logits_fn, first: int, max_length: int) -> list[int]:
    ids = [first]
    for step in range(max_length):
        token = int(np.argmax(logits_fn(np.array([ids]), step)[0]))
        ids.append(token)
        if token == EOS:
            break
    return ids


@pytest.mark.parametrize("seed", range(6))
def test_beam_of_one_is_greedy_decoding(seed):
    """Without length normalization (alpha 0, the objective greedy decoding optimizes) and with
    `finish_within_beam`, a beam of one returns exactly the greedy sequence in both frameworks, whatever
    the model (random tables). The reference's rule (every one of the 2 x beam candidates may finish)
    is a wider search: it returns a sequence at least as probable as greedy's."""
    rng = np.random.default_rng(seed)
    vocab, max_length = 7, 8
    weights = rng.normal(size=(max_length, vocab, vocab)) * 2.0

    def logits_fn(ids: np.ndarray, step: int) -> np.ndarray:
        return weights[step][ids[:, -1]]

    expected = greedy(logits_fn, 0, max_length)
    sequences, _ = torch_beam_search(lambda ids, step, cache: (torch.tensor(logits_fn(ids.numpy(), step)), cache),
                                     torch.zeros(1, dtype=torch.long), {}, vocab, 1, 0.0, max_length, EOS, dtype=torch.float64,
                                     finish_within_beam=True)
    assert sequences[0, 0, :len(expected)].tolist() == expected
    assert all(token == 0 for token in sequences[0, 0, len(expected):].tolist())  # nothing after EOS
    sequences, _ = tf_beam_search(lambda ids, step, cache: (tf.constant(logits_fn(ids.numpy(), step)), cache),
                                  tf.zeros([1], tf.int32), {}, vocab, 1, 0.0, max_length, EOS, dtype=tf.float64,
                                  finish_within_beam=True)
    assert sequences.numpy()[0, 0, :len(expected)].tolist() == expected

    def log_prob(sequence):
        ids = np.array(sequence)
        return sum(float(np.log(np.exp(logits_fn(ids[None, :step + 1], step)[0] - logits_fn(ids[None, :step + 1], step)[0].max())
                                / np.exp(logits_fn(ids[None, :step + 1], step)[0] - logits_fn(ids[None, :step + 1], step)[0].max()).sum())
                                [ids[step + 1]]) for step in range(len(ids) - 1))

    wider, _ = torch_beam_search(lambda ids, step, cache: (torch.tensor(logits_fn(ids.numpy(), step)), cache),
                                 torch.zeros(1, dtype=torch.long), {}, vocab, 1, 0.0, max_length, EOS, dtype=torch.float64)
    found = wider[0, 0].tolist()
    found = found[:found.index(EOS) + 1] if EOS in found else found
    if expected[-1] == EOS:  # greedy finished: the reference's rule finds a sequence at least as probable
        assert found[-1] == EOS and log_prob(found) >= log_prob(expected) - 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_frameworks_agree_on_random_models_with_caches(seed):
    """Random next-token tables that also depend on a per-hypothesis cache (a running sum that beam
    reordering must carry along): both implementations return the same sequences and scores."""
    rng = np.random.default_rng(100 + seed)
    batch, vocab, beam, max_length = 3, 9, 3, 7
    weights = rng.normal(size=(vocab, vocab)) * 1.5
    drift = rng.normal(size=(vocab,))

    def logits_np(last: np.ndarray, total: np.ndarray) -> np.ndarray:
        return weights[last] + np.outer(np.sin(total), drift)

    def torch_fn(ids, step, cache):
        total = cache["total"] + ids[:, -1].double()
        return torch.tensor(logits_np(ids[:, -1].numpy(), total.numpy())), {"total": total}

    def tf_fn(ids, step, cache):
        total = cache["total"] + tf.cast(ids[:, -1], tf.float64)
        return tf.constant(logits_np(ids[:, -1].numpy(), total.numpy())), {"total": total}

    start = rng.integers(2, vocab, batch)
    pt_sequences, pt_scores = torch_beam_search(torch_fn, torch.tensor(start), {"total": torch.zeros(batch, dtype=torch.float64)},
                                                vocab, beam, 0.6, max_length, EOS, dtype=torch.float64)
    tf_sequences, tf_scores = tf_beam_search(tf_fn, tf.constant(start, tf.int32), {"total": tf.zeros([batch], tf.float64)},
                                             vocab, beam, 0.6, max_length, EOS, dtype=tf.float64)
    assert np.array_equal(pt_sequences.numpy(), tf_sequences.numpy())
    np.testing.assert_allclose(tf_scores.numpy(), pt_scores.numpy(), rtol=1e-12)
