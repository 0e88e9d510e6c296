"""The Moses scripts that WMT preprocessing runs, in Python: SGM extraction, tokenization, corpus
cleaning and detokenization (the GNMT reference's pipeline).

The MLPerf GNMT reference (mlcommons/training rnn_translator/download_dataset.sh, mosesdecoder at
8c5eaa1a) runs, in this order:

- `scripts/ems/support/input-from-sgm.perl` on the newstest SGM files -> `input_from_sgm`: the text
  of every `<seg ...>...</seg>` (a segment may span lines), whitespace runs collapsed to one space,
  trimmed. The script reads bytes (no `binmode`), so only ASCII whitespace counts; done on bytes here.
- `scripts/tokenizer/tokenizer.perl -q -l LANG` -> `tokenize`: sacremoses' `MosesTokenizer`, the
  field's Python port of that script, with its defaults as the reference ran it (no aggressive
  hyphen splitting, HTML escaping of & | < > ' " [ ] on). As the script, a blank line is written
  back unchanged. sacremoses follows a later tokenizer.perl than 8c5eaa1a: a few rare inputs may
  be tokenized differently (README "Data").
- `scripts/training/clean-corpus-n.perl CORPUS de en CLEAN 1 80` -> `clean_corpus`: drop a pair
  when a side is empty, has fewer than 1 or more than 80 words, when one side has more than 9
  times the words of the other (the script's default ratio), or when a word exceeds 1000
  characters; `|` is removed and whitespace collapsed on the lines it keeps.
- `scripts/tokenizer/detokenizer.perl` on the translations before BLEU -> `detokenize`: the
  reference calls it without `-l`, so with the script's default language, English, even for the
  German output; so does this function by default.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

from sacremoses import MosesDetokenizer, MosesTokenizer

# clean-corpus-n.perl's defaults and the reference's arguments (download_dataset.sh: `... 1 80`)
CLEAN_MIN_WORDS, CLEAN_MAX_WORDS = 1, 80
CLEAN_RATIO = 9.0  # clean-corpus-n.perl `my $ratio = 9;`
CLEAN_MAX_WORD_LENGTH = 1000  # clean-corpus-n.perl `my $max_word_length = 1000;`
DETOKENIZER_LANGUAGE = "en"  # detokenizer.perl's default: the reference passes no -l

_SEG_OPEN_ONLY = re.compile(rb"<seg[^>]+>\s*$", re.IGNORECASE)
_SEG_OPEN = re.compile(rb"<seg[^>]+>\s*(.*)\s*$", re.IGNORECASE)
_SEG_WHOLE = re.compile(rb"<seg[^>]+>\s*(.*)\s*</seg>", re.IGNORECASE)
_BYTES_WHITESPACE = re.compile(rb"\s+")
# Perl's \s on a utf8 string (clean-corpus-n.perl reads with binmode :utf8) is Unicode whitespace;
# Python's \s on str also matches the ASCII separators \x1c-\x1f, which Perl's does not
_PERL_SPACE = re.compile(r"[^\S\x1c-\x1f]+")


def input_from_sgm(data: bytes) -> list[str]:
    """The segments of an SGM file, one line each (input-from-sgm.perl, line for line)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":  # the file's final newline ends the last line, it does not start one
        lines.pop()
    segments = []
    position = 0
    while position < len(lines):
        line = lines[position]
        position += 1
        # a <seg> whose text starts on a following line, then a <seg> not yet closed: join the next
        # lines (the script's `$line .= <STDIN>; chop` joins them without a separator)
        while _SEG_OPEN_ONLY.search(line) and position < len(lines):
            line += lines[position]
            position += 1
        while _SEG_OPEN.search(line) and not _SEG_WHOLE.search(line) and position < len(lines):
            line += lines[position]
            position += 1
        match = _SEG_WHOLE.search(line)
        if match:
            text = _BYTES_WHITESPACE.sub(b" ", match.group(1))
            text = text.removeprefix(b" ").removesuffix(b" ")
            segments.append(text.decode("utf-8"))
    return segments


@functools.lru_cache(maxsize=8)
def _tokenizer(language: str) -> MosesTokenizer:
    return MosesTokenizer(lang=language)


@functools.lru_cache(maxsize=8)
def _detokenizer(language: str) -> MosesDetokenizer:
    return MosesDetokenizer(lang=language)


def tokenize(line: str, language: str) -> str:
    """tokenizer.perl -l LANGUAGE on one line (no line end): space-separated tokens, escaped."""
    if not line.strip():  # tokenizer.perl prints lines matching /^\s*$/ as they are
        return line
    return _tokenizer(language).tokenize(line, aggressive_dash_splits=False, return_str=True, escape=True)


def tokenize_lines(lines: Iterable[str], language: str) -> Iterator[str]:
    for line in lines:
        yield tokenize(line, language)


def detokenize(line: str, language: str = DETOKENIZER_LANGUAGE) -> str:
    """detokenizer.perl on one tokenized line: tokens joined back into text, escapes undone."""
    return _detokenizer(language).detokenize(line.split(), return_str=True, unescape=True)


def _normalize(line: str, remove_bars: bool) -> str:
    if remove_bars:
        line = line.replace("|", "")
    return _PERL_SPACE.sub(" ", line).removeprefix(" ").removesuffix(" ")


def clean_corpus(pairs: Iterable[tuple[str, str]], min_words: int = CLEAN_MIN_WORDS, max_words: int = CLEAN_MAX_WORDS,
                 ratio: float = CLEAN_RATIO, max_word_length: int = CLEAN_MAX_WORD_LENGTH) -> Iterator[tuple[str, str]]:
    """clean-corpus-n.perl on (first language line, second language line) pairs, in order: the kept
    pairs, normalized (module doc). `|` is removed unless the corpus's first pair has one (the
    script then takes the corpus for factored and keeps every `|`)."""
    factored: bool | None = None
    too_long = re.compile(rf"[^\s|]{{{max_word_length + 1}}}")
    for first, second in pairs:
        if factored is None:
            factored = "|" in first or "|" in second
        first, second = _normalize(first, not factored), _normalize(second, not factored)
        if not first or not second:
            continue
        first_words, second_words = len(first.split(" ")), len(second.split(" "))
        if not (min_words <= first_words <= max_words and min_words <= second_words <= max_words):
            continue
        if first_words / second_words > ratio or second_words / first_words > ratio:
            continue
        if too_long.search(first) or too_long.search(second):
            continue
        yield first, second
