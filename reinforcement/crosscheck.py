"""The engine checked against two independent Go implementations: OpenSpiel's C++ Go (PyPI
`open-spiel`, always installed with the reinforcement extra) and GNU Go 3.8 over GTP (where the
Debian package `gnugo` is installed).

- `openspiel_final_board(moves)`: the board OpenSpiel reaches by the same moves (captures included);
  a move OpenSpiel finds illegal fails the check.
- `openspiel_area(moves)`: OpenSpiel's Tromp-Taylor area (black minus white) of the final position.
  OpenSpiel only reports who won, so the area is found by komi: with komi a - 0.5 black wins and
  with a + 0.5 white wins exactly when the area is a.
- `gnugo_score(moves)`: GNU Go's `final_score` (Chinese rules, dead stones removed by its reading).
- `random_game(seed)`: a random game in which neither side fills its own single-point eye and a
  side passes only when nothing else is left, played until two passes in a row: every stone left
  on the board is then alive, so Tromp-Taylor and GNU Go's Chinese count must agree.
"""

from __future__ import annotations

import numpy as np

from reinforcement import go

RANDOM_GAME_LIMIT = 2000  # moves; a random game that cycles through kos this long is discarded


def _pyspiel():
    import pyspiel

    return pyspiel


def to_openspiel(move: int, size: int) -> int:
    """Our flat index (row 0 at the top) -> OpenSpiel's action (row 0 at the bottom); the pass is N*N in both."""
    if move == size * size:
        return move
    row, col = divmod(move, size)
    return (size - 1 - row) * size + col


def _openspiel_state(moves, size: int, komi: float):
    game = _pyspiel().load_game("go", {"board_size": size, "komi": komi, "max_game_length": max(len(moves) + 2, 2)})
    state = game.new_initial_state()
    for number, move in enumerate(moves, start=1):
        action = to_openspiel(int(move), size)
        if action not in state.legal_actions():
            raise AssertionError(f"OpenSpiel finds move {number} ({go.to_gtp(int(move), size)}) illegal")
        state.apply_action(action)
    return state


def openspiel_final_board(moves, size: int) -> np.ndarray:
    """The final board in our layout (flat, row 0 at the top, BLACK 1 / WHITE -1)."""
    planes = np.asarray(_openspiel_state(moves, size, go.KOMI).observation_tensor(0)).reshape(4, size, size)
    board = (planes[0] - planes[1]).astype(np.int8)  # planes: black, white, empty, to play; row 0 at the bottom
    return board[::-1].reshape(-1)


def openspiel_black_wins(moves, size: int, komi: float) -> bool:
    state = _openspiel_state(moves, size, komi)
    assert state.is_terminal(), "OpenSpiel scores only finished games (two passes)"
    return state.returns()[0] > 0


def openspiel_area(moves, size: int, guess: int = 0) -> int:
    """OpenSpiel's black-minus-white area of the finished game (see the module docstring)."""
    if openspiel_black_wins(moves, size, guess - 0.5) and not openspiel_black_wins(moves, size, guess + 0.5):
        return guess
    low, high = -size * size, size * size  # black wins with komi low - 0.5, loses with high + 0.5
    while low < high:
        middle = (low + high + 1) // 2
        if openspiel_black_wins(moves, size, middle - 0.5):
            low = middle
        else:
            high = middle - 1
    return low


def gnugo_score(moves, size: int, komi: float = go.KOMI, level: int = 1) -> float:
    """GNU Go's final_score of the game (black's view); needs gnugo installed."""
    from reinforcement.gtp import GnuGo

    engine = GnuGo(level=level, size=size, komi=komi)
    try:
        color = go.BLACK
        for move in moves:
            engine.play(color, int(move))
            color = -color
        return engine.final_score()
    finally:
        engine.close()


def only_eye_fills_left(position: go.Position) -> bool:
    """Neither side has a legal move (the ko point free again) but to fill its own single-point eye."""
    nbrs = go.neighbors(position.size)
    for color in (go.BLACK, go.WHITE):
        mask = np.empty(position.pass_move + 1, np.bool_)
        go.legal_mask(position.board, color, -1, nbrs, mask)
        if any(not go.is_own_eye(position.board, color, point, nbrs) for point in np.flatnonzero(mask[:-1])):
            return False
    return True


def repeats_a_position(moves, size: int) -> bool:
    """A move (not a pass) recreates an earlier whole-board position. The reference's rules (and ours)
    have simple ko only and allow it; OpenSpiel ends such a game as a superko draw, so the two
    engines' scores are not comparable there."""
    position = go.Position(size)
    seen = {position.board.tobytes()}
    for move in moves:
        position = position.play(move)
        key = position.board.tobytes()
        if move != position.pass_move and key in seen:
            return True
        seen.add(key)
    return False


def random_game(size: int, seed: int) -> list[int] | None:
    """The moves of one eye-respecting random game from the empty board; None (draw another) when it
    does not end within RANDOM_GAME_LIMIT moves, when it ends by two passes while a side still had a
    real move (its only move was a ko point retaken at once: the game stopped before every stone was
    settled), or when it repeats a whole-board position (see repeats_a_position)."""
    moves = np.empty(RANDOM_GAME_LIMIT, np.int16)
    board = np.zeros(size * size, np.int8)
    count = go.random_playout(board, go.BLACK, -1, 0, RANDOM_GAME_LIMIT, go.neighbors(size), seed, True, moves)
    if count >= RANDOM_GAME_LIMIT or not only_eye_fills_left(go.Position(size, board)):
        return None
    played = [int(move) for move in moves[:count]]
    return None if repeats_a_position(played, size) else played
