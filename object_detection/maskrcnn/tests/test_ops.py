"""The TensorFlow detection ops compute what torchvision's compute, one by one: RoIAlign (crop_and_resize
based, and the adaptive one of the mask targets), multi-scale RoIAlign with FPN level mapping, anchors,
the matcher, keyed sampling (bit for bit the PyTorch sampler's choice), batched NMS.

Float64 where both sides can compute in it (bounds 1e-12); `roi_align` goes through
tf.image.crop_and_resize, which takes float32 boxes and returns float32: there the bound is 1e-5 of
the output's scale (float32 sample positions, ~1e-7 relative, times the map's gradient)."""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch
import torchvision

# isort: split
from collections import OrderedDict

import numpy as np
import pytest
import tensorflow as tf
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from object_detection.maskrcnn.pytorch.model import ROI_STAGE, RPN_STAGE, KeyedSampler, sample_priority
from object_detection.maskrcnn.tensorflow import detection_ops as ops
from object_detection.maskrcnn.tensorflow import rpn
from object_detection.maskrcnn.tensorflow.roi_align import roi_align, roi_align_adaptive


def random_rois(rng, count, width, height, images):
    """Boxes of all sizes, some reaching outside the map, some under a pixel; their image index."""
    xy = np.stack([rng.uniform(-12, width, count), rng.uniform(-12, height, count)], axis=1)
    wh = rng.uniform(0.2, 0.6 * max(width, height), (count, 2))
    wh[: count // 8] = rng.uniform(0, 1, (count // 8, 2))
    return np.concatenate([xy, xy + wh], axis=1), rng.integers(0, images, count)


@pytest.mark.parametrize("output_size, scale", [(7, 0.25), (14, 0.125)])
def test_roi_align_is_torchvisions(output_size, scale):
    rng = np.random.default_rng(output_size)
    features = rng.normal(size=(2, 5, 13, 17)).astype(np.float32)
    boxes, images = random_rois(rng, 80, 17 / scale, 13 / scale, 2)
    rois = torch.from_numpy(np.concatenate([images[:, None], boxes], axis=1)).float()
    theirs = torchvision.ops.roi_align(torch.from_numpy(features), rois, output_size, scale, 2).numpy()
    ours = roi_align(tf.constant(features.transpose(0, 2, 3, 1)), tf.constant(boxes, tf.float32), tf.constant(images),
                     output_size, scale, 2).numpy().transpose(0, 3, 1, 2)
    assert np.abs(theirs).max() > 1
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()


def test_adaptive_roi_align_is_torchvisions_mask_projection():
    """torchvision's project_masks_on_boxes: roi_align(masks, rois, 28, 1.0), sampling ratio ceil(h / 28);
    masks zero-padded to a common size read as their own size (map_sizes)."""
    rng = np.random.default_rng(3)
    sizes = [(40, 50), (33, 61)]
    padded = np.zeros((2, 40, 61))
    theirs = []
    boxes, images = random_rois(rng, 40, 60, 40, 2)
    boxes[0] = [-5, -3, 140, 90]  # far larger than the map: many samples per bin
    for i, (h, w) in enumerate(sizes):
        mask = (rng.random((h, w)) > 0.5).astype(np.float64)
        padded[i, :h, :w] = mask
        chosen = images == i
        rois = torch.cat([torch.zeros(int(chosen.sum()), 1, dtype=torch.float64), torch.from_numpy(boxes[chosen])], 1)
        theirs.append((chosen, torchvision.ops.roi_align(torch.from_numpy(mask)[None, None], rois, (28, 28), 1.0)[:, 0].numpy()))
    ours = roi_align_adaptive(tf.constant(padded), tf.constant(boxes), tf.constant(images), 28,
                              map_sizes=tf.constant(np.array(sizes)[images], tf.int32)).numpy()
    for chosen, expected in theirs:
        np.testing.assert_allclose(ours[chosen], expected, rtol=0, atol=1e-12)


def test_multiscale_roi_align_maps_levels_as_torchvision():
    rng = np.random.default_rng(4)
    image_sizes = [(200, 256), (224, 240)]
    shapes = [(56, 64), (28, 32), (14, 16), (7, 8)]  # a 224 x 256 padded batch at strides 4..32
    features = [rng.normal(size=(2, 3, h, w)).astype(np.float32) for h, w in shapes]
    boxes, images = random_rois(rng, 120, 256, 224, 2)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    pooler = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    theirs = pooler(OrderedDict((str(i), torch.from_numpy(f)) for i, f in enumerate(features)),
                    [torch.from_numpy(boxes[images == i]).float() for i in range(2)], image_sizes).numpy()
    order = np.concatenate([np.flatnonzero(images == i) for i in range(2)])  # torchvision concatenates per image
    ours = ops.multiscale_roi_align([tf.constant(f.transpose(0, 2, 3, 1)) for f in features],
                                    tf.constant(boxes[order], tf.float32), tf.constant(images[order]),
                                    tf.constant(image_sizes, tf.int32), 7, 2).numpy().transpose(0, 3, 1, 2)
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()


def test_anchors_are_torchvisions():
    sizes, ratios = (32, 64, 128, 256, 512), (0.5, 1.0, 2.0)
    shapes = [(48, 40), (24, 20), (12, 10), (6, 5), (3, 3)]
    generator = AnchorGenerator(tuple((s,) for s in sizes), (ratios,) * 5)
    images = ImageList(torch.zeros(1, 3, 192, 160), [(192, 160)])
    theirs = generator(images, [torch.zeros(1, 4, h, w) for h, w in shapes])[0].numpy()
    ours = rpn.anchors([tf.zeros([1, h, w, 4]) for h, w in shapes], tf.constant([192, 160]), sizes, ratios, tf.float32)
    np.testing.assert_array_equal(np.concatenate([a.numpy() for a in ours]), theirs)


@pytest.mark.parametrize("allow_low_quality", [False, True])
def test_matcher_is_torchvisions(allow_low_quality):
    rng = np.random.default_rng(5)
    quality = np.round(rng.uniform(0, 1, (6, 300)), 2)  # rounded: ties, including between maxima
    quality[2] *= 0.2  # a ground truth with only poor matches
    theirs = Matcher(0.7, 0.3, allow_low_quality_matches=allow_low_quality)(torch.from_numpy(quality)).numpy()
    # padded with two invalid rows, which must not change anything
    padded = np.concatenate([quality, rng.uniform(0, 1, (2, 300))])
    ours = ops.match(tf.constant(padded), tf.constant([True] * 6 + [False] * 2), 0.7, 0.3, allow_low_quality).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_keyed_sampling_chooses_the_same_elements_in_both_frameworks():
    rng = np.random.default_rng(6)
    for stage, batch, fraction in ((RPN_STAGE, 256, 0.5), (ROI_STAGE, 512, 0.25)):
        labels = [rng.choice([-1, 0, 0, 0, 1, 3], size=n) for n in (3000, 700, 90)]
        keys = [int(k) for k in rng.integers(0, 2**32, 3)]
        sampler = KeyedSampler(batch, fraction, stage)
        sampler.keys = keys
        positives, negatives = sampler([torch.from_numpy(label) for label in labels])
        for label, key, pos, neg in zip(labels, keys, positives, negatives):
            np.testing.assert_array_equal(sample_priority(key, stage, len(label)).numpy(),
                                          ops.sample_priority(tf.constant(key, tf.int64), stage, len(label)).numpy())
            ours = ops.balanced_sample(tf.constant(label), tf.constant(key, tf.int64), stage, batch, fraction)
            np.testing.assert_array_equal(ours[0].numpy(), pos.numpy().astype(bool))
            np.testing.assert_array_equal(ours[1].numpy(), neg.numpy().astype(bool))
            assert pos.sum() == min((label >= 1).sum(), int(batch * fraction))
            assert neg.sum() == min((label == 0).sum(), batch - int(pos.sum()))


def test_keyed_priorities_look_uniform():
    """Sampling must be unbiased: priorities spread evenly over [0, 2^32) and are not ordered by index."""
    values = sample_priority(12345, RPN_STAGE, 100_000).numpy() / 2**32
    counts = np.histogram(values, bins=10, range=(0, 1))[0]
    assert counts.min() > 9500 and counts.max() < 10500
    assert abs(np.corrcoef(np.arange(100_000), values)[0, 1]) < 0.01


def test_batched_nms_is_torchvisions():
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 100, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (400, 2))], axis=1).astype(np.float32)
    scores = rng.random(400).astype(np.float32)
    groups = rng.integers(0, 5, 400)
    theirs = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(groups), 0.5)
    ours = ops.batched_nms(tf.constant(boxes), tf.constant(scores), tf.constant(groups), 0.5, 5)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
