"""Test helper: PyTorch training samples as the TensorFlow model takes them (`tensorflow/data.py`'s padded_batch)."""

from __future__ import annotations

from object_detection.maskrcnn.tensorflow.data import padded_batch as _padded_batch


def padded_batch(images: list, targets: list) -> tuple:
    """(3, h, w) torch images and their targets -> (padded NHWC images, sizes, padded targets)."""
    return _padded_batch([image.permute(1, 2, 0).numpy() for image in images],
                         [{key: value.numpy() for key, value in target.items()} for target in targets])
