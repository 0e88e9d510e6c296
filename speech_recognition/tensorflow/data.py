"""The TensorFlow input pipeline: the shared BatchSource (batches.py), prefetched on threads, as tensors.

Batches keep their own lengths (no bucketing to fixed shapes): the train and eval functions are traced
once with `None` dimensions (TENSOR_SPECS), so a new batch length does not retrace.
"""

from __future__ import annotations

from collections.abc import Iterator

import tensorflow as tf

from speech_recognition.batches import Batch, BatchSource
from speech_recognition.features import NUM_BINS

TENSOR_SPECS = (tf.TensorSpec([None, NUM_BINS, None, 1], tf.float32),  # features, channels last
                tf.TensorSpec([None], tf.int32),  # output frames
                tf.TensorSpec([None, None], tf.int32),  # targets, zero-padded
                tf.TensorSpec([None], tf.int32),  # target lengths
                tf.TensorSpec([], tf.float32))  # utterances in the global batch


def to_tensors(batch: Batch) -> tuple[tf.Tensor, ...]:
    return (tf.convert_to_tensor(batch.features[..., None]), tf.convert_to_tensor(batch.output_frames),
            tf.convert_to_tensor(batch.targets), tf.convert_to_tensor(batch.target_lengths),
            tf.constant(float(batch.global_count)))


def batches(source: BatchSource, epoch: int, workers: int) -> Iterator[tuple[Batch, tuple[tf.Tensor, ...]]]:
    """The epoch's batches in order, each with its tensors."""
    for batch in source.iterate(epoch, workers=workers):
        yield batch, to_tensors(batch)
