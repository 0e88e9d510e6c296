"""Word error rate with jiwer: the corpus WER (all edits over all reference words), lower is better.

The v0.5 reference averaged per-utterance WERs (pytorch/eval_model.py: the sum of each utterance's
edits / its words, divided by the number of utterances, times 100); its README defines the metric as
the error rate "across all words in the output text of all samples", which is the corpus WER that
jiwer, Kaldi's compute-wer and later MLPerf speech benchmarks (RNN-T) report. This suite logs the
corpus WER as a fraction (0.23, not 23.0). README.md, "Quality", says why.

Edge cases are defined, never silent:
- an empty hypothesis is all deletions (WER 1 for that utterance's words);
- an empty reference adds no words: its hypothesis words count as insertions;
- references with no word at all: ValueError (the WER of nothing is undefined);
- an utterance without a hypothesis (`wer_by_id`): ValueError naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jiwer


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER of aligned lists; raises ValueError (one line) on unusable input."""
    if len(references) != len(hypotheses):
        raise ValueError(f"WER: {len(references)} references but {len(hypotheses)} hypotheses")
    words = sum(len(reference.split()) for reference in references)
    if words == 0:
        raise ValueError("WER: the references hold no word (empty evaluation set or empty transcripts)")
    # jiwer's default transform splits on whitespace; strip/merge spaces first so that "A  B " is 2 words
    references = [" ".join(reference.split()) for reference in references]
    hypotheses = [" ".join(hypothesis.split()) for hypothesis in hypotheses]
    output = jiwer.process_words(references, hypotheses)
    return (output.substitutions + output.deletions + output.insertions) / words


def wer_by_id(references: Mapping[str, str], hypotheses: Mapping[str, str]) -> float:
    """Corpus WER over utterance ids; every reference id must have a hypothesis (ValueError names the first missing)."""
    missing = sorted(set(references) - set(hypotheses))
    if missing:
        raise ValueError(f"WER: no hypothesis for utterance {missing[0]}"
                         + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = sorted(set(hypotheses) - set(references))
    if extra:
        raise ValueError(f"WER: hypothesis for unknown utterance {extra[0]}")
    ids = sorted(references)
    return word_error_rate([references[i] for i in ids], [hypotheses[i] for i in ids])


def error_counts(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) of aligned lists: sums over batches or
    ranks give the corpus WER exactly (errors / words)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"WER: {len(references)} references but {len(hypotheses)} hypotheses")
    words = sum(len(reference.split()) for reference in references)
    if not references:
        return 0, 0
    output = jiwer.process_words([" ".join(r.split()) for r in references], [" ".join(h.split()) for h in hypotheses])
    return output.substitutions + output.deletions + output.insertions, words
