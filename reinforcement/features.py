"""The network's input: the AlphaGo Zero planes, and the 8 symmetries of the board.

17 planes per position (reference features.py NEW_FEATURES, Silver et al. 2017 "Methods"):
planes 2i and 2i+1 hold the stones of the player to move and of the opponent i moves ago
(i = 0..7, the oldest board repeated where the game is younger), plane 16 is all ones when black
is to move. Layout here is channels first, (17, N, N); the TensorFlow model transposes to the
reference's channels last.

The reference evaluates every position under one of the 8 dihedral symmetries drawn at random
(dual_net.py run_many, use_random_symmetry=True) and maps the policy back; `SYMMETRY_MAPS` does
both for the search (mcts.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from reinforcement.go import BLACK, HISTORY, Position

PLANES = 2 * HISTORY + 1


@functools.cache
def symmetry_maps(size: int) -> np.ndarray:
    """(8, N*N) int16: map[s, p] is where point p lands under symmetry s (identity first)."""
    grid = np.arange(size * size).reshape(size, size)
    transforms = [grid, np.rot90(grid, 1), np.rot90(grid, 2), np.rot90(grid, 3),
                  np.flipud(grid), np.fliplr(grid), grid.T, np.rot90(grid, 2).T]
    maps = np.empty((8, size * size), np.int16)
    for index, transformed in enumerate(transforms):
        # transformed[r, c] = the original point that lands on (r, c)
        maps[index, transformed.ravel()] = np.arange(size * size)
    maps.setflags(write=False)
    return maps


def position_planes(position: Position) -> np.ndarray:
    """(17, N, N) uint8 planes of one position (no symmetry)."""
    boards = position.boards()  # (8, N*N), newest first
    planes = np.empty((PLANES, position.size * position.size), np.uint8)
    planes[0:2 * HISTORY:2] = boards == position.to_play
    planes[1:2 * HISTORY:2] = boards == -position.to_play
    planes[2 * HISTORY] = position.to_play == BLACK
    return planes.reshape(PLANES, position.size, position.size)


def stack_planes(positions: Sequence[Position]) -> np.ndarray:
    return np.stack([position_planes(position) for position in positions])


def apply_symmetry(planes: np.ndarray, symmetry: int) -> np.ndarray:
    """Planes (..., N, N) under symmetry s: the value at p moves to symmetry_maps[s, p]."""
    size = planes.shape[-1]
    flat = planes.reshape(*planes.shape[:-2], size * size)
    out = np.empty_like(flat)
    out[..., symmetry_maps(size)[symmetry]] = flat
    return out.reshape(planes.shape)


def invert_policy(policy: np.ndarray, symmetry: int, size: int) -> np.ndarray:
    """A policy computed on the transformed board, read back on the original points (pass unchanged)."""
    out = policy.copy()
    out[..., :size * size] = policy[..., symmetry_maps(size)[symmetry]]
    return out


def pack(planes: np.ndarray) -> np.ndarray:
    """(B, 17, N, N) 0/1 planes -> bits (B, ceil(17*N*N/8)) uint8: the replay window stores these."""
    return np.packbits(planes.reshape(len(planes), int(np.prod(planes.shape[1:]))).astype(np.uint8), axis=1)


def unpack(bits: np.ndarray, size: int) -> np.ndarray:
    count = PLANES * size * size
    return np.unpackbits(bits, axis=1, count=count).reshape(len(bits), PLANES, size, size)
