"""Shared fixtures of the SSD tests: a small tiny COCO, made once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory):
    """`make_tiny` output with 32 train and 8 val images; read-only."""
    from object_detection import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("coco") / "tiny", seed=0, train_images=32, val_images=8)
