"""Quality: the network's win rate against a fixed opponent, and move prediction on professional games.

Win rate (the benchmark's quality): `games` games against the opponent, the network black in the
even-numbered games and white in the odd ones, komi 7.5. The network plays as the reference's
evaluation player (mlcommons/training v0.5 minigo, evaluation.py play_match with MCTSPlayer
two_player_mode=True): `readouts` simulations per move, no noise, always the most visited move,
resigning when its root value falls below -resign_threshold (MCTSPlayer's default 0.9). A game
ends after two passes, a resignation, or MAX_DEPTH moves. The opponent scores the finished game
where it can (GNU Go's `final_score`, Chinese rules: dead stones removed); otherwise the
Tromp-Taylor score decides. Draws (impossible with komi 7.5) count half.

Move prediction (the v0.5 benchmark's own target, logged here as a second figure; reference
predict_games.py): for every position of the four professional 9x9 games, the network searches
`readouts` simulations and its most visited move is compared with the professional's; the figure is
the share of moves predicted, averaged over `rounds` passes (the random symmetries differ).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from reinforcement import go
from reinforcement.mcts import Evaluate, Forest
from reinforcement.players import HeuristicPlayer, RandomPlayer

EVAL_RESIGN_THRESHOLD = 0.9  # reference strategies.py MCTSPlayerMixin(resign_threshold=-0.90)


class Opponent(Protocol):
    """A fixed opponent, one instance per game."""

    name: str

    def observe(self, color: int, move: int) -> None: ...  # a move played in its game (by either side)

    def genmove(self, position: go.Position) -> int | None: ...  # its move; None = it resigns

    def final_score(self, position: go.Position) -> float | None: ...  # black's score if it scores

    def close(self) -> None: ...


class LocalOpponent:
    """Adapts a `players.py` player (heuristic, random) to the Opponent protocol."""

    def __init__(self, player):
        self.player, self.name = player, player.name

    def observe(self, color: int, move: int) -> None:
        pass

    def genmove(self, position: go.Position) -> int | None:
        return self.player.genmove(position)

    def final_score(self, position: go.Position) -> float | None:
        return None

    def close(self) -> None:
        pass


def local_opponent(kind: str, seed: int) -> LocalOpponent:
    rng = np.random.default_rng(seed)
    if kind == "heuristic":
        return LocalOpponent(HeuristicPlayer(rng))
    if kind == "random":
        return LocalOpponent(RandomPlayer(rng))
    raise ValueError(f"unknown local opponent {kind!r}")


@dataclasses.dataclass(frozen=True)
class GameOutcome:
    network_color: int
    winner: int  # +1 black, -1 white, 0 draw
    moves: tuple[int, ...]
    reason: str  # "score", "resign", "length"
    score: float | None  # black's score when the game was scored

    @property
    def network_won(self) -> float:
        return 0.5 if self.winner == 0 else float(self.winner == self.network_color)


def play_match(evaluate: Evaluate, opponents: Sequence[Opponent], first_game: int, board_size: int, readouts: int,
               num_parallel: int, seed: int, komi: float = go.KOMI,
               resign_threshold: float = EVAL_RESIGN_THRESHOLD, max_game_length: int | None = None) -> list[GameOutcome]:
    """Play one game against each opponent, all searched together; game `first_game + i` has the
    network black when even. Everything random (the symmetries) comes from `seed`."""
    games = len(opponents)
    max_length = go.max_game_length(board_size) if max_game_length is None else max_game_length
    rng = np.random.default_rng(seed)
    forest = Forest(games, board_size, capacity=4 * readouts + 4 * num_parallel + 8, komi=komi,
                    max_depth=max_length, num_parallel=num_parallel)
    network_color = np.array([go.BLACK if (first_game + i) % 2 == 0 else go.WHITE for i in range(games)])
    positions = [go.Position(board_size, komi=komi) for _ in range(games)]
    moves: list[list[int]] = [[] for _ in range(games)]
    outcomes: list[GameOutcome | None] = [None] * games
    for g in range(games):
        forest.set_root(g, positions[g])

    def play(g: int, move: int) -> None:
        color = positions[g].to_play
        positions[g] = positions[g].play(move)
        forest.play(g, move)
        moves[g].append(move)
        opponents[g].observe(color, move)
        if positions[g].is_game_over() or positions[g].n >= max_length:
            score = opponents[g].final_score(positions[g])
            score = positions[g].score() if score is None else score
            reason = "score" if positions[g].is_game_over() else "length"
            outcomes[g] = GameOutcome(int(network_color[g]), int(np.sign(score)), tuple(moves[g]), reason, score)

    def resign(g: int, loser: int) -> None:
        outcomes[g] = GameOutcome(int(network_color[g]), -loser, tuple(moves[g]), "resign", None)

    while any(outcome is None for outcome in outcomes):
        open_games = np.array([outcome is None for outcome in outcomes])
        to_move = np.array([positions[g].to_play for g in range(games)])
        network_turn = open_games & (to_move == network_color)
        forest.search(evaluate, readouts, network_turn, rng)
        for g in np.flatnonzero(network_turn):
            if forest.root_q_to_play(g) < -resign_threshold:
                resign(g, int(network_color[g]))
                continue
            play(g, int(np.argmax(forest.visits(g))))
        for g in np.flatnonzero(open_games & ~network_turn):
            move = opponents[g].genmove(positions[g])
            if move is None:
                resign(g, -int(network_color[g]))
            else:
                play(g, move)
    return [outcome for outcome in outcomes if outcome is not None]


def win_rate(outcomes: Sequence[GameOutcome]) -> float:
    return float(np.mean([outcome.network_won for outcome in outcomes])) if outcomes else float("nan")


def predict_moves(evaluate: Evaluate, positions: Sequence[go.Position], next_moves: Sequence[int], readouts: int,
                  num_parallel: int, seed: int, batch: int = 64) -> np.ndarray:
    """1.0 where the network's most visited move after `readouts` simulations (its policy's argmax
    when readouts is 0) is the recorded next move, else 0.0."""
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(positions))
    for first in range(0, len(positions), batch):
        chunk = positions[first:first + batch]
        forest = Forest(len(chunk), chunk[0].size, capacity=readouts + 4 * num_parallel + 8, komi=chunk[0].komi,
                        num_parallel=num_parallel)
        for g, position in enumerate(chunk):
            forest.set_root(g, position)
        everyone = np.ones(len(chunk), np.bool_)
        forest.expand_roots(evaluate, everyone, rng)
        if readouts > 0:
            forest.search(evaluate, readouts, everyone, rng)
        for g in range(len(chunk)):
            scores = forest.visits(g) if readouts > 0 else np.where(forest.legal[g, 0], forest.prior[g, 0], -1.0)
            hits[first + g] = float(int(np.argmax(scores)) == next_moves[first + g])
    return hits
