"""Self-play: games of the network against itself, searched together, turned into training examples.

As the reference (mlcommons/training v0.5 minigo, selfplay_mcts.py play() and strategies.py): before
each move, Dirichlet noise at the root, then `readouts` more simulations; the player resigns when the
root's value for it falls below -resign_threshold, except in a `resign_disable_fraction` of the games
(which play out, so that the threshold can be checked); the first `temperature_moves` moves are drawn
in proportion to the visits, the rest are the most visited. Each move records the position, its visit
distribution pi (squashed by ** 0.95 in the opening) and, at the end, the game's result z from
black's point of view: the examples (planes, pi, z) of the replay window.

Games are played in groups of `parallel_games` that share every network batch. A group's games
depend only on the network and the group's seed, never on which process plays it, so a generation
is the same with 1 or 16 worker processes.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from reinforcement import go
from reinforcement.features import PLANES, pack
from reinforcement.mcts import Evaluate, Forest, pick_move, search_probabilities


@dataclasses.dataclass(frozen=True)
class SearchParams:
    """What a game's search needs (a plain record, sent to worker processes)."""

    board_size: int = 9
    komi: float = go.KOMI
    readouts: int = 200
    num_parallel: int = 8
    c_puct: float = 1.38
    dirichlet_alpha: float = 0.03 * 361 / 81
    noise_weight: float = 0.25
    resign_threshold: float = 0.95
    resign_disable_fraction: float = 0.05
    temperature_moves: int = 6
    max_game_length: int = 114
    allow_pass: bool = True

    def forest(self, games: int) -> Forest:
        # room for the kept subtree plus one move's new nodes (mcts.Forest.search restarts a tree
        # that would not fit)
        return Forest(games, self.board_size, capacity=4 * self.readouts + 4 * self.num_parallel + 8, komi=self.komi,
                      c_puct=self.c_puct, max_depth=self.max_game_length, num_parallel=self.num_parallel,
                      allow_pass=self.allow_pass)


@dataclasses.dataclass
class Examples:
    """Training examples: planes bit-packed (B, ceil(17 N^2 / 8)) uint8 (features.pack), the search's
    visit distribution pi (B, N*N+1) float32, the game's result z (B,) float32, black's view."""

    bits: np.ndarray
    pi: np.ndarray
    z: np.ndarray

    def __len__(self) -> int:
        return len(self.z)

    @staticmethod
    def concatenate(parts: list[Examples]) -> Examples:
        return Examples(np.concatenate([p.bits for p in parts]), np.concatenate([p.pi for p in parts]),
                        np.concatenate([p.z for p in parts]))


@dataclasses.dataclass
class GameRecord:
    moves: list[int]
    result: int  # +1 black won, -1 white won
    resigned: bool
    resign_disabled: bool
    final_score: float | None  # Tromp-Taylor score when the game was played out
    examples: Examples


@dataclasses.dataclass
class GroupResult:
    """One group's games and the timing of its search."""

    games: list[GameRecord]
    seconds: float
    network_seconds: float
    evaluations: int

    @property
    def positions(self) -> int:
        return sum(len(game.moves) for game in self.games)

    def examples(self) -> Examples:
        return Examples.concatenate([game.examples for game in self.games])


def play_games(evaluate: Evaluate, params: SearchParams, games: int, seed: int) -> GroupResult:
    """Play `games` self-play games together; everything random comes from `seed`."""
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    forest = params.forest(games)
    for g in range(games):
        forest.set_root(g, go.Position(params.board_size, komi=params.komi))
    resign_disabled = rng.random(games) < params.resign_disable_fraction
    active = np.ones(games, np.bool_)
    moves: list[list[int]] = [[] for _ in range(games)]
    planes: list[list[np.ndarray]] = [[] for _ in range(games)]
    pis: list[list[np.ndarray]] = [[] for _ in range(games)]
    results = np.zeros(games, np.int64)
    resigned = np.zeros(games, np.bool_)
    scores: list[float | None] = [None] * games
    while active.any():
        forest.expand_roots(evaluate, active, rng)
        for g in np.flatnonzero(active):
            forest.inject_noise(g, params.dirichlet_alpha, rng, params.noise_weight)
        forest.search(evaluate, params.readouts, active, rng)
        playing = np.flatnonzero(active)
        root_planes = forest.root_planes(playing)
        for index, g in enumerate(playing):
            if not resign_disabled[g] and forest.root_q_to_play(g) < -params.resign_threshold:
                results[g], resigned[g], active[g] = -forest.to_play_at_root(g), True, False
                continue
            visits = forest.visits(g)
            n = forest.move_number(g)
            planes[g].append(root_planes[index])
            pis[g].append(search_probabilities(visits, n, params.temperature_moves))
            move = pick_move(visits, n, params.temperature_moves, rng)
            forest.play(g, move)
            moves[g].append(move)
            if forest.is_done(g):
                position = forest.position(g)
                scores[g] = position.score()
                results[g], active[g] = position.result(), False
    records = []
    points = params.board_size ** 2
    for g in range(games):
        count = len(moves[g])
        examples = Examples(pack(np.stack(planes[g]) if count else np.zeros((0, PLANES, points), np.uint8)),
                            np.stack(pis[g]) if count else np.zeros((0, points + 1), np.float32),
                            np.full(count, results[g], np.float32))
        records.append(GameRecord(moves[g], int(results[g]), bool(resigned[g]), bool(resign_disabled[g]), scores[g],
                                  examples))
    return GroupResult(records, time.perf_counter() - began, forest.network_seconds, forest.evaluations)
