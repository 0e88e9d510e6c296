"""BLEU as the MLPerf translation references score it, computed by sacrebleu.

The Transformer reference (mlcommons/training translation/tensorflow/transformer/compute_bleu.py,
`bleu_wrapper(ref, hyp, case_sensitive=False)`) lower-cases both files, tokenizes every line with
the tensor2tensor `bleu_tokenize` (split on Unicode punctuation unless between digits, and on
symbols) and scores the corpus with 4-gram BLEU and the brevity penalty. sacrebleu's
`tokenize="intl"` is the port of that tokenizer and `lowercase=True` the uncased variant, so here:

    sacrebleu.corpus_bleu(hypotheses, [references], tokenize="intl", lowercase=True)

on the detokenized output against the raw reference file (newstest2014.de), with sacrebleu's
default exponential smoothing (it only differs from the reference's unsmoothed score when an n-gram
order has no match at all, which a real test set never has). The score is logged as a fraction
(BLEU 25.0 is `eval_accuracy` 0.25, as the MLPerf logs do) and sacrebleu's signature once per run.

Both translation benchmarks (Transformer, GNMT) score with this module.

    python -m translation.bleu HYPOTHESES REFERENCES     # prints the score and the signature
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import sacrebleu

from harness.errors import UserError, exit_on_user_error

TOKENIZE = "intl"
LOWERCASE = True


class BleuInputError(UserError):
    """A hypothesis or reference file that cannot be scored (missing, empty, line counts differ)."""


@dataclasses.dataclass(frozen=True)
class BleuScore:
    score: float  # sacrebleu's 0..100
    signature: str  # e.g. nrefs:1|case:lc|eff:no|tok:intl|smooth:exp|version:2.6.0

    @property
    def fraction(self) -> float:
        """What the log records as eval_accuracy: BLEU / 100."""
        return self.score / 100.0


def _metric() -> sacrebleu.metrics.BLEU:
    return sacrebleu.metrics.BLEU(tokenize=TOKENIZE, lowercase=LOWERCASE)


def signature() -> str:
    """sacrebleu's signature of this BLEU (tokenizer, case, smoothing, version): logged once per run.
    (sacrebleu knows the number of references only after scoring: one sentence is scored first.)"""
    metric = _metric()
    metric.corpus_score(["x"], [["x"]])
    return str(metric.get_signature())


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> BleuScore:
    """Uncased, intl-tokenized corpus BLEU of detokenized hypotheses against one reference each."""
    if len(hypotheses) != len(references):
        raise BleuInputError(f"{len(hypotheses)} translations for {len(references)} references: "
                             "every reference line needs exactly one translation line")
    if not references:
        raise BleuInputError("no references to score against")
    metric = _metric()
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return BleuScore(float(result.score), str(metric.get_signature()))


def read_lines(path: str | os.PathLike, role: str) -> list[str]:
    """The lines of a text file (one sentence each; a final newline does not add an empty line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BleuInputError(f"{path}: {role} file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BleuInputError(f"{path}: cannot read the {role} file ({error})") from None
    if not text.strip():
        raise BleuInputError(f"{path}: the {role} file is empty")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def file_bleu(hypothesis_file: str | os.PathLike, reference_file: str | os.PathLike) -> BleuScore:
    """BLEU of a translation file against the raw reference file, line by line."""
    hypotheses = read_lines(hypothesis_file, "translation")
    references = read_lines(reference_file, "reference")
    if len(hypotheses) != len(references):
        raise BleuInputError(f"{hypothesis_file}: {len(hypotheses)} lines, but the reference {reference_file} "
                             f"has {len(references)}: every reference line needs exactly one translation line")
    return corpus_bleu(hypotheses, references)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m translation.bleu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hypotheses", help="detokenized translations, one per line")
    parser.add_argument("references", help="the raw reference file, e.g. newstest2014.de")
    args = parser.parse_args(argv)
    result = file_bleu(args.hypotheses, args.references)
    print(f"BLEU {result.score:.2f} (eval_accuracy {result.fraction:.4f})  {result.signature}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
