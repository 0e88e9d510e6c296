"""Shared fixtures of the DeepSpeech2 tests: the tiny LibriSpeech, synthesized once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_librispeech(tmp_path_factory):
    """`make_tiny` output (read-only for the tests): 240 train, 30 dev-clean, 20 dev-other utterances."""
    from speech_recognition import dataset

    folder = tmp_path_factory.mktemp("librispeech") / "tiny"
    dataset.make_tiny(folder, seed=0)
    return folder
