"""Translate a test set in batches and score it, for both frameworks and both translation models.

    outputs = translate(test_source, decode_batch, sentences_per_batch=64)   # {sentence index: ids}
    result = score(outputs, vocabulary, references)                          # bleu.BleuScore

`decode_batch(padded source ids (n, length) int32) -> n id sequences` is the model's beam search
(beam_search_pytorch / beam_search_tensorflow). Sentences are decoded sorted by length (less
padding) and put back in file order; a replica can translate its share (`indices`) and the shares
are merged before scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from translation.batching import Encoded, eval_batches
from translation.bleu import BleuScore, corpus_bleu
from translation.vocabulary import Vocabulary


def shard_indices(count: int, rank: int, world_size: int) -> np.ndarray:
    """A replica's contiguous share of `count` sentences (near-equal sizes)."""
    bounds = np.linspace(0, count, world_size + 1).astype(np.int64)
    return np.arange(bounds[rank], bounds[rank + 1])


def translate(source: Encoded, decode_batch: Callable[[np.ndarray], Sequence[Sequence[int]]],
              sentences_per_batch: int, indices: np.ndarray | None = None) -> dict[int, list[int]]:
    """{sentence index: output ids} for `indices` (default: every sentence) of `source`."""
    indices = np.arange(len(source)) if indices is None else np.asarray(indices)
    outputs: dict[int, list[int]] = {}
    for batch in eval_batches(source.lengths[indices], sentences_per_batch):
        chosen = indices[batch]
        for index, ids in zip(chosen.tolist(), decode_batch(source.pad(chosen))):
            outputs[index] = [int(token) for token in ids]
    return outputs


def merge(shares: Iterable[dict[int, list[int]]]) -> dict[int, list[int]]:
    merged: dict[int, list[int]] = {}
    for share in shares:
        merged.update(share)
    return merged


def score(outputs: dict[int, list[int]], vocabulary: Vocabulary, references: Sequence[str]) -> tuple[BleuScore, list[str]]:
    """(BLEU of the detokenized outputs against the raw references, the detokenized lines in file order)."""
    hypotheses = vocabulary.decode([outputs[index] for index in range(len(references))])
    return corpus_bleu(hypotheses, references), hypotheses
