"""The region proposal network around `model.RPNHead`, as torchvision's rpn.py and anchor_utils.py compute it.

- `cell_anchors` / `anchors`: torchvision's AnchorGenerator: per level one size and three aspect
  ratios, base boxes [-w/2, -h/2, w/2, h/2] rounded (w = size / sqrt(r), h = size sqrt(r), float32
  as torchvision computes them), shifted by the level's stride (padded image size // map size),
  position-major then anchor;
- `flatten_head_outputs`: objectness (B, A_total) and deltas (B, A_total, 4) in the anchors' order
  (torchvision's permute_and_flatten of NCHW maps equals reshaping NHWC maps);
- `filter_proposals`: per image and level the pre-NMS top-k by objectness, decoded (weights 1, clamp
  log(1000/16)), clipped, boxes under 1e-3 px dropped, NMS 0.7 within each level, the post-NMS top-k;
- `rpn_loss`: anchors matched at IoU 0.7 / 0.3 with low-quality matches, 256 sampled per image
  (keyed, half positive), binary cross-entropy over the sampled anchors and smooth L1 (beta 1/9)
  over the positives divided by the number sampled in the batch.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from object_detection import box_ops_tensorflow as box_ops
from object_detection.maskrcnn.tensorflow import detection_ops as ops

RPN_STAGE = 1
RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)


def cell_anchors(size: float, ratios) -> np.ndarray:
    """(A, 4) base anchors of one level, in torchvision's float32 arithmetic, rounded."""
    scales = np.array([size], dtype=np.float32)
    ratios = np.asarray(ratios, dtype=np.float32)
    h_ratios = np.sqrt(ratios)
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2))


def anchors(features: list, padded_shape, sizes, ratios, dtype) -> list:
    """Per level (H W A, 4) anchors in image pixels for NHWC `features` of images padded to `padded_shape`."""
    result = []
    for feature, size in zip(features, sizes):
        height, width = tf.shape(feature)[1], tf.shape(feature)[2]
        stride_y, stride_x = padded_shape[0] // height, padded_shape[1] // width
        shift_x = tf.cast(tf.range(width) * stride_x, dtype)
        shift_y = tf.cast(tf.range(height) * stride_y, dtype)
        yy, xx = tf.meshgrid(shift_y, shift_x, indexing="ij")
        xx, yy = tf.reshape(xx, [-1]), tf.reshape(yy, [-1])
        shifts = tf.stack([xx, yy, xx, yy], axis=1)
        base = tf.constant(cell_anchors(size, ratios), dtype)
        result.append(tf.reshape(shifts[:, None, :] + base[None, :, :], [-1, 4]))
    return result


def flatten_head_outputs(objectness: list, deltas: list) -> tuple[tf.Tensor, tf.Tensor, list]:
    """(B, N) logits, (B, N, 4) deltas over all levels, and the anchors per level."""
    batch = tf.shape(objectness[0])[0]
    flat_logits = [tf.reshape(o, [batch, -1]) for o in objectness]
    flat_deltas = [tf.reshape(d, [batch, -1, 4]) for d in deltas]
    counts = [tf.shape(o)[1] for o in flat_logits]
    return tf.concat(flat_logits, axis=1), tf.concat(flat_deltas, axis=1), counts


def decode(deltas: tf.Tensor, anchor_boxes: tf.Tensor) -> tf.Tensor:
    return box_ops.decode(deltas, box_ops.xyxy_to_cxcywh(anchor_boxes), RPN_WEIGHTS, clamp=box_ops.BBOX_XFORM_CLIP)


def filter_proposals(proposals: tf.Tensor, logits: tf.Tensor, counts: list, image_sizes: tf.Tensor, batch: int,
                     pre_nms_top_n: int, post_nms_top_n: int, nms_iou: float, min_size: float = 1e-3) -> list:
    """Per image (K, 4) proposals, highest objectness first (see the module docstring)."""
    logits = tf.stop_gradient(logits)
    proposals = tf.stop_gradient(proposals)
    result = []
    for image in range(batch):
        boxes, scores, levels = [], [], []
        offset = 0
        for level, count in enumerate(counts):
            level_logits = logits[image, offset:offset + count]
            k = tf.minimum(pre_nms_top_n, count)
            top, index = tf.math.top_k(level_logits, k=k)
            boxes.append(tf.gather(proposals[image, offset:offset + count], index))
            scores.append(tf.sigmoid(top))
            levels.append(tf.fill([k], level))
            offset += count
        boxes, scores, levels = tf.concat(boxes, 0), tf.concat(scores, 0), tf.concat(levels, 0)
        boxes = ops.clip_boxes_to_image(boxes, image_sizes[image, 0], image_sizes[image, 1])
        keep = ops.remove_small_boxes(boxes, min_size)
        boxes, scores, levels = tf.gather(boxes, keep), tf.gather(scores, keep), tf.gather(levels, keep)
        keep = ops.batched_nms(boxes, scores, levels, nms_iou, len(counts))[:post_nms_top_n]
        result.append(tf.gather(boxes, keep))
    return result


def assign_targets(anchor_boxes: tf.Tensor, gt_boxes: tf.Tensor, gt_valid: tf.Tensor, fg_iou: float,
                   bg_iou: float) -> tuple[tf.Tensor, tf.Tensor]:
    """One image's anchor labels (1 object, 0 background, -1 ignored) and matched ground-truth boxes."""
    count = tf.shape(anchor_boxes)[0]

    def matched():
        matches = ops.match(box_ops.box_iou(gt_boxes, anchor_boxes), gt_valid, fg_iou, bg_iou, True)
        labels = tf.where(matches >= 0, 1.0, 0.0)
        labels = tf.where(tf.equal(matches, ops.BETWEEN_THRESHOLDS), -1.0, labels)
        return tf.cast(labels, anchor_boxes.dtype), tf.gather(gt_boxes, tf.maximum(matches, 0))

    def empty():
        return tf.zeros([count], anchor_boxes.dtype), tf.zeros([count, 4], anchor_boxes.dtype)

    return tf.cond(tf.reduce_any(gt_valid), matched, empty)


def rpn_loss(logits: tf.Tensor, deltas: tf.Tensor, anchor_boxes: tf.Tensor, targets: dict, batch: int, cfg_model):
    """(objectness loss, box loss) of the batch (see the module docstring)."""
    m = cfg_model
    positives, negatives, labels, regression = [], [], [], []
    for image in range(batch):
        gt_valid = targets["labels"][image] > 0
        image_labels, matched = assign_targets(anchor_boxes, targets["boxes"][image], gt_valid, m.rpn_fg_iou, m.rpn_bg_iou)
        pos, neg = ops.balanced_sample(image_labels, targets["sample_key"][image], RPN_STAGE,
                                       m.rpn_batch_size_per_image, m.rpn_positive_fraction)
        positives.append(pos)
        negatives.append(neg)
        labels.append(image_labels)
        regression.append(box_ops.encode(matched, box_ops.xyxy_to_cxcywh(anchor_boxes), RPN_WEIGHTS))
    positives, negatives = tf.where(tf.concat(positives, 0))[:, 0], tf.where(tf.concat(negatives, 0))[:, 0]
    sampled = tf.concat([positives, negatives], 0)
    flat_logits = tf.reshape(logits, [-1])
    flat_deltas = tf.reshape(deltas, [-1, 4])
    labels, regression = tf.concat(labels, 0), tf.concat(regression, 0)
    box_loss = tf.reduce_sum(smooth_l1(tf.gather(flat_deltas, positives) - tf.gather(regression, positives), 1.0 / 9))
    box_loss = box_loss / tf.cast(tf.size(sampled), box_loss.dtype)
    objectness_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.gather(labels, sampled), logits=tf.gather(flat_logits, sampled)))
    return objectness_loss, box_loss


def smooth_l1(difference: tf.Tensor, beta: float) -> tf.Tensor:
    """PyTorch's smooth_l1_loss, element-wise: 0.5 x^2 / beta below beta, |x| - 0.5 beta above."""
    absolute = tf.abs(difference)
    return tf.where(absolute < beta, 0.5 * tf.square(absolute) / beta, absolute - 0.5 * beta)
