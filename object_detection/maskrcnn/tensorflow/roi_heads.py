"""The box and mask branches around `model.RoIHeadsLayers`, as torchvision's roi_heads.py computes them.

Training (`select_training_samples`, `fastrcnn_loss`, `maskrcnn_loss`): the ground-truth boxes
join each image's proposals; each proposal takes the ground truth it overlaps most (IoU >= 0.5:
its class, else background); 512 per image are sampled (keyed, at most 25% positive), in index
order; box regression targets use weights (10, 10, 5, 5). The classifier's cross-entropy is
averaged over the sampled RoIs of the batch, the class-specific smooth L1 (beta 1/9) of the
positives divided by the same count; the mask loss is the mean binary cross-entropy of the
positives' 28x28 logits of their class against the ground-truth masks projected on the proposals
(RoIAlign of the mask, `roi_align.roi_align_adaptive`).

Inference (`postprocess_detections`, `maskrcnn_inference`): softmax scores, class-specific boxes
decoded (clamp log(1000/16)) and clipped, background dropped, scores > 0.05, boxes under 0.01 px
dropped, NMS 0.5 per class, the 100 best; then the mask branch on those boxes, the sigmoid of
each detection's class channel.
"""

from __future__ import annotations

import tensorflow as tf

from object_detection import box_ops_tensorflow as box_ops
from object_detection.maskrcnn.tensorflow import detection_ops as ops
from object_detection.maskrcnn.tensorflow.roi_align import roi_align_adaptive
from object_detection.maskrcnn.tensorflow.rpn import smooth_l1

ROI_STAGE = 2


def box_features(layers, features: list, boxes: tf.Tensor, box_indices: tf.Tensor, image_sizes: tf.Tensor, cfg_model):
    """Class logits (R, C) and class-specific box deltas (R, 4C) of RoIs (R, 4) of images `box_indices`."""
    pooled = ops.multiscale_roi_align(features[:4], boxes, box_indices, image_sizes, cfg_model.box_pool_size,
                                      cfg_model.sampling_ratio)
    return layers.box_predictor(layers.box_head(pooled))


def mask_logits(layers, features: list, boxes: tf.Tensor, box_indices: tf.Tensor, image_sizes: tf.Tensor, cfg_model):
    """(R, 28, 28, C) mask logits of RoIs (R, 4)."""
    pooled = ops.multiscale_roi_align(features[:4], boxes, box_indices, image_sizes, cfg_model.mask_pool_size,
                                      cfg_model.sampling_ratio)
    return layers.mask_predictor(layers.mask_head(pooled))


def select_training_samples(proposals: list, targets: dict, batch: int, cfg_model):
    """Per-image sampled RoIs, flattened: boxes (R, 4), image index (R,), labels (R,), matched ground
    truth index (R,) and regression targets (R, 4)."""
    m = cfg_model
    boxes, images, labels, matched, regression = [], [], [], [], []
    for image in range(batch):
        gt_valid = targets["labels"][image] > 0
        gt_boxes = tf.cast(tf.boolean_mask(targets["boxes"][image], gt_valid), proposals[image].dtype)
        gt_labels = tf.boolean_mask(targets["labels"][image], gt_valid)
        candidates = tf.concat([proposals[image], gt_boxes], axis=0)
        count = tf.shape(candidates)[0]

        def assigned(candidates=candidates, gt_boxes=gt_boxes, gt_labels=gt_labels):
            matches = ops.match(box_ops.box_iou(gt_boxes, candidates), tf.ones_like(gt_labels, tf.bool),
                                m.roi_fg_iou, m.roi_bg_iou, False)
            image_labels = tf.gather(gt_labels, tf.maximum(matches, 0))
            image_labels = tf.where(tf.equal(matches, ops.BELOW_LOW_THRESHOLD), tf.zeros_like(image_labels), image_labels)
            image_labels = tf.where(tf.equal(matches, ops.BETWEEN_THRESHOLDS), -tf.ones_like(image_labels), image_labels)
            return tf.maximum(matches, 0), image_labels

        def background(count=count, gt_labels=gt_labels):
            return tf.zeros([count], tf.int64), tf.zeros([count], gt_labels.dtype)

        image_matched, image_labels = tf.cond(tf.size(gt_labels) > 0, assigned, background)
        pos, neg = ops.balanced_sample(image_labels, targets["sample_key"][image], ROI_STAGE,
                                       m.roi_batch_size_per_image, m.roi_positive_fraction)
        sampled = tf.where(pos | neg)[:, 0]
        sampled_boxes = tf.gather(candidates, sampled)
        sampled_matched = tf.gather(image_matched, sampled)
        # an image without ground truth matches every RoI to a zero box (torchvision's), never read
        matched_boxes = tf.gather(tf.concat([gt_boxes, tf.zeros([1, 4], gt_boxes.dtype)], 0), sampled_matched)
        boxes.append(sampled_boxes)
        images.append(tf.fill([tf.size(sampled)], image))
        labels.append(tf.gather(image_labels, sampled))
        matched.append(sampled_matched)
        regression.append(box_ops.encode(matched_boxes, box_ops.xyxy_to_cxcywh(sampled_boxes), tuple(m.box_reg_weights)))
    return (tf.concat(boxes, 0), tf.concat(images, 0), tf.cast(tf.concat(labels, 0), tf.int64), tf.concat(matched, 0),
            tf.concat(regression, 0))


def fastrcnn_loss(class_logits, box_regression, labels, regression_targets):
    """(classifier loss, box loss): torchvision's fastrcnn_loss."""
    classification = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=class_logits))
    positive = tf.where(labels > 0)[:, 0]
    num_classes = tf.shape(class_logits)[1]
    per_class = tf.reshape(box_regression, [-1, num_classes, 4])
    chosen = tf.gather_nd(per_class, tf.stack([positive, tf.gather(labels, positive)], axis=1))
    box_loss = tf.reduce_sum(smooth_l1(chosen - tf.gather(regression_targets, positive), 1.0 / 9))
    return classification, box_loss / tf.cast(tf.size(labels), box_loss.dtype)


def maskrcnn_loss(logits, boxes, images, labels, matched, targets: dict, image_sizes):
    """torchvision's maskrcnn_loss over the positive RoIs (`logits` (P, M, M, C) of RoIs `boxes` (P, 4) of
    images `images`, matched to ground truth `matched`); the masks (B, G, H, W) are each image's own size
    (`image_sizes`) zero-padded to the batch's."""
    gt_masks = tf.cast(targets["masks"], logits.dtype)
    num_gt = tf.shape(gt_masks)[1]
    flat_masks = tf.reshape(gt_masks, tf.concat([[-1], tf.shape(gt_masks)[2:]], axis=0))
    map_indices = tf.cast(images, tf.int64) * tf.cast(num_gt, tf.int64) + matched
    mask_targets = roi_align_adaptive(flat_masks, boxes, map_indices, int(logits.shape[1]),
                                      map_sizes=tf.gather(tf.cast(image_sizes, tf.int32), images))
    chosen = tf.gather(tf.transpose(logits, [0, 3, 1, 2]), labels, batch_dims=1)  # (P, M, M) of each RoI's class
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=mask_targets, logits=chosen))
    return tf.cond(tf.size(labels) > 0, lambda: loss, lambda: tf.reduce_sum(logits) * 0.0)


def postprocess_detections(class_logits, box_regression, proposals: list, image_sizes, batch: int, cfg_model):
    """Per image (boxes (D, 4), scores (D,), labels (D,)), highest score first."""
    m = cfg_model
    num_classes = tf.shape(class_logits)[1]
    counts = [tf.shape(p)[0] for p in proposals]
    all_proposals = tf.concat(proposals, 0)
    deltas = tf.reshape(box_regression, [-1, num_classes, 4])
    anchors = box_ops.xyxy_to_cxcywh(all_proposals)[:, None, :]
    decoded = box_ops.decode(deltas, anchors, tuple(m.box_reg_weights), clamp=box_ops.BBOX_XFORM_CLIP)
    scores = tf.nn.softmax(class_logits, axis=-1)
    results = []
    offset = 0
    for image in range(batch):
        boxes = ops.clip_boxes_to_image(decoded[offset:offset + counts[image]], image_sizes[image, 0], image_sizes[image, 1])
        image_scores = scores[offset:offset + counts[image]]
        offset += counts[image]
        labels = tf.broadcast_to(tf.range(num_classes, dtype=tf.int64)[None, :], tf.shape(image_scores))
        boxes = tf.reshape(boxes[:, 1:], [-1, 4])
        image_scores = tf.reshape(image_scores[:, 1:], [-1])
        labels = tf.reshape(labels[:, 1:], [-1])
        keep = tf.where(image_scores > m.score_threshold)[:, 0]
        boxes, image_scores, labels = tf.gather(boxes, keep), tf.gather(image_scores, keep), tf.gather(labels, keep)
        keep = ops.remove_small_boxes(boxes, 1e-2)
        boxes, image_scores, labels = tf.gather(boxes, keep), tf.gather(image_scores, keep), tf.gather(labels, keep)
        keep = ops.batched_nms(boxes, image_scores, labels, m.nms_iou, num_classes)[:m.detections_per_image]
        results.append((tf.gather(boxes, keep), tf.gather(image_scores, keep), tf.gather(labels, keep)))
    return results


def maskrcnn_inference(logits, labels):
    """(D, M, M) probabilities of each detection's class."""
    return tf.sigmoid(tf.gather(tf.transpose(logits, [0, 3, 1, 2]), labels, batch_dims=1))
