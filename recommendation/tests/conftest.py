"""Shared fixtures of the NCF tests: the tiny dataset (made once per session) and the real ml-100k."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """`make_tiny(seed=0)` output (600 users, structured tastes, 999 eval negatives); read-only."""
    from recommendation import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("ncf") / "tiny", seed=0)


@pytest.fixture(scope="session")
def ml100k_data(tmp_path_factory) -> Path:
    """The real ml-100k (from the recbole wheel, fetched with pip) prepared in the NCF layout.

    The wheel is cached in $MLBENCH_CACHE (default ~/.cache/mlbench) so reruns do not download it.
    """
    from recommendation.ml100k import prepare_ml100k

    cache = Path(os.environ.get("MLBENCH_CACHE", Path.home() / ".cache" / "mlbench")) / "ml100k"
    return prepare_ml100k(cache, tmp_path_factory.mktemp("ncf") / "ml100k", seed=0)
