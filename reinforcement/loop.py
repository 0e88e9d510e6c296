"""One generation of the reinforcement loop, the part both frameworks share: self-play with the
current network in the worker processes, and its evaluation. Each train.py does the rest (build
the network, train it on the window) in its own framework, and calls these around it.

A generation (an epoch of the log, as MLPerf's minigo) is, as the reference's loop_main.sh:
    1. self-play: `games_per_generation` games of the newest network against itself;
    2. training: `examples_per_generation` positions of the window, in batches, SGD + momentum;
    3. evaluation of the new network: win rate against the opponent (the quality), move prediction.
Everything random is drawn from seeds derived from (run seed, generation, task), so a generation
is the same in every run with the same seed, however many processes play it, and a resumed run
continues exactly.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from harness.datasets import verify_manifest
from harness.errors import ConfigError
from reinforcement import go, mcts
from reinforcement.config import Config
from reinforcement.dataset import load_benchmark_games
from reinforcement.evaluation import GameOutcome, win_rate
from reinforcement.selfplay import Examples, SearchParams
from reinforcement.workers import MatchTask, Network, PredictTask, SelfplayTask, Workers, save_weights

_SELFPLAY, _MATCH, _PREDICT, _TRAIN = 1, 2, 3, 4  # seed streams
OPPONENTS = ("gnugo", "heuristic", "random")


def seed_for(run_seed: int, stream: int, generation: int, index: int = 0) -> int:
    return int(np.random.SeedSequence([run_seed, stream, generation, index]).generate_state(1)[0])


def training_rng(run_seed: int, generation: int) -> np.random.Generator:
    """The generation's draw of training positions (and their symmetries) from the window."""
    return np.random.default_rng(seed_for(run_seed, _TRAIN, generation))


def training_batches(window, cfg: Config, rng: np.random.Generator):
    """The generation's batches: `examples_per_generation` positions of the window in batches of
    `batch_size` (whole batches only, as the reference's input filter), each position under a random
    symmetry where train.random_symmetry asks for it. Yields (planes, pi, z) NumPy arrays."""
    batch = cfg.train.batch_size
    indices = window.sample(cfg.train.examples_per_generation, rng)
    symmetries = rng.integers(0, 8, len(indices)) if cfg.train.random_symmetry else None
    for first in range(0, len(indices) - batch + 1, batch):
        chosen = slice(first, first + batch)
        yield window.batch(indices[chosen], None if symmetries is None else symmetries[chosen])


def search_params(cfg: Config) -> SearchParams:
    size = cfg.game.board_size
    return SearchParams(board_size=size, komi=cfg.game.komi, readouts=cfg.selfplay.readouts,
                        num_parallel=cfg.selfplay.num_parallel, c_puct=mcts.C_PUCT,
                        dirichlet_alpha=mcts.dirichlet_alpha(size), noise_weight=mcts.NOISE_WEIGHT,
                        resign_threshold=cfg.selfplay.resign_threshold,
                        resign_disable_fraction=cfg.selfplay.resign_disable_fraction,
                        temperature_moves=int(size * size / 12),  # reference strategies.py TEMPERATURE_CUTOFF
                        max_game_length=go.max_game_length(size), allow_pass=cfg.selfplay.allow_pass)


def learning_rate(step: int, boundaries, rates) -> float:
    """tf.train.piecewise_constant: rates[i] while step <= boundaries[i] (the reference's schedule)."""
    for boundary, rate in zip(boundaries, rates):
        if step <= boundary:
            return float(rate)
    return float(rates[len(boundaries)])


def check_config(cfg: Config) -> None:
    """Config values the loop cannot run with, as one line before anything starts."""
    if len(cfg.train.lr_rates) != len(cfg.train.lr_boundaries) + 1:
        raise ConfigError(f"train.lr_rates: {len(cfg.train.lr_rates)} rates for {len(cfg.train.lr_boundaries)} "
                          "boundaries (wanted one more rate than boundaries)")
    if cfg.evaluation.opponent not in OPPONENTS:
        raise ConfigError(f"evaluation.opponent={cfg.evaluation.opponent}: expected one of {', '.join(OPPONENTS)}")
    for name, value in (("selfplay.games_per_generation", cfg.selfplay.games_per_generation),
                        ("selfplay.readouts", cfg.selfplay.readouts), ("selfplay.num_parallel", cfg.selfplay.num_parallel),
                        ("selfplay.parallel_games", cfg.selfplay.parallel_games), ("train.batch_size", cfg.train.batch_size),
                        ("train.window_size", cfg.train.window_size), ("evaluation.games", cfg.evaluation.games),
                        ("evaluation.parallel_games", cfg.evaluation.parallel_games)):
        if value < 1:
            raise ConfigError(f"{name}={value}: must be at least 1")
    if cfg.game.board_size < 2 or cfg.game.board_size > 25:
        raise ConfigError(f"game.board_size={cfg.game.board_size}: GTP boards are 2 to 25 points wide")


def opponent_name(cfg: Config) -> str:
    """The evaluation opponent as logged (eval_opponent); one line and exit 2 when GNU Go is missing."""
    if cfg.evaluation.opponent == "gnugo":
        from reinforcement.gtp import opponent_name as gnugo_name

        return gnugo_name(cfg.evaluation.gnugo_level)
    return cfg.evaluation.opponent


@dataclasses.dataclass(frozen=True)
class BenchmarkGames:
    """The positions of the professional games and the moves played from them."""

    positions: tuple[go.Position, ...]
    next_moves: tuple[int, ...]


def load_evaluation_data(cfg: Config) -> BenchmarkGames:
    """The prepared data folder (`invoke data reinforcement`): checked against its manifest, then the
    professional games replayed."""
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
    if cfg.evaluation.prediction_rounds == 0:
        return BenchmarkGames((), ())
    replays = load_benchmark_games(cfg.run.data_dir)
    positions = tuple(position for replay in replays for position in replay.positions)
    moves = tuple(move for replay in replays for move in replay.moves)
    if any(position.size != cfg.game.board_size for position in positions):
        raise ConfigError(f"game.board_size={cfg.game.board_size}: the professional games in {cfg.run.data_dir} "
                          f"are {positions[0].size}x{positions[0].size}")
    return BenchmarkGames(positions, moves)


def export_network(cfg: Config, framework: str, generation: int, weights: dict[str, np.ndarray]) -> Network:
    """Write the network that plays generation `generation + 1` (what the reference's models/ holds)."""
    path = Path(cfg.run.out_dir) / "models" / f"generation-{generation:04d}.npz"
    save_weights(path, weights)
    return Network(framework, cfg.game.board_size, cfg.model.filters, cfg.model.blocks, cfg.model.fc_width, str(path))


@dataclasses.dataclass
class SelfplayStats:
    games: int
    positions: int
    seconds: float  # wall time of the generation's self-play
    busy_seconds: float  # summed over the groups: time spent searching and evaluating
    network_seconds: float  # ... of which inside the network
    black_wins: int
    resigned: int

    @property
    def positions_per_second(self) -> float:
        return self.positions / self.seconds if self.seconds else 0.0

    @property
    def network_share(self) -> float:
        return self.network_seconds / self.busy_seconds if self.busy_seconds else 0.0


def play_generation(workers: Workers, cfg: Config, network: Network, generation: int,
                    run_seed: int) -> tuple[Examples, SelfplayStats]:
    """The generation's self-play games, in groups of `parallel_games`, on the worker processes."""
    params = search_params(cfg)
    total, per_group = cfg.selfplay.games_per_generation, cfg.selfplay.parallel_games
    tasks = [SelfplayTask(network, params, min(per_group, total - first),
                          seed_for(run_seed, _SELFPLAY, generation, index))
             for index, first in enumerate(range(0, total, per_group))]
    began = time.perf_counter()
    groups = workers.run(tasks)
    seconds = time.perf_counter() - began
    games = [game for group in groups for game in group.games]
    stats = SelfplayStats(len(games), sum(group.positions for group in groups), seconds,
                          sum(group.seconds for group in groups), sum(group.network_seconds for group in groups),
                          sum(game.result > 0 for game in games), sum(game.resigned for game in games))
    return Examples.concatenate([group.examples() for group in groups]), stats


def evaluate_network(workers: Workers, cfg: Config, network: Network, generation: int, run_seed: int,
                     benchmark: BenchmarkGames) -> tuple[float, float, list[GameOutcome]]:
    """(win rate against the opponent, move-prediction accuracy, the games) of `network`."""
    ev = cfg.evaluation
    per_group = ev.parallel_games
    matches = [MatchTask(network, ev.opponent, ev.gnugo_level, first, min(per_group, ev.games - first), ev.readouts,
                         cfg.selfplay.num_parallel, ev.resign_threshold, cfg.game.komi,
                         seed_for(run_seed, _MATCH, generation, index))
               for index, first in enumerate(range(0, ev.games, per_group))]
    chunk = max(1, math.ceil(len(benchmark.positions) / max(1, workers.count)))
    predictions = [PredictTask(network, benchmark.positions[first:first + chunk], benchmark.next_moves[first:first + chunk],
                               ev.prediction_readouts, cfg.selfplay.num_parallel,
                               seed_for(run_seed, _PREDICT, generation, round_index * 1000 + first))
                   for round_index in range(ev.prediction_rounds) for first in range(0, len(benchmark.positions), chunk)]
    results = workers.run(matches + predictions)
    outcomes = [outcome for group in results[:len(matches)] for outcome in group]
    hits = np.concatenate(results[len(matches):]) if predictions else np.zeros(0)
    accuracy = float(hits.mean()) if len(hits) else float("nan")
    return win_rate(outcomes), accuracy, outcomes
