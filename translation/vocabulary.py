"""The shared source/target subword vocabulary: sentencepiece BPE, trained deterministically.

The MLPerf Transformer reference (mlcommons/training translation/tensorflow/transformer, v0.7) used
the tensor2tensor subword tokenizer (utils/tokenizer.py; its shipped vocabulary
`vocab.translate_ende_wmt32k.32768.subwords` has 33,708 subtokens, model_params.vocab_size 33708).
This suite uses the field library `sentencepiece` instead (the issue allows it; README "Vocabulary"):
a byte-pair-encoding model of 32,768 pieces learned on the concatenated English and German training
text, with

- the t2t ids the model relies on: 0 = padding, 1 = end of sentence (EOS), 2 = unknown;
- `identity` normalization and byte fallback, so decoding gives back the exact input text (the
  BLEU is computed on the detokenized output against the raw reference file);
- one thread and no input sampling, so the same text gives the same model file byte for byte
  (tests/test_vocabulary.py), and the file's SHA-256 goes into MANIFEST.json with the data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from harness.errors import DatasetError

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
MODEL_FILE = "vocab.spm.model"


def train_vocabulary(sentences: Iterable[str], model_file: str | os.PathLike, vocab_size: int,
                     *, max_sentence_length: int = 8192) -> Path:
    """Learn the BPE model from `sentences` (both languages) and write it to `model_file` atomically."""
    model_file = Path(model_file)
    model_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = model_file.with_name(model_file.name + ".partial")
    with open(temporary, "wb") as writer:
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=writer, vocab_size=vocab_size, model_type="bpe",
                pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1, pad_piece="<pad>", eos_piece="<EOS>",
                normalization_rule_name="identity", byte_fallback=True, character_coverage=1.0,
                num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
                max_sentence_length=max_sentence_length, minloglevel=2)
        except RuntimeError as error:  # e.g. a vocabulary size the text cannot fill
            raise DatasetError(f"{model_file}: cannot learn a {vocab_size}-piece vocabulary "
                               f"({str(error).strip().splitlines()[-1]})") from None
    os.replace(temporary, model_file)
    return model_file


class Vocabulary:
    """Encode text to ids ending in EOS and decode ids back to text (the detokenized output)."""

    def __init__(self, model_file: str | os.PathLike):
        self.model_file = Path(model_file)
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.Load(str(self.model_file))
        except (OSError, RuntimeError) as error:
            raise DatasetError(f"{self.model_file}: not a sentencepiece model ({error}); prepare the dataset again") from None
        if (self.processor.pad_id(), self.processor.eos_id()) != (PAD_ID, EOS_ID):
            raise DatasetError(f"{self.model_file}: padding/EOS ids {self.processor.pad_id()}/{self.processor.eos_id()}, "
                               f"expected {PAD_ID}/{EOS_ID}")

    @property
    def size(self) -> int:
        return self.processor.GetPieceSize()

    def encode(self, lines: Sequence[str]) -> list[list[int]]:
        """Subword ids of each line, followed by EOS (the reference appends EOS to inputs and targets)."""
        return [ids + [EOS_ID] for ids in self.processor.Encode(list(lines), out_type=int)]

    def decode(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Text of each id sequence, cut at the first EOS (or padding); the inverse of `encode`."""
        cut = []
        for ids in sequences:
            ids = [int(i) for i in ids]
            for stop, token in enumerate(ids):
                if token in (EOS_ID, PAD_ID):
                    ids = ids[:stop]
                    break
            cut.append(ids)
        return self.processor.Decode(cut)
