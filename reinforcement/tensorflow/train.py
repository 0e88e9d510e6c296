"""Minigo in TensorFlow/Keras 3: self-play generations, training on the sliding window, evaluation.

The mirror of pytorch/train.py (MLPerf v0.5 Minigo reference, mlcommons/training reinforcement/
tensorflow/minigo: loop_main.sh, dual_net.py): check the evaluation data and the opponent, build
the Keras dual network and its momentum optimizer in the strategy's scope, start the self-play
processes; then per generation play `games_per_generation` games with the newest network, add them
to the window, train on `examples_per_generation` of its positions with a tf.function step, and
evaluate the new network (win rate against the opponent, move prediction). Everything that is not
this model's business is the harness's; what both frameworks share of the loop is loop.py.

    python -m harness train reinforcement --framework tensorflow --config smoke
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from compliance.mllog import constants
from harness import tf_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar
from reinforcement import loop
from reinforcement.config import Config, hyperparameters
from reinforcement.tensorflow.convert import torch_weights
from reinforcement.tensorflow.model import DualNet, build_model, to_channels_last
from reinforcement.window import ReplayWindow
from reinforcement.workers import Workers

FRAMEWORK = "tensorflow"


class Momentum(keras.optimizers.SGD):
    """tf.train.MomentumOptimizer's update, the reference's: accumulator = momentum * accumulator + g,
    w -= lr * accumulator. Keras 3's SGD folds the learning rate into its velocity, which differs
    once the rate changes at a boundary; PyTorch's SGD is the reference's update too."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        accumulator = self.momentums[self._get_variable_index(variable)]
        self.assign(accumulator, accumulator * tf.cast(self.momentum, dtype) + tf.cast(gradient, dtype))
        self.assign_sub(variable, tf.cast(learning_rate, dtype) * accumulator)


def build_optimizer(cfg: Config, model: DualNet) -> Momentum:
    """Its slots are built now, so a checkpoint can be restored into them before the first step."""
    optimizer = Momentum(learning_rate=cfg.train.lr_rates[0], momentum=cfg.train.momentum)
    optimizer.build(model.trainable_variables)
    return optimizer


def l2_variables(model: DualNet) -> list[tf.Variable]:
    """What the reference regularises: every trainable variable whose name lacks 'bias' (conv and
    dense kernels, batch norm gamma and beta)."""
    return [variable for variable in model.trainable_variables if variable.name != "bias"]


def make_train_step(model: DualNet, optimizer: Momentum, l2_strength: float):
    """One optimizer step on one batch; returns (policy cross-entropy, value MSE) (dual_net.py model_fn)."""
    regularised = l2_variables(model)
    dtype = model.trainable_variables[0].dtype  # float32 (also under mixed precision); float64 in the parity tests

    @tf.function(reduce_retracing=True)
    def train_step(planes, pi, z):
        pi, z = tf.cast(pi, dtype), tf.cast(z, dtype)
        with tf.GradientTape() as tape:
            logits, value = model(tf.cast(to_channels_last(planes), dtype), training=True)
            policy_cost = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=pi, logits=tf.cast(logits, dtype)))
            value_cost = tf.reduce_mean(tf.square(tf.cast(value, dtype) - z))
            l2_cost = l2_strength * tf.add_n([tf.cast(tf.nn.l2_loss(variable), dtype) for variable in regularised])
            loss = policy_cost + value_cost + l2_cost
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return policy_cost, value_cost

    return train_step


def train_one_generation(train_step, optimizer: Momentum, window: ReplayWindow, cfg: Config,
                         rng: np.random.Generator, step: int, generation: int) -> tuple[int, float, float]:
    """One generation's training (loop.training_batches: `examples_per_generation` window positions in
    batches of `batch_size`); returns (global step, mean policy loss, mean value loss)."""
    steps = cfg.train.examples_per_generation // cfg.train.batch_size
    policy_sum, value_sum = 0.0, 0.0
    with progress_bar(cfg.run.progress) as bar:
        task = bar.add_task(f"generation {generation} training", total=steps, status="") if bar else None
        for planes, pi, z in loop.training_batches(window, cfg, rng):
            optimizer.learning_rate = loop.learning_rate(step, cfg.train.lr_boundaries, cfg.train.lr_rates)
            policy_cost, value_cost = train_step(tf.constant(planes), tf.constant(pi), tf.constant(z))
            step += 1
            policy_sum += float(policy_cost)
            value_sum += float(value_cost)
            if bar:
                bar.advance(task)
    return step, policy_sum / max(1, steps), value_sum / max(1, steps)


def main(cfg: Config) -> RunResult:
    loop.check_config(cfg)
    strategy = tf_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=cfg.benchmark, eval_every_epochs=cfg.schedule.eval_every_generations)
    workers = None
    try:
        run.init_start()
        opponent = loop.opponent_name(cfg)  # GNU Go missing: one line, exit 2
        benchmark_games = loop.load_evaluation_data(cfg)
        with strategy.scope():
            model = build_model(cfg.game.board_size, cfg.model.filters, cfg.model.blocks, cfg.model.fc_width,
                                seed=cfg.run.seed)
            optimizer = build_optimizer(cfg, model)
        window = ReplayWindow(cfg.train.window_size, cfg.game.board_size)
        state = {"model": model, "optimizer": optimizer}
        resumed = tf_runtime.resume(cfg, benchmark=cfg.benchmark, load_beside=window.load, **state)
        first_generation, step = resume_point(resumed)
        if resumed is not None:
            info(f"replay window restored: {len(window)} positions")
        train_step = make_train_step(model, optimizer, cfg.train.l2_strength)
        workers = Workers(FRAMEWORK, cfg.selfplay.workers)
        workers.warm_up()
        run.log_hyperparameters(hyperparameters(cfg, opponent), global_batch_size=cfg.train.batch_size,
                                train_samples=cfg.train.examples_per_generation, eval_samples=cfg.evaluation.games)

        run.start()
        network = loop.export_network(cfg, FRAMEWORK, first_generation - 1, torch_weights(model))
        positions, selfplay_seconds = 0, 0.0
        for generation in run.epochs(cfg.schedule.max_generations, first_generation):
            examples, games = loop.play_generation(workers, cfg, network, generation, cfg.run.seed)
            run.event(constants.ACTUAL_SELFPLAY_GAMES_PER_GENERATION, games.games, {"epoch_num": generation})
            positions, selfplay_seconds = positions + games.positions, selfplay_seconds + games.seconds
            window.add(examples.bits, examples.pi, examples.z)
            began = time.perf_counter()
            step, policy_loss, value_loss = train_one_generation(
                train_step, optimizer, window, cfg, loop.training_rng(cfg.run.seed, generation), step, generation)
            train_seconds = time.perf_counter() - began
            network = loop.export_network(cfg, FRAMEWORK, generation, torch_weights(model))
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
            tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark=cfg.benchmark, epoch=generation, step=step,
                                              extra={"eval_history": run.eval_history}, save_beside=window.save, **state)
            if reached:
                break
        return run.stop(throughput=positions / selfplay_seconds if selfplay_seconds else 0.0)
    finally:
        if workers is not None:
            workers.close()


if __name__ == "__main__":
    train_entry("reinforcement", FRAMEWORK)
