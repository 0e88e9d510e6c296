"""GNMT's beam search in PyTorch, exactly as the MLPerf GNMT reference decodes (the mirror of
beam_search_gnmt_tensorflow.py).

The reference (mlcommons/training rnn_translator/pytorch/seq2seq/inference/beam_search.py,
`SequenceGenerator.beam_search`) is not the tensor2tensor search of beam_search_pytorch.py, and
its scores differ from it in ways that change translations, so GNMT runs this one:

- a sentence keeps `beam_size` slots. Every step, each slot proposes its `beam_size` most probable
  next tokens (log probabilities added to the slot's score); a slot whose hypothesis already ended
  in EOS proposes only itself again, EOS appended, score unchanged. The best `beam_size` of the
  beam_size^2 proposals, by raw summed log probability, fill the slots (on the first step only
  slot 0 proposes). Finished hypotheses thus compete for slots with unfinished ones, unnormalized;
- a sentence stops when all its slots have ended in EOS; only then are its scores normalized:
  score / ((C + length) / (C + 1)) ** alpha (C = 5, alpha = 0.6; Wu et al. 2016, eq. 14), where
  length counts the BOS, the tokens and the EOS, then + beta * sum_j log(min(coverage_j, 1)) over
  the source positions j with coverage_j > 0 (beta = 0.1; positions never attended add 0, not
  -inf: the reference zeroes log(0));
- coverage_j is the attention paid to source position j, summed over steps PER SLOT: the
  reference adds each step's attention to its slot's row and never reorders those rows when
  hypotheses move between slots (the hidden states, tokens and lengths are reordered). That is
  what it computes, so that is what this computes;
- a sentence still unfinished after `max_length - 1` steps keeps its raw scores (no normalization,
  no coverage); the output of a sentence is its best-scoring slot.

    result = beam_search(step_fn, cache, batch_size, beam_size=5, max_length=150, bos_id=BOS, eos_id=EOS)
    result.sequences[range(batch), result.best]          # BOS, tokens, EOS, then EOS / 0 (padding) to max_length

`step_fn(words, cache) -> (logits, cache, attention)`: words (n,) the last token of each live
slot, logits (n, vocab), attention (n, source length) over the padded source (0 on padding). Every
tensor in `cache` (a nested dict) has the n slot rows first; `initial_cache` has one row per
sentence and is repeated for the slots here. Scores are computed in `dtype`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

LENGTH_NORM_FACTOR = 0.6  # reference train.py --len-norm-factor
LENGTH_NORM_CONST = 5.0  # --len-norm-const
COVERAGE_PENALTY_FACTOR = 0.1  # --cov-penalty-factor
BEAM_SIZE = 5  # --beam-size
MAX_LENGTH = 150  # --max-length-test: BOS included, so at most 149 decoding steps


class BeamResult(NamedTuple):
    sequences: torch.Tensor  # (batch, beam, max_length) int64: BOS, tokens, EOS (then EOS while the sentence decodes, then 0)
    lengths: torch.Tensor  # (batch, beam) int64: BOS + tokens + EOS
    scores: torch.Tensor  # (batch, beam): final slot scores (normalized where the sentence finished)
    best: torch.Tensor  # (batch,) the slot of the output: the highest score (first on ties)


def _map(function: Callable, tree):
    if isinstance(tree, dict):
        return {key: _map(function, value) for key, value in tree.items()}
    return function(tree)


def length_normalization(lengths: torch.Tensor, factor: float, const: float) -> torch.Tensor:
    return ((const + lengths) / (const + 1.0)) ** factor


def coverage_penalty(coverage: torch.Tensor) -> torch.Tensor:
    """sum_j log(min(coverage_j, 1)) over positions with coverage_j > 0 (reference: log(0) -> 0)."""
    penalty = torch.log(coverage.clamp(0.0, 1.0))
    return torch.where(torch.isneginf(penalty), torch.zeros_like(penalty), penalty).sum(dim=-1)


@torch.inference_mode()
def beam_search(step_fn: Callable, initial_cache: dict, batch_size: int, beam_size: int = BEAM_SIZE,
                max_length: int = MAX_LENGTH, *, bos_id: int, eos_id: int, source_length: int,
                length_norm_factor: float = LENGTH_NORM_FACTOR, length_norm_const: float = LENGTH_NORM_CONST,
                coverage_penalty_factor: float = COVERAGE_PENALTY_FACTOR, dtype: torch.dtype = torch.float32,
                device: torch.device | None = None) -> BeamResult:
    """The reference's beam search (module doc) over `batch_size` sentences."""
    K = beam_size
    device = device or torch.device("cpu")
    # the reference's translation buffer starts as zeros (the padding id): columns after a sentence stopped stay 0
    out_sequences = torch.zeros(batch_size, K, max_length, dtype=torch.int64, device=device)
    out_lengths = torch.ones(batch_size, K, dtype=torch.int64, device=device)
    out_scores = torch.zeros(batch_size, K, dtype=dtype, device=device)

    # the live sentences' slots, K consecutive rows per sentence
    sentences = torch.arange(batch_size, device=device)
    rows = batch_size * K
    sequences = torch.zeros(rows, max_length, dtype=torch.int64, device=device)
    sequences[:, 0] = bos_id
    lengths = torch.ones(rows, dtype=torch.int64, device=device)
    scores = torch.zeros(rows, dtype=dtype, device=device)
    coverage = torch.zeros(rows, source_length, dtype=dtype, device=device)
    words = torch.full((rows,), bos_id, dtype=torch.int64, device=device)
    cache = _map(lambda t: t.repeat_interleave(K, dim=0), initial_cache)
    ended_fill = torch.tensor([0.0] + [float("-inf")] * (K - 1), dtype=dtype, device=device)

    for step in range(1, max_length):
        if sentences.numel() == 0:
            break
        live = sentences.numel()
        ended = (words == eos_id).view(live, K)  # slots whose hypothesis ended at an earlier step
        terminating = ended.all(dim=1)  # every slot ended: the sentence is scored after this step
        lengths = lengths + (~ended.view(-1)).to(lengths.dtype)

        logits, cache, attention = step_fn(words, cache)
        log_probs, candidates = torch.log_softmax(logits.to(dtype), dim=-1).topk(K, dim=-1)  # (rows, K)
        coverage = coverage + attention.to(dtype).masked_fill(ended.view(-1, 1), 0.0)

        candidates = candidates.view(live, K, K).masked_fill(ended.unsqueeze(2), eos_id)
        log_probs = log_probs.view(live, K, K)
        log_probs = torch.where(ended.unsqueeze(2), ended_fill.view(1, 1, K), log_probs)
        proposals = scores.view(live, K, 1) + log_probs
        if step == 1:
            proposals[:, 1:, :] = float("-inf")  # the slots start identical: only slot 0 proposes
        best_scores, index = proposals.view(live, K * K).topk(K, dim=1)
        source = (torch.div(index, K, rounding_mode="floor") + K * torch.arange(live, device=device).unsqueeze(1)).view(-1)
        scores = best_scores.reshape(-1)
        words = candidates.view(live, K * K).gather(1, index).view(-1)
        sequences = sequences[source]
        sequences[:, step] = words
        lengths = lengths[source]
        cache = _map(lambda t, rows=source: t[rows], cache)  # (the reference reorders the hidden state; the rest is per sentence)

        if bool(terminating.any()):
            done = terminating.repeat_interleave(K)
            final = scores[done] / length_normalization(lengths[done].to(dtype), length_norm_factor, length_norm_const)
            final = final + coverage_penalty_factor * coverage_penalty(coverage[done])
            finished = sentences[terminating]
            out_scores[finished] = final.view(-1, K)
            out_sequences[finished] = sequences[done].view(-1, K, max_length)
            out_lengths[finished] = lengths[done].view(-1, K)
            keep = ~done
            sentences = sentences[~terminating]
            sequences, lengths, scores, coverage, words = (t[keep] for t in (sequences, lengths, scores, coverage, words))
            cache = _map(lambda t, rows=keep: t[rows], cache)

    if sentences.numel():  # unfinished at max_length: raw scores
        out_scores[sentences] = scores.view(-1, K)
        out_sequences[sentences] = sequences.view(-1, K, max_length)
        out_lengths[sentences] = lengths.view(-1, K)
    return BeamResult(out_sequences, out_lengths, out_scores, _first_argmax(out_scores))


def _first_argmax(scores: torch.Tensor) -> torch.Tensor:
    """The first slot of the highest score per row (a defined tie rule, the same in TensorFlow)."""
    best = scores.max(dim=1, keepdim=True).values
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    return torch.where(scores == best, positions, scores.shape[1]).min(dim=1).values
