"""Train ResNet-50 v1.5 on ImageNet to 75.9% top-1 with TensorFlow/Keras 3: the benchmark, top to bottom.

    python -m harness train image_classification --framework tensorflow --config smoke

The twin of `../pytorch/train.py`: same config, same hyperparameters in the log, same learning-rate
formula (`image_classification.config.LearningRateSchedule`), same optimizer update rule
(`optimizers.py`), same data order and augmentation (`data.py`). The loop is a custom
`tf.function` train step under the `tf.distribute` strategy of `harness.tf_runtime` (Mirrored on
several local GPUs, MultiWorkerMirrored from TF_CONFIG, default otherwise), so what is timed is
visible, as in tensorflow/models `official/` and the MLPerf TF2 reference (`resnet_runnable.py`).

Batches: `data.batch_size` images per replica per micro-batch (also the BN span: no sync BN);
`data.gradient_accumulation_steps` micro-batches per optimizer step, all inside one step call.
"""

from __future__ import annotations

import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf

from harness import checkpoint, progress, tf_runtime
from harness.cli import train_entry
from harness.config import config_to_dict
from harness.datasets import verify_manifest
from harness.errors import ConfigError
from harness.lifecycle import RunResult, TrainingRun
from image_classification import dataset
from image_classification.config import (Config, global_batch_size, hyperparameters,
                                         learning_rate_schedule)
from image_classification.tensorflow import data, model as resnet
from image_classification.tensorflow.optimizers import LARS, SGD

BENCHMARK = "resnet"
FRAMEWORK = "tensorflow"


@dataclasses.dataclass
class Data:
    """The file lists and batch geometry of a run; datasets are built per epoch from it."""

    train_paths: np.ndarray
    train_labels: np.ndarray
    eval_paths: np.ndarray  # padded to whole global eval batches (labels -1 score nothing)
    eval_labels: np.ndarray
    eval_samples: int
    global_batch: int  # images per optimizer step, all replicas and micro-batches
    replica_batch: int  # images per replica per optimizer step (micro-batch x accumulation)
    global_eval_batch: int
    steps_per_epoch: int


def build_data(cfg: Config, strategy: tf.distribute.Strategy) -> Data:
    replicas = strategy.num_replicas_in_sync
    global_batch = global_batch_size(cfg, replicas)
    classes = dataset.class_names(cfg.run.data_dir)
    train_paths, train_labels = data.split_files(cfg.run.data_dir, "train", classes)
    eval_paths, eval_labels = data.split_files(cfg.run.data_dir, "val", classes)
    if len(classes) != cfg.model.num_classes:
        raise ConfigError(f"model.num_classes={cfg.model.num_classes} but {cfg.run.data_dir}/train has "
                          f"{len(classes)} classes")
    steps_per_epoch = len(train_paths) // global_batch
    if steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size}: a global batch of {global_batch} is more "
                          f"than the {len(train_paths)} training images")
    global_eval_batch = cfg.data.eval_batch_size * replicas
    padded_paths, padded_labels = data.padded_eval_files(eval_paths, eval_labels, global_eval_batch)
    return Data(train_paths, train_labels, padded_paths, padded_labels, len(eval_paths), global_batch,
                global_batch // replicas, global_eval_batch, steps_per_epoch)


def train_batches(cfg: Config, strategy: tf.distribute.Strategy, files: Data, epoch: int):
    """This epoch's distributed training batches (the same order on resume: keyed by seed, epoch)."""
    order = data.epoch_order(len(files.train_paths), cfg.run.seed, epoch, files.global_batch)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.train_dataset(files.train_paths, files.train_labels, order, cfg.data, seed=cfg.run.seed,
                                  epoch=epoch, batch_size=context.get_per_replica_batch_size(files.global_batch),
                                  pipeline=context.input_pipeline_id, num_pipelines=context.num_input_pipelines)

    return strategy.distribute_datasets_from_function(dataset_fn), files.train_paths[order]


def eval_batches(cfg: Config, strategy: tf.distribute.Strategy, files: Data):
    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.eval_dataset(files.eval_paths, files.eval_labels, cfg.data,
                                 batch_size=context.get_per_replica_batch_size(files.global_eval_batch),
                                 pipeline=context.input_pipeline_id, num_pipelines=context.num_input_pipelines)

    return strategy.distribute_datasets_from_function(dataset_fn)


def build_model(cfg: Config) -> keras.Model:
    m = cfg.model
    return resnet.build_model(num_classes=m.num_classes, layers=m.layers, width=m.width,
                              zero_init_residual=m.zero_init_residual, bn_eps=m.bn_eps,
                              bn_momentum=m.bn_momentum, image_size=cfg.data.image_size)


def build_optimizer(cfg: Config) -> keras.optimizers.Optimizer:
    opt = cfg.optimizer
    if opt.name == "sgd":
        return SGD(momentum=opt.momentum, weight_decay=opt.weight_decay, nesterov=opt.nesterov,
                   no_wd_on_bn_bias=opt.no_wd_on_bn_bias)
    if opt.name == "lars":
        if opt.nesterov:
            raise ConfigError("optimizer.nesterov=true: LARS has no Nesterov variant here (nor in the reference)")
        return LARS(momentum=opt.momentum, weight_decay=opt.weight_decay, eta=opt.lars_eta,
                    epsilon=opt.lars_epsilon, no_wd_on_bn_bias=opt.no_wd_on_bn_bias)
    raise ConfigError(f"optimizer.name={opt.name!r}: expected 'sgd' or 'lars'")


def make_train_step(cfg: Config, strategy: tf.distribute.Strategy, model: keras.Model,
                    optimizer: keras.optimizers.Optimizer, global_batch: int):
    """One optimizer step per call: `accumulation` micro-batches per replica, gradients summed."""
    accumulation = cfg.data.gradient_accumulation_steps
    num_classes, smoothing = cfg.model.num_classes, cfg.optimizer.label_smoothing

    def loss_sum(labels, logits):
        # cross-entropy against (1 - e) one-hot + e / K: torch's CrossEntropyLoss(label_smoothing=e)
        targets = tf.one_hot(labels, num_classes) * (1.0 - smoothing) + smoothing / num_classes
        return tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32)))

    def replica_step(images, labels):
        variables = model.trainable_variables
        gradients, total = None, 0.0
        for images_part, labels_part in zip(tf.split(images, accumulation), tf.split(labels, accumulation)):
            with tf.GradientTape() as tape:
                # the sum over the global batch: all-reduced gradients are then the mean gradient
                loss = loss_sum(labels_part, model(images_part, training=True)) / global_batch
            part = tape.gradient(loss, variables)
            gradients = part if gradients is None else [g + p for g, p in zip(gradients, part)]
            total += loss
        optimizer.apply_gradients(zip(gradients, variables))
        return total

    @tf.function
    def train_step(iterator):
        per_replica_loss = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

    return train_step


def make_eval_step(strategy: tf.distribute.Strategy, model: keras.Model):
    def replica_step(images, labels):
        predictions = tf.argmax(model(images, training=False), axis=-1, output_type=tf.int32)
        scored = labels >= 0  # padding entries (label -1) count for nothing
        correct = tf.reduce_sum(tf.cast((predictions == labels) & scored, tf.int64))
        return correct, tf.reduce_sum(tf.cast(scored, tf.int64))

    @tf.function
    def eval_step(iterator):
        correct, count = strategy.run(replica_step, args=next(iterator))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None))

    return eval_step


def train_one_epoch(cfg: Config, strategy, files: Data, train_step, optimizer, schedule, epoch: int) -> float:
    """One pass over this epoch's batches; returns the mean training loss."""
    batches, epoch_files = train_batches(cfg, strategy, files, epoch)
    iterator = iter(batches)
    losses = []
    step_in_epoch = 0
    with progress.progress_bar(cfg.run.progress) as bar, \
            data.naming_corrupt_files(epoch_files, lambda: step_in_epoch * files.global_batch):
        task = bar.add_task(f"epoch {epoch}", total=files.steps_per_epoch, status="") if bar else None
        start = time.perf_counter()
        for step_in_epoch in range(files.steps_per_epoch):
            # the shared schedule, evaluated at this optimizer step (as the PyTorch scheduler does)
            optimizer.learning_rate = schedule(int(optimizer.iterations.numpy()))
            losses.append(train_step(iterator))
            if bar:
                rate = (step_in_epoch + 1) * files.global_batch / (time.perf_counter() - start)
                bar.update(task, advance=1, status=f"loss {float(losses[-1]):.3f}  {rate:.0f} img/s")
    return float(np.mean([float(loss) for loss in losses]))


def evaluate(cfg: Config, strategy, files: Data, eval_step) -> float:
    """Top-1 accuracy over the whole validation set."""
    iterator = iter(eval_batches(cfg, strategy, files))
    correct = count = 0
    steps = len(files.eval_paths) // files.global_eval_batch
    eval_step_index = 0
    with data.naming_corrupt_files(files.eval_paths, lambda: eval_step_index * files.global_eval_batch):
        for eval_step_index in progress.track(range(steps), "eval", enabled=cfg.run.progress):
            step_correct, step_count = eval_step(iterator)
            correct += int(step_correct)
            count += int(step_count)
    assert count == files.eval_samples, (count, files.eval_samples)
    return correct / count


def save(cfg: Config, strategy, model, optimizer, epoch: int) -> None:
    if not tf_runtime.is_chief(strategy):
        return
    checkpoint.save_checkpoint(
        cfg.run.out_dir, benchmark=BENCHMARK, framework=FRAMEWORK, epoch=epoch,
        step=int(optimizer.iterations.numpy()), config=config_to_dict(cfg),
        write_payload=lambda folder: tf_runtime.save_payload(folder, model=model, optimizer=optimizer))


def resume_if_asked(cfg: Config, model, optimizer) -> int:
    """The first epoch to train: 1, or the one after the newest checkpoint when `run.resume`."""
    if not cfg.run.resume:
        return 1
    path = checkpoint.latest_checkpoint(cfg.run.out_dir)
    if path is None:
        progress.info(f"run.resume: no checkpoint under {cfg.run.out_dir}, starting from epoch 1")
        return 1
    state = checkpoint.load_checkpoint_state(path, benchmark=BENCHMARK, framework=FRAMEWORK)
    optimizer.build(model.trainable_variables)  # slots must exist before they can be restored
    tf_runtime.load_payload(path, model=model, optimizer=optimizer)
    progress.info(f"resumed from {path} (epoch {state['epoch']}, step {state['step']})")
    return state["epoch"] + 1


def main(cfg: Config) -> RunResult:
    strategy = tf_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=BENCHMARK, eval_every_epochs=cfg.schedule.eval_every_epochs)
    run.init_start()
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)  # a corrupt dataset stops here, one line
    files = build_data(cfg, strategy)
    with strategy.scope():
        model = build_model(cfg)
        optimizer = build_optimizer(cfg)
    schedule = learning_rate_schedule(cfg, files.global_batch, files.steps_per_epoch)
    first_epoch = resume_if_asked(cfg, model, optimizer)
    train_step = make_train_step(cfg, strategy, model, optimizer, files.global_batch)
    eval_step = make_eval_step(strategy, model)
    run.log_hyperparameters(hyperparameters(cfg, files.global_batch, files.steps_per_epoch),
                            global_batch_size=files.global_batch, train_samples=len(files.train_paths),
                            eval_samples=files.eval_samples,
                            gradient_accumulation_steps=cfg.data.gradient_accumulation_steps)
    run.start()
    trained_images = 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        loss = train_one_epoch(cfg, strategy, files, train_step, optimizer, schedule, epoch)
        trained_images += files.steps_per_epoch * files.global_batch
        if not math.isfinite(loss):
            progress.info(f"epoch {epoch}: training loss is {loss}; stopping")
            break
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                accuracy = evaluate(cfg, strategy, files, eval_step)
            progress.info(f"epoch {epoch}: loss {loss:.4f}, top-1 {accuracy:.4f}")
            if run.record_eval(accuracy, epoch):
                break
        if cfg.run.checkpoint_every_epochs and epoch % cfg.run.checkpoint_every_epochs == 0:
            save(cfg, strategy, model, optimizer, epoch)
    elapsed = (time.time_ns() // 1_000_000 - run.run_start_ms) / 1000.0
    return run.stop(throughput=trained_images / elapsed if elapsed > 0 else 0.0)


if __name__ == "__main__":
    train_entry("image_classification", FRAMEWORK)
