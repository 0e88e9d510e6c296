"""Real English-German sentence pairs from what a Debian machine carries, for the tiny datasets.

Two sources, both real human translations (../shared/data/README.md):

- the gettext catalogs `/usr/share/locale/de/LC_MESSAGES/*.mo` (English msgid -> German msgstr) of
  whatever programs are installed, read with the standard `gettext` module; present on every
  Debian machine that has translated programs;
- the Ding dictionary of Debian's `trans-de-en` (`/usr/share/trans/de-en`, lines
  `German :: English`, alternatives separated by ` | `), whose example sentences are clean pairs;
  optional: when it is absent, one line says to `apt-get install trans-de-en`. Setting
  `MLBENCH_TRANS_DE_EN` to another path (e.g. `none`) hides it: the tiny data of a machine without
  it, made on one that has it (the smoke calibration checks its target on both).

Pairs are filtered to one-line prose of 5-30 English words (no format strings, markup or command
synopses), de-duplicated by the English side and split into train / dev / test deterministically
from a seed. Both translation benchmarks (Transformer, GNMT) build their tiny data from these
pairs through their own pipelines (`translation/<model>/dataset.py`).
"""

from __future__ import annotations

import dataclasses
import gettext
import glob
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harness.errors import DatasetError
from harness.progress import info

GETTEXT_GLOB = "/usr/share/locale/de/LC_MESSAGES/*.mo"
TRANS_DE_EN = "/usr/share/trans/de-en"
TRANS_DE_EN_VARIABLE = "MLBENCH_TRANS_DE_EN"  # where to read trans-de-en from instead ("none": nowhere)
MIN_WORDS, MAX_WORDS = 5, 30
# Format strings, markup, code and command synopses are not prose: a model cannot learn them from
# a few thousand examples, and they would only add noise to a smoke BLEU.
NOT_PROSE = re.compile(r"[%{}<>`\\_=|@#$*\[\]~/]|--|\.\.\.|https?:")
# Ding annotations: {m} {pl} [coll.] (explanations)
DING_ANNOTATION = re.compile(r"\s*(\{[^}]*\}|\[[^\]]*\]|\([^)]*\))")
SENTENCE_END = re.compile(r"[.!?]$")


@dataclasses.dataclass(frozen=True)
class Pair:
    english: str
    german: str
    source: str  # "gettext" or "trans-de-en"


def _is_prose(english: str, german: str) -> bool:
    if not english or not german or english == german:
        return False
    if any(c in text for text in (english, german) for c in "\n\r\t"):
        return False
    if not MIN_WORDS <= len(english.split()) <= MAX_WORDS or len(german.split()) > 2 * MAX_WORDS:
        return False
    return not (NOT_PROSE.search(english) or NOT_PROSE.search(german))


def gettext_pairs(pattern: str = GETTEXT_GLOB) -> Iterator[Pair]:
    """(English msgid, German msgstr) of every readable catalog, in sorted file order."""
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, "rb") as handle:
                catalog = gettext.GNUTranslations(handle)._catalog
        except (OSError, UnicodeDecodeError, ValueError):  # a catalog in another charset, a broken file
            continue
        for english, german in catalog.items():
            if isinstance(english, str) and isinstance(german, str):  # plural entries are tuples
                english, german = " ".join(english.split()), " ".join(german.split())
                if _is_prose(english, german):
                    yield Pair(english, german, "gettext")


def ding_pairs(path: str = TRANS_DE_EN) -> Iterator[Pair]:
    """Example sentences of the Ding dictionary: `German :: English`, alternatives split on ` | `."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or " :: " not in line:
                continue
            german, english = line.rstrip("\n").split(" :: ", 1)
            germans, englishes = german.split(" | "), english.split(" | ")
            if len(germans) != len(englishes):
                continue
            for de, en in zip(germans, englishes):
                if ";" in de or ";" in en:  # synonyms, not one sentence
                    continue
                de, en = DING_ANNOTATION.sub("", de).strip(), DING_ANNOTATION.sub("", en).strip()
                if SENTENCE_END.search(en) and SENTENCE_END.search(de) and _is_prose(en, de):
                    yield Pair(en, de, "trans-de-en")


def trans_de_en_path() -> str:
    """Debian's trans-de-en file, or the path `MLBENCH_TRANS_DE_EN` names instead."""
    return os.environ.get(TRANS_DE_EN_VARIABLE) or TRANS_DE_EN


def collect_pairs(gettext_pattern: str = GETTEXT_GLOB, ding_path: str | None = None, *,
                  quiet: bool = False) -> list[Pair]:
    """Every usable pair on this machine, de-duplicated by English text (first source wins), sorted."""
    ding_path = ding_path or trans_de_en_path()
    pairs: dict[str, Pair] = {}
    if os.path.isfile(ding_path):
        for pair in ding_pairs(ding_path):
            pairs.setdefault(pair.english, pair)
    elif not quiet:
        info(f"{ding_path} not found: `apt-get install trans-de-en` adds ~14,000 sentence pairs to the tiny data")
    for pair in gettext_pairs(gettext_pattern):
        pairs.setdefault(pair.english, pair)
    if not pairs:
        raise DatasetError(f"no English-German pairs on this machine: neither {gettext_pattern} nor {ding_path}; "
                           "install German translations (`apt-get install trans-de-en`)")
    return [pairs[english] for english in sorted(pairs)]


@dataclasses.dataclass(frozen=True)
class TinySplits:
    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]

    def counts(self) -> dict:
        def by_source(pairs):
            return {source: sum(p.source == source for p in pairs) for source in ("gettext", "trans-de-en")}
        return {name: {"pairs": len(pairs), **by_source(pairs)} for name, pairs in
                (("train", self.train), ("dev", self.dev), ("test", self.test))}


def split_pairs(pairs: list[Pair], seed: int, *, test: int = 500, dev: int = 300, train: int | None = None,
                min_train: int = 100) -> TinySplits:
    """A seeded permutation cut into test, dev and train (at most `train` pairs)."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    shuffled = [pairs[index] for index in order]
    if len(shuffled) < test + dev + min_train:
        raise DatasetError(f"only {len(pairs)} English-German pairs on this machine, {test + dev + min_train} needed; "
                           "`apt-get install trans-de-en` adds ~14,000")
    held_out_test, held_out_dev = shuffled[:test], shuffled[test:test + dev]
    rest = shuffled[test + dev:]
    return TinySplits(rest if train is None else rest[:train], held_out_dev, held_out_test)


def write_text(path: str | os.PathLike, lines: list[str]) -> Path:
    """One sentence per line, UTF-8, '\\n' line ends (the layout of the WMT text files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(line + "\n")
    return path


def pairs_digest(pairs: list[Pair]) -> str:
    """SHA-256 of the pairs, recorded in meta.json: two machines with other catalogs differ here."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(f"{pair.english}\t{pair.german}\n".encode())
    return digest.hexdigest()
