"""PUCT Monte Carlo tree search over many games at once, with batched network evaluation.

One implementation for both frameworks: the network enters as `evaluate(planes) -> (policies,
values)`, planes the positions to evaluate as AlphaGo Zero input planes (B, 17, N, N) uint8,
policies (B, N*N+1) probabilities, values (B,) in [-1, 1] from black's point of view.

The search is the MLPerf v0.5 Minigo reference's (mlcommons/training, reinforcement/tensorflow/
minigo/mcts.py and strategies.py), the notation of Silver et al. 2017:
- selection maximises Q * to_play + U - 1000 * illegal, U = c_puct * sqrt(1 + N) * P / (1 + N_child),
  Q = W / (1 + N_child), c_puct = 1.38; a node that follows a pass tries the pass first;
- a new leaf's children start with W = the leaf's value (so Q starts at the parent's value);
- `num_parallel` leaves per game and round, kept apart by a virtual loss (W += to_play along the
  path), evaluated in one batch with those of every other game, then the loss is reverted; a leaf
  chosen twice in a round is evaluated once and its extra visit reverted;
- game-over leaves (two passes, or MAX_DEPTH moves) are scored exactly: +-1 by Tromp-Taylor;
- Dirichlet noise at the root, P = 0.75 P + 0.25 Dir(alpha), alpha = 0.03 * 361 / N^2;
- the tree below the move played is kept for the next move;
- `allow_pass=False` (Minigo's later `--allow_pass=0`, which MLPerf v0.7's minigo used for its
  bootstrap games from the random network): the pass is read and played only when no other move
  is legal.

The tree of each game lives in flat arrays (a forest of `games` trees of `capacity` nodes) that
compiled kernels walk: one call selects the leaves of every game, one writes their planes, one
backs up the results; Python only calls the network in between.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numba
import numpy as np

from reinforcement import go
from reinforcement.features import PLANES, symmetry_maps

Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

C_PUCT = 1.38  # reference mcts.py c_PUCT
NOISE_WEIGHT = 0.25  # reference mcts.py inject_noise: prior * 0.75 + dirichlet * 0.25
ILLEGAL_PENALTY = 1000.0  # reference mcts.py illegal_moves = 1000 * (1 - legal)


def dirichlet_alpha(size: int) -> float:
    """Reference mcts.py D_NOISE_ALPHA: 0.03 * 361 / N^2 (0.03 on 19x19, 0.134 on 9x9)."""
    return 0.03 * 361 / (size * size)


# -- compiled kernels: one tree per game in arrays [game, node, ...] ----------------------------------

@numba.njit(cache=True)
def _node_n(g, node, root, parent, move, child_n, root_n):
    if node == root[g]:
        return root_n[g]
    return child_n[g, parent[g, node], move[g, node]]


@numba.njit(cache=True)
def _walk(g, leaf, dn, dw, virtual, root, parent, move, to_play, child_n, child_w, root_n, root_w):
    """From `leaf` up to the root inclusive: N += dn, W += dw + virtual * to_play(node)."""
    node = leaf
    while True:
        delta = dw + virtual * to_play[g, node]
        if node == root[g]:
            root_n[g] += dn
            root_w[g] += delta
            return
        p, m = parent[g, node], move[g, node]
        child_n[g, p, m] += dn
        child_w[g, p, m] += delta
        node = p


@numba.njit(cache=True)
def _add_child(g, node, action, tree, nbrs):
    (board, to_play, ko, passes, depth, parent, move, expanded, child, child_n, child_w, prior, legal,
     root, root_n, root_w, n_nodes, history, history_len) = tree
    existing = child[g, node, action]
    if existing >= 0:
        return existing
    new = n_nodes[g]
    n_nodes[g] += 1
    points = board.shape[2]
    board[g, new] = board[g, node]
    color = to_play[g, node]
    if action == points:
        ko[g, new] = -1
        passes[g, new] = passes[g, node] + 1
    else:
        new_ko, _ = go.play_stone(board[g, new], color, action, ko[g, node], nbrs)
        ko[g, new] = new_ko
        passes[g, new] = 0
    to_play[g, new] = -color
    depth[g, new] = depth[g, node] + 1
    parent[g, new] = node
    move[g, new] = action
    expanded[g, new] = False
    child[g, new, :] = -1
    child_n[g, new, :] = 0.0
    child_w[g, new, :] = 0.0
    prior[g, new, :] = 0.0
    go.legal_mask(board[g, new], -color, ko[g, new], nbrs, legal[g, new])
    child[g, node, action] = new
    return new


@numba.njit(cache=True)
def _select_leaf(g, tree, nbrs, c_puct, allow_pass):
    (board, to_play, ko, passes, depth, parent, move, expanded, child, child_n, child_w, prior, legal,
     root, root_n, root_w, n_nodes, history, history_len) = tree
    pass_move = board.shape[2]
    actions = pass_move + 1
    current = root[g]
    while True:
        # N += 1 on the way down (reference select_leaf)
        if current == root[g]:
            root_n[g] += 1.0
        else:
            child_n[g, parent[g, current], move[g, current]] += 1.0
        if not expanded[g, current]:
            return current
        if allow_pass and move[g, current] == pass_move and child_n[g, current, pass_move] == 0:
            best = pass_move  # after a pass, look at the double pass first (reference HACK)
        else:
            n = _node_n(g, current, root, parent, move, child_n, root_n)
            scale = c_puct * math.sqrt(1.0 + n)
            color = to_play[g, current]
            best, best_score = 0, -np.inf
            for a in range(actions if allow_pass else pass_move):
                visits = child_n[g, current, a]
                score = child_w[g, current, a] / (1.0 + visits) * color + scale * prior[g, current, a] / (1.0 + visits)
                if not legal[g, current, a]:
                    score -= ILLEGAL_PENALTY
                if score > best_score:
                    best_score, best = score, a
            if not allow_pass and not legal[g, current, best]:
                best = pass_move  # minigo --allow_pass=0: the pass only when nothing else is legal
        current = _add_child(g, current, best, tree, nbrs)


@numba.njit(cache=True)
def _is_done(g, node, passes, depth, max_depth):
    return passes[g, node] >= 2 or depth[g, node] >= max_depth


@numba.njit(cache=True)
def select_leaves(tree, active, num_parallel, nbrs, c_puct, komi, max_depth, allow_pass, leaf_game, leaf_node):
    """One round of the reference's tree_search for every active game: up to `num_parallel` leaves
    each (2 * num_parallel tries), virtual loss applied; game-over leaves backed up at once.
    Returns the number of leaves written to leaf_game / leaf_node."""
    (board, to_play, ko, passes, depth, parent, move, expanded, child, child_n, child_w, prior, legal,
     root, root_n, root_w, n_nodes, history, history_len) = tree
    count = 0
    for g in range(active.shape[0]):
        if not active[g]:
            continue
        leaves, tries = 0, 0
        while leaves < num_parallel and tries < 2 * num_parallel:
            tries += 1
            leaf = _select_leaf(g, tree, nbrs, c_puct, allow_pass)
            if _is_done(g, leaf, passes, depth, max_depth):
                value = 1.0 if go.area_score(board[g, leaf], nbrs) - komi > 0 else -1.0
                _walk(g, leaf, 0.0, value, 0.0, root, parent, move, to_play, child_n, child_w, root_n, root_w)
                continue
            _walk(g, leaf, 0.0, 0.0, 1.0, root, parent, move, to_play, child_n, child_w, root_n, root_w)
            leaf_game[count] = g
            leaf_node[count] = leaf
            count += 1
            leaves += 1
    return count


@numba.njit(cache=True)
def write_planes(tree, leaf_game, leaf_node, count, symmetries, sym_maps, out):
    """AlphaGo Zero planes of each leaf (features.py's layout) under its symmetry, into out[:count]."""
    (board, to_play, ko, passes, depth, parent, move, expanded, child, child_n, child_w, prior, legal,
     root, root_n, root_w, n_nodes, history, history_len) = tree
    points = board.shape[2]
    hist = history.shape[1] + 1  # the position and the boards before it
    boards = np.empty(hist, np.int64)  # >= 0: a node; < 0: -(1 + index into the game's history)
    for i in range(count):
        g, node = leaf_game[i], leaf_node[i]
        found = 0
        current = node
        while found < hist:
            boards[found] = current
            found += 1
            if current == root[g]:
                break
            current = parent[g, current]
        h = 0
        while found < hist and h < history_len[g]:
            boards[found] = -(1 + h)
            found += 1
            h += 1
        for k in range(found, hist):
            boards[k] = boards[found - 1]  # the oldest board repeated (reference features.py)
        color = to_play[g, node]
        smap = sym_maps[symmetries[i]]
        for k in range(hist):
            source = boards[k]
            for p in range(points):
                v = board[g, source, p] if source >= 0 else history[g, -source - 1, p]
                q = smap[p]
                out[i, 2 * k, q] = 1 if v == color else 0
                out[i, 2 * k + 1, q] = 1 if v == -color else 0
        for p in range(points):
            out[i, 2 * hist, p] = 1 if color == 1 else 0


@numba.njit(cache=True)
def incorporate(tree, leaf_game, leaf_node, count, symmetries, sym_maps, policies, values):
    """Revert each leaf's virtual loss, then expand it with the network's policy (read back through
    its symmetry) and back its value up; a leaf expanded earlier in the round gives its visit back."""
    (board, to_play, ko, passes, depth, parent, move, expanded, child, child_n, child_w, prior, legal,
     root, root_n, root_w, n_nodes, history, history_len) = tree
    points = board.shape[2]
    for i in range(count):
        g, leaf = leaf_game[i], leaf_node[i]
        _walk(g, leaf, 0.0, 0.0, -1.0, root, parent, move, to_play, child_n, child_w, root_n, root_w)
        if expanded[g, leaf]:
            _walk(g, leaf, -1.0, 0.0, 0.0, root, parent, move, to_play, child_n, child_w, root_n, root_w)
            continue
        expanded[g, leaf] = True
        smap = sym_maps[symmetries[i]]
        for p in range(points):
            prior[g, leaf, p] = policies[i, smap[p]]
        prior[g, leaf, points] = policies[i, points]
        value = values[i]
        child_w[g, leaf, :] = value
        _walk(g, leaf, 0.0, value, 0.0, root, parent, move, to_play, child_n, child_w, root_n, root_w)


@numba.njit(cache=True)
def reroot(g, action, tree, nbrs):
    """Make the child `action` of the root the new root, keeping its subtree (compacted to the
    front of the game's arrays) and pushing the old root's board onto the game's history."""
    (board, to_play, ko, passes, depth, parent, move, expanded, child, child_n, child_w, prior, legal,
     root, root_n, root_w, n_nodes, history, history_len) = tree
    old_root = root[g]
    new_root = _add_child(g, old_root, action, tree, nbrs)
    root_n[g] = child_n[g, old_root, action]
    root_w[g] = child_w[g, old_root, action]
    for h in range(history.shape[1] - 1, 0, -1):
        history[g, h] = history[g, h - 1]
    history[g, 0] = board[g, old_root]
    history_len[g] = min(history_len[g] + 1, history.shape[1])
    total = n_nodes[g]
    keep = np.zeros(total, np.bool_)
    stack = np.empty(total, np.int32)
    stack[0] = new_root
    keep[new_root] = True
    top = 1
    while top > 0:
        top -= 1
        node = stack[top]
        for a in range(child.shape[2]):
            c = child[g, node, a]
            if c >= 0 and not keep[c]:
                keep[c] = True
                stack[top] = c
                top += 1
    remap = np.full(total, -1, np.int32)
    kept = 0
    for node in range(total):
        if keep[node]:
            remap[node] = kept
            kept += 1
    # new index <= old index: moving rows forward in increasing order never overwrites a kept row
    for node in range(total):
        new = remap[node]
        if new < 0:
            continue
        if new != node:
            board[g, new] = board[g, node]
            to_play[g, new] = to_play[g, node]
            ko[g, new] = ko[g, node]
            passes[g, new] = passes[g, node]
            depth[g, new] = depth[g, node]
            move[g, new] = move[g, node]
            expanded[g, new] = expanded[g, node]
            child_n[g, new] = child_n[g, node]
            child_w[g, new] = child_w[g, node]
            prior[g, new] = prior[g, node]
            legal[g, new] = legal[g, node]
        parent[g, new] = remap[parent[g, node]] if node != new_root else -1
        for a in range(child.shape[2]):
            c = child[g, node, a]
            child[g, new, a] = remap[c] if c >= 0 else -1
    root[g] = 0
    n_nodes[g] = kept


# -- the Python face --------------------------------------------------------------------------------

class Forest:
    """The search trees of `games` games, searched together.

        forest = Forest(games=16, size=9, capacity=2 * readouts + 64)
        forest.set_root(g, position)                  # each game's current position
        forest.search(evaluate, readouts, rng)        # `readouts` more simulations in every active game
        forest.visits(g); forest.play(g, move)        # pick a move from the visits, keep the subtree
    """

    def __init__(self, games: int, size: int = 9, capacity: int = 512, komi: float = go.KOMI,
                 c_puct: float = C_PUCT, max_depth: int | None = None, num_parallel: int = 8, allow_pass: bool = True):
        self.games, self.size, self.capacity = games, size, capacity
        self.allow_pass = allow_pass
        self.points, self.actions = size * size, size * size + 1
        self.komi, self.c_puct, self.num_parallel = komi, c_puct, num_parallel
        self.max_depth = go.max_game_length(size) if max_depth is None else max_depth
        self.nbrs = go.neighbors(size)
        self.sym_maps = symmetry_maps(size)
        G, M, P, A = games, capacity, self.points, self.actions
        self.board = np.zeros((G, M, P), np.int8)
        self.to_play = np.zeros((G, M), np.int8)
        self.ko = np.full((G, M), -1, np.int16)
        self.passes = np.zeros((G, M), np.int8)
        self.depth = np.zeros((G, M), np.int32)
        self.parent = np.full((G, M), -1, np.int32)
        self.move = np.full((G, M), -1, np.int16)
        self.expanded = np.zeros((G, M), np.bool_)
        self.child = np.full((G, M, A), -1, np.int32)
        self.child_n = np.zeros((G, M, A), np.float32)
        self.child_w = np.zeros((G, M, A), np.float32)
        self.prior = np.zeros((G, M, A), np.float32)
        self.legal = np.zeros((G, M, A), np.bool_)
        self.root = np.zeros(G, np.int64)
        self.root_n = np.zeros(G, np.float32)
        self.root_w = np.zeros(G, np.float32)
        self.n_nodes = np.zeros(G, np.int64)
        self.history = np.zeros((G, go.HISTORY - 1, P), np.int8)
        self.history_len = np.zeros(G, np.int64)
        leaves = G * 2 * num_parallel
        self._leaf_game = np.zeros(leaves, np.int64)
        self._leaf_node = np.zeros(leaves, np.int64)
        self._planes = np.zeros((leaves, PLANES, P), np.uint8)
        self.network_seconds = 0.0  # time spent inside `evaluate`, for the network-busy share
        self.evaluations = 0

    @property
    def tree(self) -> tuple:
        return (self.board, self.to_play, self.ko, self.passes, self.depth, self.parent, self.move, self.expanded,
                self.child, self.child_n, self.child_w, self.prior, self.legal, self.root, self.root_n, self.root_w,
                self.n_nodes, self.history, self.history_len)

    # -- setting positions ----------------------------------------------------------------------
    def set_root(self, g: int, position: go.Position) -> None:
        """Forget game g's tree and start one at `position` (its previous boards come along)."""
        assert position.size == self.size
        self.board[g, 0] = position.board
        self.to_play[g, 0] = position.to_play
        self.ko[g, 0] = position.ko
        self.passes[g, 0] = position.passes
        self.depth[g, 0] = position.n
        self.parent[g, 0] = -1
        self.move[g, 0] = position.last_move
        self.expanded[g, 0] = False
        self.child[g, 0] = -1
        self.child_n[g, 0] = 0
        self.child_w[g, 0] = 0
        self.prior[g, 0] = 0
        go.legal_mask(position.board, position.to_play, position.ko, self.nbrs, self.legal[g, 0])
        self.root[g], self.root_n[g], self.root_w[g], self.n_nodes[g] = 0, 0.0, 0.0, 1
        known = position.history[:go.HISTORY - 1]
        for index, board in enumerate(known):
            self.history[g, index] = board
        self.history_len[g] = len(known)

    def root_planes(self, games: np.ndarray) -> np.ndarray:
        """(len(games), 17, N, N) planes of the roots of `games`, without symmetry (training examples)."""
        games = np.asarray(games, np.int64)
        out = np.zeros((len(games), PLANES, self.points), np.uint8)
        write_planes(self.tree, games, self.root[games], len(games), np.zeros(len(games), np.int64), self.sym_maps, out)
        return out.reshape(len(games), PLANES, self.size, self.size)

    # -- searching -----------------------------------------------------------------------------------
    def _evaluate_round(self, evaluate: Evaluate, active: np.ndarray, num_parallel: int,
                        rng: np.random.Generator) -> None:
        count = select_leaves(self.tree, active, num_parallel, self.nbrs, self.c_puct, self.komi, self.max_depth,
                              self.allow_pass, self._leaf_game, self._leaf_node)
        if count == 0:
            return
        symmetries = rng.integers(0, 8, size=count)
        write_planes(self.tree, self._leaf_game, self._leaf_node, count, symmetries, self.sym_maps, self._planes)
        planes = self._planes[:count].reshape(count, PLANES, self.size, self.size)
        began = time.perf_counter()
        policies, values = evaluate(planes)
        self.network_seconds += time.perf_counter() - began
        self.evaluations += count
        incorporate(self.tree, self._leaf_game, self._leaf_node, count, symmetries, self.sym_maps,
                    np.ascontiguousarray(policies, np.float32), np.ascontiguousarray(values, np.float32))

    def expand_roots(self, evaluate: Evaluate, games: np.ndarray, rng: np.random.Generator) -> None:
        """Evaluate the roots of `games` that were never evaluated (a new game, or a move the search
        had not looked at), as the reference does before the first move's noise."""
        need = np.zeros(self.games, np.bool_)
        for g in np.flatnonzero(games):
            need[g] = not self.expanded[g, self.root[g]] and not self.is_done(g)
        if need.any():
            self._evaluate_round(evaluate, need, 1, rng)

    def search(self, evaluate: Evaluate, readouts: int, games: np.ndarray, rng: np.random.Generator) -> None:
        """`readouts` more simulations at the root of every game in the mask `games` (the reference's
        "X additional readouts"), all games' leaves evaluated together round by round."""
        games = np.asarray(games, np.bool_)
        for g in np.flatnonzero(games):
            if self.n_nodes[g] + readouts + 2 * self.num_parallel + 2 > self.capacity:
                self._restart_at_root(g)  # out of room: drop the kept subtree, keep the position
        self.expand_roots(evaluate, games, rng)
        target = self.root_n + readouts
        while True:
            active = games & (self.root_n < target)
            for g in np.flatnonzero(active):
                if self.is_done(g):
                    active[g] = False
            if not active.any():
                return
            self._evaluate_round(evaluate, active, self.num_parallel, rng)

    def _restart_at_root(self, g: int) -> None:
        root = self.root[g]
        position = go.Position(self.size, self.board[g, root].copy(), int(self.to_play[g, root]), int(self.ko[g, root]),
                               int(self.passes[g, root]), int(self.depth[g, root]), int(self.move[g, root]),
                               tuple(self.history[g, i].copy() for i in range(self.history_len[g])), self.komi)
        n, w = self.root_n[g], self.root_w[g]
        self.set_root(g, position)
        self.root_n[g], self.root_w[g] = n, w

    def inject_noise(self, g: int, alpha: float, rng: np.random.Generator, weight: float = NOISE_WEIGHT) -> None:
        root = self.root[g]
        noise = rng.dirichlet(np.full(self.actions, alpha))
        self.prior[g, root] = self.prior[g, root] * (1 - weight) + noise * weight

    # -- reading the search -----------------------------------------------------------------------
    def visits(self, g: int) -> np.ndarray:
        return self.child_n[g, self.root[g]].copy()

    def root_q(self, g: int) -> float:
        """The root's mean value W / (1 + N), black's point of view (reference MCTSNode.Q)."""
        return float(self.root_w[g] / (1.0 + self.root_n[g]))

    def root_q_to_play(self, g: int) -> float:
        """Q from the point of view of the player to move (reference Q_perspective)."""
        return self.root_q(g) * int(self.to_play[g, self.root[g]])

    def to_play_at_root(self, g: int) -> int:
        return int(self.to_play[g, self.root[g]])

    def move_number(self, g: int) -> int:
        return int(self.depth[g, self.root[g]])

    def is_done(self, g: int) -> bool:
        root = self.root[g]
        return bool(self.passes[g, root] >= 2 or self.depth[g, root] >= self.max_depth)

    def play(self, g: int, move: int) -> None:
        """Play `move` in game g; the subtree below it becomes the new tree. IllegalMove if illegal."""
        if not self.legal[g, self.root[g], move]:
            raise go.IllegalMove(f"move {move} is illegal in game {g}")
        reroot(g, move, self.tree, self.nbrs)

    def position(self, g: int) -> go.Position:
        """The root of game g as a Position (with its previous boards)."""
        root = self.root[g]
        return go.Position(self.size, self.board[g, root].copy(), int(self.to_play[g, root]), int(self.ko[g, root]),
                           int(self.passes[g, root]), int(self.depth[g, root]), int(self.move[g, root]),
                           tuple(self.history[g, i].copy() for i in range(self.history_len[g])), self.komi)


def pick_move(visits: np.ndarray, move_number: int, temperature_moves: int, rng: np.random.Generator) -> int:
    """Reference strategies.py pick_move: in the first moves (n <= temperature_moves) a move drawn in
    proportion to its visits, later the most visited."""
    if move_number > temperature_moves:
        return int(np.argmax(visits))
    cdf = visits.cumsum()
    cdf /= cdf[-1]
    return int(min(cdf.searchsorted(rng.random()), len(visits) - 1))


def search_probabilities(visits: np.ndarray, move_number: int, temperature_moves: int) -> np.ndarray:
    """Reference children_as_pi: the visit distribution, squashed (N ** 0.95) in the opening moves."""
    probs = visits.astype(np.float64)
    if move_number < temperature_moves:
        probs = probs ** 0.95
    return (probs / probs.sum()).astype(np.float32)
