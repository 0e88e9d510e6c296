"""The sliding training window: the most recent self-play positions (reference WINDOW_SIZE).

The reference trains each generation on EXAMPLES_PER_GENERATION positions read from the newest
WINDOW_SIZE // EXAMPLES_PER_RECORD chunks of self-play data, shuffled and thinned to 5%
(main.py train, preprocessing.py filter_amount): in effect positions drawn uniformly from the
window. Here the window is a ring buffer of `capacity` positions (planes bit-packed, features.pack),
and a generation's training positions are a random permutation of it, repeated when the window
holds fewer positions than a generation trains on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reinforcement.features import PLANES, apply_symmetry, symmetry_maps, unpack

WINDOW_FILE = "window.npz"


class ReplayWindow:
    def __init__(self, capacity: int, board_size: int):
        self.capacity, self.board_size = capacity, board_size
        packed = (PLANES * board_size * board_size + 7) // 8
        self.bits = np.zeros((capacity, packed), np.uint8)
        self.pi = np.zeros((capacity, board_size * board_size + 1), np.float32)
        self.z = np.zeros(capacity, np.float32)
        self.count = 0  # positions held
        self.next = 0  # where the next position goes (the oldest one once full)

    def __len__(self) -> int:
        return self.count

    def add(self, bits: np.ndarray, pi: np.ndarray, z: np.ndarray) -> None:
        """Append positions (oldest first); the oldest positions of the window make room."""
        if len(z) > self.capacity:
            bits, pi, z = bits[-self.capacity:], pi[-self.capacity:], z[-self.capacity:]
        index = (self.next + np.arange(len(z))) % self.capacity
        self.bits[index], self.pi[index], self.z[index] = bits, pi, z
        self.next = int((self.next + len(z)) % self.capacity)
        self.count = min(self.capacity, self.count + len(z))

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` slot indices: a random permutation of the window's positions (taken in the order
        they were played, so a window restored from a checkpoint draws the same positions), repeated
        as often as needed."""
        if self.count == 0:
            raise ValueError("the training window is empty")
        rounds = -(-count // self.count)
        order = self.chronological()
        return order[np.concatenate([rng.permutation(self.count) for _ in range(rounds)])[:count]]

    def batch(self, indices: np.ndarray, symmetries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(planes (B, 17, N, N) uint8, pi (B, N*N+1), z (B,)) of the positions at `indices`, each
        under its symmetry (features.apply_symmetry: the planes and pi's points move together)."""
        planes, pi, z = unpack(self.bits[indices], self.board_size), self.pi[indices].copy(), self.z[indices]
        if symmetries is not None:
            points = self.board_size * self.board_size
            for symmetry in np.unique(symmetries):
                rows = symmetries == symmetry
                planes[rows] = apply_symmetry(planes[rows], symmetry)
                moved = np.empty_like(pi[rows][:, :points])
                moved[:, symmetry_maps(self.board_size)[symmetry]] = pi[rows][:, :points]
                pi[rows, :points] = moved
        return planes, pi, z

    def chronological(self) -> np.ndarray:
        """Slot indices from the oldest position to the newest."""
        start = self.next if self.count == self.capacity else 0
        return (start + np.arange(self.count)) % self.capacity

    def save(self, folder: Path) -> None:
        order = self.chronological()
        np.savez(Path(folder) / WINDOW_FILE, bits=self.bits[order], pi=self.pi[order], z=self.z[order])

    def load(self, folder: Path) -> None:
        with np.load(Path(folder) / WINDOW_FILE) as saved:
            self.count, self.next = 0, 0
            self.add(saved["bits"], saved["pi"], saved["z"])
