"""Box operations in TensorFlow: `box_ops_pytorch.py`'s functions, same names and arguments.

TensorFlow has no IoU op of its own, so `box_iou` is written out (torchvision's formula); NMS is
TensorFlow's own (`tf.image.combined_non_max_suppression` for the per-class post-processing,
`tf.image.non_max_suppression` for one class). The encoding and the SSD matching are the same
arithmetic as the PyTorch module (see its docstring); the tests compare the two.
"""

from __future__ import annotations

import math

import tensorflow as tf

SSD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def box_area(boxes: tf.Tensor) -> tf.Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """(N, M) IoU of [x1, y1, x2, y2] boxes (torchvision.ops.box_iou's formula)."""
    area1, area2 = box_area(boxes1), box_area(boxes2)
    left_top = tf.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    right_bottom = tf.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = tf.maximum(right_bottom - left_top, 0.0)
    intersection = wh[..., 0] * wh[..., 1]
    return intersection / (area1[:, None] + area2[None, :] - intersection)


def xyxy_to_cxcywh(boxes: tf.Tensor) -> tf.Tensor:
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    return tf.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def cxcywh_to_xyxy(boxes: tf.Tensor) -> tf.Tensor:
    cx, cy, w, h = tf.unstack(boxes, axis=-1)
    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def encode(boxes: tf.Tensor, anchors: tf.Tensor, weights=SSD_WEIGHTS) -> tf.Tensor:
    """Regression targets of [x1, y1, x2, y2] `boxes` against [cx, cy, w, h] `anchors` (broadcasting)."""
    wx, wy, ww, wh = weights
    cx, cy, w, h = tf.unstack(xyxy_to_cxcywh(boxes), axis=-1)
    acx, acy, aw, ah = tf.unstack(anchors, axis=-1)
    return tf.stack([wx * (cx - acx) / aw, wy * (cy - acy) / ah, ww * tf.math.log(w / aw),
                     wh * tf.math.log(h / ah)], axis=-1)


def decode(deltas: tf.Tensor, anchors: tf.Tensor, weights=SSD_WEIGHTS, clamp: float | None = None) -> tf.Tensor:
    """[x1, y1, x2, y2] boxes from regression `deltas` against [cx, cy, w, h] `anchors`: encode's inverse."""
    wx, wy, ww, wh = weights
    dx, dy, dw, dh = tf.unstack(deltas, axis=-1)
    dw, dh = dw / ww, dh / wh
    if clamp is not None:
        dw, dh = tf.minimum(dw, clamp), tf.minimum(dh, clamp)
    acx, acy, aw, ah = tf.unstack(anchors, axis=-1)
    cx = dx / wx * aw + acx
    cy = dy / wy * ah + acy
    return cxcywh_to_xyxy(tf.stack([cx, cy, tf.exp(dw) * aw, tf.exp(dh) * ah], axis=-1))


def ssd_match(gt_boxes: tf.Tensor, gt_labels: tf.Tensor, default_boxes: tf.Tensor,
              threshold: float = 0.5) -> tuple[tf.Tensor, tf.Tensor]:
    """SSD matching, as `box_ops_pytorch.ssd_match` (see there): (matched boxes (A, 4), labels (A,))."""
    num_defaults = tf.shape(default_boxes)[0]
    gt_labels = tf.cast(gt_labels, tf.int64)

    def matched():
        ious = box_iou(gt_boxes, default_boxes)  # (G, A)
        best_iou = tf.reduce_max(ious, axis=0)
        best_gt = tf.argmax(ious, axis=0, output_type=tf.int32)
        best_default = tf.argmax(ious, axis=1, output_type=tf.int32)  # (G,)
        gt_index = tf.range(tf.shape(gt_boxes)[0], dtype=tf.int32)
        forced = tf.equal(best_default[:, None], tf.range(num_defaults, dtype=tf.int32)[None, :])
        forcing_gt = tf.reduce_max(tf.where(forced, gt_index[:, None], -1), axis=0)
        is_forced = forcing_gt >= 0
        best_gt_ = tf.where(is_forced, forcing_gt, best_gt)
        best_iou_ = tf.where(is_forced, tf.constant(2.0, best_iou.dtype), best_iou)
        positive = best_iou_ > threshold
        labels = tf.where(positive, tf.gather(gt_labels, best_gt_), tf.constant(0, tf.int64))
        boxes = tf.where(positive[:, None], tf.gather(gt_boxes, best_gt_), default_boxes)
        return boxes, labels

    def unmatched():
        return tf.identity(default_boxes), tf.zeros([num_defaults], tf.int64)

    return tf.cond(tf.shape(gt_boxes)[0] > 0, matched, unmatched)


def nms(boxes: tf.Tensor, scores: tf.Tensor, iou_threshold: float, max_output_size: int | None = None) -> tf.Tensor:
    """Indices kept by greedy NMS, highest score first: tf.image.non_max_suppression."""
    size = max_output_size if max_output_size is not None else tf.shape(boxes)[0]
    return tf.image.non_max_suppression(boxes, scores, size, iou_threshold=iou_threshold)


def per_class_nms(boxes: tf.Tensor, scores: tf.Tensor, *, score_threshold: float, iou_threshold: float,
                  candidates_per_class: int, max_detections: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The SSD reference's post-processing of a batch, as `box_ops_pytorch.per_class_nms` for one image.

    `boxes` (B, A, 4), `scores` (B, A, C), column 0 the background. Per class the top
    `candidates_per_class` scores are gathered first (the reference's pre-NMS cut), then
    `tf.image.combined_non_max_suppression` runs each class's NMS and keeps the `max_detections`
    best over all classes. Returns boxes (B, D, 4), labels (B, D), scores (B, D) and the number of
    valid detections per image (B,); rows past it are padding.
    """
    class_scores = tf.transpose(scores[:, :, 1:], [0, 2, 1])  # (B, C-1, A)
    k = min(candidates_per_class, int(scores.shape[1]))
    top_scores, top_index = tf.math.top_k(class_scores, k=k)  # (B, C-1, k), best first
    top_boxes = tf.gather(boxes, top_index, batch_dims=1)  # (B, C-1, k, 4)
    result = tf.image.combined_non_max_suppression(
        boxes=tf.transpose(top_boxes, [0, 2, 1, 3]),  # (B, k, q = C-1, 4): class c's own candidates
        scores=tf.transpose(top_scores, [0, 2, 1]),  # (B, k, C-1)
        max_output_size_per_class=k, max_total_size=max_detections, iou_threshold=iou_threshold,
        score_threshold=score_threshold, pad_per_class=False, clip_boxes=False)
    labels = tf.cast(result.nmsed_classes, tf.int64) + 1  # combined NMS numbers classes from 0
    return result.nmsed_boxes, labels, result.nmsed_scores, result.valid_detections
