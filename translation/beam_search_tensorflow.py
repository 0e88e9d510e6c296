"""Beam search in TensorFlow, for every translation model of the suite: beam_search_pytorch.py's
algorithm (the MLPerf Transformer reference's, from tensor2tensor) line for line, on tf ops; see
that module for the algorithm, the length normalization and the GNMT coverage penalty option.

The loop runs eagerly in Python (the caches grow by one position a step; the model's step function
can be a tf.function). `step_fn(ids, step, cache) -> (logits, cache)` or `(logits, cache, attention)`.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

INF = 1.0e7  # reference beam_search.py INF


def length_normalization(alpha: float, length):
    return ((5.0 + length) / 6.0) ** alpha


def _map(function: Callable, tree):
    if isinstance(tree, dict):
        return {key: _map(function, value) for key, value in tree.items()}
    return function(tree)


def _expand(tensor: tf.Tensor, beam: int) -> tf.Tensor:
    """(batch, ...) -> (batch, beam, ...) by repetition."""
    return tf.repeat(tf.expand_dims(tensor, 1), beam, axis=1)


def _flatten(tensor: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))


def _unflatten(tensor: tf.Tensor, batch: int) -> tf.Tensor:
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.concat([[batch, shape[0] // batch], shape[1:]], axis=0))


def _gather(tensor: tf.Tensor, beams: tf.Tensor) -> tf.Tensor:
    """tensor (batch, beam, ...) at beam indices `beams` (batch, k) -> (batch, k, ...)."""
    return tf.gather(tensor, beams, axis=1, batch_dims=1)


def _coverage(coverage: tf.Tensor, source_mask: tf.Tensor, beta: float) -> tf.Tensor:
    penalty = tf.math.log(tf.maximum(tf.minimum(coverage, 1.0), 1e-30))
    return beta * tf.reduce_sum(penalty * tf.cast(source_mask, penalty.dtype)[:, None, :], axis=-1)


def beam_search(step_fn: Callable, initial_ids: tf.Tensor, initial_cache: dict, vocab_size: int, beam_size: int,
                alpha: float, max_decode_length: int, eos_id: int, *, coverage_penalty: float = 0.0,
                source_mask: tf.Tensor | None = None, dtype=tf.float32,
                finish_within_beam: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """(sequences (batch, beam, length + 1) starting with the initial id, scores (batch, beam)), best first."""
    batch = int(initial_ids.shape[0])
    use_coverage = coverage_penalty != 0.0
    if use_coverage and source_mask is None:
        raise ValueError("a coverage penalty needs the source mask")
    alive_seq = _expand(tf.cast(initial_ids, tf.int32), beam_size)[:, :, None]
    alive_log_probs = tf.tile(tf.constant([[0.0] + [float("-inf")] * (beam_size - 1)], dtype), [batch, 1])
    alive_cache = _map(lambda t: _expand(t, beam_size), initial_cache)
    alive_coverage = tf.zeros([batch, beam_size, int(source_mask.shape[1])], dtype) if use_coverage else None
    finished_seq = tf.zeros_like(alive_seq)
    finished_scores = tf.fill([batch, beam_size], tf.constant(-INF, dtype))
    finished_flags = tf.zeros([batch, beam_size], tf.bool)
    max_length_norm = length_normalization(alpha, float(max_decode_length))

    step = 0
    while step < max_decode_length:
        best_alive = alive_log_probs[:, 0] / max_length_norm
        lowest_finished = tf.reduce_min(finished_scores * tf.cast(finished_flags, dtype), axis=1)
        lowest_finished += (1.0 - tf.cast(tf.reduce_any(finished_flags, axis=1), dtype)) * -INF
        if bool(tf.reduce_all(lowest_finished > best_alive)):
            break
        output = step_fn(_flatten(alive_seq), step, _map(_flatten, alive_cache))
        flat_logits, flat_cache = output[0], output[1]
        logits = _unflatten(tf.cast(flat_logits, dtype), batch)
        new_cache = _map(lambda t: _unflatten(t, batch), flat_cache)
        log_probs = tf.nn.log_softmax(logits, axis=-1) + alive_log_probs[:, :, None]
        topk_log_probs, topk_indices = tf.math.top_k(tf.reshape(log_probs, [batch, beam_size * vocab_size]),
                                                     k=2 * beam_size)
        topk_beams = topk_indices // vocab_size
        topk_seq = tf.concat([_gather(alive_seq, topk_beams), (topk_indices % vocab_size)[:, :, None]], axis=2)
        topk_cache = _map(lambda t, beams=topk_beams: _gather(t, beams), new_cache)
        topk_coverage = None
        if use_coverage:
            topk_coverage = _gather(alive_coverage + _unflatten(tf.cast(output[2], dtype), batch), topk_beams)
        ends = tf.equal(topk_seq[:, :, -1], eos_id)
        alive_values, alive_order = tf.math.top_k(topk_log_probs + tf.cast(ends, dtype) * -INF, k=beam_size)
        alive_seq = _gather(topk_seq, alive_order)
        alive_log_probs = alive_values
        alive_cache = _map(lambda t, order=alive_order: _gather(t, order), topk_cache)
        if use_coverage:
            alive_coverage = _gather(topk_coverage, alive_order)
        new_scores = topk_log_probs / length_normalization(alpha, float(step + 1))
        if use_coverage:
            new_scores += _coverage(topk_coverage, source_mask, coverage_penalty)
        if finish_within_beam:  # only EOS extensions ranked within the beam finish
            ends = tf.logical_and(ends, (tf.range(2 * beam_size) < beam_size)[None, :])
        new_scores += (1.0 - tf.cast(ends, dtype)) * -INF
        finished_seq = tf.concat([finished_seq, tf.zeros_like(finished_seq[:, :, :1])], axis=2)
        all_seq = tf.concat([finished_seq, topk_seq], axis=1)
        all_scores = tf.concat([finished_scores, new_scores], axis=1)
        all_flags = tf.concat([finished_flags, ends], axis=1)
        finished_scores, finished_order = tf.math.top_k(all_scores, k=beam_size)
        finished_seq = _gather(all_seq, finished_order)
        finished_flags = _gather(all_flags, finished_order)
        step += 1

    any_finished = tf.reduce_any(finished_flags, axis=1)
    sequences = tf.where(any_finished[:, None, None], finished_seq, alive_seq)
    scores = tf.where(any_finished[:, None], finished_scores, alive_log_probs)
    return sequences, scores
