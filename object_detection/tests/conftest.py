"""Shared fixtures of the COCO toolkit's tests: a small tiny COCO, made once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory):
    """`make_tiny` output with 40 train and 16 val images (MANIFEST.json included); read-only."""
    from object_detection import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("coco") / "tiny", seed=0, train_images=40, val_images=16)
