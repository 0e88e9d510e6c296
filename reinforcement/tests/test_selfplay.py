"""Self-play games and their training examples; the players; the evaluation's match and move prediction."""

from __future__ import annotations

import numpy as np
import pytest

from reinforcement import evaluation, go, selfplay
from reinforcement.features import pack, position_planes
from reinforcement.players import HeuristicPlayer, RandomPlayer, heuristic_move
from reinforcement.tests.test_go import board_from, point
from reinforcement.tests.test_mcts import uniform

SMALL = selfplay.SearchParams(readouts=8, num_parallel=2, max_game_length=40)


@pytest.fixture(scope="module")
def games() -> selfplay.GroupResult:
    return selfplay.play_games(uniform, SMALL, 6, seed=3)


def test_examples_are_the_games_positions_visits_and_results(games):
    for game in games.games:
        assert len(game.examples) == len(game.moves) > 0
        position = go.Position(9)
        for index, move in enumerate(game.moves):
            np.testing.assert_array_equal(game.examples.bits[index], pack(position_planes(position)[None])[0])
            assert game.examples.pi[index].sum() == pytest.approx(1.0, abs=1e-5)
            assert game.examples.pi[index][move] > 0 or index <= SMALL.temperature_moves  # argmax or a sampled move
            position = position.play(move)
        assert set(game.examples.z) == {game.result}
        if game.resigned:
            assert game.final_score is None
        else:
            assert position.is_game_over() or position.n >= SMALL.max_game_length
            assert game.final_score == position.score() and game.result == np.sign(position.score())


def test_same_seed_same_games_and_another_seed_others(games):
    again = selfplay.play_games(uniform, SMALL, 6, seed=3)
    assert [g.moves for g in again.games] == [g.moves for g in games.games]
    other = selfplay.play_games(uniform, SMALL, 6, seed=4)
    assert [g.moves for g in other.games] != [g.moves for g in games.games]


def test_resignation_and_its_disabled_fraction():
    """A network that says black always wins: white resigns at its first move, except in the games
    where resignation is disabled."""

    def black_wins(planes):
        return uniform(planes)[0], np.ones(len(planes), np.float32)

    params = selfplay.SearchParams(readouts=8, num_parallel=2, resign_disable_fraction=0.5, max_game_length=6)
    result = selfplay.play_games(black_wins, params, 40, seed=0)
    resigned = [game for game in result.games if game.resigned]
    assert 10 <= len(resigned) <= 30 and all(len(g.moves) == 1 and g.result == go.BLACK for g in resigned)
    assert all(not g.resigned for g in result.games if g.resign_disabled)


def test_timing_counts_the_network():
    result = selfplay.play_games(uniform, SMALL, 2, seed=1)
    assert 0 < result.network_seconds < result.seconds and result.evaluations > result.positions


# -- players -----------------------------------------------------------------------------------------

def heuristic(rows: list[str], to_play: int = go.BLACK, seed: int = 0) -> int:
    position = go.Position(5, board_from(rows), to_play=to_play)
    return HeuristicPlayer(np.random.default_rng(seed)).genmove(position)


def test_heuristic_captures_the_most_stones():
    rows = [". O X . .",
            "O X . . .",
            "X . . . .",
            ". . . . .",
            ". . . X O"]
    # A5 takes B5 and A4 (two stones), E2 takes E1 (one): the bigger capture
    assert heuristic(rows) == point("A5")


def test_heuristic_escapes_atari_and_avoids_self_atari_and_own_eyes():
    escape = [". . . . .",
              ". O . . .",
              "O X O . .",
              ". . . . .",
              ". . . . ."]
    assert heuristic(escape) == point("B2")  # B3 has one liberty: extend to B2 (three liberties then)
    only_eye = ["X X X X X",
                "X . X . X",
                "X X X X X",
                "X X X X X",
                "X X X X ."]
    assert heuristic(only_eye) == 25  # filling its own eyes is all that is left: pass
    for seed in range(20):  # never a self-atari while a safe move exists
        rows = [". O . . .", "O . O . .", ". O . . .", ". . . . .", ". . . . ."]
        move = heuristic(rows, seed=seed)
        assert move not in (point("B4"), point("A5"), point("A3"))


def test_heuristic_beats_the_random_player():
    """The smoke opponent is better than random play (it captures and saves stones; the rest of its
    play is random, so the random player still wins some games, mostly with white's komi)."""
    rng = np.random.default_rng(0)
    wins = 0
    for game in range(40):
        players = {go.BLACK: HeuristicPlayer(rng), go.WHITE: RandomPlayer(rng)}
        heuristic_color = go.BLACK if game % 2 == 0 else go.WHITE
        if heuristic_color == go.WHITE:
            players = {go.BLACK: players[go.WHITE], go.WHITE: players[go.BLACK]}
        position = go.Position(9)
        while not position.is_game_over() and position.n < 300:
            position = position.play(players[position.to_play].genmove(position))
        wins += position.result() == heuristic_color
    assert wins >= 28  # 70%


def test_heuristic_kernel_returns_legal_moves():
    rng = np.random.default_rng(1)
    position = go.Position(9)
    for _ in range(200):
        move = int(heuristic_move(position.board, position.to_play, position.ko, go.neighbors(9), rng.random(81)))
        assert position.legal_moves()[move]
        position = position.play(move)
        if position.is_game_over():
            break


# -- evaluation --------------------------------------------------------------------------------------

def test_match_alternates_colours_and_scores_every_game():
    opponents = [evaluation.local_opponent("random", seed) for seed in range(4)]
    outcomes = evaluation.play_match(uniform, opponents, first_game=0, board_size=9, readouts=8, num_parallel=2, seed=0)
    assert [o.network_color for o in outcomes] == [go.BLACK, go.WHITE, go.BLACK, go.WHITE]
    for outcome in outcomes:
        final = go.Position(9).play_many(outcome.moves)
        if outcome.reason == "resign":
            continue
        assert outcome.score == final.score() and outcome.winner == np.sign(final.score())
    assert 0.0 <= evaluation.win_rate(outcomes) <= 1.0


def test_move_prediction_of_an_oracle_is_perfect_and_of_uniform_is_not():
    """A network whose policy is the recorded move (under whatever symmetry the search drew) scores
    1.0; the uniform one far less."""
    from reinforcement import sgf
    from reinforcement.dataset import SHIPPED_GAMES
    from reinforcement.features import apply_symmetry, symmetry_maps

    replay = sgf.replay_file(SHIPPED_GAMES / "9x9_pro_IYHN.sgf")
    answers = {}
    for position, move in zip(replay.positions, replay.moves):
        for symmetry in range(8):
            seen = apply_symmetry(position_planes(position), symmetry)
            answers[seen.tobytes()] = symmetry_maps(9)[symmetry][move] if move < 81 else 81

    def oracle(planes):  # positions of the game: its move; positions the search reaches beyond: uniform
        policies = np.full((len(planes), 82), 1e-4, np.float32)
        for index, plane in enumerate(planes):
            policies[index, answers.get(np.ascontiguousarray(plane).tobytes(), slice(None))] = 1.0
        return policies / policies.sum(axis=1, keepdims=True), np.zeros(len(planes), np.float32)

    hits = evaluation.predict_moves(oracle, replay.positions, replay.moves, readouts=0, num_parallel=2, seed=0)
    # the empty board looks the same under every symmetry, so there the answer depends on the draw
    assert hits[1:].mean() == 1.0
    with_search = evaluation.predict_moves(oracle, replay.positions, replay.moves, readouts=16, num_parallel=2, seed=0)
    assert with_search.mean() > 0.9
    guesses = evaluation.predict_moves(uniform, replay.positions, replay.moves, readouts=0, num_parallel=2, seed=0)
    assert guesses.mean() < 0.2


def test_symmetric_training_batches_move_planes_and_pi_together():
    """A window position whose pi is one-hot on its only stone: under every symmetry the batch's pi
    still points at that stone."""
    from reinforcement.features import PLANES
    from reinforcement.window import ReplayWindow

    window = ReplayWindow(16, 9)
    planes = np.zeros((1, PLANES, 9, 9), np.uint8)
    planes[0, 0, 2, 6] = 1  # one own stone at row 2, column 6
    pi = np.zeros((1, 82), np.float32)
    pi[0, 2 * 9 + 6] = 1.0
    window.add(pack(planes), pi, np.ones(1, np.float32))
    for symmetry in range(8):
        batch_planes, batch_pi, _ = window.batch(np.array([0]), np.array([symmetry]))
        assert int(np.argmax(batch_pi[0])) == int(np.flatnonzero(batch_planes[0, 0].reshape(-1))[0])
        assert batch_pi[0].sum() == 1.0
