"""Byte-pair encoding with subword-nmt, and the GNMT reference's vocabulary of BPE tokens.

The MLPerf GNMT reference (mlcommons/training rnn_translator/download_dataset.sh, subword-nmt at
48ba99e6) learns one BPE of 32,000 merges on the concatenated tokenized German and English
training text (`learn_bpe.py -s 32000`), applies it to every tokenized file (`apply_bpe.py -c`),
and lists the vocabulary with `get_vocab.py` over the English then the German BPE training text,
keeping the token column (most frequent first). This module calls the same algorithms from the
`subword-nmt` package (0.3.8: the same learning and segmentation; later releases only added
parallelism and BPE dropout, neither used here), with the separator `@@`.

`BpeVocabulary` is the reference's `seq2seq/data/tokenizer.py`: ids 0-3 are <pad>, <unk>, <s>,
<\\s> (PAD, UNK, BOS, EOS), then the vocabulary file's tokens in order; a sentence is encoded as
[BOS] + token ids + [EOS] (an unknown token is UNK); decoding joins the tokens, removes the BPE
separators and the special tokens, and runs the Moses detokenizer (translation/moses.py), as the
reference's Translator does before sacrebleu.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from unittest import mock

from subword_nmt import apply_bpe, learn_bpe

from harness.errors import DatasetError
from translation import moses

SEPARATOR = "@@"  # apply_bpe.py's default, the reference's
PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<unk>", "<s>", "<\\s>"  # reference seq2seq/data/config.py
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN)


def learn_codes(lines: Iterable[str], codes_file: str | os.PathLike, merges: int) -> Path:
    """learn_bpe.py -s MERGES on `lines` (the reference: German then English training text);
    writes the codes file atomically. Stops early, as the script, when no pair occurs twice."""
    codes_file = Path(codes_file)
    codes_file.parent.mkdir(parents=True, exist_ok=True)
    partial = codes_file.with_name(codes_file.name + ".partial")
    # the script's progress bar and "Stopping" note are not this suite's output channel
    with open(partial, "w", encoding="utf-8", newline="\n") as out, \
            mock.patch.object(learn_bpe, "tqdm", lambda iterator, *args, **kwargs: iterator), \
            contextlib.redirect_stderr(io.StringIO()):
        learn_bpe.learn_bpe((line + "\n" for line in lines), out, merges, min_frequency=2)
    os.replace(partial, codes_file)
    return codes_file


class Segmenter:
    """apply_bpe.py -c CODES, one line at a time."""

    def __init__(self, codes_file: str | os.PathLike):
        self.codes_file = Path(codes_file)
        try:
            with open(self.codes_file, encoding="utf-8") as codes:
                self.bpe = apply_bpe.BPE(codes, separator=SEPARATOR)
        except FileNotFoundError:
            raise DatasetError(f"{self.codes_file}: BPE codes missing; prepare the dataset again") from None
        except (OSError, UnicodeDecodeError, ValueError, IndexError) as error:
            raise DatasetError(f"{self.codes_file}: not a subword-nmt codes file ({error})") from None

    def segment(self, line: str) -> str:
        """The BPE segmentation of one tokenized line (tokens separated by single spaces)."""
        return self.bpe.segment(line) if line.strip() else line

    def segment_lines(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            yield self.segment(line)


def vocabulary_tokens(lines: Iterable[str]) -> list[str]:
    """get_vocab.py | cut -f1 -d ' ': every token of `lines`, most frequent first (ties in order of
    first appearance, as the script's stable sort of a Counter)."""
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(word for word in line.strip("\r\n ").split(" ") if word)
    return [token for token, _ in sorted(counts.items(), key=lambda item: item[1], reverse=True)]


class BpeVocabulary:
    """The reference's Tokenizer: ids for BPE tokens, sentences to ids and ids back to text."""

    def __init__(self, vocab_file: str | os.PathLike):
        self.vocab_file = Path(vocab_file)
        try:
            tokens = self.vocab_file.read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            raise DatasetError(f"{self.vocab_file}: vocabulary missing; prepare the dataset again") from None
        except (OSError, UnicodeDecodeError) as error:
            raise DatasetError(f"{self.vocab_file}: unreadable vocabulary ({error})") from None
        if tokens and tokens[-1] == "":
            tokens.pop()
        tokens = [token.strip() for token in tokens]  # the reference reads `line.strip()`
        if not tokens or any(not token for token in tokens):
            raise DatasetError(f"{self.vocab_file}: empty vocabulary or an empty line in it")
        self.tokens = [*SPECIAL_TOKENS, *tokens]
        self.ids = {}
        for index, token in enumerate(self.tokens):  # a repeated token keeps its last id, as the reference's dict
            self.ids[token] = index

    @property
    def size(self) -> int:
        return len(self.tokens)

    def encode_line(self, line: str) -> list[int]:
        """[BOS] + the ids of the line's whitespace-separated tokens + [EOS] (reference `segment`)."""
        return [BOS_ID, *(self.ids.get(token, UNK_ID) for token in line.strip().split()), EOS_ID]

    def encode(self, lines: Sequence[str]) -> list[list[int]]:
        return [self.encode_line(line) for line in lines]

    def bpe_text(self, ids: Sequence[int]) -> str:
        """The reference's `detokenize`: tokens joined, BPE separators and special tokens removed
        (the Moses-tokenized text, before the Moses detokenizer)."""
        text = " ".join(self.tokens[int(index)] for index in ids)
        text = text.replace(SEPARATOR + " ", "").replace(SEPARATOR, "")
        for special in (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN):
            text = text.replace(special, "")
        return text.strip()

    def decode(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Detokenized text of each id sequence: what BLEU compares with the raw reference file."""
        return [moses.detokenize(self.bpe_text(ids)) for ids in sequences]
