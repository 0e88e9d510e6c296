"""SSD's input pipeline in tf.data: the COCO reader's records, `presets_tensorflow`'s SSD presets.

The same samples as `../pytorch/data.py`: the annotated train2017 images, each augmented from the
key (seed, epoch, image index), so an image gets the same crop, flip and jitter draws as in the
PyTorch pipeline. Each epoch is a permutation seeded by (seed, epoch), cut to whole global batches;
input pipeline p of P (tf.distribute) takes every P-th entry. Evaluation reads the annotated
val2017 images in the reader's order.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from object_detection import presets_tensorflow
from object_detection.coco_reader import CocoDetection
from object_detection.ssd.config import Config


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # batches in order; the randomness comes from the keyed draws
    return options


def epoch_order(count: int, seed: int, epoch: int, global_batch: int) -> np.ndarray:
    """This epoch's image order, cut to whole global batches."""
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return order[: count // global_batch * global_batch]


def train_dataset(coco: CocoDetection, cfg: Config, default_boxes_xyxy: np.ndarray, *, epoch: int, batch_size: int,
                  global_batch: int, pipeline: int = 0, num_pipelines: int = 1) -> tf.data.Dataset:
    """One epoch of (images, matched boxes, labels) batches of `batch_size` for input pipeline `pipeline`."""
    order = epoch_order(len(coco), cfg.run.seed, epoch, global_batch)[pipeline::num_pipelines]
    records = [coco.records[i] for i in order]
    paths = tf.constant([r.path for r in records])
    boxes = tf.ragged.constant([r.normalized_boxes().tolist() for r in records], dtype=tf.float32, ragged_rank=1,
                               inner_shape=(4,))
    labels = tf.ragged.constant([r.labels.tolist() for r in records], dtype=tf.int64)
    keys = np.stack([np.full(len(order), cfg.run.seed), np.full(len(order), epoch), order], axis=1).astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((paths, boxes, labels, keys))
    anchors = tf.constant(default_boxes_xyxy)
    d, m = cfg.data, cfg.model

    def load(path, image_boxes, image_labels, key):
        return presets_tensorflow.ssd_train(tf.io.read_file(path), image_boxes, image_labels, key,
                                            image_size=m.image_size, default_boxes_xyxy=anchors, match_iou=d.match_iou,
                                            crop_tries=d.crop_tries, jitter=d.jitter, mean=d.mean, std=d.std)

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(_options())


def eval_dataset(coco: CocoDetection, cfg: Config) -> tf.data.Dataset:
    """(images, reader indices) batches of the whole val set, in the reader's order."""
    paths = [r.path for r in coco.records]
    dataset = tf.data.Dataset.from_tensor_slices((paths, np.arange(len(paths), dtype=np.int64)))
    d, m = cfg.data, cfg.model

    def load(path, index):
        return presets_tensorflow.ssd_eval(tf.io.read_file(path), image_size=m.image_size, mean=d.mean, std=d.std), index

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(d.eval_batch_size).prefetch(tf.data.AUTOTUNE).with_options(_options())
