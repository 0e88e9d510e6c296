"""Minigo in PyTorch: self-play generations, training on the sliding window, evaluation against GNU Go.

Reads top to bottom as the benchmark (MLPerf v0.5 Minigo reference, mlcommons/training reinforcement/
tensorflow/minigo: loop_main.sh, loop_selfplay.py, loop_train_eval.py, dual_net.py): check the
evaluation data and the opponent, build the dual network, the SGD optimizer and the window, start
the self-play processes; then per generation (an epoch of the log) play `games_per_generation`
games with the newest network, add their positions to the window, train on
`examples_per_generation` of them, and evaluate the new network: its win rate against the opponent
is the quality, its move prediction on the professional games the second figure. The clock covers
all three, as in MLPerf. Everything that is not this model's business (log, clock, seeding, device,
checkpoints) is the harness's; what both frameworks share of the loop is reinforcement/loop.py.

    python -m harness train reinforcement --framework pytorch --config smoke
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from compliance.mllog import constants
from harness import torch_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.errors import ConfigError
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar
from reinforcement import loop
from reinforcement.config import Config, hyperparameters
from reinforcement.pytorch.model import DualNet, build_model, numpy_weights
from reinforcement.window import ReplayWindow
from reinforcement.workers import Workers

FRAMEWORK = "pytorch"


def build_optimizer(cfg: Config, model: DualNet) -> torch.optim.SGD:
    """SGD with momentum (tf.train.MomentumOptimizer); the learning rate is set every step (loop.learning_rate)."""
    return torch.optim.SGD(model.parameters(), lr=cfg.train.lr_rates[0], momentum=cfg.train.momentum)


def l2_parameters(model: DualNet) -> list[torch.Tensor]:
    """What the reference regularises: every variable whose name lacks 'bias' (conv and dense
    kernels, batch norm gamma and beta; in PyTorch a BN's beta is called bias, a conv's bias is not beta)."""
    chosen = []
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            chosen.append(module.weight)
        elif isinstance(module, torch.nn.BatchNorm2d) and module.affine:
            chosen += [module.weight, module.bias]
    return chosen


def loss_terms(model: DualNet, planes: torch.Tensor, pi: torch.Tensor, z: torch.Tensor,
               l2_strength: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(policy cross-entropy, value MSE, L2) of one batch (reference dual_net.py model_fn)."""
    logits, value = model(planes)
    # the costs in the targets' precision (float32; float64 in the parity tests), not AMP's bfloat16
    policy_cost = -(pi * F.log_softmax(logits.to(pi.dtype), dim=1)).sum(dim=1).mean()
    value_cost = (value.to(z.dtype) - z).square().mean()
    l2_cost = l2_strength * sum(parameter.square().sum() for parameter in l2_parameters(model)) / 2  # tf.nn.l2_loss
    return policy_cost, value_cost, l2_cost


def train_one_generation(model: DualNet, optimizer: torch.optim.SGD, window: ReplayWindow, cfg: Config,
                         rng: np.random.Generator, step: int, rt: torch_runtime.TorchRuntime,
                         generation: int) -> tuple[int, float, float]:
    """One generation's training (loop.training_batches: `examples_per_generation` window positions in
    batches of `batch_size`); returns (global step, mean policy loss, mean value loss)."""
    model.train()
    dtype = next(model.parameters()).dtype
    steps = cfg.train.examples_per_generation // cfg.train.batch_size
    policy_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    value_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    with progress_bar(cfg.run.progress) as bar:
        task = bar.add_task(f"generation {generation} training", total=steps, status="") if bar else None
        for planes, pi, z in loop.training_batches(window, cfg, rng):
            for group in optimizer.param_groups:
                group["lr"] = loop.learning_rate(step, cfg.train.lr_boundaries, cfg.train.lr_rates)
            planes_t, pi_t, z_t = (torch.from_numpy(array).to(rt.device, dtype) for array in (planes, pi, z))
            with rt.autocast():
                policy_cost, value_cost, l2_cost = loss_terms(model, planes_t, pi_t, z_t, cfg.train.l2_strength)
            optimizer.zero_grad(set_to_none=True)
            (policy_cost + value_cost + l2_cost).backward()
            optimizer.step()
            step += 1
            policy_sum += policy_cost.detach()
            value_sum += value_cost.detach()
            if bar:
                bar.advance(task)
    return step, float(policy_sum) / max(1, steps), float(value_sum) / max(1, steps)


def main(cfg: Config) -> RunResult:
    loop.check_config(cfg)
    rt = torch_runtime.setup(cfg.run)
    if rt.distributed:
        raise ConfigError("minigo trains in one process; its parallelism is selfplay.workers (self-play processes)")
    run = TrainingRun(cfg, benchmark=cfg.benchmark, barrier=rt.barrier,
                      eval_every_epochs=cfg.schedule.eval_every_generations)
    workers = None
    try:
        run.init_start()
        opponent = loop.opponent_name(cfg)  # GNU Go missing: one line, exit 2
        benchmark_games = loop.load_evaluation_data(cfg)
        model = build_model(cfg.game.board_size, cfg.model.filters, cfg.model.blocks, cfg.model.fc_width,
                            seed=cfg.run.seed).to(rt.device)
        optimizer = build_optimizer(cfg, model)
        window = ReplayWindow(cfg.train.window_size, cfg.game.board_size)
        state = {"model": model, "optimizer": optimizer}
        resumed = torch_runtime.resume(cfg, benchmark=cfg.benchmark, load_beside=window.load, **state)
        first_generation, step = resume_point(resumed)
        if resumed is not None:
            info(f"replay window restored: {len(window)} positions")
        workers = Workers(FRAMEWORK, cfg.selfplay.workers)
        workers.warm_up()
        run.log_hyperparameters(hyperparameters(cfg, opponent), global_batch_size=cfg.train.batch_size,
                                train_samples=cfg.train.examples_per_generation, eval_samples=cfg.evaluation.games)

        run.start()
        network = loop.export_network(cfg, FRAMEWORK, first_generation - 1, numpy_weights(model))
        positions, selfplay_seconds = 0, 0.0
        for generation in run.epochs(cfg.schedule.max_generations, first_generation):
            examples, games = loop.play_generation(workers, cfg, network, generation, cfg.run.seed)
            run.event(constants.ACTUAL_SELFPLAY_GAMES_PER_GENERATION, games.games, {"epoch_num": generation})
            positions, selfplay_seconds = positions + games.positions, selfplay_seconds + games.seconds
            window.add(examples.bits, examples.pi, examples.z)
            began = time.perf_counter()
            step, policy_loss, value_loss = train_one_generation(
                model, optimizer, window, cfg, loop.training_rng(cfg.run.seed, generation), step, rt, generation)
            train_seconds = time.perf_counter() - began
            network = loop.export_network(cfg, FRAMEWORK, generation, numpy_weights(model))
            info(f"generation {generation}: {games.games} games, {games.positions} positions in {games.seconds:.1f} s "
                 f"({games.positions_per_second:.0f}/s, network busy {games.network_share:.0%}), black won "
                 f"{games.black_wins}, {games.resigned} resigned; trained {train_seconds:.1f} s, loss policy "
                 f"{policy_loss:.3f} value {value_loss:.3f}")
            reached = False
            if run.eval_due(generation):
                with run.evaluation(generation):
                    win_rate, accuracy, _ = loop.evaluate_network(workers, cfg, network, generation, cfg.run.seed,
                                                                  benchmark_games)
                    if benchmark_games.positions:  # evaluation.prediction_rounds=0 skips move prediction
                        run.event(constants.EVAL_MOVE_PREDICTION_ACCURACY, accuracy, {"epoch_num": generation})
                info(f"generation {generation}: win rate {win_rate:.3f} against {opponent}"
                     + (f", move prediction {accuracy:.3f}" if benchmark_games.positions else ""))
                reached = run.record_eval(win_rate, generation)
            torch_runtime.save_checkpoint_if_due(cfg, rt, benchmark=cfg.benchmark, epoch=generation, step=step,
                                                 extra={"eval_history": run.eval_history}, save_beside=window.save, **state)
            if reached:
                break
        return run.stop(throughput=positions / selfplay_seconds if selfplay_seconds else 0.0)
    finally:
        if workers is not None:
            workers.close()
        torch_runtime.shutdown()


if __name__ == "__main__":
    train_entry("reinforcement", FRAMEWORK)
