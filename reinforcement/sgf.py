"""Game records in SGF (FF[4]) through sgfmill: replay a recorded game, write one.

sgfmill numbers rows from the bottom (row 0 is the first line for black); the engine's flat
indices count rows from the top (go.py), so points are converted here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from sgfmill import sgf, sgf_moves

from harness.errors import DatasetError
from reinforcement import go

_COLOURS = {"b": go.BLACK, "w": go.WHITE}


@dataclasses.dataclass(frozen=True)
class Replay:
    """A recorded game replayed by the engine: every position and the move played from it."""

    size: int
    komi: float
    result: str
    positions: tuple[go.Position, ...]  # positions[i] is the board before moves[i]
    moves: tuple[int, ...]
    final: go.Position

    @property
    def captures(self) -> tuple[int, int]:
        """Stones captured by black and by white over the game (setup stones excluded)."""
        black = white = 0
        for before, after, move in zip(self.positions, self.positions[1:] + (self.final,), self.moves):
            if move == before.pass_move:
                continue
            removed = int((before.board != 0).sum()) + 1 - int((after.board != 0).sum())
            if before.to_play == go.BLACK:
                black += removed
            else:
                white += removed
        return black, white


def _flat(point: tuple[int, int] | None, size: int) -> int:
    if point is None:
        return size * size
    row, col = point
    return (size - 1 - row) * size + col


def replay(data: bytes, where: str = "<sgf>") -> Replay:
    """Replay an SGF game (setup stones, then the main line); DatasetError names a broken record or
    an illegal move."""
    try:
        game = sgf.Sgf_game.from_bytes(data)
        size = game.get_size()
        komi = float(game.get_komi())
        result = game.get_root().get("RE") if game.get_root().has_property("RE") else ""
        setup, plays = sgf_moves.get_setup_and_moves(game)
    except (ValueError, KeyError) as error:
        raise DatasetError(f"{where}: not a readable SGF game record ({error})") from None
    position = go.Position(size, komi=komi)
    occupied = setup.list_occupied_points()  # [(colour, (row, col))]
    black = [_flat(point, size) for colour, point in occupied if colour == "b"]
    white = [_flat(point, size) for colour, point in occupied if colour == "w"]
    if black or white:
        position = position.with_stones(black, white)
        if plays and _COLOURS[plays[0][0]] != position.to_play:
            position = position.with_to_play(_COLOURS[plays[0][0]])
    positions, moves = [], []
    for number, (colour, point) in enumerate(plays, start=1):
        move = _flat(point, size)
        if _COLOURS[colour] != position.to_play:
            position = position.with_to_play(_COLOURS[colour])  # two moves of one colour in a row
        positions.append(position)
        moves.append(move)
        try:
            position = position.play(move)
        except go.IllegalMove as error:
            raise DatasetError(f"{where}: move {number} is illegal ({error})") from None
    return Replay(size, komi, result, tuple(positions), tuple(moves), position)


def replay_file(path: str | Path) -> Replay:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error.strerror})") from None
    return replay(data, str(path))


def write(moves: Sequence[int], size: int, komi: float = go.KOMI, result: str = "", black: str = "",
          white: str = "", first: int = go.BLACK) -> bytes:
    """An SGF record of a game from the empty board, Chinese rules (area scoring)."""
    game = sgf.Sgf_game(size=size)
    root = game.get_root()
    root.set("KM", komi)
    root.set("RU", "Chinese")
    if result:
        root.set("RE", result)
    if black:
        root.set("PB", black)
    if white:
        root.set("PW", white)
    colour = first
    for move in moves:
        node = game.extend_main_sequence()
        point = None if move == size * size else (size - 1 - move // size, move % size)
        node.set_move("b" if colour == go.BLACK else "w", point)
        colour = -colour
    return game.serialise()
