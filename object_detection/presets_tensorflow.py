"""The detection augmentations in TensorFlow, `presets_pytorch.py`'s presets as tf.data map functions.

SSD train: the same draws as the PyTorch preset for the same (seed, epoch, image) key (crop, flip,
ColorJitter order and factors come from `augment.draw_ssd`, through `tf.numpy_function`: they only
look at the boxes), then the pixel work in TensorFlow ops: the reference's integer crop, flip,
bilinear resize with antialiasing (PIL's `resize`), ColorJitter as torchvision computes it
(brightness: x f; contrast: blend with the mean grey level; saturation: blend with the grey image,
grey = 0.299 R + 0.587 G + 0.114 B; hue: shift in HSV, `tf.image.adjust_hue`), ImageNet mean/std,
and the SSD matching (`box_ops_tensorflow.ssd_match`). Pixels are floats here and 8-bit in PIL, so
the two pipelines agree up to that rounding. SSD eval: resize, mean/std.

Mask R-CNN train: the reference's resize (`augment.maskrcnn_resized_size`), flip and targets
(`augment.maskrcnn_targets`: boxes, labels, masks rasterized from the scaled polygons) drawn in
NumPy for the same (seed, epoch, image) key as the PyTorch preset, through `tf.numpy_function`;
the pixels resized bilinearly with antialiasing (PIL's `resize`), mirrored, as BGR 0-255 minus the
pixel mean. Mask R-CNN eval: resize, BGR minus the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from object_detection import augment
from object_detection.box_ops_tensorflow import ssd_match

GREY = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's convert("L") and torchvision's rgb_to_grayscale


def decode_rgb(image_bytes: tf.Tensor) -> tf.Tensor:
    """JPEG/PNG bytes -> float32 (H, W, 3) in [0, 1]."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def _grey(image: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(image * tf.constant(GREY, image.dtype), axis=-1, keepdims=True)


def color_jitter(image: tf.Tensor, order: tf.Tensor, factors: tf.Tensor) -> tf.Tensor:
    """torchvision's ColorJitter on a [0, 1] image with its order and factors given."""
    def brightness(x):
        return tf.clip_by_value(x * factors[0], 0.0, 1.0)

    def contrast(x):
        mean = tf.reduce_mean(_grey(x))
        return tf.clip_by_value(factors[1] * x + (1.0 - factors[1]) * mean, 0.0, 1.0)

    def saturation(x):
        return tf.clip_by_value(factors[2] * x + (1.0 - factors[2]) * _grey(x), 0.0, 1.0)

    def hue(x):
        return tf.image.adjust_hue(x, factors[3])

    for position in range(4):
        image = tf.switch_case(order[position], [lambda x=image: brightness(x), lambda x=image: contrast(x),
                                                  lambda x=image: saturation(x), lambda x=image: hue(x)])
    return image


def normalize(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def _ssd_draw(boxes, labels, width, height, key, tries, jitter):
    """NumPy side of the SSD draw: (cut, flip, order, factors, kept boxes, kept labels)."""
    draw = augment.draw_ssd(boxes, augment.sample_rng(*(int(k) for k in key)), int(tries), tuple(jitter))
    if draw.crop is None:
        cut = np.array([0, 0, width, height], dtype=np.int32)
        kept_boxes, kept_labels = boxes.astype(np.float32), labels
    else:
        cut = np.array(draw.crop.pixels(int(width), int(height)), dtype=np.int32)
        kept_boxes, kept_labels = draw.crop.boxes_in_patch(boxes), labels[draw.crop.keep]
    return (cut, np.bool_(draw.flip), np.array(draw.jitter_order, dtype=np.int32),
            np.array(draw.jitter_factors, dtype=np.float32), kept_boxes.reshape(-1, 4).astype(np.float32),
            kept_labels.astype(np.int64))


def ssd_train(image_bytes: tf.Tensor, boxes: tf.Tensor, labels: tf.Tensor, key: tf.Tensor, *, image_size: int,
              default_boxes_xyxy: tf.Tensor, match_iou: float = 0.5, crop_tries: int = 1,
              jitter: Sequence[float] = (0.125, 0.5, 0.5, 0.05), mean: Sequence[float] = (0.485, 0.456, 0.406),
              std: Sequence[float] = (0.229, 0.224, 0.225)):
    """One SSD training sample: [0, 1] boxes (n, 4), labels (n,), key [seed, epoch, index] ->
    image (S, S, 3), matched boxes (A, 4), labels (A,)."""
    image = decode_rgb(image_bytes)
    shape = tf.shape(image)
    cut, flip, order, factors, boxes, labels = tf.numpy_function(
        lambda b, lab, w, h, k: _ssd_draw(b, lab, w, h, k, crop_tries, jitter),
        [boxes, labels, shape[1], shape[0], key],
        [tf.int32, tf.bool, tf.int32, tf.float32, tf.float32, tf.int64], stateful=False)
    boxes = tf.reshape(boxes, [-1, 4])
    labels = tf.reshape(labels, [-1])
    image = image[cut[1]:cut[3], cut[0]:cut[2]]
    image, boxes = tf.cond(
        flip, lambda: (tf.reverse(image, axis=[1]),
                       tf.stack([1.0 - boxes[:, 2], boxes[:, 1], 1.0 - boxes[:, 0], boxes[:, 3]], axis=1)),
        lambda: (image, boxes))
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    image = color_jitter(tf.clip_by_value(image, 0.0, 1.0), tf.reshape(order, [4]), tf.reshape(factors, [4]))
    image = normalize(image, mean, std)
    image.set_shape([image_size, image_size, 3])
    matched_boxes, matched_labels = ssd_match(boxes, labels, default_boxes_xyxy, match_iou)
    return image, matched_boxes, matched_labels


def ssd_eval(image_bytes: tf.Tensor, *, image_size: int, mean: Sequence[float] = (0.485, 0.456, 0.406),
             std: Sequence[float] = (0.229, 0.224, 0.225)) -> tf.Tensor:
    image = tf.image.resize(decode_rgb(image_bytes), [image_size, image_size], method="bilinear", antialias=True)
    image = normalize(tf.clip_by_value(image, 0.0, 1.0), mean, std)
    image.set_shape([image_size, image_size, 3])
    return image


def to_bgr255(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """A [0, 1] RGB image as BGR in 0-255 minus `mean` over `std` (BGR): the reference's to_bgr255 Normalize."""
    return (tf.reverse(image, axis=[-1]) * 255.0 - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def maskrcnn_resize(image: tf.Tensor, width: tf.Tensor, height: tf.Tensor) -> tf.Tensor:
    resized = tf.image.resize(image, tf.stack([height, width]), method="bilinear", antialias=True)
    return tf.clip_by_value(resized, 0.0, 1.0)


def maskrcnn_train(image_bytes: tf.Tensor, targets_of, key: tf.Tensor, *, mean: Sequence[float] = (102.9801, 115.9465, 122.7717),
                   std: Sequence[float] = (1.0, 1.0, 1.0)):
    """One Mask R-CNN training sample. `targets_of(index, epoch)` is the NumPy side (augment.maskrcnn_targets
    on the reader's record, with the keyed flip): (out width, out height, flip, boxes, labels, masks).
    `key` is [seed, epoch, index]. Returns image (h, w, 3), boxes (n, 4), labels (n,), masks (n, h, w)."""
    image = decode_rgb(image_bytes)
    width, height, flip, boxes, labels, masks = tf.numpy_function(
        targets_of, [key], [tf.int32, tf.int32, tf.bool, tf.float32, tf.int64, tf.uint8], stateful=False)
    image = maskrcnn_resize(image, width, height)
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    image = to_bgr255(image, mean, std)
    image.set_shape([None, None, 3])
    return image, tf.reshape(boxes, [-1, 4]), tf.reshape(labels, [-1]), tf.reshape(masks, tf.stack([-1, height, width]))


def maskrcnn_eval(image_bytes: tf.Tensor, width: tf.Tensor, height: tf.Tensor, *,
                  mean: Sequence[float] = (102.9801, 115.9465, 122.7717), std: Sequence[float] = (1.0, 1.0, 1.0)) -> tf.Tensor:
    """An evaluation image resized to (width, height) (`augment.maskrcnn_resized_size`), BGR minus the mean."""
    image = to_bgr255(maskrcnn_resize(decode_rgb(image_bytes), width, height), mean, std)
    image.set_shape([None, None, 3])
    return image
