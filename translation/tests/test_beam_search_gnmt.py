"""GNMT's beam search (the reference's SequenceGenerator), both frameworks: scores computed by hand on a
3-token vocabulary (raw log probabilities during the search, length normalization counting BOS and
EOS, the coverage penalty per slot, log(0) -> 0 on padding), unfinished sentences, sentences leaving
the batch, and the two implementations agree on random models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import torch

from translation.beam_search_gnmt_pytorch import beam_search as torch_search
from translation.beam_search_gnmt_tensorflow import beam_search as tf_search

BOS, EOS, A = 0, 1, 2  # the 3-token vocabulary: BOS, EOS and one word "a"
# next-token probabilities by (step, last token); rows are normalized so log_softmax(log p) = log p
PROBS = {
    (1, BOS): [0.1, 0.4, 0.5],
    (2, A): [0.2, 0.35, 0.45],
    (3, A): [0.05, 0.9, 0.05],
}
UNIFORM = [1 / 3, 1 / 3, 1 / 3]  # what ended slots see (their proposals are replaced anyway)
# attention over a source of 3 positions, the last one padding (never attended)
ATTENTION = {
    (1, BOS): [0.7, 0.3, 0.0],
    (2, A): [0.2, 0.8, 0.0],
    (3, A): [0.1, 0.5, 0.0],
}


def tables(steps: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.array([PROBS.get((int(s), int(w)), UNIFORM) for s, w in zip(steps, last)])
    attention = np.array([ATTENTION.get((int(s), int(w)), [0.0, 0.0, 0.0]) for s, w in zip(steps, last)])
    return np.log(probs), attention


def run(framework: str, max_length: int, batch: int = 1):
    if framework == "pytorch":
        def step(words, cache):
            t = cache["t"] + 1
            logits, attention = tables(t.numpy(), words.numpy())
            return torch.from_numpy(logits), {"t": t}, torch.from_numpy(attention)
        result = torch_search(step, {"t": torch.zeros(batch, dtype=torch.int64)}, batch, beam_size=2,
                              max_length=max_length, bos_id=BOS, eos_id=EOS, source_length=3, dtype=torch.float64)
        return [np.asarray(x) for x in result]

    def tf_step(words, cache):
        t = cache["t"] + 1
        logits, attention = tables(t.numpy(), words.numpy())
        return tf.constant(logits), {"t": t}, tf.constant(attention)
    result = tf_search(tf_step, {"t": tf.zeros([batch], tf.int64)}, batch, beam_size=2, max_length=max_length,
                       bos_id=BOS, eos_id=EOS, source_length=3, dtype=tf.float64)
    return [np.asarray(x) for x in result]


def norm(length):
    return ((5 + length) / 6) ** 0.6  # reference: ((len_norm_const + len) / (len_norm_const + 1)) ** 0.6


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_scores_by_hand(framework):
    # step 1 (slot 0 only, from BOS): the best two are EOS (log 0.4) and "a" (log 0.5):
    #   slot 0 = BOS a      -0.6931
    #   slot 1 = BOS EOS    -0.9163   (both slots attended [0.7, 0.3, 0] this step)
    # step 2: slot 0 proposes a (log 0.5 + log 0.45 = -1.4917) and EOS (-1.7430); the ended slot 1
    #   proposes itself (-0.9163), which wins the first slot: the hypotheses swap slots. The coverage
    #   rows do not: row 0 adds [0.2, 0.8, 0] (slot 0 was alive), row 1 adds nothing (ended).
    #   slot 0 = BOS EOS (EOS)  -0.9163, length 2
    #   slot 1 = BOS a a        -1.4917, length 3
    # step 3: slot 1 ends: log 0.5 + log 0.45 + log 0.9 = -1.5970, length 4; row 1 adds [0.1, 0.5, 0]
    # step 4: every slot has ended: normalize and add the coverage penalty (beta 0.1)
    #   row 0 = [0.9, 1.1, 0] -> log 0.9 + log 1 + (log 0 -> 0);  row 1 = [0.8, 0.8, 0] -> 2 log 0.8
    sequences, lengths, scores, best = run(framework, max_length=6)
    short = math.log(0.4) / norm(2) + 0.1 * math.log(0.9)
    long = (math.log(0.5) + math.log(0.45) + math.log(0.9)) / norm(4) + 0.1 * 2 * math.log(0.8)
    assert scores[0].tolist() == pytest.approx([short, long], abs=1e-12)
    assert lengths[0].tolist() == [2, 4]
    assert sequences[0, 0].tolist() == [BOS, EOS, EOS, EOS, EOS, 0]  # EOS while decoding, then zeros
    assert sequences[0, 1].tolist() == [BOS, A, A, EOS, EOS, 0]
    assert best[0] == 0
    # per hypothesis (not what the reference computes) the short one's coverage would be [0.7, 0.3]
    # and the long one's [1.0, 1.6]: both scores would differ from the reference's
    per_hypothesis = [math.log(0.4) / norm(2) + 0.1 * (math.log(0.7) + math.log(0.3)), long - 0.1 * 2 * math.log(0.8)]
    assert all(abs(a - b) > 0.04 for a, b in zip(per_hypothesis, scores[0]))


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_an_unfinished_sentence_keeps_its_raw_scores(framework):
    # max_length 4 allows 3 steps: slot 1 ends at step 3 but the sentence is never scored
    sequences, lengths, scores, best = run(framework, max_length=4)
    assert scores[0].tolist() == pytest.approx([math.log(0.4), math.log(0.5) + math.log(0.45) + math.log(0.9)], abs=1e-12)
    assert sequences[0, 1].tolist() == [BOS, A, A, EOS] and best[0] == 0


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_sentences_leave_the_batch_independently(framework):
    """Random per-sentence tables: decoding a batch gives each sentence what it gets alone."""
    rng = np.random.default_rng(0)
    batch, vocab, source, beam, max_length = 4, 6, 5, 3, 9
    weights = rng.normal(size=(batch, vocab, vocab)) * 2
    attention_table = rng.dirichlet(np.ones(source), size=(batch, vocab))

    def decode(sentences):
        ids = np.array(sentences)
        if framework == "pytorch":
            def step(words, cache):
                s = cache["s"].numpy()
                return (torch.from_numpy(weights[s, words.numpy()]), cache, torch.from_numpy(attention_table[s, words.numpy()]))
            return [np.asarray(x) for x in torch_search(step, {"s": torch.from_numpy(ids)}, len(ids), beam, max_length, bos_id=0,
                                                        eos_id=1, source_length=source, dtype=torch.float64)]

        def tf_step(words, cache):
            s = cache["s"].numpy()
            return tf.constant(weights[s, words.numpy()]), cache, tf.constant(attention_table[s, words.numpy()])
        return [np.asarray(x) for x in tf_search(tf_step, {"s": tf.constant(ids)}, len(ids), beam, max_length, bos_id=0,
                                                 eos_id=1, source_length=source, dtype=tf.float64)]

    together = decode(range(batch))
    for sentence in range(batch):
        alone = decode([sentence])
        for part_together, part_alone in zip(together, alone):
            np.testing.assert_allclose(part_together[sentence], part_alone[0], rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_frameworks_agree_on_random_models(seed):
    """Next-token tables that depend on a per-slot state carried in the cache (reordered with the
    slots): sequences, lengths and scores agree between the implementations."""
    rng = np.random.default_rng(10 + seed)
    batch, vocab, source, beam, max_length = 3, 8, 4, 4, 12
    weights = rng.normal(size=(vocab, vocab)) * 1.5
    drift = rng.normal(size=vocab)
    attention_table = rng.dirichlet(np.ones(source), size=vocab) * 0.6

    def tables_np(words, total):
        return weights[words] + np.outer(np.sin(total), drift), attention_table[words]

    def torch_step(words, cache):
        total = cache["total"] + words.double()
        logits, attention = tables_np(words.numpy(), total.numpy())
        return torch.from_numpy(logits), {"total": total}, torch.from_numpy(attention)

    def tf_step(words, cache):
        total = cache["total"] + tf.cast(words, tf.float64)
        logits, attention = tables_np(words.numpy(), total.numpy())
        return tf.constant(logits), {"total": total}, tf.constant(attention)

    pt = torch_search(torch_step, {"total": torch.zeros(batch, dtype=torch.float64)}, batch, beam, max_length,
                      bos_id=2, eos_id=1, source_length=source, dtype=torch.float64)
    tk = tf_search(tf_step, {"total": tf.zeros([batch], tf.float64)}, batch, beam, max_length, bos_id=2, eos_id=1,
                   source_length=source, dtype=tf.float64)
    assert np.array_equal(pt.sequences.numpy(), tk.sequences) and np.array_equal(pt.lengths.numpy(), tk.lengths)
    np.testing.assert_allclose(tk.scores, pt.scores.numpy(), rtol=1e-12)
    assert np.array_equal(pt.best.numpy(), tk.best)
