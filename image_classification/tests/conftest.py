"""Shared fixtures of the ResNet tests: the tiny ImageNet-layout dataset, made once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory):
    """`make_tiny` output (10 classes x 40 train + 10 val JPEGs, with MANIFEST.json); read-only."""
    from image_classification import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("imagenet") / "tiny", seed=0)
