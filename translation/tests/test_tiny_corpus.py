"""The tiny corpus: gettext catalogs (a real .mo file written here) and the Ding dictionary format,
filtered to prose, de-duplicated, split deterministically; a missing source is named in one line."""

from __future__ import annotations

import struct

import pytest

from harness.errors import DatasetError
from translation import tiny_corpus


def write_mo(path, entries: dict[str, str]) -> None:
    """A GNU .mo catalog (the format msgfmt writes): header, sorted original and translation tables."""
    catalog = {"": "Content-Type: text/plain; charset=UTF-8\n", **entries}
    keys = sorted(catalog)
    originals = [key.encode() for key in keys]
    translations = [catalog[key].encode() for key in keys]
    count = len(keys)
    start = 7 * 4 + 16 * count
    table, data = [], b""
    for text in originals + translations:
        table.append((len(text), start + len(data)))
        data += text + b"\0"
    header = struct.pack("Iiiiiii", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, 0)
    path.write_bytes(header + b"".join(struct.pack("ii", *entry) for entry in table) + data)


ENTRIES = {
    "The file could not be opened for reading.": "Die Datei konnte nicht zum Lesen geöffnet werden.",
    "Show the version of this program and exit": "Die Version dieses Programms anzeigen und beenden",
    "could not open file %s for reading": "konnte Datei %s nicht zum Lesen öffnen",  # format string: dropped
    "Quit": "Beenden",  # too short: dropped
    "This sentence stays in English here.": "This sentence stays in English here.",  # untranslated: dropped
}
DING = """# Version :: 1.9
Haus {n} | Das Haus ist sehr alt. :: house | The house is very old.
Er erschien nicht. [ugs.] :: He failed to turn up at all.
Es fragt sich, ob das wahr ist. :: The question is whether this is true.
Die Tasche; der Beutel :: The bag; the pouch is here.
"""


def test_gettext_catalog_pairs_are_filtered_to_prose(tmp_path):
    write_mo(tmp_path / "demo.mo", ENTRIES)
    pairs = list(tiny_corpus.gettext_pairs(str(tmp_path / "*.mo")))
    assert [(p.english, p.german) for p in pairs] == [
        ("Show the version of this program and exit", "Die Version dieses Programms anzeigen und beenden"),
        ("The file could not be opened for reading.", "Die Datei konnte nicht zum Lesen geöffnet werden."),
    ]


def test_ding_example_sentences_without_annotations(tmp_path):
    (tmp_path / "de-en").write_text(DING, encoding="utf-8")
    pairs = [(p.english, p.german) for p in tiny_corpus.ding_pairs(str(tmp_path / "de-en"))]
    assert pairs == [("The house is very old.", "Das Haus ist sehr alt."),
                     ("He failed to turn up at all.", "Er erschien nicht."),
                     ("The question is whether this is true.", "Es fragt sich, ob das wahr ist.")]


def test_without_trans_de_en_one_line_says_what_to_install(tmp_path, capsys):
    write_mo(tmp_path / "demo.mo", ENTRIES)
    pairs = tiny_corpus.collect_pairs(str(tmp_path / "*.mo"), str(tmp_path / "absent"))
    assert len(pairs) == 2
    assert "apt-get install trans-de-en" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="apt-get install trans-de-en"):
        tiny_corpus.collect_pairs(str(tmp_path / "none*.mo"), str(tmp_path / "absent"))


def test_the_environment_variable_hides_trans_de_en(tmp_path, monkeypatch, capsys):
    write_mo(tmp_path / "demo.mo", ENTRIES)
    (tmp_path / "de-en").write_text(DING, encoding="utf-8")
    monkeypatch.setenv(tiny_corpus.TRANS_DE_EN_VARIABLE, str(tmp_path / "de-en"))
    assert {p.source for p in tiny_corpus.collect_pairs(str(tmp_path / "*.mo"))} == {"gettext", "trans-de-en"}
    monkeypatch.setenv(tiny_corpus.TRANS_DE_EN_VARIABLE, "none")
    assert {p.source for p in tiny_corpus.collect_pairs(str(tmp_path / "*.mo"))} == {"gettext"}
    assert "none not found: `apt-get install trans-de-en`" in capsys.readouterr().err


def test_splits_are_deterministic_and_disjoint():
    pairs = [tiny_corpus.Pair(f"sentence number {i} is here", f"Satz Nummer {i} ist hier", "gettext") for i in range(1000)]
    first, again, other = (tiny_corpus.split_pairs(pairs, seed) for seed in (3, 3, 4))
    assert first == again and first.test != other.test
    assert (len(first.test), len(first.dev), len(first.train)) == (500, 300, 200)
    english = [p.english for p in first.train + first.dev + first.test]
    assert len(set(english)) == 1000
    with pytest.raises(DatasetError, match="only 10 English-German pairs"):
        tiny_corpus.split_pairs(pairs[:10], 0)


@pytest.mark.skipif(not tiny_corpus.glob.glob(tiny_corpus.GETTEXT_GLOB), reason="no German gettext catalogs here")
def test_this_machine_has_real_pairs():
    pairs = tiny_corpus.collect_pairs(quiet=True)
    assert len(pairs) > 1000  # README "Tiny data": ~9,400 from gettext here, ~14,700 more from trans-de-en
    assert all(p.english != p.german and "\n" not in p.english for p in pairs)
