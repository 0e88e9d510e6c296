"""The metric and the decoder: WER against hand-counted edits and jiwer, its edge cases, greedy CTC decoding."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest

from speech_recognition.text import BLANK, LABELS, NUM_CLASSES, encode, greedy_decode
from speech_recognition.wer import error_counts, wer_by_id, word_error_rate

REFERENCES = ["THE CAT SAT ON THE MAT", "A DOG", "HELLO WORLD AGAIN"]
# edits counted by hand: 1 substitution (SAT->SIT) + 1 deletion (THE); 1 insertion (BIG); 0
HYPOTHESES = ["THE CAT SIT ON MAT", "A BIG DOG", "HELLO WORLD AGAIN"]


def test_wer_is_the_hand_counted_corpus_rate_and_equals_jiwer():
    assert word_error_rate(REFERENCES, HYPOTHESES) == pytest.approx(3 / 11, abs=1e-15)
    assert word_error_rate(REFERENCES, HYPOTHESES) == pytest.approx(jiwer.wer(REFERENCES, HYPOTHESES), abs=1e-15)
    assert error_counts(REFERENCES, HYPOTHESES) == (3, 11)
    # sums of per-batch counts give the corpus rate exactly (how evaluation adds batches and ranks)
    first, second = error_counts(REFERENCES[:1], HYPOTHESES[:1]), error_counts(REFERENCES[1:], HYPOTHESES[1:])
    assert (first[0] + second[0]) / (first[1] + second[1]) == word_error_rate(REFERENCES, HYPOTHESES)


def test_lower_is_better_and_perfect_is_zero():
    assert word_error_rate(REFERENCES, REFERENCES) == 0.0
    assert word_error_rate(REFERENCES, ["X Y Z"] * 3) > word_error_rate(REFERENCES, HYPOTHESES)


def test_edge_cases_are_defined_or_one_clear_line():
    assert word_error_rate(["A B C"], [""]) == 1.0  # empty hypothesis: all deletions
    assert word_error_rate(["", "A B"], ["X", "A B"]) == 0.5  # empty reference: its words are insertions
    assert word_error_rate(["A"], ["  A  "]) == 0.0  # whitespace does not make words
    with pytest.raises(ValueError, match="no word"):
        word_error_rate([""], ["A"])
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        word_error_rate(["A", "B"], ["A"])
    with pytest.raises(ValueError, match="no hypothesis for utterance 19-198-0002"):
        wer_by_id({"19-198-0001": "A", "19-198-0002": "B"}, {"19-198-0001": "A"})
    assert wer_by_id({"u1": "A B", "u2": "C"}, {"u2": "C", "u1": "A"}) == pytest.approx(1 / 3)


def test_labels_are_the_reference_labels_json():
    assert LABELS[BLANK] == "_" and LABELS[1] == "'" and LABELS[28] == " " and NUM_CLASSES == 29
    assert LABELS[2:28] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert encode("don't  stop").tolist() == [LABELS.index(c) for c in "DON'T STOP"]
    assert encode("a-b").tolist() == [LABELS.index("A"), LABELS.index("B")]  # unknown characters dropped


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    def ids(text):
        return [LABELS.index(c) for c in text]

    path = np.array(ids("__HH_EE_LL_LLOO  __") + ids("_"), dtype=np.int64)
    assert greedy_decode(path, len(path)) == "HELLO"
    path = np.array(ids("AA__ _BB  C") + ids("DDDD"), dtype=np.int64)
    assert greedy_decode(path, 11) == "A B C"  # frames past the utterance's length are ignored
    assert greedy_decode(np.zeros(5, np.int64), 5) == ""
