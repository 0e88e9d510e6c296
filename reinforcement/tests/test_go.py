"""The Go engine against the rules written out by hand, and against two other engines: OpenSpiel's C++
Go (always) and GNU Go 3.8 (where installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reinforcement import crosscheck, go, sgf
from reinforcement.dataset import BENCHMARK_GAMES, SHIPPED_GAMES
from reinforcement.gtp import GnuGo, find_gnugo

CGOBAN_GAME = Path("/usr/share/doc/cgoban/examples/seigen-minoru.sgf")
needs_gnugo = pytest.mark.skipif(find_gnugo() is None, reason="GNU Go is not installed (apt-get install gnugo)")


def board_from(rows: list[str]) -> np.ndarray:
    """'X' black, 'O' white, '.' empty; the first row is the top."""
    return np.array([{"X": go.BLACK, "O": go.WHITE, ".": go.EMPTY}[c] for row in rows for c in row.replace(" ", "")],
                    np.int8)


def point(vertex: str, size: int = 5) -> int:
    return go.from_gtp(vertex, size)


def test_capture_removes_the_group_and_counts_its_stones():
    position = go.Position(5, board_from([". . . . .",
                                          ". O O . .",
                                          "O X X O .",
                                          ". O . . .",
                                          ". . . . ."]), to_play=go.WHITE)
    after = position.play(point("C2"))  # the last liberty of the two black stones
    assert after.board[point("B3")] == after.board[point("C3")] == go.EMPTY
    assert (after.board == go.WHITE).sum() == 6 and (after.board == go.BLACK).sum() == 0  # 5 + the move


def test_suicide_is_illegal_but_a_capturing_fill_is_not():
    position = go.Position(5, board_from([". O X . .",
                                          "O X . . .",
                                          "X . . . .",
                                          ". . . . .",
                                          ". . . . ."]))
    # A5 takes the last liberty of both white stones: legal for black, and it captures them
    assert position.legal_moves()[point("A5")]
    after = position.play(point("A5"))
    assert after.board[point("B5")] == after.board[point("A4")] == go.EMPTY
    # for white, A5 joins two stones without a liberty and captures nothing: suicide
    as_white = position.with_to_play(go.WHITE)
    assert not as_white.legal_moves()[point("A5")]
    with pytest.raises(go.IllegalMove):
        as_white.play(point("A5"))


def test_simple_ko_forbids_the_immediate_recapture_only():
    position = go.Position(5, board_from([". X O . .",
                                          "X O . O .",
                                          ". X O . .",
                                          ". . . . .",
                                          ". . . . ."]))
    taken = position.play(point("C4"))  # black captures the white stone at B4
    assert taken.board[point("B4")] == go.EMPTY and taken.ko == point("B4")
    assert not taken.legal_moves()[point("B4")]
    with pytest.raises(go.IllegalMove):
        taken.play(point("B4"))
    # after a move elsewhere (or a pass) the ko may be taken back
    later = taken.play(point("E1")).play(point("E2"))
    assert later.legal_moves()[point("B4")]
    assert taken.play(taken.pass_move).ko == -1


def test_a_two_stone_capture_is_not_a_ko():
    position = go.Position(5, board_from([". X X . .",
                                          "X O O . .",
                                          ". X X . .",
                                          ". . . . .",
                                          ". . . . ."]))
    after = position.play(point("D4"))
    assert after.board[point("B4")] == after.board[point("C4")] == go.EMPTY
    assert after.ko == -1 and after.legal_moves()[point("B4")] and after.legal_moves()[point("C4")]


def test_tromp_taylor_area_counts_stones_and_regions_that_reach_one_colour():
    position = go.Position(5, board_from([". X O . .",
                                          ". X O . .",
                                          ". X O . .",
                                          ". X O O O",
                                          ". X . . ."]))
    # black: 5 stones + column A (5 points reaching only black); white: 6 stones + D3:E5 (6 points
    # reaching only white); C1:E1 reaches B1 (black) and C2 (white): nobody's
    assert position.area() == (5 + 5) - (6 + 6)
    assert position.score() == position.area() - go.KOMI
    dame = go.Position(5, board_from(["X . O . .", ". . . . .", ". . . . .", ". . . . .", ". . . . ."]))
    assert dame.area() == 0  # one region touching both colours: nobody's


def test_two_passes_end_the_game():
    position = go.Position(9)
    assert not position.play(81).is_game_over()
    assert position.play(81).play(81).is_game_over()
    assert not position.play(81).play(40).play(81).is_game_over()


def test_legal_moves_equal_openspiels_over_random_games():
    """Every position of 40 random games (uniform over legal moves): the same legal set in OpenSpiel."""
    pyspiel = pytest.importorskip("pyspiel")
    game = pyspiel.load_game("go", {"board_size": 9, "komi": 7.5, "max_game_length": 400})
    rng = np.random.default_rng(0)
    positions = 0
    for _ in range(40):
        position, state = go.Position(9), game.new_initial_state()
        while not state.is_terminal() and not position.is_game_over():
            legal = np.flatnonzero(position.legal_moves())
            assert sorted(crosscheck.to_openspiel(int(m), 9) for m in legal) == sorted(state.legal_actions())
            move = int(rng.choice(legal))
            position, positions = position.play(move), positions + 1
            state.apply_action(crosscheck.to_openspiel(move, 9))
    assert positions > 3000


@pytest.mark.parametrize("name", sorted(BENCHMARK_GAMES))
def test_professional_games_end_in_openspiels_final_position(name):
    replay = sgf.replay_file(SHIPPED_GAMES / name)
    assert replay.size == 9 and replay.komi == 7.5 and len(replay.moves) >= 30
    np.testing.assert_array_equal(crosscheck.openspiel_final_board(replay.moves, 9), replay.final.board)


def test_professional_games_include_captures():
    """Captures, not just stone placements, are exercised: 17 stones are taken over the four games."""
    captures = [sgf.replay_file(SHIPPED_GAMES / name).captures for name in sorted(BENCHMARK_GAMES)]
    assert captures == [(0, 1), (3, 2), (1, 0), (5, 0)]  # IYHN, IYMD, YKSH, YSIY (counted by the engine)
    # each game: stones on the board = stones played - stones captured
    for name, (black, white) in zip(sorted(BENCHMARK_GAMES), captures):
        replay = sgf.replay_file(SHIPPED_GAMES / name)
        played = sum(1 for move in replay.moves if move != 81)
        assert (replay.final.board != 0).sum() == played - black - white


def gnugo_board(moves, size: int) -> np.ndarray:
    engine = GnuGo(level=1, size=size, komi=0.0)
    try:
        color = go.BLACK
        for move in moves:
            engine.play(color, move)
            color = -color
        board = np.zeros(size * size, np.int8)
        for colour, value in (("black", go.BLACK), ("white", go.WHITE)):
            for vertex in engine.command(f"list_stones {colour}").split():
                board[go.from_gtp(vertex, size)] = value
        return board
    finally:
        engine.close()


@needs_gnugo
@pytest.mark.parametrize("name", sorted(BENCHMARK_GAMES))
def test_professional_games_end_in_gnugos_final_position(name):
    replay = sgf.replay_file(SHIPPED_GAMES / name)
    np.testing.assert_array_equal(gnugo_board(replay.moves, 9), replay.final.board)


@pytest.mark.skipif(not CGOBAN_GAME.is_file(), reason="Debian cgoban is not installed (its 19x19 example game)")
def test_cgoban_19x19_professional_game():
    replay = sgf.replay_file(CGOBAN_GAME)
    assert replay.size == 19 and len(replay.moves) == 164
    np.testing.assert_array_equal(crosscheck.openspiel_final_board(replay.moves, 19), replay.final.board)
    if find_gnugo():
        np.testing.assert_array_equal(gnugo_board(replay.moves, 19), replay.final.board)


def random_games(count: int, seed: int):
    rng = np.random.default_rng(seed)
    while count:
        moves = crosscheck.random_game(9, int(rng.integers(2**31)))
        if moves is not None:
            count -= 1
            yield moves


def check_scores(count: int, seed: int) -> None:
    """Our Tromp-Taylor score equals OpenSpiel's (always) and GNU Go's final_score (where installed)
    on `count` random games played until only own-eye fills are left."""
    with_gnugo = find_gnugo() is not None
    for moves in random_games(count, seed):
        final = go.Position(9).play_many(moves)
        assert final.is_game_over()
        assert crosscheck.openspiel_area(moves, 9, guess=final.area()) == final.area()
        if with_gnugo:
            assert crosscheck.gnugo_score(moves, 9) == final.score(), moves


def test_score_equals_openspiels_and_gnugos_on_50_random_games():
    check_scores(50, seed=1)


@pytest.mark.slow
def test_score_equals_openspiels_and_gnugos_on_1000_random_games():
    check_scores(1000, seed=2)


def test_random_playout_matches_openspiels_rules_when_uniform():
    """The speed peer's playout (uniform over legal moves and the pass, bench.py) is a legal game for
    OpenSpiel and ends in the same board."""
    for seed in range(5):
        moves = np.empty(400, np.int16)
        count = go.random_playout(np.zeros(81, np.int8), go.BLACK, -1, 0, 162, go.neighbors(9), seed, False, moves)
        final = go.Position(9).play_many(int(m) for m in moves[:count])
        np.testing.assert_array_equal(crosscheck.openspiel_final_board([int(m) for m in moves[:count]], 9), final.board)


def test_gtp_and_sgf_coordinates():
    assert go.to_gtp(0, 9) == "A9" and go.to_gtp(80, 9) == "J1" and go.to_gtp(81, 9) == "pass"
    assert all(go.from_gtp(go.to_gtp(move, 19), 19) == move for move in range(362))
    assert go.to_sgf_point(1, 9) == "ba"
