"""The Go engine: board, legal moves, captures, simple ko, no suicide, Tromp-Taylor area scoring.

Framework-free. The rules are those of the MLPerf v0.5 Minigo reference (mlcommons/training,
reinforcement/tensorflow/minigo/go.py): stones are removed when their group has no liberty, a
move that leaves its own group without liberty is illegal (no suicide), the point of a single
captured stone may not be retaken at once (simple ko), two passes in a row end the game, and the
score is Tromp-Taylor area (stones plus the empty regions that reach only that colour) minus komi.

Points are flat indices `row * N + col`, row 0 at the top (SGF's first row, as the reference's
coords.py); the pass is `N * N`. Colours: BLACK = 1, WHITE = -1, EMPTY = 0.

The hot loops (playing a move, the legal-move mask, scoring, random playouts) are compiled with
numba (`cache=True`: compiled once per machine, then loaded from `__pycache__`); `Position` is
the immutable Python face of it used by SGF replay, the players and the tests.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Iterable

import numba
import numpy as np

BLACK, WHITE, EMPTY = 1, -1, 0
KOMI = 7.5
HISTORY = 8  # boards the AlphaGo Zero input planes look at (the position and the 7 before it)
GTP_COLUMNS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"  # GTP skips I


class IllegalMove(ValueError):
    """A move on an occupied point, on the ko point, or a suicide."""


@functools.cache
def neighbors(size: int) -> np.ndarray:
    """(N*N, 4) int16: the on-board neighbours of each point, padded with -1 at the end."""
    table = np.full((size * size, 4), -1, dtype=np.int16)
    for row in range(size):
        for col in range(size):
            found = [r * size + c for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
                     if 0 <= r < size and 0 <= c < size]
            table[row * size + col, :len(found)] = found
    table.setflags(write=False)
    return table


# -- compiled kernels ------------------------------------------------------------------------------

@numba.njit(cache=True)
def _remove_if_dead(board, start, nbrs):
    """Remove the group at `start` if it has no liberty; returns the number of stones removed."""
    color = board[start]
    points = board.shape[0]
    seen = np.zeros(points, np.bool_)
    stack = np.empty(points, np.int16)
    members = np.empty(points, np.int16)
    stack[0] = start
    seen[start] = True
    top, count = 1, 0
    while top > 0:
        top -= 1
        p = stack[top]
        members[count] = p
        count += 1
        for k in range(4):
            q = nbrs[p, k]
            if q < 0:
                break
            v = board[q]
            if v == 0:
                return 0
            if v == color and not seen[q]:
                seen[q] = True
                stack[top] = q
                top += 1
    for i in range(count):
        board[members[i]] = 0
    return count


@numba.njit(cache=True)
def _has_liberty(board, start, nbrs):
    color = board[start]
    points = board.shape[0]
    seen = np.zeros(points, np.bool_)
    stack = np.empty(points, np.int16)
    stack[0] = start
    seen[start] = True
    top = 1
    while top > 0:
        top -= 1
        p = stack[top]
        for k in range(4):
            q = nbrs[p, k]
            if q < 0:
                break
            v = board[q]
            if v == 0:
                return True
            if v == color and not seen[q]:
                seen[q] = True
                stack[top] = q
                top += 1
    return False


@numba.njit(cache=True)
def play_stone(board, color, point, ko, nbrs):
    """Play `color` at `point` on `board` in place. Returns (new ko point or -1, stones captured),
    or (-2, 0) with the board unchanged when the move is illegal (occupied, ko, suicide)."""
    if board[point] != 0 or point == ko:
        return -2, 0
    # koish: every neighbour is an opponent stone (reference go.py is_koish)
    koish = True
    for k in range(4):
        q = nbrs[point, k]
        if q < 0:
            break
        if board[q] != -color:
            koish = False
    board[point] = color
    captured = 0
    last = -1
    for k in range(4):
        q = nbrs[point, k]
        if q < 0:
            break
        if board[q] == -color:
            removed = _remove_if_dead(board, q, nbrs)
            if removed > 0:
                captured += removed
                last = q
    if captured == 0 and not _has_liberty(board, point, nbrs):
        board[point] = 0
        return -2, 0
    new_ko = last if (captured == 1 and koish) else -1
    return new_ko, captured


@numba.njit(cache=True)
def _label_groups(board, nbrs, labels, liberties):
    """Label every stone with its group index and count each group's distinct liberties."""
    points = board.shape[0]
    stack = np.empty(points, np.int16)
    for p in range(points):
        labels[p] = -1
    groups = 0
    for p in range(points):
        if board[p] == 0 or labels[p] >= 0:
            continue
        color = board[p]
        labels[p] = groups
        stack[0] = p
        top = 1
        while top > 0:
            top -= 1
            s = stack[top]
            for k in range(4):
                q = nbrs[s, k]
                if q < 0:
                    break
                if board[q] == color and labels[q] < 0:
                    labels[q] = groups
                    stack[top] = q
                    top += 1
        groups += 1
    for g in range(groups):
        liberties[g] = 0
    for p in range(points):
        if board[p] != 0:
            continue
        # each distinct neighbouring group gains this liberty once
        a = b = c = -1
        for k in range(4):
            q = nbrs[p, k]
            if q < 0:
                break
            g = labels[q]
            if g >= 0 and g != a and g != b and g != c:
                liberties[g] += 1
                if a < 0:
                    a = g
                elif b < 0:
                    b = g
                else:
                    c = g
    return groups


@numba.njit(cache=True)
def legal_mask(board, color, ko, nbrs, out):
    """out[p] = True where `color` may play (out[N*N], the pass, is always True)."""
    points = board.shape[0]
    labels = np.empty(points, np.int32)
    liberties = np.empty(points, np.int32)
    _label_groups(board, nbrs, labels, liberties)
    for p in range(points):
        out[p] = False
        if board[p] != 0 or p == ko:
            continue
        for k in range(4):
            q = nbrs[p, k]
            if q < 0:
                break
            v = board[q]
            # an empty neighbour, a friendly group with another liberty, or a capture
            if v == 0 or (v == color and liberties[labels[q]] > 1) or (v == -color and liberties[labels[q]] == 1):
                out[p] = True
                break
    out[points] = True


@numba.njit(cache=True)
def area_score(board, nbrs):
    """Tromp-Taylor area, black minus white (no komi): stones plus empty regions reaching one colour."""
    points = board.shape[0]
    seen = np.zeros(points, np.bool_)
    stack = np.empty(points, np.int16)
    score = 0
    for p in range(points):
        v = board[p]
        if v != 0:
            score += v
            continue
        if seen[p]:
            continue
        seen[p] = True
        stack[0] = p
        top, size = 1, 0
        reaches_black = reaches_white = False
        while top > 0:
            top -= 1
            s = stack[top]
            size += 1
            for k in range(4):
                q = nbrs[s, k]
                if q < 0:
                    break
                w = board[q]
                if w == 1:
                    reaches_black = True
                elif w == -1:
                    reaches_white = True
                elif not seen[q]:
                    seen[q] = True
                    stack[top] = q
                    top += 1
        if reaches_black and not reaches_white:
            score += size
        elif reaches_white and not reaches_black:
            score -= size
    return score


@numba.njit(cache=True)
def is_own_eye(board, color, point, nbrs):
    """An empty point whose every neighbour is a `color` stone (a single-point eye of `color`)."""
    if board[point] != 0:
        return False
    for k in range(4):
        q = nbrs[point, k]
        if q < 0:
            break
        if board[q] != color:
            return False
    return True


@numba.njit(cache=True)
def random_playout(board, color, ko, passes, max_moves, nbrs, seed, avoid_own_eyes, moves_out):
    """Play uniformly random legal moves from a position in place until two passes in a row or
    `max_moves` moves; returns the number of moves written to `moves_out`.

    avoid_own_eyes=False: every legal move and the pass are equally likely (OpenSpiel's uniform
    random bot, the speed peer). avoid_own_eyes=True: a random legal move that does not fill the
    player's own single-point eye, passing only when none is left (the engine acceptance games).
    """
    np.random.seed(seed)
    points = board.shape[0]
    mask = np.empty(points + 1, np.bool_)
    choices = np.empty(points + 1, np.int16)
    played = 0
    while played < max_moves and passes < 2:
        legal_mask(board, color, ko, nbrs, mask)
        count = 0
        for p in range(points):
            if mask[p] and not (avoid_own_eyes and is_own_eye(board, color, p, nbrs)):
                choices[count] = p
                count += 1
        if not avoid_own_eyes:
            choices[count] = points
            count += 1
        move = points if count == 0 else choices[np.random.randint(count)]
        if move == points:
            passes += 1
            ko = -1
        else:
            ko, _ = play_stone(board, color, move, ko, nbrs)
            passes = 0
        moves_out[played] = move
        played += 1
        color = -color
    return played


# -- coordinates -----------------------------------------------------------------------------------

def to_gtp(move: int, size: int) -> str:
    """Flat index -> GTP vertex ('C3', 'pass'); GTP rows count from the bottom."""
    if move == size * size:
        return "pass"
    row, col = divmod(move, size)
    return f"{GTP_COLUMNS[col]}{size - row}"


def from_gtp(vertex: str, size: int) -> int:
    vertex = vertex.strip().upper()
    if vertex == "PASS":
        return size * size
    col = GTP_COLUMNS.index(vertex[0])
    row = size - int(vertex[1:])
    if not (0 <= row < size and 0 <= col < size):
        raise ValueError(f"GTP vertex {vertex!r} is off a {size}x{size} board")
    return row * size + col


def to_sgf_point(move: int, size: int) -> str:
    """Flat index -> SGF point ('cd': column c, row d from the top); '' for a pass."""
    if move == size * size:
        return ""
    row, col = divmod(move, size)
    return string.ascii_lowercase[col] + string.ascii_lowercase[row]


# -- the Python face ---------------------------------------------------------------------------------

class Position:
    """One position of a game: immutable; `play(move)` returns the next one.

    It carries what the rules and the network need: the board, whose turn, the ko point, the
    number of passes in a row, the move number, the last move, and the previous boards (newest
    first, up to HISTORY - 1) for the AlphaGo Zero input planes.
    """

    __slots__ = ("size", "board", "to_play", "ko", "passes", "n", "last_move", "history", "komi")

    def __init__(self, size: int = 9, board: np.ndarray | None = None, to_play: int = BLACK, ko: int = -1,
                 passes: int = 0, n: int = 0, last_move: int = -1, history: tuple[np.ndarray, ...] = (),
                 komi: float = KOMI):
        self.size = size
        self.board = np.zeros(size * size, np.int8) if board is None else board
        self.board.setflags(write=False)
        self.to_play, self.ko, self.passes, self.n = to_play, ko, passes, n
        self.last_move, self.history, self.komi = last_move, history, komi

    @property
    def pass_move(self) -> int:
        return self.size * self.size

    def play(self, move: int) -> Position:
        """The position after `to_play` plays `move` (flat index or pass); IllegalMove if it may not."""
        history = ((self.board,) + self.history)[:HISTORY - 1]
        if move == self.pass_move:
            return Position(self.size, self.board, -self.to_play, -1, self.passes + 1, self.n + 1, move, history, self.komi)
        if not 0 <= move < self.pass_move:
            raise IllegalMove(f"move {move} is off a {self.size}x{self.size} board")
        board = self.board.copy()
        ko, _ = play_stone(board, self.to_play, move, self.ko, neighbors(self.size))
        if ko == -2:
            raise IllegalMove(f"{'black' if self.to_play == BLACK else 'white'} may not play "
                              f"{to_gtp(move, self.size)} (move {self.n + 1}): occupied, ko or suicide")
        return Position(self.size, board, -self.to_play, ko, 0, self.n + 1, move, history, self.komi)

    def play_many(self, moves: Iterable[int]) -> Position:
        position = self
        for move in moves:
            position = position.play(move)
        return position

    def with_stones(self, black: Iterable[int], white: Iterable[int]) -> Position:
        """Setup stones (SGF AB/AW, handicap) placed without captures, as SGF setup does."""
        board = self.board.copy()
        board[list(black)] = BLACK
        board[list(white)] = WHITE
        return Position(self.size, board, self.to_play, -1, 0, self.n, self.last_move, self.history, self.komi)

    def with_to_play(self, color: int) -> Position:
        return Position(self.size, self.board, color, self.ko if color == self.to_play else -1, self.passes, self.n,
                        self.last_move, self.history, self.komi)

    def legal_moves(self) -> np.ndarray:
        """Bool mask over N*N + 1 moves (the pass last)."""
        mask = np.empty(self.pass_move + 1, np.bool_)
        legal_mask(self.board, self.to_play, self.ko, neighbors(self.size), mask)
        return mask

    def is_game_over(self) -> bool:
        return self.passes >= 2

    def area(self) -> int:
        """Tromp-Taylor area of black minus white, before komi."""
        return int(area_score(self.board, neighbors(self.size)))

    def score(self) -> float:
        """Black's Tromp-Taylor score minus white's, komi included (positive: black wins)."""
        return self.area() - self.komi

    def result(self) -> int:
        """+1 black wins, -1 white wins (0 only with an integer komi and equal areas)."""
        score = self.score()
        return 1 if score > 0 else -1 if score < 0 else 0

    def result_string(self) -> str:
        score = self.score()
        return "0" if score == 0 else f"{'B' if score > 0 else 'W'}+{abs(score):.1f}"

    def boards(self) -> np.ndarray:
        """(HISTORY, N*N) int8: this board then the previous ones, the oldest repeated where the game
        is younger (reference features.py stone_features)."""
        known = (self.board,) + self.history
        return np.stack([known[min(i, len(known) - 1)] for i in range(HISTORY)])

    def __str__(self) -> str:
        glyph = {BLACK: "X", WHITE: "O", EMPTY: "."}
        rows = []
        for row in range(self.size):
            cells = [glyph[int(v)] for v in self.board[row * self.size:(row + 1) * self.size]]
            rows.append(f"{self.size - row:2d} " + " ".join(cells))
        rows.append("   " + " ".join(GTP_COLUMNS[:self.size]))
        return "\n".join(rows) + f"\nmove {self.n}, {'black' if self.to_play == BLACK else 'white'} to play"


def max_game_length(size: int) -> int:
    """The reference's MAX_DEPTH = N * N * 1.4 (mcts.py): a game is over once `n >= MAX_DEPTH`, i.e.
    after 114 moves on 9x9."""
    return int(np.ceil(size * size * 1.4))
