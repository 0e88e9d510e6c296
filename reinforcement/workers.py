"""Worker processes for self-play and evaluation games (reference: NUM_PARALLEL_SELFPLAY processes).

    workers = Workers("pytorch", cfg.game, cfg.model, count=cfg.selfplay.workers)
    results = workers.run([SelfplayTask(...), ...])      # in task order, whichever process played them
    workers.close()

Each process (started with `spawn`, one framework thread each) builds the framework's network from
the weights file a task names (`<out_dir>/models/generation-NNNN.npz`, PyTorch names, so either
framework reads it) and keeps it for the next task of the same generation. `count=0` runs the
tasks in the training process itself. A task's result depends only on the task (its weights, its
seed), never on the process that runs it.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reinforcement import evaluation, go, selfplay

_STATE: dict[str, Any] = {}


@dataclasses.dataclass(frozen=True)
class Network:
    """What a process needs to build the network: framework, sizes, weights file."""

    framework: str
    board_size: int
    filters: int
    blocks: int
    fc_width: int
    weights: str


@dataclasses.dataclass(frozen=True)
class SelfplayTask:
    network: Network
    params: selfplay.SearchParams
    games: int
    seed: int


@dataclasses.dataclass(frozen=True)
class MatchTask:
    network: Network
    opponent: str  # gnugo | heuristic | random
    gnugo_level: int
    first_game: int
    games: int
    readouts: int
    num_parallel: int
    resign_threshold: float
    komi: float
    seed: int


@dataclasses.dataclass(frozen=True)
class PredictTask:
    network: Network
    positions: tuple[go.Position, ...]
    next_moves: tuple[int, ...]
    readouts: int
    num_parallel: int
    seed: int


def save_weights(path: Path, weights: dict[str, np.ndarray]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial.npz")
    np.savez(temporary, **weights)
    os.replace(temporary, path)
    return str(path)


def _evaluator(network: Network):
    """The network's evaluate function, built once per weights file in this process."""
    cached = _STATE.get("network")
    if cached is not None and cached[0] == network:
        return cached[1]
    module = importlib.import_module(f"reinforcement.{network.framework}.model")
    with np.load(network.weights) as saved:
        weights = {name: saved[name] for name in saved.files}
    evaluate = module.evaluator_from_weights(network.board_size, network.filters, network.blocks, network.fc_width,
                                             weights)
    _STATE["network"] = (network, evaluate)
    return evaluate


def _opponents(task: MatchTask) -> list:
    seeds = np.random.SeedSequence([task.seed]).generate_state(task.games)
    if task.opponent == "gnugo":
        from reinforcement.gtp import GnuGoOpponent

        return [GnuGoOpponent(task.gnugo_level, task.network.board_size, task.komi, int(seed % 2**31)) for seed in seeds]
    return [evaluation.local_opponent(task.opponent, int(seed)) for seed in seeds]


def run_task(task) -> Any:
    """Play one task (in a worker process or in this one)."""
    if isinstance(task, SelfplayTask):
        return selfplay.play_games(_evaluator(task.network), task.params, task.games, task.seed)
    if isinstance(task, MatchTask):
        opponents = _opponents(task)
        try:
            return evaluation.play_match(_evaluator(task.network), opponents, task.first_game, task.network.board_size,
                                         task.readouts, task.num_parallel, task.seed, komi=task.komi,
                                         resign_threshold=task.resign_threshold)
        finally:
            for opponent in opponents:
                opponent.close()
    if isinstance(task, PredictTask):
        return evaluation.predict_moves(_evaluator(task.network), task.positions, task.next_moves, task.readouts,
                                        task.num_parallel, task.seed)
    if task == "warmup":
        return _warmup()
    raise TypeError(f"unknown task {task!r}")


def _warmup() -> int:
    """Compile (or load from numba's cache) every search kernel before the clock starts."""
    uniform = lambda planes: (np.full((len(planes), 82), 1 / 82, np.float32), np.zeros(len(planes), np.float32))  # noqa: E731
    selfplay.play_games(uniform, selfplay.SearchParams(readouts=2, num_parallel=2, max_game_length=2), 1, 0)
    return os.getpid()


def _exit_with_parent() -> None:
    """A worker whose training process died (killed, crashed) exits too instead of lingering."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_process(framework: str, threads: int) -> None:
    """A worker process: one thread per framework (the processes are the parallelism)."""
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    module = importlib.import_module(f"reinforcement.{framework}.model")
    module.configure_worker_threads(threads)


class Workers:
    def __init__(self, framework: str, count: int, threads_per_worker: int = 1):
        self.framework, self.count = framework, count
        self.pool = None
        if count > 0:
            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(count, initializer=_init_process, initargs=(framework, threads_per_worker))

    def run(self, tasks: Sequence[Any]) -> list[Any]:
        """Results in task order."""
        if self.pool is None:
            return [run_task(task) for task in tasks]
        return self.pool.map(run_task, tasks, chunksize=1)

    def warm_up(self) -> None:
        """Start every process and compile the kernels in it (before the clock)."""
        self.run(["warmup"] * max(1, self.count))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None
        _STATE.clear()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None and exc[0] is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        self.close()
