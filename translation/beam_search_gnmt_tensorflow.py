"""GNMT's beam search in TensorFlow: beam_search_gnmt_pytorch.py line for line on tf ops (the MLPerf
GNMT reference's SequenceGenerator.beam_search; see that module for the algorithm, the length
normalization counting BOS and EOS, and the per-slot coverage penalty).

The loop runs eagerly in Python (sentences leave the batch when they finish); the model's step
function can be a tf.function. `step_fn(words, cache) -> (logits, cache, attention)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import tensorflow as tf

LENGTH_NORM_FACTOR = 0.6  # reference train.py --len-norm-factor
LENGTH_NORM_CONST = 5.0  # --len-norm-const
COVERAGE_PENALTY_FACTOR = 0.1  # --cov-penalty-factor
BEAM_SIZE = 5  # --beam-size
MAX_LENGTH = 150  # --max-length-test


class BeamResult(NamedTuple):
    sequences: np.ndarray  # (batch, beam, max_length) int64: BOS, tokens, EOS (then EOS, then 0)
    lengths: np.ndarray  # (batch, beam) int64
    scores: np.ndarray  # (batch, beam)
    best: np.ndarray  # (batch,)


def _map(function: Callable, tree):
    if isinstance(tree, dict):
        return {key: _map(function, value) for key, value in tree.items()}
    return function(tree)


def length_normalization(lengths, factor: float, const: float):
    return ((const + lengths) / (const + 1.0)) ** factor


def coverage_penalty(coverage: tf.Tensor) -> tf.Tensor:
    """sum_j log(min(coverage_j, 1)) over positions with coverage_j > 0 (reference: log(0) -> 0)."""
    penalty = tf.math.log(tf.clip_by_value(coverage, 0.0, 1.0))
    return tf.reduce_sum(tf.where(tf.math.is_inf(penalty), tf.zeros_like(penalty), penalty), axis=-1)


def beam_search(step_fn: Callable, initial_cache: dict, batch_size: int, beam_size: int = BEAM_SIZE,
                max_length: int = MAX_LENGTH, *, bos_id: int, eos_id: int, source_length: int,
                length_norm_factor: float = LENGTH_NORM_FACTOR, length_norm_const: float = LENGTH_NORM_CONST,
                coverage_penalty_factor: float = COVERAGE_PENALTY_FACTOR, dtype=tf.float32) -> BeamResult:
    """The reference's beam search (beam_search_gnmt_pytorch.py's doc) over `batch_size` sentences."""
    K = beam_size
    dtype = tf.as_dtype(dtype)
    out_sequences = np.zeros((batch_size, K, max_length), np.int64)  # zeros: the reference's buffer
    out_lengths = np.ones((batch_size, K), np.int64)
    out_scores = np.zeros((batch_size, K), dtype.as_numpy_dtype)

    sentences = np.arange(batch_size)
    rows = batch_size * K
    sequences = tf.concat([tf.fill([rows, 1], tf.constant(bos_id, tf.int64)), tf.zeros([rows, max_length - 1], tf.int64)], 1)
    lengths = tf.ones([rows], tf.int64)
    scores = tf.zeros([rows], dtype)
    coverage = tf.zeros([rows, source_length], dtype)
    words = tf.fill([rows], tf.constant(bos_id, tf.int64))
    cache = _map(lambda t: tf.repeat(t, K, axis=0), initial_cache)
    ended_fill = tf.constant([0.0] + [float("-inf")] * (K - 1), dtype)
    first_slot_only = tf.constant([0.0] + [float("-inf")] * (K - 1), dtype)[None, :, None]

    for step in range(1, max_length):
        if sentences.size == 0:
            break
        live = int(sentences.size)
        ended = tf.reshape(tf.equal(words, eos_id), [live, K])
        terminating = tf.reduce_all(ended, axis=1)
        lengths = lengths + tf.cast(tf.logical_not(tf.reshape(ended, [-1])), tf.int64)

        logits, cache, attention = step_fn(words, cache)
        log_probs, candidates = tf.math.top_k(tf.nn.log_softmax(tf.cast(logits, dtype), axis=-1), k=K)
        candidates = tf.cast(candidates, tf.int64)
        coverage = coverage + tf.where(tf.reshape(ended, [-1, 1]), tf.zeros([], dtype), tf.cast(attention, dtype))

        candidates = tf.where(ended[:, :, None], tf.constant(eos_id, tf.int64), tf.reshape(candidates, [live, K, K]))
        log_probs = tf.where(ended[:, :, None], ended_fill[None, None, :], tf.reshape(log_probs, [live, K, K]))
        proposals = tf.reshape(scores, [live, K, 1]) + log_probs
        if step == 1:
            proposals = proposals + first_slot_only  # only slot 0 proposes
        best_scores, index = tf.math.top_k(tf.reshape(proposals, [live, K * K]), k=K)
        source = tf.reshape(index // K + K * tf.range(live)[:, None], [-1])
        scores = tf.reshape(best_scores, [-1])
        words = tf.reshape(tf.gather(tf.reshape(candidates, [live, K * K]), index, batch_dims=1), [-1])
        sequences = tf.gather(sequences, source)
        sequences = tf.concat([sequences[:, :step], words[:, None], sequences[:, step + 1:]], axis=1)
        lengths = tf.gather(lengths, source)
        cache = _map(lambda t, rows=source: tf.gather(t, rows), cache)

        done_sentences = terminating.numpy()
        if done_sentences.any():
            done = np.repeat(done_sentences, K)
            final = tf.boolean_mask(scores, done) / length_normalization(
                tf.cast(tf.boolean_mask(lengths, done), dtype), length_norm_factor, length_norm_const)
            final = final + coverage_penalty_factor * coverage_penalty(tf.boolean_mask(coverage, done))
            finished = sentences[done_sentences]
            out_scores[finished] = final.numpy().reshape(-1, K)
            out_sequences[finished] = tf.boolean_mask(sequences, done).numpy().reshape(-1, K, max_length)
            out_lengths[finished] = tf.boolean_mask(lengths, done).numpy().reshape(-1, K)
            keep = ~done
            sentences = sentences[~done_sentences]
            sequences, lengths, scores, coverage, words = (tf.boolean_mask(t, keep)
                                                           for t in (sequences, lengths, scores, coverage, words))
            cache = _map(lambda t, rows=keep: tf.boolean_mask(t, rows), cache)

    if sentences.size:  # unfinished at max_length: raw scores
        out_scores[sentences] = scores.numpy().reshape(-1, K)
        out_sequences[sentences] = sequences.numpy().reshape(-1, K, max_length)
        out_lengths[sentences] = lengths.numpy().reshape(-1, K)
    return BeamResult(out_sequences, out_lengths, out_scores, np.argmax(out_scores, axis=1))
