"""Box ops: encode/decode are inverse in each framework, and the two frameworks' ops agree
(IoU, encoding, SSD matching, per-class NMS post-processing). Compared in float64 (1e-10) where the
claim is "the same function"; NMS outputs are compared as sets of kept detections."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

from object_detection import box_ops_pytorch as bt
from object_detection import box_ops_tensorflow as bf


def random_boxes(rng, n, scale=1.0):
    xy = rng.uniform(0, 0.8, (n, 2))
    wh = rng.uniform(0.02, 0.5, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1) * scale


def random_anchors(rng, n):
    return np.concatenate([rng.uniform(0.1, 0.9, (n, 2)), rng.uniform(0.05, 0.6, (n, 2))], axis=1)


@pytest.mark.parametrize("weights", [bt.SSD_WEIGHTS, (1.0, 1.0, 1.0, 1.0)])
def test_decode_inverts_encode_in_both_frameworks(weights):
    rng = np.random.default_rng(0)
    boxes, anchors = random_boxes(rng, 500), random_anchors(rng, 500)
    deltas = bt.encode(torch.from_numpy(boxes), torch.from_numpy(anchors), weights)
    np.testing.assert_allclose(bt.decode(deltas, torch.from_numpy(anchors), weights).numpy(), boxes, rtol=0, atol=1e-12)
    deltas_tf = bf.encode(tf.constant(boxes), tf.constant(anchors), weights)
    np.testing.assert_allclose(bf.decode(deltas_tf, tf.constant(anchors), weights).numpy(), boxes, rtol=0, atol=1e-12)
    np.testing.assert_allclose(deltas_tf.numpy(), deltas.numpy(), rtol=1e-12, atol=1e-12)
    # and the other way: encode(decode(x)) = x
    x = rng.normal(0, 1, (500, 4))
    again = bt.encode(bt.decode(torch.from_numpy(x), torch.from_numpy(anchors), weights), torch.from_numpy(anchors), weights)
    np.testing.assert_allclose(again.numpy(), x, rtol=0, atol=1e-10)
    again_tf = bf.encode(bf.decode(tf.constant(x), tf.constant(anchors), weights), tf.constant(anchors), weights)
    np.testing.assert_allclose(again_tf.numpy(), x, rtol=0, atol=1e-10)


def test_ssd_encoding_is_the_reference_formula():
    """SSD's offsets: (g_c - d_c) / (0.1 d_wh) and log(g_wh / d_wh) / 0.2 (Liu et al. 2016 eq. 2 with variances)."""
    box = np.array([[0.2, 0.3, 0.6, 0.5]])  # centre (0.4, 0.4), size (0.4, 0.2)
    anchor = np.array([[0.5, 0.5, 0.2, 0.4]])
    expected = [(0.4 - 0.5) / 0.2 / 0.1, (0.4 - 0.5) / 0.4 / 0.1, np.log(0.4 / 0.2) / 0.2, np.log(0.2 / 0.4) / 0.2]
    np.testing.assert_allclose(bt.encode(torch.from_numpy(box), torch.from_numpy(anchor)).numpy()[0], expected)


def test_iou_agrees_between_frameworks():
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 40), random_boxes(rng, 60)
    np.testing.assert_allclose(bf.box_iou(tf.constant(a), tf.constant(b)).numpy(),
                               bt.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy(), rtol=1e-12, atol=1e-15)


def test_ssd_match_agrees_and_forces_every_box_onto_its_best_default():
    rng = np.random.default_rng(2)
    defaults = random_boxes(rng, 300)
    gt = random_boxes(rng, 6)
    gt[5] = gt[4]  # two boxes on the same best default box: the later one keeps it
    labels = np.arange(1, 7)
    boxes_t, labels_t = bt.ssd_match(torch.from_numpy(gt), torch.from_numpy(labels), torch.from_numpy(defaults))
    boxes_f, labels_f = bf.ssd_match(tf.constant(gt), tf.constant(labels), tf.constant(defaults))
    np.testing.assert_array_equal(labels_f.numpy(), labels_t.numpy())
    np.testing.assert_array_equal(boxes_f.numpy(), boxes_t.numpy())
    ious = bt.box_iou(torch.from_numpy(gt), torch.from_numpy(defaults)).numpy()
    best = ious.argmax(axis=1)
    for g in range(4):
        assert labels_t[best[g]] == g + 1
    assert labels_t[best[4]] == 6
    # a default box that nobody forces is positive exactly when its best IoU exceeds 0.5
    free = np.setdiff1d(np.arange(300), best)
    np.testing.assert_array_equal(labels_t.numpy()[free] > 0, ious.max(axis=0)[free] > 0.5)
    empty_boxes, empty_labels = bf.ssd_match(tf.zeros([0, 4], tf.float64), tf.zeros([0], tf.int64), tf.constant(defaults))
    assert not empty_labels.numpy().any() and np.array_equal(empty_boxes.numpy(), defaults)


def test_per_class_nms_agrees_between_frameworks():
    """torchvision's batched_nms and TensorFlow's combined NMS keep the same detections."""
    rng = np.random.default_rng(3)
    centres = random_boxes(rng, 12)
    boxes = np.concatenate([c + rng.normal(0, 0.02, (30, 4)) for c in centres]).astype(np.float32)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.01)
    logits = rng.normal(0, 2, (len(boxes), 5)).astype(np.float32)
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    kwargs = {"score_threshold": 0.05, "iou_threshold": 0.5, "candidates_per_class": 50, "max_detections": 40}
    kb, kl, ks = bt.per_class_nms(torch.from_numpy(boxes), torch.from_numpy(scores), **kwargs)
    fb, fl, fs, valid = bf.per_class_nms(tf.constant(boxes[None]), tf.constant(scores[None]), **kwargs)
    n = int(valid[0])
    assert n == len(kb) and 0 < n <= 40
    np.testing.assert_array_equal(fl[0, :n].numpy(), kl.numpy())
    np.testing.assert_allclose(fs[0, :n].numpy(), ks.numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(fb[0, :n].numpy(), kb.numpy(), rtol=0, atol=1e-7)
    kept = bt.nms(torch.from_numpy(boxes), torch.from_numpy(scores[:, 1]), 0.5)
    np.testing.assert_array_equal(np.sort(bf.nms(tf.constant(boxes), tf.constant(scores[:, 1]), 0.5).numpy()),
                                  np.sort(kept.numpy()))
