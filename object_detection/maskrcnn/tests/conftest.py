"""Shared fixtures of the Mask R-CNN tests: a small tiny COCO made once per session, float64 Keras."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory):
    """`make_tiny` output with 24 train and 8 val images; read-only."""
    from object_detection import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("coco") / "tiny", seed=0, train_images=24, val_images=8)


@pytest.fixture
def float64_keras():
    import keras

    keras.config.set_floatx("float64")  # also the optimizer's learning-rate variable
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_floatx("float32")
