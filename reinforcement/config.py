"""The Minigo config: schema and defaults shared by both frameworks; values in configs/*.yaml.

Defaults are the MLPerf Training v0.5 Minigo reference on 9x9 (github mlcommons/training, tag v0.5,
reinforcement/tensorflow/minigo): dual_net.py (network sizes, TRAIN_BATCH_SIZE = 16,
EXAMPLES_PER_GENERATION = 100000, the learning-rate steps, momentum 0.9, L2 1e-4), params/final.json
(MAX_GAMES_PER_GENERATION 2000, WINDOW_SIZE 2000000, NUM_PARALLEL_SELFPLAY 16, SP_READOUTS 200,
EVAL_GAMES_PER_SIDE 50), mcts.py / strategies.py / selfplay_mcts.py (search) and predict_games.py
(move prediction). This suite's quality target replaces the reference's opaque one: the win rate
against GNU Go 3.8 (README.md, "Quality").
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance.mllog import constants
from harness.config import BaseConfig


@dataclass(frozen=True)
class Game:
    board_size: int = 9  # the v0.5 benchmark (goparams BOARD_SIZE 9); 19 works too
    komi: float = 7.5  # go.py Position(komi=7.5)


@dataclass(frozen=True)
class Model:
    """dual_net.py get_default_hyperparams on 9x9: k = the power of two nearest 81/3, fc_width = 2k,
    num_shared_layers = N residual blocks."""

    filters: int = 32
    blocks: int = 9
    fc_width: int = 64


@dataclass(frozen=True)
class Selfplay:
    games_per_generation: int = 2000  # MAX_GAMES_PER_GENERATION (params/final.json)
    readouts: int = 200  # SP_READOUTS: simulations per move
    num_parallel: int = 8  # SIMULTANEOUS_LEAVES: leaves per game and round (virtual loss)
    resign_threshold: float = 0.95  # selfplay_worker.py resign_threshold=0.95
    resign_disable_fraction: float = 0.05  # selfplay_mcts.py: no resignation in 5% of the games
    # False: the pass is read and played only when nothing else is legal (Minigo's --allow_pass=0,
    # MLPerf v0.7's minigo bootstrap.flags); v0.5 allows it always
    allow_pass: bool = True
    workers: int = 16  # NUM_PARALLEL_SELFPLAY worker processes (0: play in the training process)
    parallel_games: int = 16  # games searched together in one worker (their leaves share a batch)
    # derived from the board, as the reference: Dirichlet alpha 0.03 * 361 / N^2, noise weight 0.25,
    # c_puct 1.38, temperature for the first int(N^2 / 12) moves, at most ceil(1.4 N^2) moves a game


@dataclass(frozen=True)
class Train:
    batch_size: int = 16  # TRAIN_BATCH_SIZE
    examples_per_generation: int = 100_000  # EXAMPLES_PER_GENERATION positions drawn from the window
    window_size: int = 2_000_000  # WINDOW_SIZE: the most recent positions trained on
    lr_boundaries: tuple[int, ...] = (1_000_000, 2_000_000)  # global steps (dual_net.py piecewise_constant)
    lr_rates: tuple[float, ...] = (0.01, 0.001, 0.0001)
    momentum: float = 0.9
    l2_strength: float = 1e-4  # on every weight but the biases: l2 * sum(w^2) / 2 (tf.nn.l2_loss)
    # each training position under one of the 8 board symmetries drawn at random (MLPerf v0.7
    # minigo's preprocessing random_rotation); v0.5 trains on the positions as played
    random_symmetry: bool = False


@dataclass(frozen=True)
class Evaluation:
    opponent: str = "gnugo"  # gnugo (the reference) | heuristic (smoke) | random
    gnugo_level: int = 10  # GNU Go's default strength
    games: int = 100  # EVAL_GAMES_PER_SIDE 50, both colours
    readouts: int = 200  # evaluation.py play_match readouts
    parallel_games: int = 10  # games searched together in one worker
    resign_threshold: float = 0.9  # MCTSPlayer's default resign_threshold
    prediction_readouts: int = 1000  # predict_games.py predict_move(readouts=1000)
    prediction_rounds: int = 2  # report_for_puzzles(rounds=2)


@dataclass(frozen=True)
class Schedule:
    max_generations: int = 1000  # loop_main.sh runs at most ~1000 iterations
    eval_every_generations: int = 1  # the reference evaluates every generation


@dataclass(frozen=True)
class Config(BaseConfig):
    benchmark: str = constants.MINIGO
    game: Game = Game()
    model: Model = Model()
    selfplay: Selfplay = Selfplay()
    train: Train = Train()
    evaluation: Evaluation = Evaluation()
    schedule: Schedule = Schedule()


def hyperparameters(cfg: Config, opponent: str) -> dict:
    """{rule key: value} for every hyperparameter the `minigo` rules require (compliance/rules/
    mlbench-1.0.0/minigo.yaml); `opponent` is the evaluation opponent's logged name."""
    return {
        constants.TRAIN_BATCH_SIZE: cfg.train.batch_size,
        constants.LR_BOUNDARIES: list(cfg.train.lr_boundaries),
        constants.LR_RATES: list(cfg.train.lr_rates),
        constants.MIN_SELFPLAY_GAMES_PER_GENERATION: cfg.selfplay.games_per_generation,
        constants.GO_BOARD_SIZE: cfg.game.board_size,
        constants.GO_KOMI: cfg.game.komi,
        constants.MODEL_FILTERS: cfg.model.filters,
        constants.MODEL_RESIDUAL_BLOCKS: cfg.model.blocks,
        constants.EVAL_OPPONENT: opponent,
        constants.EVAL_GAMES: cfg.evaluation.games,
        constants.EVAL_READOUTS: cfg.evaluation.readouts,
    }
