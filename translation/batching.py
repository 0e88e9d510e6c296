"""Encoded sentence pairs in memory and batches of similar length, the same in both frameworks.

`Encoded` holds a corpus of token-id sequences as one flat int32 array plus offsets (the on-disk
`.npy` layout of the prepared data). Batches are lists of example indices, drawn in NumPy from
(seed, epoch) alone, so PyTorch and TensorFlow train on the same batches in the same order:

- `token_batches`: the Transformer reference's bucketing (mlcommons/training translation/
  tensorflow/transformer/utils/dataset.py, `_batch_examples`): bucket boundaries from 8 growing by
  x1.1 up to the maximum length, an example's length is max(source, target), and a bucket whose
  upper bound is L holds `max_tokens // L` examples per batch, so every padded batch has at most
  `max_tokens` tokens per side. Examples stream through the buckets in a seeded order and a batch
  is emitted when its bucket is full (tf.data `group_by_window`); partial buckets come last.
- `sentence_batches`: the GNMT reference's bucketing (mlcommons/training rnn_translator/pytorch/
  seq2seq/data/sampler.py, `BucketingSampler`): a fixed number of pairs per replica batch, pairs in
  equal-width length buckets, whole global batches drawn within a bucket; also seeded.
- `shard_batches`: the batches of one replica, step-major (step s of replica r is batch s*R + r).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from translation.vocabulary import PAD_ID

MIN_BOUNDARY = 8  # reference _MIN_BOUNDARY
BOUNDARY_SCALE = 1.1  # reference _BOUNDARY_SCALE


@dataclasses.dataclass(frozen=True)
class Encoded:
    """Token-id sequences, sequence i is `tokens[offsets[i]:offsets[i + 1]]` (each ends with EOS)."""

    tokens: np.ndarray  # int32 (total,)
    offsets: np.ndarray  # int64 (n + 1,)

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]]) -> Encoded:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(tokens, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index]:self.offsets[index + 1]]

    def subset(self, indices: np.ndarray) -> Encoded:
        return Encoded.from_sequences([self.sequence(i) for i in indices])

    def pad(self, indices: Sequence[int], length: int | None = None) -> np.ndarray:
        """int32 (len(indices), length) with PAD_ID after each sequence; length defaults to the longest."""
        lengths = self.lengths[np.asarray(indices, dtype=np.int64)]
        width = int(lengths.max()) if length is None else length
        out = np.full((len(indices), width), PAD_ID, dtype=np.int32)
        for row, (index, size) in enumerate(zip(indices, lengths)):
            start = self.offsets[index]
            out[row, :size] = self.tokens[start:start + size]
        return out


def bucket_bounds(max_length: int, min_boundary: int = MIN_BOUNDARY,
                  scale: float = BOUNDARY_SCALE) -> tuple[list[int], list[int]]:
    """(bucket minimums, bucket maximums, exclusive) up to max_length (reference _create_min_max_boundaries)."""
    boundaries = []
    x = min_boundary
    while x < max_length:
        boundaries.append(x)
        x = max(x + 1, int(x * scale))
    return [0, *boundaries], [*boundaries, max_length + 1]


def keep_within(source_lengths: np.ndarray, target_lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Indices of the pairs whose both sides have at most `max_length` tokens (the reference's
    `_filter_max_length`: longer pairs are discarded, logged as max_sequence_length, method discard)."""
    return np.flatnonzero((source_lengths <= max_length) & (target_lengths <= max_length))


def token_batches(source_lengths: np.ndarray, target_lengths: np.ndarray, max_tokens: int, max_length: int,
                  seed: int, epoch: int, indices: np.ndarray | None = None) -> list[np.ndarray]:
    """One epoch of reference-style bucketed batches (module doc) over `indices` (default: all)."""
    lengths = np.maximum(source_lengths, target_lengths)
    indices = np.arange(len(lengths)) if indices is None else np.asarray(indices)
    if len(indices) and lengths[indices].max() > max_length:
        raise ValueError(f"examples longer than max_length={max_length}: filter them first (keep_within)")
    mins, maxs = bucket_bounds(max_length)
    sizes = [max_tokens // upper for upper in maxs]
    order = indices[np.random.default_rng([seed, epoch]).permutation(len(indices))]
    bucket_of = np.searchsorted(np.asarray(maxs), lengths[order], side="right")
    windows: list[list[int]] = [[] for _ in maxs]
    batches = []
    for index, bucket in zip(order.tolist(), bucket_of.tolist()):
        if sizes[bucket] == 0:
            raise ValueError(f"max_tokens={max_tokens} is smaller than a {maxs[bucket] - 1}-token example")
        window = windows[bucket]
        window.append(index)
        if len(window) == sizes[bucket]:
            batches.append(np.asarray(window, dtype=np.int64))
            windows[bucket] = []
    batches.extend(np.asarray(window, dtype=np.int64) for window in windows if window)
    return batches


def sentence_batches(source_lengths: np.ndarray, target_lengths: np.ndarray, batch_size: int, seed: int,
                     epoch: int, *, max_length: int, world_size: int = 1, buckets: int = 5,
                     indices: np.ndarray | None = None) -> list[np.ndarray]:
    """One epoch of the GNMT reference's bucketed batches of `batch_size` pairs per replica.

    A pair goes to bucket min(max(source // width, target // width), buckets - 1) with width =
    ceil(max_length / buckets) (lengths with BOS and EOS, as the reference). Every epoch each bucket
    is shuffled and cut to a whole number of global batches (`batch_size * world_size` pairs; the
    rest of the bucket sits the epoch out), the global batches of all buckets are shuffled
    together, and each is split into `world_size` consecutive replica batches: the returned list is
    global batch 0's replica batches, then global batch 1's, ... (`shard_batches` hands them out).
    """
    indices = np.arange(len(source_lengths)) if indices is None else np.asarray(indices)
    width = (max_length + buckets - 1) // buckets
    bucket_of = np.minimum(np.maximum(source_lengths[indices] // width, target_lengths[indices] // width), buckets - 1)
    rng = np.random.default_rng([seed, epoch])
    global_batch = batch_size * world_size
    chosen = []
    for bucket in range(buckets):
        members = indices[bucket_of == bucket]
        members = members[rng.permutation(len(members))]
        chosen.append(members[:len(members) // global_batch * global_batch])
    global_batches = np.concatenate(chosen).reshape(-1, global_batch)
    global_batches = global_batches[rng.permutation(len(global_batches))]
    return list(global_batches.reshape(-1, batch_size))


def shard_batches(batches: list[np.ndarray], rank: int, world_size: int) -> list[np.ndarray]:
    """Replica `rank`'s batches: step s trains batch s*world_size + rank; an incomplete last step is
    dropped so every replica runs the same number of steps (none is dropped on one replica)."""
    steps = len(batches) // world_size
    return [batches[step * world_size + rank] for step in range(steps)]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches of `batch_size` sentences sorted by length (less padding, faster decoding);
    the translations are put back in file order by index."""
    order = np.argsort(lengths, kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
