"""SSD's loss in TensorFlow: `../pytorch/loss.py` op for op (see there for the definition)."""

from __future__ import annotations

import tensorflow as tf

from object_detection.box_ops_tensorflow import encode


def smooth_l1(x: tf.Tensor) -> tf.Tensor:
    """Smooth L1 with beta 1 (torch.nn.functional.smooth_l1_loss, elementwise)."""
    absolute = tf.abs(x)
    return tf.where(absolute < 1.0, 0.5 * x * x, absolute - 0.5)


def ssd_loss_per_image(locs, logits, gt_boxes, gt_labels, default_boxes_cxcywh, negatives_per_positive: int = 3):
    """(N,) per-image losses: locs (N, A, 4), logits (N, A, C), matched gt boxes (N, A, 4), labels (N, A)."""
    positive = gt_labels > 0
    positive_f = tf.cast(positive, locs.dtype)
    positives = tf.reduce_sum(tf.cast(positive, tf.int32), axis=1)
    targets = encode(gt_boxes, default_boxes_cxcywh[None])
    box_loss = tf.reduce_sum(tf.reduce_sum(smooth_l1(locs - targets), axis=2) * positive_f, axis=1)
    confidence = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=gt_labels, logits=logits)  # (N, A)
    negative_loss = tf.where(positive, tf.zeros_like(confidence), confidence)
    order = tf.argsort(negative_loss, axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)
    limit = tf.minimum(negatives_per_positive * positives, tf.shape(gt_labels)[1])[:, None]
    hard_negative = tf.cast(rank < limit, locs.dtype)
    class_loss = tf.reduce_sum(confidence * (positive_f + hard_negative), axis=1)
    has_positives = tf.cast(positives > 0, locs.dtype)
    return (box_loss + class_loss) * has_positives / tf.maximum(tf.cast(positives, locs.dtype), 1e-6)


def ssd_loss(locs, logits, gt_boxes, gt_labels, default_boxes_cxcywh, negatives_per_positive: int, normalizer):
    """The summed per-image losses over `normalizer` images."""
    per_image = ssd_loss_per_image(locs, logits, gt_boxes, gt_labels, default_boxes_cxcywh, negatives_per_positive)
    return tf.reduce_sum(per_image) / tf.cast(normalizer, per_image.dtype)
