"""The Moses scripts in Python: the reference's published tokenized lines, SGM extraction, corpus
cleaning rule by rule, detokenization."""

from __future__ import annotations

import pytest

from translation import moses

# The first lines of Europarl v7 de-en, raw, and as the GNMT reference's pipeline tokenized them: its
# README (mlcommons/training rnn_translator/README.md, "Text datasets") prints them after BPE; the
# lines below are those with the BPE separators removed ("ge@@ für@@ ch@@ tete" -> "gefürchtete").
EUROPARL = [
    ("en", "Although, as you will have seen, the dreaded 'millennium bug' failed to materialise, still the people in a "
           "number of countries suffered a series of natural disasters that truly were dreadful.",
     "Although , as you will have seen , the dreaded &apos; millennium bug &apos; failed to materialise , still the people "
     "in a number of countries suffered a series of natural disasters that truly were dreadful ."),
    ("en", "In the meantime, I should like to observe a minute' s silence, as a number of Members have requested, on behalf "
           "of all the victims concerned, particularly those of the terrible storms, in the various countries of the European Union.",
     "In the meantime , I should like to observe a minute &apos; s silence , as a number of Members have requested , on "
     "behalf of all the victims concerned , particularly those of the terrible storms , in the various countries of the "
     "European Union ."),
    ("de", "Ich erkläre die am Freitag, dem 17. Dezember unterbrochene Sitzungsperiode des Europäischen Parlaments für "
           "wiederaufgenommen, wünsche Ihnen nochmals alles Gute zum Jahreswechsel und hoffe, daß Sie schöne Ferien hatten.",
     "Ich erkläre die am Freitag , dem 17. Dezember unterbrochene Sitzungsperiode des Europäischen Parlaments für "
     "wiederaufgenommen , wünsche Ihnen nochmals alles Gute zum Jahreswechsel und hoffe , daß Sie schöne Ferien hatten ."),
    ("de", 'Wie Sie feststellen konnten, ist der gefürchtete "Millenium-Bug " nicht eingetreten. Doch sind Bürger einiger '
           "unserer Mitgliedstaaten Opfer von schrecklichen Naturkatastrophen geworden.",
     "Wie Sie feststellen konnten , ist der gefürchtete &quot; Millenium-Bug &quot; nicht eingetreten . Doch sind Bürger "
     "einiger unserer Mitgliedstaaten Opfer von schrecklichen Naturkatastrophen geworden ."),
    ("de", "Heute möchte ich Sie bitten - das ist auch der Wunsch einiger Kolleginnen und Kollegen -, allen Opfern der Stürme, "
           "insbesondere in den verschiedenen Ländern der Europäischen Union, in einer Schweigeminute zu gedenken.",
     "Heute möchte ich Sie bitten - das ist auch der Wunsch einiger Kolleginnen und Kollegen - , allen Opfern der Stürme , "
     "insbesondere in den verschiedenen Ländern der Europäischen Union , in einer Schweigeminute zu gedenken ."),
]


@pytest.mark.parametrize("language, raw, tokenized", EUROPARL)
def test_tokenization_reproduces_the_references_published_lines(language, raw, tokenized):
    assert moses.tokenize(raw, language) == tokenized


def test_escaping_and_blank_lines():
    assert moses.tokenize('a & b | c < d > e [f] "g"', "en") == "a &amp; b &#124; c &lt; d &gt; e &#91; f &#93; &quot; g &quot;"
    assert moses.tokenize("  ", "de") == "  "  # tokenizer.perl prints /^\s*$/ lines unchanged


def test_detokenization_undoes_tokenization():
    assert moses.detokenize(EUROPARL[0][2]) == EUROPARL[0][1]
    # the raw "minute' s" (a typo in Europarl) comes back as English's contraction "minute 's"
    assert "a minute 's silence, as" in moses.detokenize(EUROPARL[1][2])
    # the German line's only change: the stray space inside the quotes goes
    assert moses.detokenize(EUROPARL[3][2]).startswith('Wie Sie feststellen konnten, ist der gefürchtete "Millenium-Bug" nicht')


def test_sgm_segments_as_input_from_sgm():
    sgm = ('<srcset setid="newstest2014" srclang="any">\n<doc sysid="ref" docid="1" genre="news" origlang="en">\n'
           '<p>\n<SEG id="1">  Gutach:  Noch mehr\tSicherheit für Fußgänger </seg>\n'
           '<seg id="2">\nüber zwei\n Zeilen</seg>\n'
           '<seg id="3">geschütztes\u00a0Leerzeichen</seg>\n</p>\n</doc>\n</srcset>\n').encode()
    assert moses.input_from_sgm(sgm) == [
        "Gutach: Noch mehr Sicherheit für Fußgänger",  # ASCII whitespace runs -> one space, trimmed
        "über zwei Zeilen",  # a segment over three lines, joined without separators ("\n" + " Zeilen")
        "geschütztes\u00a0Leerzeichen",  # the script reads bytes: a no-break space is not whitespace
    ]


def test_clean_corpus_rules():
    long = " ".join(["w"] * 81)
    pairs = [
        ("ein Satz", "a sentence"),  # kept
        ("", "empty"),  # empty side
        ("  ", "blank"),  # blank side
        (long, "x"),  # more than 80 words
        (" ".join(["w"] * 80), " ".join(["v"] * 9)),  # 80 words, ratio 80/9 < 9: kept
        (" ".join(["w"] * 19), "a b"),  # ratio 9.5 > 9
        (" ".join(["w"] * 18), "a b"),  # ratio 9: kept
        ("x" * 1001, "y"),  # a word longer than 1000 characters
        ("mit | Strich  und\u00a0Raum ", "bar"),  # | removed, Unicode whitespace collapsed, trimmed
    ]
    kept = list(moses.clean_corpus(pairs))
    assert kept == [("ein Satz", "a sentence"), (pairs[4][0], pairs[4][1]), (pairs[6][0], "a b"),
                    ("mit Strich und Raum", "bar")]


def test_clean_corpus_keeps_bars_of_a_factored_corpus():
    assert list(moses.clean_corpus([("a|N b|V", "c|N"), ("d|X", "e")])) == [("a|N b|V", "c|N"), ("d|X", "e")]
