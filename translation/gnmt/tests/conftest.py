"""Shared fixtures of the GNMT tests: the tiny dataset, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """`make_tiny(seed=0)` output (the real gettext / trans-de-en pairs through the reference's
    pipeline); read-only."""
    from translation.gnmt import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("gnmt") / "tiny", seed=0)


@pytest.fixture(scope="session")
def small_tiny_data(tmp_path_factory) -> Path:
    """The tiny data's layout and test pairs with 2,000 training pairs and a BPE of 500 merges: what the
    training-loop tests run on, in seconds (the smoke config's runs use `tiny_data`)."""
    from translation.gnmt import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("gnmt") / "small", seed=0, merges=500, train_pairs=2000)
