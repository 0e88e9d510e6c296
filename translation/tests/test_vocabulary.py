"""The sentencepiece vocabulary: the same text gives the same model file, decoding gives the text back."""

from __future__ import annotations

import hashlib

import pytest

from harness.errors import DatasetError
from translation.vocabulary import EOS_ID, PAD_ID, Vocabulary, train_vocabulary

TEXT = [f"Satz {i}: Die Häuser in der Straße Nummer {i * 7} sehen alle gleich aus – sagt er." for i in range(200)] + \
       [f"Sentence {i}: the houses in street number {i * 7} all look alike, he says." for i in range(200)]


def test_training_is_deterministic_and_decoding_is_exact(tmp_path):
    first = train_vocabulary(TEXT, tmp_path / "a.model", 300)
    second = train_vocabulary(TEXT, tmp_path / "b.model", 300)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    vocabulary = Vocabulary(first)
    assert vocabulary.size == 300
    lines = ["Die Häuser sehen gleich aus.", "Ünïcödé ☃ and  CAPS 12.345,6 never seen"]
    encoded = vocabulary.encode(lines)
    assert all(ids[-1] == EOS_ID and PAD_ID not in ids for ids in encoded)
    # identity normalization + byte fallback: unseen characters survive; runs of spaces collapse
    assert vocabulary.decode(encoded) == ["Die Häuser sehen gleich aus.", "Ünïcödé ☃ and CAPS 12.345,6 never seen"]
    assert vocabulary.decode([[*encoded[0][:-1], EOS_ID, 17, 18]]) == ["Die Häuser sehen gleich aus."]  # cut at EOS


def test_a_broken_model_file_is_one_line(tmp_path):
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(DatasetError, match="not a sentencepiece model") as error:
        Vocabulary(tmp_path / "bad.model")
    assert "\n" not in str(error.value)
