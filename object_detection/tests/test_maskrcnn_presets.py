"""The toolkit's Mask R-CNN pieces: the reference's resize rule, targets from scaled and mirrored
polygons, the BGR 0-255 presets of both frameworks, and mask pasting as the reference's Masker."""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

# isort: split
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from object_detection import augment, coco_eval, dataset, presets_pytorch, presets_tensorflow
from object_detection.coco_reader import CocoDetection

MEAN = (102.9801, 115.9465, 122.7717)


@pytest.mark.parametrize("size, expected", [
    ((640, 480), (1066, 800)),    # the shorter side to 800, the longer int(800 x 640 / 480)
    ((480, 640), (800, 1066)),
    ((2000, 500), (1332, 333)),   # 800 x 4 > 1333: shorter side round(1333 x 500 / 2000) = 333, longer int(333 x 4)
    ((800, 600), (1066, 800)),
    ((1066, 800), (1066, 800)),   # already the size: kept
    ((333, 1332), (333, 1332)),
])
def test_resize_is_the_references_get_size(size, expected):
    assert augment.maskrcnn_resized_size(*size, 800, 1333) == expected


def test_pasted_masks_are_torchvisions():
    rng = np.random.default_rng(0)
    probabilities = rng.random((30, 28, 28))
    # boxes reaching outside the image and tiny ones (torchvision fails on a box wholly outside it;
    # detections never are, being clipped to the image)
    xy = rng.uniform(-20, 70, (30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(25, 60, (30, 2))], axis=1)
    boxes[:5, :2] = rng.uniform(10, 60, (5, 2))
    boxes[:5, 2:] = boxes[:5, :2] + rng.uniform(0.2, 3, (5, 2))
    ours = coco_eval.paste_masks(probabilities, boxes, 80, 100)
    theirs = paste_masks_in_image(torch.from_numpy(probabilities)[:, None], torch.from_numpy(boxes), (80, 100))[:, 0]
    np.testing.assert_array_equal(ours, (theirs.numpy() > 0.5).astype(np.uint8))
    assert ours.any(axis=(1, 2)).sum() >= 25


@pytest.fixture(scope="module")
def coco(tiny_coco):
    return CocoDetection(dataset.annotation_file(tiny_coco, "train"), dataset.image_dir(tiny_coco, "train"))


def test_targets_follow_the_image(coco):
    crowded = next(i for i, r in enumerate(coco.records) if r.iscrowd.any())
    for index in range(len(coco)):
        record = coco.records[index]
        same = augment.maskrcnn_targets(record.boxes, record.labels, record.iscrowd, record.segmentations,
                                        record.width, record.height, record.width, record.height, False)
        kept = ~record.iscrowd
        np.testing.assert_array_equal(same.masks, coco.masks(index)[kept])  # at scale 1: the reader's own masks
        np.testing.assert_allclose(same.boxes, record.boxes[kept])
        flipped = augment.maskrcnn_targets(record.boxes, record.labels, record.iscrowd, record.segmentations,
                                           record.width, record.height, record.width, record.height, True)
        np.testing.assert_allclose(flipped.boxes[:, [2, 0]], record.width - same.boxes[:, [0, 2]], atol=1e-4)
        mirrored = same.masks[:, :, ::-1]
        overlap = (flipped.masks & mirrored).sum(axis=(1, 2)) / np.maximum((flipped.masks | mirrored).sum(axis=(1, 2)), 1)
        assert (overlap > 0.9).all()
        double = augment.maskrcnn_targets(record.boxes, record.labels, record.iscrowd, record.segmentations,
                                          record.width, record.height, 2 * record.width, 2 * record.height, False)
        np.testing.assert_allclose(double.boxes, 2 * same.boxes, rtol=1e-6)
        np.testing.assert_allclose(double.masks.sum(axis=(1, 2)), 4 * same.masks.sum(axis=(1, 2)), rtol=0.1)
        for mask, box in zip(double.masks, double.boxes):  # each mask lies in its box
            rows, cols = np.nonzero(mask)
            assert cols.min() >= box[0] - 1 and cols.max() + 1 <= box[2] + 1
            assert rows.min() >= box[1] - 1 and rows.max() + 1 <= box[3] + 1
    assert len(augment.maskrcnn_targets(*(getattr(coco.records[crowded], f) for f in ("boxes", "labels", "iscrowd")),
                                        coco.records[crowded].segmentations, 300, 300, 300, 300, False).labels) \
        == (~coco.records[crowded].iscrowd).sum()


def test_both_presets_give_bgr_0_255_minus_the_mean_and_the_same_targets(coco):
    index = 3
    record = coco.records[index]
    rng_key = (7, 2, index)
    image, target = presets_pytorch.MaskRCNNTrain(160, 256)(coco.load_image(index), record, augment.sample_rng(*rng_key))
    width, height = augment.maskrcnn_resized_size(record.width, record.height, 160, 256)
    assert image.shape == (3, height, width)
    flip = augment.draw_maskrcnn_flip(augment.sample_rng(*rng_key))
    resized = coco.load_image(index).resize((width, height), Image.Resampling.BILINEAR)
    if flip:
        resized = resized.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    rgb = np.asarray(resized, dtype=np.float32)
    np.testing.assert_allclose(image.numpy(), rgb[:, :, ::-1].transpose(2, 0, 1) - np.array(MEAN, np.float32)[:, None, None],
                               rtol=0, atol=1e-4)

    def targets_of(key):
        seed, epoch, i = (int(k) for k in key)
        r = coco.records[i]
        w, h = augment.maskrcnn_resized_size(r.width, r.height, 160, 256)
        f = augment.draw_maskrcnn_flip(augment.sample_rng(seed, epoch, i))
        t = augment.maskrcnn_targets(r.boxes, r.labels, r.iscrowd, r.segmentations, r.width, r.height, w, h, f)
        return np.int32(w), np.int32(h), np.bool_(f), t.boxes, t.labels, t.masks

    with open(record.path, "rb") as handle:
        data = handle.read()
    tf_image, boxes, labels, masks = presets_tensorflow.maskrcnn_train(tf.constant(data), targets_of,
                                                                       tf.constant(rng_key, tf.int64))
    np.testing.assert_array_equal(boxes.numpy(), target["boxes"].numpy())
    np.testing.assert_array_equal(labels.numpy(), target["labels"].numpy())
    np.testing.assert_array_equal(masks.numpy(), target["masks"].numpy())
    # pixels: TensorFlow resizes in floats, PIL in 8 bits (and its own antialiasing kernel)
    difference = np.abs(tf_image.numpy().transpose(2, 0, 1) - image.numpy())
    assert difference.mean() < 2.0 and np.percentile(difference, 99) < 12
