"""The pieces torchvision's detection models share (`_utils.py`, `ops/boxes.py`, `poolers.py`), in TensorFlow.

Each function computes what the torchvision function of the same name computes; the tests compare
them one by one (`../tests/test_ops.py`):
- `Matcher` (proposal/anchor to ground-truth assignment, with the low-quality matches of the RPN);
- `sample_priority` and `balanced_sample`: the keyed sampler of `../pytorch/model.py` (same hash,
  same choice), torchvision's BalancedPositiveNegativeSampler otherwise;
- `clip_boxes_to_image`, `remove_small_boxes`, `batched_nms` (tf.image.non_max_suppression one
  group at a time, as torchvision's per-class loop: exact coordinates, no offsets);
- `multiscale_roi_align`: torchvision's MultiScaleRoIAlign (scales inferred from the feature and
  image sizes, the FPN level of each box by the LevelMapper of Lin et al. 2017 eq. 1), pooling
  with `roi_align.roi_align`.
Box encoding and decoding are the COCO toolkit's (`object_detection/box_ops_tensorflow.py`).
"""

from __future__ import annotations

import math

import tensorflow as tf

from object_detection.maskrcnn.tensorflow.roi_align import roi_align

HASH_MASK = 0xFFFFFFFF
HASH_MULTIPLIER = 0x45D9F3B
BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


# -- matching -----------------------------------------------------------------------------------------
def match(quality: tf.Tensor, valid: tf.Tensor, high: float, low: float, allow_low_quality_matches: bool) -> tf.Tensor:
    """torchvision's Matcher on a (G, N) IoU matrix whose rows `valid` (G,) are real ground truth:
    the best ground truth of each of N elements, -1 below `low`, -2 between `low` and `high`; with
    `allow_low_quality_matches`, every element that is some ground truth's best match keeps it."""
    quality = tf.where(valid[:, None], quality, tf.constant(-1.0, quality.dtype))
    matched_vals = tf.reduce_max(quality, axis=0)
    matches = tf.argmax(quality, axis=0, output_type=tf.int64)
    all_matches = matches
    matches = tf.where(matched_vals < low, tf.constant(BELOW_LOW_THRESHOLD, tf.int64), matches)
    matches = tf.where((matched_vals >= low) & (matched_vals < high), tf.constant(BETWEEN_THRESHOLDS, tf.int64), matches)
    if allow_low_quality_matches:
        highest = tf.reduce_max(quality, axis=1)
        best = tf.reduce_any((quality == highest[:, None]) & valid[:, None], axis=0)
        matches = tf.where(best, all_matches, matches)
    return matches


# -- keyed sampling -----------------------------------------------------------------------------------
def _mix(x: tf.Tensor) -> tf.Tensor:
    x = tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x) * HASH_MULTIPLIER, HASH_MASK)
    x = tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x) * HASH_MULTIPLIER, HASH_MASK)
    return tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x)


def sample_priority(key: tf.Tensor, stage: int, count: tf.Tensor) -> tf.Tensor:
    """int64 (count,) priorities of one image's sampling `stage`: `../pytorch/model.py`'s, bit for bit."""
    key = tf.cast(key, tf.int64)
    base = _mix(tf.bitwise.bitwise_and(key * 4 + stage, HASH_MASK))
    return _mix(tf.bitwise.bitwise_and(tf.range(tf.cast(count, tf.int64), dtype=tf.int64) + base, HASH_MASK))


def balanced_sample(labels: tf.Tensor, key: tf.Tensor, stage: int, batch_size_per_image: int,
                    positive_fraction: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Boolean (N,) masks of the chosen positives (labels >= 1) and negatives (labels == 0) of one image."""
    count = tf.shape(labels, out_type=tf.int64)[0]
    priority = sample_priority(key, stage, count)

    def pick(candidates, number):
        order = tf.argsort(tf.gather(priority, candidates), stable=True)[:number]
        chosen = tf.gather(candidates, order)
        return tf.scatter_nd(chosen[:, None], tf.ones_like(chosen, tf.bool), [count])

    positive = tf.where(labels >= 1)[:, 0]
    negative = tf.where(tf.equal(labels, 0))[:, 0]
    num_pos = tf.minimum(tf.size(positive), int(batch_size_per_image * positive_fraction))
    num_neg = tf.minimum(tf.size(negative), batch_size_per_image - num_pos)
    return pick(positive, num_pos), pick(negative, num_neg)


# -- boxes ----------------------------------------------------------------------------------------------
def clip_boxes_to_image(boxes: tf.Tensor, height, width) -> tf.Tensor:
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    width, height = tf.cast(width, boxes.dtype), tf.cast(height, boxes.dtype)
    return tf.stack([tf.clip_by_value(x1, 0.0, width), tf.clip_by_value(y1, 0.0, height),
                     tf.clip_by_value(x2, 0.0, width), tf.clip_by_value(y2, 0.0, height)], axis=-1)


def remove_small_boxes(boxes: tf.Tensor, min_size: float) -> tf.Tensor:
    """Indices of boxes at least `min_size` wide and high."""
    keep = (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
    return tf.where(keep)[:, 0]


def nms(boxes: tf.Tensor, scores: tf.Tensor, iou_threshold: float) -> tf.Tensor:
    """Kept indices, highest score first; a box goes when its IoU with a kept one exceeds the threshold."""
    return tf.cast(tf.image.non_max_suppression(tf.cast(boxes, tf.float32), tf.cast(scores, tf.float32),
                                                tf.shape(boxes)[0], iou_threshold=iou_threshold), tf.int64)


def batched_nms(boxes: tf.Tensor, scores: tf.Tensor, groups: tf.Tensor, iou_threshold: float, num_groups: int) -> tf.Tensor:
    """torchvision's batched_nms: NMS within each group 0 .. num_groups-1, the kept indices of all
    groups ordered by decreasing score (ties by index)."""
    def body(group, kept):
        members = tf.where(tf.equal(groups, tf.cast(group, groups.dtype)))[:, 0]
        chosen = nms(tf.gather(boxes, members), tf.gather(scores, members), iou_threshold)
        return group + 1, kept.write(group, tf.gather(members, chosen))

    # an explicit loop: Keras layers' call() is not converted by AutoGraph
    _, kept = tf.while_loop(lambda group, _: group < num_groups, body,
                            [tf.constant(0), tf.TensorArray(tf.int64, size=num_groups, infer_shape=False,
                                                            element_shape=tf.TensorShape([None]))])
    kept = kept.concat()
    order = tf.argsort(-tf.gather(scores, kept), stable=True)
    return tf.gather(kept, order)


# -- multi-scale RoIAlign -----------------------------------------------------------------------------
def infer_scale(feature: tf.Tensor, image_sizes: tf.Tensor) -> tf.Tensor:
    """2^round(log2(feature height / largest image height)): torchvision's MultiScaleRoIAlign scale."""
    approx = tf.cast(tf.shape(feature)[1], tf.float64) / tf.cast(tf.reduce_max(image_sizes[:, 0]), tf.float64)
    return tf.pow(tf.constant(2.0, tf.float64), tf.round(tf.math.log(approx) / math.log(2.0)))


def map_levels(boxes: tf.Tensor, k_min, k_max, canonical_scale: float = 224.0, canonical_level: float = 4.0,
               eps: float = 1e-6) -> tf.Tensor:
    """The FPN level (0-based from k_min) of each box: floor(4 + log2(sqrt(area) / 224) + eps), clamped."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    levels = tf.floor(canonical_level + tf.math.log(tf.sqrt(area) / canonical_scale) / math.log(2.0) + eps)
    levels = tf.clip_by_value(levels, tf.cast(k_min, boxes.dtype), tf.cast(k_max, boxes.dtype))
    return tf.cast(levels, tf.int32) - tf.cast(k_min, tf.int32)


def multiscale_roi_align(features: list, boxes: tf.Tensor, box_indices: tf.Tensor, image_sizes: tf.Tensor,
                         output_size: int, sampling_ratio: int) -> tf.Tensor:
    """(R, P, P, C) RoIAlign of `boxes` (R, 4, image pixels) of images `box_indices` on the FPN level
    each box maps to, among `features` (P2..P5), as torchvision's MultiScaleRoIAlign."""
    scales = [infer_scale(feature, image_sizes) for feature in features]
    k_min = tf.cast(tf.round(-tf.math.log(scales[0]) / math.log(2.0)), tf.int32)
    k_max = tf.cast(tf.round(-tf.math.log(scales[-1]) / math.log(2.0)), tf.int32)
    levels = map_levels(boxes, k_min, k_max)
    positions, pooled = [], []
    for level, (feature, scale) in enumerate(zip(features, scales)):
        members = tf.cast(tf.where(tf.equal(levels, level))[:, 0], tf.int32)
        positions.append(members)
        pooled.append(roi_align(feature, tf.gather(boxes, members), tf.gather(box_indices, members), output_size,
                                tf.cast(scale, tf.float32), sampling_ratio))
    return tf.dynamic_stitch(positions, pooled)
