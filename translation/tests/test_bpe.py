"""BPE with subword-nmt: merges derived by hand (Sennrich et al. 2016's example), segmentation round
trips, the vocabulary order, and the reference's BPE token ids and detokenization."""

from __future__ import annotations

import pytest

from harness.errors import DatasetError
from translation import bpe


def test_first_merges_by_hand(tmp_path):
    # word counts low 5, lower 2, newest 6, widest 3 (the paper's example); symbols with the
    # end-of-word mark on the last one (codes version 0.2). Pair counts: (e,s) 9, (s,t</w>) 9,
    # (w,e) 8, (l,o) 7, ... The tie at 9 goes to the larger pair, ('s','t</w>'); then
    # (e, st</w>) has 9; then (l,o) 7 beats (w,e), which only lower still has (2).
    lines = ["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3
    codes = bpe.learn_codes(lines, tmp_path / "codes", merges=3)
    assert codes.read_text().splitlines() == ["#version: 0.2", "s t</w>", "e st</w>", "l o"]
    segmenter = bpe.Segmenter(codes)
    assert segmenter.segment("newest lowest low widest") == "n@@ e@@ w@@ est lo@@ w@@ est lo@@ w w@@ i@@ d@@ est"


def test_segmentation_round_trips_and_keeps_frequent_words_whole(tmp_path):
    lines = ["the house is small .", "the small house is old .", "das Haus ist klein ."] * 20 + ["unusualword appears once ."]
    segmenter = bpe.Segmenter(bpe.learn_codes(lines, tmp_path / "codes", merges=200))
    for line in lines:
        segmented = segmenter.segment(line)
        assert segmented.replace("@@ ", "") == line
    assert segmenter.segment("the house is small .") == "the house is small ."
    assert "@@" in segmenter.segment("unusualword")
    assert segmenter.segment("") == ""


def test_vocabulary_order_is_get_vocab():
    tokens = bpe.vocabulary_tokens(["b a@@ c", "c b", "a@@ c  d"])
    assert tokens == ["c", "b", "a@@", "d"]  # c 3, then b 2 and a@@ 2 in order of first appearance, d 1


def test_bpe_vocabulary_ids_and_decoding(tmp_path):
    (tmp_path / "vocab").write_text("\n".join([",", ".", "die", "ge@@", "für@@", "ch@@", "tete", "&quot;", "Mill@@", "en@@",
                                               "i@@", "um-@@", "Bu@@", "g", "Wie", "ist", "der"]) + "\n")
    vocabulary = bpe.BpeVocabulary(tmp_path / "vocab")
    assert vocabulary.size == 4 + 17 and vocabulary.tokens[:4] == ["<pad>", "<unk>", "<s>", "<\\s>"]
    assert vocabulary.encode_line(" , . unbekannt\n") == [bpe.BOS_ID, 4, 5, bpe.UNK_ID, bpe.EOS_ID]
    # a line of the reference README after BPE, as the model would output it (BOS .. EOS, then padding)
    line = "Wie ist der ge@@ für@@ ch@@ tete &quot; Mill@@ en@@ i@@ um-@@ Bu@@ g &quot; ."
    ids = vocabulary.encode_line(line) + [bpe.EOS_ID, bpe.PAD_ID]
    assert vocabulary.bpe_text(ids) == "Wie ist der gefürchtete &quot; Millenium-Bug &quot; ."
    assert vocabulary.decode([ids]) == ['Wie ist der gefürchtete "Millenium-Bug".']


def test_vocabulary_and_codes_errors_are_one_line(tmp_path):
    with pytest.raises(DatasetError, match="vocabulary missing"):
        bpe.BpeVocabulary(tmp_path / "nope")
    (tmp_path / "empty").write_text("")
    with pytest.raises(DatasetError, match="empty vocabulary"):
        bpe.BpeVocabulary(tmp_path / "empty")
    with pytest.raises(DatasetError, match="BPE codes missing"):
        bpe.Segmenter(tmp_path / "nope")
