"""Minigo's data: nothing to train on (the network makes its own games), four games to evaluate on.

Reinforcement learning has no training set. What the benchmark reads from disk is the evaluation
material of the MLPerf v0.5 reference: the four professional 9x9 games whose moves the network must
predict (mlcommons/training, tag v0.5, reinforcement/tensorflow/minigo/benchmark_sgf/, Apache-2.0;
the move-prediction figure, evaluation.py). The "data" step prepares that folder and checks the Go
engine on it, so a run never starts on an engine that disagrees with the rules:

    <data_dir>/benchmark_sgf/9x9_pro_*.sgf   the four games, checked against the git blob SHA-1 of
                                             each file in the mlcommons/training v0.5 tree
    <data_dir>/engine_check/random-*.sgf     random games played to the end from `seed`
    <data_dir>/engine_check.json             each game replayed: captures, final area, and the
                                             verdicts of OpenSpiel's C++ Go (final boards and areas)
                                             and, where installed, GNU Go (final_score)
    <data_dir>/MANIFEST.json                 sha256 of every file (harness.datasets)

`prepare(source, data_dir)` reads the games from `source` (a copy of the reference's benchmark_sgf/),
or downloads them from the reference's repository when `source` is None and no copy is there;
`make_tiny(data_dir, seed)` uses the copies shipped in this package (the same files, the same
checksums) and a few random games. Both write the same layout; a missing or altered game stops with
one line naming it (DatasetError, exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from harness.datasets import write_manifest
from harness.errors import DatasetError
from harness.progress import info, track
from reinforcement import crosscheck, go, sgf

# git blob SHA-1 of each file in github.com/mlcommons/training, tag v0.5,
# reinforcement/tensorflow/minigo/benchmark_sgf/ (`git ls-tree v0.5 <that folder>`): the published
# identity of the files, checkable without trusting any copy
BENCHMARK_GAMES = {
    "9x9_pro_IYHN.sgf": "d19b705ad8e8695dce75bb59c297a1ad9aa37329",
    "9x9_pro_IYMD.sgf": "7c42aee68d1f05b5d99dcd854f9996aec47f7b77",
    "9x9_pro_YKSH.sgf": "40657279d194ff560b5648573e57d4f4fc8a9c01",
    "9x9_pro_YSIY.sgf": "db796541e9afa03008b5eb01e66814708b685a86",
}
SOURCE_URL = "https://raw.githubusercontent.com/mlcommons/training/v0.5/reinforcement/tensorflow/minigo/benchmark_sgf/"
SHIPPED_GAMES = Path(__file__).resolve().parent / "benchmark_sgf"
GAMES_DIR = "benchmark_sgf"
CHECK_DIR = "engine_check"
CHECK_FILE = "engine_check.json"
FULL_RANDOM_GAMES = 8
TINY_RANDOM_GAMES = 4


def git_blob_sha1(data: bytes) -> str:
    """The SHA-1 git gives a file's contents (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify_game(path: Path) -> bytes:
    """The file's bytes if they are the reference's; DatasetError naming the file otherwise."""
    expected = BENCHMARK_GAMES[path.name]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (one of the four professional games of the v0.5 reference)") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error.strerror})") from None
    found = git_blob_sha1(data)
    if found != expected:
        raise DatasetError(f"{path}: git SHA-1 {found}, the reference's file is {expected}: the file is altered "
                           "or truncated; fetch it again")
    return data


def download_game(name: str, destination: Path, url: str = SOURCE_URL) -> None:
    """Fetch one game from the reference's repository (small files: no resume needed)."""
    try:
        with urllib.request.urlopen(url + name, timeout=60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as error:
        raise DatasetError(f"{url + name}: download failed ({error}); retry, or copy the reference's "
                           f"benchmark_sgf/ folder and pass it as --source") from None
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, destination)


def _check_replay(moves, final: go.Position, size: int) -> dict:
    """OpenSpiel's (and, for finished games, GNU Go's) verdict on a replayed game."""
    verdict: dict = {}
    try:
        board = crosscheck.openspiel_final_board(moves, size)
    except ImportError:
        verdict["openspiel"] = "not installed (pip install open-spiel)"
        return verdict
    if not np.array_equal(board, final.board):
        raise DatasetError(f"engine check: OpenSpiel reaches another final position after {len(moves)} moves")
    verdict["openspiel_final_board"] = "equal"
    if final.is_game_over():
        area = crosscheck.openspiel_area(moves, size, guess=final.area())
        if area != final.area():
            raise DatasetError(f"engine check: OpenSpiel's area {area}, ours {final.area()}")
        verdict["openspiel_area"] = area
        from reinforcement.gtp import find_gnugo

        if find_gnugo():
            score = crosscheck.gnugo_score(moves, size, final.komi)
            if score != final.score():
                raise DatasetError(f"engine check: GNU Go's final_score {score}, our Tromp-Taylor score {final.score()}")
            verdict["gnugo_final_score"] = score
    return verdict


def check_engine(data_dir: Path, seed: int, random_games: int, progress: bool = True) -> dict:
    """Replay the professional games and `random_games` random games (written as SGF) with the
    engine, cross-checked with OpenSpiel and GNU Go; writes engine_check.json."""
    report: dict = {"professional": {}, "random": {}}
    for name in BENCHMARK_GAMES:
        replay = sgf.replay_file(data_dir / GAMES_DIR / name)
        report["professional"][name] = {"moves": len(replay.moves), "captures": list(replay.captures),
                                        "final_area": replay.final.area(),
                                        **_check_replay(replay.moves, replay.final, replay.size)}
    check_dir = data_dir / CHECK_DIR
    check_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in track(range(random_games), "engine check: random games", enabled=progress):
        moves = None
        while moves is None:
            moves = crosscheck.random_game(9, int(rng.integers(2**31)))
        final = go.Position(9).play_many(moves)
        name = f"random-{index}.sgf"
        (check_dir / name).write_bytes(sgf.write(moves, 9, final.komi, final.result_string(), "random", "random"))
        report["random"][name] = {"moves": len(moves), "final_area": final.area(), "score": final.score(),
                                  **_check_replay(moves, final, 9)}
    (data_dir / CHECK_FILE).write_text(json.dumps(report, indent=1, sort_keys=True))
    return report


def _write(data_dir: Path, games: dict[str, bytes], seed: int, random_games: int) -> Path:
    if data_dir.exists():
        shutil.rmtree(data_dir / CHECK_DIR, ignore_errors=True)
    (data_dir / GAMES_DIR).mkdir(parents=True, exist_ok=True)
    for name, data in games.items():
        (data_dir / GAMES_DIR / name).write_bytes(data)
    report = check_engine(data_dir, seed, random_games)
    write_manifest(data_dir)
    checked = "OpenSpiel" + (" and GNU Go" if any("gnugo_final_score" in game for game in report["random"].values())
                             else " (GNU Go not installed: its check skipped)")
    info(f"{len(games)} professional games and {random_games} random games replayed, checked with {checked}; "
         f"wrote {data_dir}")
    return data_dir


def prepare(source_dir: str | os.PathLike | None, data_dir: str | os.PathLike, seed: int = 0) -> Path:
    """The evaluation games from `source_dir` (or downloaded), verified, checked, with a manifest."""
    data_dir = Path(data_dir)
    source = Path(source_dir) if source_dir else data_dir.parent / "downloads"
    games = {}
    for name in BENCHMARK_GAMES:
        path = source / name
        if not path.exists() and source_dir is None:
            info(f"downloading {SOURCE_URL + name}")
            download_game(name, path)
        games[name] = verify_game(path)
    return _write(data_dir, games, seed, FULL_RANDOM_GAMES)


def make_tiny(data_dir: str | os.PathLike, seed: int = 0) -> Path:
    """The same layout from the copies shipped with the package, and TINY_RANDOM_GAMES random games."""
    games = {name: verify_game(SHIPPED_GAMES / name) for name in BENCHMARK_GAMES}
    return _write(Path(data_dir), games, seed, TINY_RANDOM_GAMES)


def load_benchmark_games(data_dir: str | os.PathLike) -> list[sgf.Replay]:
    """The four professional games replayed (after the manifest check of the caller)."""
    folder = Path(data_dir) / GAMES_DIR
    return [sgf.replay(verify_game(folder / name), str(folder / name)) for name in BENCHMARK_GAMES]
