"""ImageNet input pipeline in tf.data, the same samples and augmentation as `../pytorch/data.py`.

Folder layout (`dataset.py` writes it): `<data_dir>/train/<wnid>/*.JPEG`, `<data_dir>/val/<wnid>/*.JPEG`.
Files and labels come from `dataset.class_names` / `dataset.image_list`, which both frameworks use:
class indices are the sorted wnids and files are sorted, as torchvision's `ImageFolder` orders them.

Training (torchvision `RandomResizedCrop` + `RandomHorizontalFlip`, the MLPerf reference's
augmentation): a crop of 8%-100% (`data.min_crop_area`) of the area with aspect ratio 3/4-4/3
(10 tries, then the central crop: the algorithm and rounding of `RandomResizedCrop.get_params`),
resized to `image_size` (bilinear, antialiased like PIL), flipped with probability 1/2, normalized with the ImageNet mean/std.
JPEGs are decoded only inside the crop window (`decode_and_crop_jpeg`), which gives the same pixels.
Evaluation: the shorter side resized to `eval_resize` (torchvision `Resize(int)`), then the central
`image_size` square (`CenterCrop`), normalized.

Randomness is stateless and keyed by (seed, epoch, position in the epoch): the same image gets the
same crop whatever the number of workers or parallel calls, and a resumed run replays its epochs.
Each epoch is a fresh permutation of the training files (`epoch_order`), dropped to whole global
batches as the reference does, then sharded over the input pipelines of the strategy.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from harness.errors import DatasetError
from image_classification.dataset import image_list

if TYPE_CHECKING:
    from image_classification.config import Data

CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CROP_TRIES = 10


# -- the file lists ------------------------------------------------------------------------------

def split_files(data_dir: str | os.PathLike, split: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(paths, labels) of a split, from the one lister both frameworks use (`dataset.image_list`)."""
    items = image_list(data_dir, split, classes)
    return np.array([path for path, _ in items]), np.array([label for _, label in items], dtype=np.int32)


def epoch_order(num_files: int, seed: int, epoch: int, global_batch_size: int) -> np.ndarray:
    """This epoch's file order: a permutation keyed by (seed, epoch), cut to whole global batches."""
    order = np.random.default_rng([seed, epoch]).permutation(num_files)
    return order[: (num_files // global_batch_size) * global_batch_size]


# -- image transforms (pure functions of bytes/tensors and a seed) --------------------------------

def crop_window(height: tf.Tensor, width: tf.Tensor, seed: tf.Tensor, scale: Sequence[float],
                ratio: Sequence[float] = CROP_RATIO) -> tf.Tensor:
    """torchvision `RandomResizedCrop.get_params`, vectorized over its 10 tries: [top, left, h, w]."""
    height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    area = height_f * width_f
    draws = tf.random.stateless_uniform([CROP_TRIES, 4], seed=seed)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * draws[:, 0])
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = tf.exp(log_low + (log_high - log_low) * draws[:, 1])
    # Python's round() (used by torchvision) rounds half to even, as tf.round does
    w = tf.cast(tf.round(tf.sqrt(target_area * aspect)), tf.int32)
    h = tf.cast(tf.round(tf.sqrt(target_area / aspect)), tf.int32)
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    top = tf.cast(tf.floor(draws[:, 2] * tf.cast(height - h + 1, tf.float32)), tf.int32)
    left = tf.cast(tf.floor(draws[:, 3] * tf.cast(width - w + 1, tf.float32)), tf.int32)
    tries = tf.stack([top, left, h, w], axis=1)

    # no try fit: the central crop with the aspect ratio clamped to `ratio`
    in_ratio = width_f / height_f
    fallback_w = tf.where(in_ratio < ratio[0], width,
                          tf.where(in_ratio > ratio[1], tf.cast(tf.round(height_f * ratio[1]), tf.int32), width))
    fallback_h = tf.where(in_ratio < ratio[0], tf.cast(tf.round(width_f / ratio[0]), tf.int32), height)
    fallback = tf.stack([(height - fallback_h) // 2, (width - fallback_w) // 2, fallback_h, fallback_w])

    first_valid = tf.argmax(tf.cast(valid, tf.int32))
    return tf.where(tf.reduce_any(valid), tries[first_valid], fallback)


# PIL (torchvision's decoder) uses libjpeg's accurate integer DCT; tf's default is the fast one,
# which is off by up to ~7 levels. With this, both frameworks decode a JPEG to the same pixels.
DCT_METHOD = "INTEGER_ACCURATE"


def decode(image_bytes: tf.Tensor) -> tf.Tensor:
    """Any image file -> uint8 RGB [h, w, 3], JPEGs exactly as PIL decodes them."""
    image = tf.cond(tf.io.is_jpeg(image_bytes),
                    lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method=DCT_METHOD),
                    lambda: tf.io.decode_image(image_bytes, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def _decode_crop(image_bytes: tf.Tensor, seed: tf.Tensor, scale: Sequence[float]) -> tf.Tensor:
    """Decode only the random crop window of a JPEG (any other format: decode, then crop)."""
    def jpeg():
        shape = tf.io.extract_jpeg_shape(image_bytes)
        window = crop_window(shape[0], shape[1], seed, scale)
        return tf.io.decode_and_crop_jpeg(image_bytes, window, channels=3, dct_method=DCT_METHOD)

    def other():
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        shape = tf.shape(image)
        top, left, h, w = tf.unstack(crop_window(shape[0], shape[1], seed, scale))
        return image[top:top + h, left:left + w]

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def resize(image: tf.Tensor, size) -> tf.Tensor:
    """Bilinear with antialiasing, rounded to whole levels: PIL's `Image.resize(BILINEAR)` on uint8."""
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.clip_by_value(tf.round(image), 0.0, 255.0)


def normalize(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """Pixels in [0, 255] -> (x / 255 - mean) / std, float32 (torchvision ToTensor + Normalize)."""
    return (tf.cast(image, tf.float32) / 255.0 - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def train_transform(image_bytes: tf.Tensor, seed: tf.Tensor, image_size: int, min_crop_area: float,
                    mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """RandomResizedCrop(image_size, scale=(min_crop_area, 1)) + RandomHorizontalFlip + Normalize.

    `seed` ([2] ints) keys all the randomness of this image.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = _decode_crop(image_bytes, crop_seed, (min_crop_area, 1.0))
    image = resize(image, [image_size, image_size])
    flip = tf.random.stateless_uniform([], seed=flip_seed) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    return normalize(image, mean, std)


def resized_shorter_side(height: tf.Tensor, width: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """torchvision `Resize(size)` with an int: shorter side -> size, longer -> int(size * long / short)."""
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    new_long = tf.cast(tf.math.floor(size * tf.cast(long, tf.float64) / tf.cast(short, tf.float64)), tf.int32)
    new_h = tf.where(height <= width, size, new_long)
    new_w = tf.where(height <= width, new_long, size)
    return new_h, new_w


def eval_transform(image_bytes: tf.Tensor, image_size: int, eval_resize: int, mean: Sequence[float],
                   std: Sequence[float]) -> tf.Tensor:
    """Resize(eval_resize) + CenterCrop(image_size) + Normalize."""
    image = decode(image_bytes)
    shape = tf.shape(image)
    new_h, new_w = resized_shorter_side(shape[0], shape[1], eval_resize)
    image = resize(image, tf.stack([new_h, new_w]))
    # CenterCrop: int(round((size - crop) / 2)), half to even like Python's round
    top = tf.cast(tf.round(tf.cast(new_h - image_size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_w - image_size, tf.float32) / 2.0), tf.int32)
    image = image[top:top + image_size, left:left + image_size]
    image.set_shape([image_size, image_size, 3])
    return normalize(image, mean, std)


# -- datasets ------------------------------------------------------------------------------------

def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # batches in file order; the randomness comes from the keyed seeds
    return options


def train_dataset(paths: np.ndarray, labels: np.ndarray, order: np.ndarray, data: Data, *, seed: int,
                  epoch: int, batch_size: int, pipeline: int = 0, num_pipelines: int = 1) -> tf.data.Dataset:
    """One epoch of augmented (images, labels) batches of `batch_size` for input pipeline `pipeline`.

    `order` is the epoch's file order (`epoch_order`); this pipeline takes every
    `num_pipelines`-th entry. Each image's augmentation seed is (seed, epoch, position in `order`).
    """
    positions = np.arange(pipeline, len(order), num_pipelines, dtype=np.int64)
    selected = order[positions]
    keys = np.stack([np.full_like(positions, seed * 100_003 + epoch), positions], axis=1)
    dataset = tf.data.Dataset.from_tensor_slices((paths[selected], labels[selected], keys))

    def load(path, label, key):
        image = train_transform(tf.io.read_file(path), key, data.image_size, data.min_crop_area,
                                data.mean, data.std)
        return image, label

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


def padded_eval_files(paths: np.ndarray, labels: np.ndarray,
                      global_batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The val files padded to whole global batches with label -1 entries, which score nothing.

    Every replica then runs the same number of eval steps, and the full val set is scored once.
    """
    padding = -len(paths) % global_batch_size
    return (np.concatenate([paths, np.full(padding, "", dtype=paths.dtype)]),
            np.concatenate([labels, np.full(padding, -1, dtype=np.int32)]))


def eval_dataset(paths: np.ndarray, labels: np.ndarray, data: Data, *, batch_size: int, pipeline: int = 0,
                 num_pipelines: int = 1) -> tf.data.Dataset:
    """(images, labels) batches of the padded val files (`padded_eval_files`) of one input pipeline."""
    dataset = tf.data.Dataset.from_tensor_slices((paths[pipeline::num_pipelines], labels[pipeline::num_pipelines]))
    blank = tf.zeros([data.image_size, data.image_size, 3], tf.float32)

    def load(path, label):
        image = tf.cond(label >= 0, lambda: eval_transform(tf.io.read_file(path), data.image_size,
                                                           data.eval_resize, data.mean, data.std),
                        lambda: blank)
        return image, label

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


# -- a corrupt image: one line naming the file -----------------------------------------------------

def find_unreadable(paths: Iterable[str]) -> tuple[str, str] | None:
    """The first file tf cannot decode, with the decoder's message; None if all decode."""
    for path in paths:
        path = str(path)
        if not path:
            continue
        try:
            decode(tf.io.read_file(path))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError) as error:
            return path, (error.message or type(error).__name__).strip().splitlines()[0]
    return None


@contextlib.contextmanager
def naming_corrupt_files(files: Sequence[str], first_unread: Callable[[], int]) -> Iterator[None]:
    """Turn a decode error inside tf.data into a DatasetError naming the file.

    tf.data reports an undecodable image as an InvalidArgumentError from deep inside the iterator,
    without the file's name. When one escapes the block, the files from the first one not yet
    consumed (`first_unread()`, an index into `files`) are decoded one by one to find the culprit
    (then the ones before it). An error no file explains is re-raised unchanged: not the data's fault.
    """
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
        start = min(max(0, first_unread()), len(files))
        culprit = find_unreadable(files[start:]) or find_unreadable(files[:start])
        if culprit is None:
            raise
        path, message = culprit
        raise DatasetError(f"{path}: cannot decode image ({message}); the file is corrupt: prepare the "
                           "dataset again") from error
