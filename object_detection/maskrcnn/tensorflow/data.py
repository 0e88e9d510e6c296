"""Mask R-CNN's input pipeline in tf.data: the COCO reader's records, `presets_tensorflow`'s Mask R-CNN presets.

The same samples as `../pytorch/data.py`, in the same batches (`../batching.py`: shuffled, sharded
over input pipelines, grouped by orientation), each image's flip, targets and sampling key drawn
from (seed, epoch, image index) as in the PyTorch pipeline. A batch is padded to a common size, a
multiple of `data.size_divisibility` (zeros: the mean pixel after normalization, as the reference's
to_image_list), with each image's own size beside it; ground truth is padded per image after the
real boxes (label 0). Evaluation reads every val2017 image in the reader's order.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from object_detection import augment, presets_tensorflow
from object_detection.coco_reader import CocoDetection
from object_detection.maskrcnn.batching import epoch_batches
from object_detection.maskrcnn.config import Config


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # batches in order; the randomness comes from the keyed draws
    return options


def landscape(coco: CocoDetection) -> np.ndarray:
    return np.array([record.width >= record.height for record in coco.records])


def _pad_to_multiple(divisor: int):
    def pad(images, sizes, *rest):
        shape = tf.shape(images)
        height = (shape[1] + divisor - 1) // divisor * divisor
        width = (shape[2] + divisor - 1) // divisor * divisor
        images = tf.pad(images, [[0, 0], [0, height - shape[1]], [0, width - shape[2]], [0, 0]])
        if rest:  # training: boxes, labels, masks (B, G, h, w), sample keys
            boxes, labels, masks, keys = rest
            masks = tf.pad(masks, [[0, 0], [0, 0], [0, height - shape[1]], [0, width - shape[2]]])
            return images, sizes, {"boxes": boxes, "labels": labels, "masks": masks, "sample_key": keys}
        return images, sizes
    return pad


def train_dataset(coco: CocoDetection, cfg: Config, *, epoch: int, batch_size: int, pipeline: int = 0,
                  num_pipelines: int = 1) -> tf.data.Dataset:
    """This epoch's (images, image sizes, targets) batches of `batch_size` for input pipeline `pipeline`."""
    d = cfg.data
    seed = cfg.run.seed
    order = [index for batch in epoch_batches(landscape(coco), seed, epoch, batch_size, pipeline, num_pipelines)
             for index in batch]
    paths = tf.constant([coco.records[i].path for i in order] or [""])[:len(order)]
    keys = np.array([[seed, epoch, i] for i in order], dtype=np.int64).reshape(-1, 3)
    sample_keys = np.array([augment.sample_key(seed, epoch, i) for i in order], dtype=np.int64)

    def targets_of(key):
        seed_, epoch_, index = (int(k) for k in key)
        record = coco.records[index]
        width, height = augment.maskrcnn_resized_size(record.width, record.height, d.min_size, d.max_size)
        flip = augment.draw_maskrcnn_flip(augment.sample_rng(seed_, epoch_, index), d.flip_probability)
        targets = augment.maskrcnn_targets(record.boxes, record.labels, record.iscrowd, record.segmentations,
                                           record.width, record.height, width, height, flip)
        return np.int32(width), np.int32(height), np.bool_(flip), targets.boxes, targets.labels, targets.masks

    def load(path, key, sample_key):
        image, boxes, labels, masks = presets_tensorflow.maskrcnn_train(tf.io.read_file(path), targets_of, key,
                                                                         mean=d.pixel_mean, std=d.pixel_std)
        return image, tf.shape(image)[:2], boxes, labels, masks, sample_key

    dataset = tf.data.Dataset.from_tensor_slices((paths, keys, sample_keys))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.padded_batch(batch_size, padded_shapes=([None, None, 3], [2], [None, 4], [None], [None, None, None], []),
                                   drop_remainder=True)
    dataset = dataset.map(_pad_to_multiple(d.size_divisibility), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


def eval_dataset(coco: CocoDetection, cfg: Config) -> tf.data.Dataset:
    """(images, image sizes, reader indices) batches of the whole val set, in the reader's order."""
    d = cfg.data
    sizes = np.array([augment.maskrcnn_resized_size(r.width, r.height, d.min_size, d.max_size) for r in coco.records],
                     dtype=np.int32).reshape(-1, 2)
    paths = [r.path for r in coco.records]
    dataset = tf.data.Dataset.from_tensor_slices((paths, sizes, np.arange(len(paths), dtype=np.int64)))

    def load(path, size, index):
        image = presets_tensorflow.maskrcnn_eval(tf.io.read_file(path), size[0], size[1], mean=d.pixel_mean,
                                                 std=d.pixel_std)
        return image, tf.shape(image)[:2], index

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.padded_batch(d.eval_batch_size, padded_shapes=([None, None, 3], [2], []))

    def pad(images, image_sizes, indices):
        images, image_sizes = _pad_to_multiple(d.size_divisibility)(images, image_sizes)
        return images, image_sizes, indices

    return dataset.map(pad, deterministic=True).prefetch(tf.data.AUTOTUNE).with_options(_options())


def padded_batch(images: list, targets: list, divisor: int = 32) -> tuple:
    """A training batch as `train_dataset` makes it, from samples in memory: HWC images (each its own
    size) and their targets (boxes, labels, masks (n, h, w), sample_key as NumPy values) ->
    (images (B, H, W, 3) zero-padded to a multiple of `divisor`, sizes (B, 2), padded targets)."""
    height = -(-max(i.shape[0] for i in images) // divisor) * divisor
    width = -(-max(i.shape[1] for i in images) // divisor) * divisor
    count = max(len(t["labels"]) for t in targets)
    batch = np.zeros((len(images), height, width, 3), dtype=np.asarray(images[0]).dtype)
    boxes = np.zeros((len(images), count, 4), dtype=np.asarray(targets[0]["boxes"]).dtype)
    labels = np.zeros((len(images), count), np.int64)
    masks = np.zeros((len(images), count, height, width), np.uint8)
    for i, (image, target) in enumerate(zip(images, targets)):
        h, w = image.shape[:2]
        n = len(target["labels"])
        batch[i, :h, :w] = image
        boxes[i, :n], labels[i, :n], masks[i, :n, :h, :w] = target["boxes"], target["labels"], target["masks"]
    sizes = np.array([i.shape[:2] for i in images], dtype=np.int32)
    keys = np.array([int(t["sample_key"]) for t in targets], dtype=np.int64)
    return (tf.constant(batch), tf.constant(sizes), {"boxes": tf.constant(boxes), "labels": tf.constant(labels),
                                                     "masks": tf.constant(masks), "sample_key": tf.constant(keys)})
