"""GNU Go over GTP (the Go Text Protocol, version 2): the reference opponent and an independent referee.

    engine = GnuGo(level=10, size=9, komi=7.5)
    engine.play(go.BLACK, move); reply = engine.genmove(go.WHITE); engine.final_score()
    engine.close()

GNU Go 3.8 (Debian package `gnugo`) runs with `--mode gtp --chinese-rules`: area scoring, so its
`final_score` (dead stones removed by its own life-and-death reading) is comparable with Tromp-Taylor
once every stone on the board is alive.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from harness.errors import UserError
from reinforcement import go

DEBIAN_PATH = "/usr/games/gnugo"
INSTALL_HINT = "install GNU Go 3.8 (Debian: apt-get install gnugo)"


class GtpError(RuntimeError):
    """GNU Go answered a command with an error, or stopped answering."""


def find_gnugo() -> str | None:
    """Path of the gnugo binary, or None when it is not installed."""
    found = shutil.which("gnugo")
    if found:
        return found
    return DEBIAN_PATH if Path(DEBIAN_PATH).is_file() else None


def require_gnugo() -> str:
    binary = find_gnugo()
    if binary is None:
        raise UserError(f"GNU Go is not installed: the evaluation plays against it; {INSTALL_HINT}, "
                        "or evaluate against the shipped heuristic player (evaluation.opponent=heuristic)")
    return binary


@functools.cache
def gnugo_version(binary: str) -> str:
    """'3.8' from `gnugo --version` ('GNU Go 3.8')."""
    first = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return first.split()[-1]


def parse_score(text: str) -> float:
    """GTP final_score ('B+12.5', 'W+3.5', '0') as black's score."""
    text = text.strip()
    if text in ("0", "Draw"):
        return 0.0
    sign = 1.0 if text[0].upper() == "B" else -1.0
    return sign * float(text[2:])


class GnuGo:
    """One GNU Go process playing one game."""

    def __init__(self, level: int = 10, size: int = 9, komi: float = go.KOMI, seed: int = 0, binary: str | None = None):
        self.binary = binary or require_gnugo()
        self.size = size
        self.process = subprocess.Popen(
            [self.binary, "--mode", "gtp", "--chinese-rules", "--level", str(level), "--komi", str(komi),
             "--boardsize", str(size), "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.command(f"boardsize {size}")
        self.command("clear_board")
        self.command(f"komi {komi}")

    def command(self, text: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(text + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise GtpError(f"GNU Go stopped before '{text}'") from None
        lines = []
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise GtpError(f"GNU Go stopped answering '{text}'")
            if line.strip() == "" and lines:
                break
            if line.strip():
                lines.append(line.strip())
        reply = " ".join(lines)
        if reply.startswith("?"):
            raise GtpError(f"GNU Go refused '{text}': {reply[1:].strip()}")
        return reply[1:].strip()

    @staticmethod
    def _colour(color: int) -> str:
        return "black" if color == go.BLACK else "white"

    def play(self, color: int, move: int) -> None:
        self.command(f"play {self._colour(color)} {go.to_gtp(move, self.size)}")

    def genmove(self, color: int) -> int | None:
        """Its move for `color` (played on its board); None when it resigns."""
        reply = self.command(f"genmove {self._colour(color)}")
        if reply.lower() == "resign":
            return None
        return go.from_gtp(reply, self.size)

    def final_score(self) -> float:
        return parse_score(self.command("final_score"))

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.command("quit")
            except GtpError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class GnuGoOpponent:
    """GNU Go as an evaluation opponent (evaluation.Opponent): it hears every move and scores the end."""

    def __init__(self, level: int, size: int, komi: float, seed: int):
        self.engine = GnuGo(level=level, size=size, komi=komi, seed=seed)
        self.name = f"gnugo-{gnugo_version(self.engine.binary)}-level-{level}"

    def observe(self, color: int, move: int) -> None:
        if not getattr(self, "_own_move", False):
            self.engine.play(color, move)
        self._own_move = False

    def genmove(self, position: go.Position) -> int | None:
        move = self.engine.genmove(position.to_play)
        self._own_move = move is not None  # genmove already played it on GNU Go's board
        return move

    def final_score(self, position: go.Position) -> float | None:
        return self.engine.final_score()

    def close(self) -> None:
        self.engine.close()


def opponent_name(level: int) -> str:
    """How the log names the reference opponent: gnugo-<version>-level-<level>."""
    return f"gnugo-{gnugo_version(require_gnugo())}-level-{level}"
