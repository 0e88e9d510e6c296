"""Opponents that need no network: the smoke evaluation's heuristic player and a random player.

The heuristic player is a "capture-and-liberty" player of the kind Go programs used as a baseline
before search (e.g. the playout policies of MoGo, Gelly et al. 2006, without the patterns):
1. capture: the move that captures the most stones;
2. else escape: the liberty of its own group in atari that leaves it with two or more liberties
   (the largest group saved first);
3. else a random legal move that neither fills its own single-point eye nor puts its own group in
   atari (self-atari);
4. else pass.
Ties are broken at random. It never resigns. The untrained network loses to it (README, "Smoke").
"""

from __future__ import annotations

import numba
import numpy as np

from reinforcement import go


@numba.njit(cache=True)
def _liberties_of(board, start, nbrs):
    color = board[start]
    points = board.shape[0]
    seen = np.zeros(points, np.bool_)
    counted = np.zeros(points, np.bool_)
    stack = np.empty(points, np.int16)
    stack[0] = start
    seen[start] = True
    top, liberties = 1, 0
    while top > 0:
        top -= 1
        p = stack[top]
        for k in range(4):
            q = nbrs[p, k]
            if q < 0:
                break
            v = board[q]
            if v == 0 and not counted[q]:
                counted[q] = True
                liberties += 1
            elif v == color and not seen[q]:
                seen[q] = True
                stack[top] = q
                top += 1
    return liberties


@numba.njit(cache=True)
def heuristic_move(board, color, ko, nbrs, keys):
    """The heuristic player's move (see the module docstring); `keys` (N*N floats) break ties."""
    points = board.shape[0]
    labels = np.empty(points, np.int32)
    liberties = np.empty(points, np.int32)
    groups = go._label_groups(board, nbrs, labels, liberties)
    sizes = np.zeros(max(groups, 1), np.int32)
    for p in range(points):
        if labels[p] >= 0:
            sizes[labels[p]] += 1
    scratch = np.empty(points, np.int8)
    best_capture, capture_value, capture_key = -1, 0, -1.0
    best_save, save_value, save_key = -1, 0, -1.0
    best_quiet, quiet_key = -1, -1.0
    for p in range(points):
        if board[p] != 0 or p == ko:
            continue
        scratch[:] = board
        new_ko, captured = go.play_stone(scratch, color, p, ko, nbrs)
        if new_ko == -2:
            continue  # suicide
        key = keys[p]
        if captured > 0:
            if captured > capture_value or (captured == capture_value and key > capture_key):
                best_capture, capture_value, capture_key = p, captured, key
            continue
        libs = _liberties_of(scratch, p, nbrs)
        saved = 0
        seen_a = seen_b = seen_c = -1
        for k in range(4):
            q = nbrs[p, k]
            if q < 0:
                break
            group = labels[q]
            if board[q] == color and liberties[group] == 1 and group != seen_a and group != seen_b and group != seen_c:
                saved += sizes[group]
                if seen_a < 0:
                    seen_a = group
                elif seen_b < 0:
                    seen_b = group
                else:
                    seen_c = group
        if saved > 0 and libs >= 2:
            if saved > save_value or (saved == save_value and key > save_key):
                best_save, save_value, save_key = p, saved, key
            continue
        if libs >= 2 and not go.is_own_eye(board, color, p, nbrs) and key > quiet_key:
            best_quiet, quiet_key = p, key
    if best_capture >= 0:
        return best_capture
    if best_save >= 0:
        return best_save
    if best_quiet >= 0:
        return best_quiet
    return points


class HeuristicPlayer:
    """The capture-and-liberty player; `rng` draws its tie-breaks."""

    name = "heuristic"

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def genmove(self, position: go.Position) -> int:
        keys = self.rng.random(position.size * position.size)
        return int(heuristic_move(position.board, position.to_play, position.ko, go.neighbors(position.size), keys))


class RandomPlayer:
    """Uniform over legal moves that do not fill its own single-point eye; passes when none is left."""

    name = "random"

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def genmove(self, position: go.Position) -> int:
        mask = position.legal_moves()[:-1]
        nbrs = go.neighbors(position.size)
        choices = [p for p in np.flatnonzero(mask) if not go.is_own_eye(position.board, position.to_play, p, nbrs)]
        return int(self.rng.choice(choices)) if choices else position.pass_move
