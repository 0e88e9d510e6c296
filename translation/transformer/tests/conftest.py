"""Shared fixtures of the Transformer tests: small tiny-format datasets, made once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """`make_tiny` layout with 1,200 training pairs and 60 test pairs (quick epochs and evaluations)."""
    from translation.transformer import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("wmt") / "small", seed=0, vocab_size=600, test=60, dev=20,
                             train=1200)
