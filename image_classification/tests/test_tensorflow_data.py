"""The tf.data pipeline: torchvision's crop algorithm, keyed randomness, eval padding, corrupt files."""

from __future__ import annotations

import importlib.util
import sys

# torch.optim loads triton lazily, and libtriton loaded after TensorFlow's LLVM crashes the process:
# load it first, so a session that runs PyTorch tests after these ones survives
if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401

# isort: split
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from harness.errors import DatasetError
from image_classification import dataset
from image_classification.config import Data
from image_classification.tensorflow import data

DATA = Data(image_size=32, eval_resize=37)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet") / "tiny"
    dataset.make_tiny(root, seed=0, num_classes=3, train_per_class=6, val_per_class=3)
    return root


def get_params(height, width, draws, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params, line for line, reading its uniforms from `draws`
    (its `int(round(x))` written `round(x)`: the same integer)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for attempt in range(10):
        target_area = area * (scale[0] + (scale[1] - scale[0]) * draws[attempt, 0])
        aspect_ratio = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draws[attempt, 1])
        w = round(math.sqrt(target_area * aspect_ratio))
        h = round(math.sqrt(target_area / aspect_ratio))
        if 0 < w <= width and 0 < h <= height:
            i = math.floor(draws[attempt, 2] * (height - h + 1))  # torch.randint(0, height - h + 1)
            j = math.floor(draws[attempt, 3] * (width - w + 1))
            return i, j, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = round(w / min(ratio))
    elif in_ratio > max(ratio):
        h = height
        w = round(h * max(ratio))
    else:
        w = width
        h = height
    return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize("height,width", [(375, 500), (500, 333), (64, 64), (20, 900), (900, 20), (7, 5)])
def test_crop_window_is_torchvision_get_params(height, width):
    for index in range(40):
        seed = tf.constant([7, index], tf.int64)
        draws = tf.random.stateless_uniform([data.CROP_TRIES, 4], seed=seed).numpy().astype(np.float64)
        window = data.crop_window(tf.constant(height), tf.constant(width), seed, (0.08, 1.0)).numpy()
        expected = get_params(height, width, draws)
        assert window.tolist() == list(expected), index
        top, left, h, w = window
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width and h > 0 and w > 0


def test_crop_window_falls_back_to_the_clamped_central_crop():
    # a 1x1000 strip: no try can fit an aspect ratio within 3/4..4/3
    window = data.crop_window(tf.constant(10), tf.constant(1000), tf.constant([0, 0], tf.int64), (0.08, 1.0))
    assert window.numpy().tolist() == [0, (1000 - 13) // 2, 10, 13]


def test_decode_and_crop_gives_the_pixels_of_decode_then_crop(tiny):
    path = min((tiny / "train").glob("*/*.JPEG"))
    raw = tf.io.read_file(str(path))
    full = data.decode(raw).numpy()
    seed = tf.constant([3, 4], tf.int64)
    top, left, h, w = data.crop_window(full.shape[0], full.shape[1], seed, (0.08, 1.0)).numpy()
    cropped = data._decode_crop(raw, seed, (0.08, 1.0)).numpy()
    np.testing.assert_array_equal(cropped, full[top:top + h, left:left + w])


def test_resized_shorter_side_is_torchvision_resize_int():
    for height, width in [(375, 500), (500, 375), (333, 333), (81, 1000)]:
        new_h, new_w = (int(v) for v in data.resized_shorter_side(height, width, 256))
        short, long = min(height, width), max(height, width)
        expected_long = int(256 * long / short)
        assert (new_h, new_w) == ((256, expected_long) if height <= width else (expected_long, 256))


def test_epoch_order_is_keyed_by_seed_and_epoch_and_cut_to_whole_batches():
    first = data.epoch_order(103, seed=1, epoch=1, global_batch_size=10)
    assert len(first) == 100 and len(set(first)) == 100
    np.testing.assert_array_equal(first, data.epoch_order(103, seed=1, epoch=1, global_batch_size=10))
    assert not np.array_equal(first, data.epoch_order(103, seed=1, epoch=2, global_batch_size=10))
    assert not np.array_equal(first, data.epoch_order(103, seed=2, epoch=1, global_batch_size=10))


def test_augmentation_does_not_depend_on_the_number_of_input_pipelines(tiny):
    classes = dataset.class_names(tiny)
    paths, labels = data.split_files(tiny, "train", classes)
    assert labels.tolist() == sorted(labels.tolist()) and set(labels.tolist()) == {0, 1, 2}
    order = data.epoch_order(len(paths), seed=5, epoch=3, global_batch_size=4)
    one = [batch for batch in data.train_dataset(paths, labels, order, DATA, seed=5, epoch=3, batch_size=4)]
    images_one = np.concatenate([images.numpy() for images, _ in one])
    for pipeline in range(2):
        shard = data.train_dataset(paths, labels, order, DATA, seed=5, epoch=3, batch_size=2,
                                   pipeline=pipeline, num_pipelines=2)
        images = np.concatenate([images.numpy() for images, _ in shard])
        np.testing.assert_array_equal(images, images_one[pipeline::2])
    assert images_one.shape == (16, 32, 32, 3) and images_one.dtype == np.float32
    # normalized: roughly zero mean, unit scale
    assert abs(images_one.mean()) < 1.0 and 0.3 < images_one.std() < 3.0
    labels_one = np.concatenate([labels.numpy() for _, labels in one])
    np.testing.assert_array_equal(labels_one, labels[order])


def test_eval_is_padded_to_whole_batches_and_scores_every_image_once(tiny):
    classes = dataset.class_names(tiny)
    paths, labels = data.split_files(tiny, "val", classes)
    padded_paths, padded_labels = data.padded_eval_files(paths, labels, 4)
    assert len(padded_paths) == 12 and (padded_labels >= 0).sum() == 9
    seen = []
    for pipeline in range(2):
        for images, batch_labels in data.eval_dataset(padded_paths, padded_labels, DATA, batch_size=2,
                                                      pipeline=pipeline, num_pipelines=2):
            assert images.shape == (2, 32, 32, 3)
            seen.extend(batch_labels.numpy().tolist())
    assert sorted(label for label in seen if label >= 0) == sorted(labels.tolist())


def test_a_corrupt_jpeg_is_reported_as_one_line_naming_it(tiny, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    classes = dataset.class_names(copy)
    paths, labels = data.split_files(copy, "train", classes)
    victim = Path(paths[7])
    victim.write_bytes(victim.read_bytes()[:200] + b"\x00" * 50)  # header kept, scan data gone
    order = data.epoch_order(len(paths), seed=1, epoch=1, global_batch_size=4)
    batches = data.train_dataset(paths, labels, order, DATA, seed=1, epoch=1, batch_size=4)
    epoch_files = paths[order]
    consumed = 0
    with pytest.raises(DatasetError) as raised, data.naming_corrupt_files(epoch_files, lambda: consumed * 4):
        for consumed, _ in enumerate(batches):  # `consumed` is read by the lambda  # noqa: B007
            pass
    message = str(raised.value)
    assert message.startswith(f"{victim}: cannot decode image") and "\n" not in message


def test_an_error_no_file_explains_is_not_blamed_on_the_data(tiny):
    classes = dataset.class_names(tiny)
    paths, _ = data.split_files(tiny, "val", classes)
    with pytest.raises(tf.errors.InvalidArgumentError), data.naming_corrupt_files(paths, lambda: 0):
        tf.reshape(tf.zeros([3]), [2]).numpy()
