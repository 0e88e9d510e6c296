"""`invoke bench reinforcement`: how fast the Go engine, self-play, the network and training are.

- engine against its peer, OpenSpiel's C++ Go (PyPI open-spiel): random playouts per second, the same
  work on both sides: from the empty 9x9 board, a move drawn uniformly among the legal moves and the
  pass until two passes in a row or OpenSpiel's max_game_length (2 N^2 = 162 moves). OpenSpiel plays
  them in C++ (`pyspiel.evaluate_bots` with two uniform random bots: one Python call a game); ours in
  the numba kernel `go.random_playout`. Alternating rounds, the median of the paired ratios; both
  single-threaded, in this process, warm (compiled) before timing;
- self-play per framework: positions per second of one worker process (one framework thread) with
  the smoke config's network and search, and the share of that time the network is busy (the rest is
  the tree search, the engine and Python);
- the network: forward GFLOP/s in self-play (FLOPs counted from the layer shapes: 2 per
  multiply-add) and training GFLOP/s (3x forward: forward, input and weight gradients), against this
  machine's measured one-thread fp32 GEMM peak;
- producer against consumer, the "input pipeline" of reinforcement learning: positions a worker's
  self-play produces per second against positions the training step consumes per second.

Every number carries the machine, the load average and the thread count it was measured with.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from harness import machine, speed
from reinforcement import go
from reinforcement.features import PLANES
from reinforcement.selfplay import SearchParams, play_games

console = Console()
BOARD = 9
SMOKE_NET = (BOARD, 16, 2, 32)  # configs/smoke.yaml: filters, blocks, fc width
REFERENCE_NET = (BOARD, 32, 9, 64)


def forward_flops(board_size: int, filters: int, blocks: int, fc_width: int) -> int:
    """Multiply-adds x 2 of one position's forward pass (convolutions and dense layers)."""
    points = board_size * board_size
    macs = points * (PLANES * filters * 9 + blocks * 2 * filters * filters * 9 + filters * 2 + filters)
    macs += 2 * points * (points + 1) + points * fc_width + fc_width
    return 2 * macs


# -- engine against OpenSpiel ------------------------------------------------------------------------

def _ours(games: int, seed: int, limit: int) -> tuple[float, int]:
    nbrs = go.neighbors(BOARD)
    moves = np.empty(limit + 2, np.int16)
    total = 0
    began = time.perf_counter()
    for index in range(games):
        total += go.random_playout(np.zeros(BOARD * BOARD, np.int8), go.BLACK, -1, 0, limit, nbrs, seed + index,
                                   False, moves)
    return time.perf_counter() - began, total


def _openspiel(games: int, seed: int) -> float:
    import pyspiel

    game = pyspiel.load_game("go", {"board_size": BOARD, "komi": go.KOMI})
    bots = [pyspiel.make_uniform_random_bot(0, seed), pyspiel.make_uniform_random_bot(1, seed + 1)]
    began = time.perf_counter()
    for index in range(games):
        pyspiel.evaluate_bots(game.new_initial_state(), bots, seed + index)
    # evaluate_bots returns only the result: the moves a game are counted on ours (the same
    # distribution, but for the rare superko repetition that OpenSpiel ends as a draw)
    return time.perf_counter() - began


def bench_playouts(games: int = 2000, rounds: int = 5) -> dict:
    import pyspiel

    limit = pyspiel.load_game("go", {"board_size": BOARD}).max_game_length()
    _ours(20, 0, limit), _openspiel(20, 0)  # compile / load before timing
    ratios, ours_rates, peer_rates, lengths = [], [], [], []
    for index in range(rounds):
        seed = 1000 * index
        ours_s, moves = _ours(games, seed, limit)
        peer_s = _openspiel(games, seed)
        ours_rates.append(games / ours_s)
        peer_rates.append(games / peer_s)
        lengths.append(moves / games)
        ratios.append(peer_s / ours_s)
    return {"games_per_round": games, "rounds": rounds, "max_moves": limit,
            "ours_playouts_per_s": statistics.median(ours_rates), "openspiel_playouts_per_s": statistics.median(peer_rates),
            "ours_over_openspiel": statistics.median(ratios), "moves_per_playout": statistics.mean(lengths)}


# -- self-play and the network -------------------------------------------------------------------------

def _torch_parts(net, threads: int):
    import torch

    from reinforcement.pytorch.model import build_model, make_evaluate
    from reinforcement.pytorch.train import loss_terms

    torch.set_num_threads(threads)
    model = build_model(*net, seed=0)
    evaluate = make_evaluate(build_model(*net, seed=0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step(planes, pi, z):
        model.train()
        losses = loss_terms(model, torch.from_numpy(planes).float(), torch.from_numpy(pi), torch.from_numpy(z), 1e-4)
        optimizer.zero_grad()
        sum(losses).backward()
        optimizer.step()

    return evaluate, train_step, torch.__version__


def _tensorflow_parts(net, threads: int):
    import tensorflow as tf

    from reinforcement.tensorflow.model import build_model, make_evaluate
    from reinforcement.tensorflow.train import Momentum, make_train_step

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass
    model = build_model(*net, seed=0)
    evaluate = make_evaluate(build_model(*net, seed=0))
    optimizer = Momentum(learning_rate=0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, optimizer, 1e-4)

    def train_step(planes, pi, z):
        step(tf.constant(planes), tf.constant(pi), tf.constant(z))

    return evaluate, train_step, tf.__version__


def _rate(call, batch: int, seconds: float) -> float:
    call()  # warm
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        call()
        count += batch
    return count / (time.perf_counter() - began)


def gemm_peak_gflops(threads: int) -> float:
    """Measured fp32 matmul throughput on the CPU with `threads` torch threads (harness/speed.py): 1024^3, best of 10."""
    import torch

    torch.set_num_threads(threads)
    return speed.gemm_peak_gflops(size=1024, repeats=10, device="cpu")["gflops"]


def bench_framework(framework: str, threads: int = 1, games: int = 8, readouts: int = 32, seconds: float = 3.0) -> dict:
    parts = _torch_parts if framework == "pytorch" else _tensorflow_parts
    evaluate, _, version = parts(SMOKE_NET, threads)
    params = SearchParams(readouts=readouts, num_parallel=4)
    play_games(evaluate, SearchParams(readouts=2, num_parallel=2, max_game_length=4), games, seed=0)  # warm
    group = play_games(evaluate, params, games, seed=1)
    result = {"framework": framework, "version": version, "threads": threads, "games": games, "readouts": readouts,
              "selfplay_positions_per_s": group.positions / group.seconds,
              "selfplay_evaluations_per_s": group.evaluations / group.seconds,
              "network_busy_share": group.network_seconds / group.seconds}
    rng = np.random.default_rng(0)
    for name, net, batch in (("smoke", SMOKE_NET, 128), ("reference", REFERENCE_NET, 128)):
        evaluate, train_step, _ = parts(net, threads)
        planes = (rng.random((batch, PLANES, BOARD, BOARD)) < 0.3).astype(np.uint8)
        pi = rng.dirichlet(np.ones(BOARD * BOARD + 1), batch).astype(np.float32)
        z = rng.choice([-1.0, 1.0], batch).astype(np.float32)
        forward = _rate(lambda evaluate=evaluate, planes=planes: evaluate(planes), batch, seconds)
        training = _rate(lambda step=train_step, planes=planes, pi=pi, z=z: step(planes, pi, z), batch, seconds)
        flops = forward_flops(*net)
        result[name] = {"batch": batch, "forward_positions_per_s": forward, "train_positions_per_s": training,
                        "forward_gflops": forward * flops / 1e9, "train_gflops": training * 3 * flops / 1e9}
    # producer vs consumer: a worker's self-play positions/s against the training step's positions/s
    result["train_over_selfplay"] = result["smoke"]["train_positions_per_s"] / result["selfplay_positions_per_s"]
    return result


def run_bench(frameworks=("pytorch", "tensorflow")) -> dict:
    load = os.getloadavg()
    result = {"host_cpu": machine.cpu_name(), "cpus": os.cpu_count(), "load_average_before": load,
              "playouts": bench_playouts()}
    result["gemm_fp32_1thread_gflops"] = gemm_peak_gflops(1)
    for framework in frameworks:
        result[framework] = bench_framework(framework)
    result["gemm_fp32_1thread_gflops"] = max(result["gemm_fp32_1thread_gflops"], gemm_peak_gflops(1))
    result["load_average_after"] = os.getloadavg()
    _print(result, frameworks)
    return result


def _print(result: dict, frameworks) -> None:
    playouts = result["playouts"]
    console.print(f"[bold]engine[/]: {playouts['ours_playouts_per_s']:,.0f} random 9x9 playouts/s (ours, numba) against "
                  f"{playouts['openspiel_playouts_per_s']:,.0f}/s (OpenSpiel C++): ours/OpenSpiel "
                  f"{playouts['ours_over_openspiel']:.2f}x (median of {playouts['rounds']} paired rounds of "
                  f"{playouts['games_per_round']} games, {playouts['moves_per_playout']:.0f} moves a game)")
    peak = result["gemm_fp32_1thread_gflops"]
    table = Table(title=f"self-play and network, one thread (fp32 GEMM peak {peak:.0f} GFLOP/s)")
    for column in ("framework", "self-play positions/s", "network busy", "net", "forward pos/s", "fwd GFLOP/s",
                   "train pos/s", "train GFLOP/s", "of peak (train)"):
        table.add_column(column, justify="right")
    for framework in frameworks:
        entry = result[framework]
        for name in ("smoke", "reference"):
            net = entry[name]
            table.add_row(f"{framework} {entry['version']}", f"{entry['selfplay_positions_per_s']:.0f}" if name == "smoke" else "",
                          f"{entry['network_busy_share']:.0%}" if name == "smoke" else "", name,
                          f"{net['forward_positions_per_s']:,.0f}", f"{net['forward_gflops']:.1f}",
                          f"{net['train_positions_per_s']:,.0f}", f"{net['train_gflops']:.1f}", f"{net['train_gflops'] / peak:.0%}")
    console.print(table)
    console.print(f"{result['host_cpu']}, {result['cpus']} CPUs, load average {result['load_average_before'][0]:.1f} "
                  f"before, {result['load_average_after'][0]:.1f} after")


def untrained_win_rates(framework: str, seeds=range(1, 11), config: str = "smoke") -> dict[int, float]:
    """The win rate of each seed's initial network (generation 0) in the config's evaluation: what
    the smoke target must sit far above (README, "Smoke")."""
    import dataclasses
    import tempfile

    from harness.runner import load_benchmark_config
    from reinforcement import loop
    from reinforcement.workers import Workers

    module = __import__(f"reinforcement.{framework}.model", fromlist=["build_model"])
    rates = {}
    with tempfile.TemporaryDirectory() as folder, Workers(framework, 0) as workers:
        for seed in seeds:
            cfg = load_benchmark_config("reinforcement", config, [f"run.out_dir={folder}", f"run.seed={seed}"])
            cfg = dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, prediction_rounds=0))
            model = module.build_model(cfg.game.board_size, cfg.model.filters, cfg.model.blocks, cfg.model.fc_width, seed)
            if framework == "pytorch":
                from reinforcement.pytorch.model import numpy_weights
            else:
                from reinforcement.tensorflow.convert import torch_weights as numpy_weights
            network = loop.export_network(cfg, framework, 0, numpy_weights(model))
            rates[seed] = loop.evaluate_network(workers, cfg, network, 0, seed, loop.BenchmarkGames((), ()))[0]
    return rates
