"""Beam search in PyTorch, for every translation model of the suite (the mirror of beam_search_tensorflow.py).

The algorithm is the MLPerf Transformer reference's (mlcommons/training translation/tensorflow/
transformer/model/beam_search.py, from tensor2tensor), step for step:

- each batch item keeps `beam_size` alive sequences (log probabilities; the first starts at 0, the
  others at -inf) and `beam_size` finished ones (scores);
- a step extends every alive sequence by every token, keeps the 2 x beam_size best extensions by
  log probability, takes the best beam_size of those not ending in EOS as the new alive set, and
  merges the ones ending in EOS, scored log_prob / length_norm(step + 1), into the finished set;
- length_norm(L) = ((5 + L) / 6) ** alpha (Wu et al. 2016, GNMT, eq. 14);
- the search stops at `max_decode_length` steps, or when, for every item, the worst finished score
  beats the best alive log probability normalized by the longest length (nothing alive can win);
- an item with no finished sequence returns its alive ones.

Option for GNMT: `coverage_penalty` beta > 0 adds beta * sum_j log(min(sum_t attention_tj, 1)) over
the source positions j (Wu et al. 2016, eq. 14) to a finished sequence's score; the model's step
function then returns its attention over the source, accumulated per hypothesis here.

Option `finish_within_beam`: only EOS extensions ranked among the best `beam_size` of the 2 x
beam_size candidates finish (fairseq's rule; the reference lets all 2 x beam_size finish). With it,
beam_size 1 and alpha 0 is exactly greedy decoding (tests); without it a beam of 1 may also keep an
EOS that was the runner-up token, which greedy decoding never does. The Transformer runs the
reference's rule. Ties are broken like `topk` (the lower index).

    sequences, scores = beam_search(step_fn, initial_ids, cache, vocab_size, beam_size=4, alpha=0.6,
                                    max_decode_length=length + 50, eos_id=EOS_ID)
    best = sequences[:, 0, 1:]          # drop the initial id

Scores are computed in `dtype` (float32; float64 for the parity tests).
`step_fn(ids, step, cache) -> (logits, cache)` or `(logits, cache, attention)`: ids (batch*beam, step + 1),
logits (batch*beam, vocab), attention (batch*beam, source length) when a coverage penalty is asked;
every tensor in `cache` (a nested dict) has the batch*beam rows first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

INF = 1.0e7  # reference beam_search.py INF: the "minus infinity" of scores


def length_normalization(alpha: float, length: int | torch.Tensor) -> float | torch.Tensor:
    return ((5.0 + length) / 6.0) ** alpha


def _map(function: Callable, tree):
    if isinstance(tree, dict):
        return {key: _map(function, value) for key, value in tree.items()}
    return function(tree)


def _expand(tensor: torch.Tensor, beam: int) -> torch.Tensor:
    """(batch, ...) -> (batch, beam, ...) by repetition."""
    return tensor.unsqueeze(1).expand(tensor.shape[0], beam, *tensor.shape[1:]).contiguous()


def _flatten(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.reshape(tensor.shape[0] * tensor.shape[1], *tensor.shape[2:])


def _unflatten(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    return tensor.reshape(batch, tensor.shape[0] // batch, *tensor.shape[1:])


def _gather(tensor: torch.Tensor, beams: torch.Tensor) -> torch.Tensor:
    """tensor (batch, beam, ...) at beam indices `beams` (batch, k) -> (batch, k, ...)."""
    index = beams.reshape(*beams.shape, *([1] * (tensor.dim() - 2))).expand(*beams.shape, *tensor.shape[2:])
    return torch.gather(tensor, 1, index)


def _coverage(coverage: torch.Tensor, source_mask: torch.Tensor, beta: float) -> torch.Tensor:
    """beta * sum over real source positions of log(min(accumulated attention, 1)); (batch, k)."""
    penalty = torch.log(torch.clamp(coverage, max=1.0).clamp_min(1e-30))
    return beta * (penalty * source_mask.unsqueeze(1).to(penalty.dtype)).sum(-1)


@torch.inference_mode()
def beam_search(step_fn: Callable, initial_ids: torch.Tensor, initial_cache: dict, vocab_size: int, beam_size: int,
                alpha: float, max_decode_length: int, eos_id: int, *, coverage_penalty: float = 0.0,
                source_mask: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
                finish_within_beam: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(sequences (batch, beam, length + 1) starting with the initial id, scores (batch, beam)), best first."""
    batch = initial_ids.shape[0]
    device = initial_ids.device
    use_coverage = coverage_penalty != 0.0
    if use_coverage and source_mask is None:
        raise ValueError("a coverage penalty needs the source mask")
    alive_seq = _expand(initial_ids.long(), beam_size).unsqueeze(2)  # (B, K, 1)
    alive_log_probs = torch.full((batch, beam_size), float("-inf"), dtype=dtype, device=device)
    alive_log_probs[:, 0] = 0.0
    alive_cache = _map(lambda t: _expand(t, beam_size), initial_cache)
    alive_coverage = torch.zeros(batch, beam_size, source_mask.shape[1], dtype=dtype, device=device) if use_coverage else None
    finished_seq = torch.zeros_like(alive_seq)
    finished_scores = torch.full((batch, beam_size), -INF, dtype=dtype, device=device)
    finished_flags = torch.zeros((batch, beam_size), dtype=torch.bool, device=device)
    max_length_norm = length_normalization(alpha, max_decode_length)

    step = 0
    while step < max_decode_length:
        # -- stop when no alive sequence can beat the worst finished one (every item) --------------
        best_alive = alive_log_probs[:, 0] / max_length_norm
        lowest_finished = (finished_scores * finished_flags).min(dim=1).values
        lowest_finished = lowest_finished + (~finished_flags.any(dim=1)).to(lowest_finished.dtype) * -INF
        if bool((lowest_finished > best_alive).all()):
            break
        # -- grow the alive sequences by one token: the 2K best extensions ------------------------
        output = step_fn(_flatten(alive_seq), step, _map(_flatten, alive_cache))
        flat_logits, flat_cache = output[0], output[1]
        logits = _unflatten(flat_logits, batch)
        new_cache = _map(lambda t: _unflatten(t, batch), flat_cache)
        log_probs = torch.log_softmax(logits.to(dtype), dim=-1) + alive_log_probs.unsqueeze(2)
        topk_log_probs, topk_indices = torch.topk(log_probs.reshape(batch, beam_size * vocab_size), k=2 * beam_size)
        topk_beams = torch.div(topk_indices, vocab_size, rounding_mode="floor")
        topk_seq = torch.cat([_gather(alive_seq, topk_beams), (topk_indices % vocab_size).unsqueeze(2)], dim=2)
        topk_cache = _map(lambda t, beams=topk_beams: _gather(t, beams), new_cache)
        topk_coverage = None
        if use_coverage:
            attention = _unflatten(output[2].to(alive_coverage.dtype), batch)
            topk_coverage = _gather(alive_coverage + attention, topk_beams)
        ends = topk_seq[:, :, -1] == eos_id
        # -- the K best that do not end in EOS stay alive -------------------------------------------
        alive_candidates = topk_log_probs + ends.to(topk_log_probs.dtype) * -INF
        alive_values, alive_order = torch.topk(alive_candidates, k=beam_size)
        alive_seq = _gather(topk_seq, alive_order)
        alive_log_probs = alive_values
        alive_cache = _map(lambda t, order=alive_order: _gather(t, order), topk_cache)
        if use_coverage:
            alive_coverage = _gather(topk_coverage, alive_order)
        # -- those ending in EOS join the finished set, scored with the length normalization ---------
        new_scores = topk_log_probs / length_normalization(alpha, step + 1)
        if use_coverage:
            new_scores = new_scores + _coverage(topk_coverage, source_mask, coverage_penalty)
        if finish_within_beam:  # only EOS extensions ranked within the beam finish (module doc)
            ends = ends & (torch.arange(2 * beam_size, device=device) < beam_size)
        new_scores = new_scores + (~ends).to(new_scores.dtype) * -INF
        finished_seq = torch.cat([finished_seq, torch.zeros_like(finished_seq[:, :, :1])], dim=2)
        all_seq = torch.cat([finished_seq, topk_seq], dim=1)
        all_scores = torch.cat([finished_scores, new_scores], dim=1)
        all_flags = torch.cat([finished_flags, ends], dim=1)
        finished_scores, finished_order = torch.topk(all_scores, k=beam_size)
        finished_seq = _gather(all_seq, finished_order)
        finished_flags = _gather(all_flags, finished_order)
        step += 1

    any_finished = finished_flags.any(dim=1)
    sequences = torch.where(any_finished[:, None, None], finished_seq, alive_seq)
    scores = torch.where(any_finished[:, None], finished_scores, alive_log_probs)
    return sequences, scores
