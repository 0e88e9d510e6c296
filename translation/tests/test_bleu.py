"""BLEU: sacrebleu's command line agrees with our function, identity scores 100, bad input is one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from translation import bleu
from translation.bleu import BleuInputError, corpus_bleu, file_bleu

REFERENCES = [
    "Die Datei konnte nicht geöffnet werden.",
    "Er erschien nicht zum Treffen, obwohl er es versprochen hatte.",
    "Die Häuser sehen alle gleich aus.",
    "Im Jahr 2014 kostete es 1.000,50 Euro – viel Geld!",
    "„Wer ist da?“, fragte sie.",
]
HYPOTHESES = [
    "Die Datei kann nicht geöffnet werden.",
    "Er kam nicht zum Treffen, obwohl er es versprochen hatte.",
    "Die Häuser sehen gleich aus.",
    "im jahr 2014 kostete es 1.000,50 euro - viel geld!",
    "Wer ist dort?, fragte sie.",
]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_our_bleu_agrees_with_the_sacrebleu_command_line(tmp_path):
    hypotheses, references = write(tmp_path / "hyp.de", HYPOTHESES), write(tmp_path / "ref.de", REFERENCES)
    ours = file_bleu(hypotheses, references)
    completed = subprocess.run([sys.executable, "-m", "sacrebleu", str(references), "-i", str(hypotheses),
                                "-tok", "intl", "-lc", "-b"], capture_output=True, text=True, check=True)
    assert abs(ours.score - float(completed.stdout.strip())) <= 0.01
    assert 20 < ours.score < 90  # a partial match: neither trivial end of the scale
    assert ours.fraction == pytest.approx(ours.score / 100)
    assert "tok:intl" in ours.signature and "case:lc" in ours.signature and ours.signature == bleu.signature()


def test_uncased_intl_tokenization():
    # case and the intl tokenizer's punctuation splitting do not change the score; digits keep their
    # separators ("1.000,50" stays one token, as mteval-v14 / t2t bleu_tokenize)
    assert corpus_bleu(["DIE DATEI KONNTE NICHT GEÖFFNET WERDEN."], [REFERENCES[0]]).score == pytest.approx(100.0)
    assert corpus_bleu(["Er zahlte 1.000,50 Euro dafür."], ["Er zahlte 1.000,50 Euro dafür."]).score == pytest.approx(100.0)


def test_a_translation_identical_to_the_reference_scores_100(tmp_path):
    assert file_bleu(write(tmp_path / "h", REFERENCES), write(tmp_path / "r", REFERENCES)).score == pytest.approx(100.0)


@pytest.mark.parametrize("hypothesis, message", [
    ([], "the translation file is empty"),
    (HYPOTHESES[:-1], "4 lines, but the reference"),
    ([*HYPOTHESES, "eine Zeile zu viel"], "6 lines, but the reference"),
])
def test_bad_translation_files_are_one_line(tmp_path, hypothesis, message):
    hypotheses = write(tmp_path / "hyp", hypothesis)
    with pytest.raises(BleuInputError, match=message) as error:
        file_bleu(hypotheses, write(tmp_path / "ref", REFERENCES))
    assert "\n" not in str(error.value)


def test_missing_file_through_the_command_line(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "translation.bleu", str(tmp_path / "nope"),
                                str(write(tmp_path / "ref", REFERENCES))], capture_output=True, text=True, check=False)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: translation file not found"]


def test_empty_lines_inside_a_translation_count_as_empty_output():
    # an untrained model may output nothing for a sentence: a valid, low score, not an error
    score = corpus_bleu(["", *HYPOTHESES[1:]], REFERENCES)
    assert 0 < score.score < corpus_bleu(HYPOTHESES, REFERENCES).score
