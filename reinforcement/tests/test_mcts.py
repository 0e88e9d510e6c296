"""The search: its bookkeeping (visits, virtual loss, kept subtrees), its input planes and symmetries
against the NumPy definitions in features.py, and that it finds what exact terminal values say."""

from __future__ import annotations

import numpy as np
import pytest

from reinforcement import go, mcts
from reinforcement.features import apply_symmetry, invert_policy, position_planes, symmetry_maps


def uniform(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    count, size = len(planes), planes.shape[-1]
    return np.full((count, size * size + 1), 1 / (size * size + 1), np.float32), np.zeros(count, np.float32)


def random_position(seed: int, moves: int, size: int = 9) -> go.Position:
    rng = np.random.default_rng(seed)
    position = go.Position(size)
    for _ in range(moves):
        legal = np.flatnonzero(position.legal_moves()[:-1])
        position = position.play(int(rng.choice(legal)))
    return position


def test_symmetry_maps_are_the_eight_dihedral_transforms():
    grid = np.arange(81).reshape(9, 9)
    expected = [grid, np.rot90(grid, 1), np.rot90(grid, 2), np.rot90(grid, 3), np.flipud(grid), np.fliplr(grid),
                grid.T, np.rot90(grid, 2).T]
    for symmetry, transformed in enumerate(expected):
        np.testing.assert_array_equal(apply_symmetry(grid, symmetry), transformed)
    assert len({tuple(m) for m in symmetry_maps(9)}) == 8


@pytest.mark.parametrize("moves", [0, 3, 11, 40])
def test_leaf_planes_equal_the_numpy_features_under_every_symmetry(moves):
    """mcts.write_planes (compiled, walking the tree and the game history) against features.py."""
    position = random_position(moves, moves)
    forest = mcts.Forest(1, 9, capacity=64)
    forest.set_root(0, position)
    expected = position_planes(position)
    for symmetry in range(8):
        out = np.zeros((1, 17, 81), np.uint8)
        mcts.write_planes(forest.tree, np.array([0]), np.array([0]), 1, np.array([symmetry]), forest.sym_maps, out)
        np.testing.assert_array_equal(out.reshape(17, 9, 9), apply_symmetry(expected, symmetry))


def test_planes_deep_in_the_tree_take_the_path_then_the_game_history():
    position = random_position(7, 5)
    forest = mcts.Forest(1, 9, capacity=64)
    forest.set_root(0, position)
    node, reached = 0, position
    for move in np.flatnonzero(position.legal_moves()[:-1])[:3]:  # a path three moves deep
        node = mcts._add_child(0, node, int(move), forest.tree, forest.nbrs)
        reached = reached.play(int(move))
    out = np.zeros((1, 17, 81), np.uint8)
    mcts.write_planes(forest.tree, np.array([0]), np.array([node]), 1, np.array([0]), forest.sym_maps, out)
    np.testing.assert_array_equal(out.reshape(17, 9, 9), position_planes(reached))


def test_policy_is_read_back_through_the_leafs_symmetry():
    """A network that puts all its policy on the transformed image of one point: the prior lands on that
    point whatever symmetry the leaf was evaluated under."""
    target = go.from_gtp("C7", 9)
    for symmetry in range(8):
        policy = np.zeros((1, 82), np.float32)
        policy[0, symmetry_maps(9)[symmetry][target]] = 1.0
        assert int(np.argmax(invert_policy(policy, symmetry, 9)[0])) == target
        forest = mcts.Forest(1, 9, capacity=16)
        forest.set_root(0, go.Position(9))
        forest.root_n[0] += 1  # as select_leaf would have
        mcts.incorporate(forest.tree, np.array([0]), np.array([0]), 1, np.array([symmetry]), forest.sym_maps, policy,
                         np.zeros(1, np.float32))
        assert int(np.argmax(forest.prior[0, 0])) == target


def test_visits_add_up_and_virtual_losses_are_reverted():
    """A network whose every value is 0.25: once the virtual losses are reverted, W(root) is 0.25 per
    remaining visit, and every visit of the root but its own evaluation went to a child."""
    forest = mcts.Forest(3, 9, capacity=400, num_parallel=8)
    for g in range(3):
        forest.set_root(g, random_position(g, 10 * g))

    def quarter(planes):
        return uniform(planes)[0], np.full(len(planes), 0.25, np.float32)

    forest.search(quarter, 100, np.ones(3, bool), np.random.default_rng(0))
    for g in range(3):
        root = forest.root[g]
        assert 101 <= forest.root_n[g] < 101 + 2 * 8
        assert forest.child_n[g, root].sum() == forest.root_n[g] - 1
        assert forest.root_w[g] == 0.25 * forest.root_n[g]


def test_kept_subtree_after_a_move_has_the_childs_statistics():
    forest = mcts.Forest(1, 9, capacity=400)
    forest.set_root(0, go.Position(9))
    rng = np.random.default_rng(1)
    forest.search(uniform, 150, np.ones(1, bool), rng)
    move = int(np.argmax(forest.visits(0)))
    child = forest.child[0, 0, move]
    grandchildren = forest.child_n[0, child].copy()
    n, w = forest.child_n[0, 0, move], forest.child_w[0, 0, move]
    forest.play(0, move)
    assert forest.root[0] == 0 and forest.root_n[0] == n and forest.root_w[0] == w
    np.testing.assert_array_equal(forest.child_n[0, 0], grandchildren)
    assert forest.n_nodes[0] <= n + 1
    # the new root is the position after the move, with the old root in its history
    np.testing.assert_array_equal(forest.position(0).board, go.Position(9).play(move).board)
    np.testing.assert_array_equal(forest.history[0, 0], go.Position(9).board)
    forest.search(uniform, 50, np.ones(1, bool), rng)  # and searching on from it works
    assert forest.child_n[0, 0].sum() == forest.root_n[0] - 1


def test_exact_terminal_values_find_the_only_winning_move():
    """Every child of the root ends the game (max_depth = n + 1) and is scored by Tromp-Taylor: the
    search must pile its visits on the one move that wins, the capture of the black group at A5."""
    rows = [". X O . .",
            "X X O . .",
            "X X O . .",
            "X X O . .",
            "X X O . ."]
    board = np.array([{"X": 1, "O": -1, ".": 0}[c] for row in rows for c in row.split()], np.int8)
    # area: black 9 stones + A5 = 10, white 5 stones + 10 points = 15; with komi -10.5 black leads by
    # 5.5, unless white captures the nine stones (then the whole board is white's)
    position = go.Position(5, board, to_play=go.WHITE, komi=-10.5, n=30)
    winning = [int(m) for m in np.flatnonzero(position.legal_moves()) if position.play(int(m)).score() < 0]
    assert winning == [go.from_gtp("A5", 5)]
    forest = mcts.Forest(1, 5, capacity=200, komi=-10.5, max_depth=31)
    forest.set_root(0, position)
    forest.search(uniform, 100, np.ones(1, bool), np.random.default_rng(0))
    assert int(np.argmax(forest.visits(0))) == winning[0]
    assert forest.visits(0)[winning[0]] > 0.5 * forest.visits(0).sum()


def test_after_a_pass_the_pass_is_looked_at_first():
    """Reference HACK: a node whose last move was a pass explores the double pass before anything."""
    position = go.Position(9).play(40).play(81)  # white passed; black leads by area 81 > komi
    forest = mcts.Forest(1, 9, capacity=64)
    forest.set_root(0, position)
    forest.search(uniform, 8, np.ones(1, bool), np.random.default_rng(0))
    assert forest.visits(0)[81] >= 1 and forest.child_w[0, 0, 81] > 0  # black wins by passing


def test_noise_keeps_a_distribution_and_pick_move_follows_the_temperature():
    forest = mcts.Forest(1, 9, capacity=64)
    forest.set_root(0, go.Position(9))
    rng = np.random.default_rng(0)
    forest.expand_roots(uniform, np.ones(1, bool), rng)
    forest.inject_noise(0, mcts.dirichlet_alpha(9), rng)
    assert np.isclose(forest.prior[0, 0].sum(), 1.0, atol=1e-5) and forest.prior[0, 0].std() > 0
    visits = np.zeros(82)
    visits[[3, 7]] = [1, 3]
    picks = [mcts.pick_move(visits, 2, 6, rng) for _ in range(400)]
    assert set(picks) == {3, 7} and 0.65 < np.mean(np.array(picks) == 7) < 0.85  # 3/4 in proportion
    assert mcts.pick_move(visits, 7, 6, rng) == 7  # after the temperature moves: the most visited
    pi = mcts.search_probabilities(visits, 2, 6)
    assert np.isclose(pi.sum(), 1) and pi[7] / pi[3] == pytest.approx(3 ** 0.95, rel=1e-5)


def test_without_pass_the_search_reads_the_pass_only_when_nothing_else_is_legal():
    forest = mcts.Forest(2, 5, capacity=200, allow_pass=False)
    forest.set_root(0, go.Position(5).play(12).play(25))  # white passed: the pass would be read first
    full = np.array([1] * 25, np.int8)
    for index in (6, 8, 16, 18):  # black owns the board but for four single-point eyes
        full[index] = 0
    forest.set_root(1, go.Position(5, full, to_play=go.BLACK))
    forest.search(uniform, 40, np.ones(2, bool), np.random.default_rng(0))
    assert forest.visits(0)[25] == 0 and forest.visits(0).sum() > 0
    # black may still fill its own eyes; white has no legal move left but the pass
    assert forest.visits(1)[25] == 0
    forest.set_root(1, go.Position(5, full, to_play=go.WHITE))
    forest.search(uniform, 8, np.array([False, True]), np.random.default_rng(0))
    assert forest.visits(1)[25] == forest.visits(1).sum() > 0


def test_the_search_and_self_play_run_on_19x19():
    """The board size is a config value: 19x19 (362 moves, MAX_DEPTH 506) goes through the same kernels."""
    from reinforcement import selfplay

    assert go.max_game_length(19) == 506
    params = selfplay.SearchParams(board_size=19, readouts=4, num_parallel=2, max_game_length=6,
                                   dirichlet_alpha=mcts.dirichlet_alpha(19), temperature_moves=30)
    result = selfplay.play_games(uniform, params, 2, seed=0)
    assert all(len(game.moves) == 6 and game.examples.pi.shape == (6, 362) for game in result.games)
