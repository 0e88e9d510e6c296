"""GNU Go over GTP: a whole game against it end to end, its scores, and one line where it is missing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.errors import UserError
from harness.runner import load_benchmark_config
from reinforcement import evaluation, go, gtp, loop
from reinforcement.gtp import GnuGo, GnuGoOpponent, find_gnugo, parse_score
from reinforcement.tests.test_mcts import uniform

needs_gnugo = pytest.mark.skipif(find_gnugo() is None, reason="GNU Go is not installed (apt-get install gnugo)")


def test_parse_score():
    assert parse_score("B+12.5") == 12.5 and parse_score("W+0.5") == -0.5 and parse_score("0") == 0.0


@needs_gnugo
def test_gnugo_plays_and_refuses_an_illegal_move():
    engine = GnuGo(level=1, size=9)
    try:
        engine.play(go.BLACK, go.from_gtp("E5", 9))
        reply = engine.genmove(go.WHITE)
        assert reply is None or 0 <= reply <= 81
        with pytest.raises(gtp.GtpError, match="refused"):
            engine.play(go.BLACK, go.from_gtp("E5", 9))
    finally:
        engine.close()


@needs_gnugo
def test_a_game_against_gnugo_runs_end_to_end():
    """The network (here uniform, 4 readouts) against GNU Go level 1, one game a colour; GNU Go's
    Chinese count scores the end, and its verdict agrees with the Tromp-Taylor count of its position
    where every stone is alive (that is not checked here: GNU Go removes dead stones)."""
    opponents = [GnuGoOpponent(level=1, size=9, komi=7.5, seed=seed) for seed in range(2)]
    try:
        outcomes = evaluation.play_match(uniform, opponents, first_game=0, board_size=9, readouts=4, num_parallel=2,
                                         seed=0)
    finally:
        for opponent in opponents:
            opponent.close()
    assert [o.network_color for o in outcomes] == [go.BLACK, go.WHITE]
    for outcome in outcomes:
        assert outcome.reason in ("score", "length", "resign") and len(outcome.moves) >= 2
        go.Position(9).play_many(outcome.moves)  # every move of the game legal for our engine
        if outcome.reason != "resign":
            assert outcome.winner == np.sign(outcome.score)
    assert opponents[0].name.startswith("gnugo-3.8-level-1")


def test_missing_gnugo_is_one_line(monkeypatch):
    monkeypatch.setattr(gtp, "find_gnugo", lambda: None)
    cfg = load_benchmark_config("reinforcement", "reference")
    with pytest.raises(UserError, match="GNU Go is not installed.*apt-get install gnugo"):
        loop.opponent_name(cfg)
    smoke = dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, opponent="heuristic"))
    assert loop.opponent_name(smoke) == "heuristic"
