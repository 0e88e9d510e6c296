"""ResNet-50 v1.5 on ImageNet in TensorFlow/Keras 3, to 75.9% top-1: the benchmark's training loop, top to bottom.

    python -m image_classification.tensorflow.train --config smoke     # one process, all local GPUs
    TF_CONFIG=... python -m image_classification.tensorflow.train --config reference   # per worker

The twin of `../pytorch/train.py`, function for function: the same config, hyperparameter log keys
and learning-rate formula (`image_classification/config.py`), the same update rules
(`optimizer.py`), the same augmentation (`data.py`). The loop is a custom `tf.function` train step
under the `tf.distribute` strategy of `harness.tf_runtime` (Mirrored over local GPUs,
MultiWorkerMirrored from TF_CONFIG), as tensorflow/models `official/` and the MLPerf TF2 reference
(`resnet_runnable.py`) write it, so what is timed stays visible.

Batches: `data.batch_size` images per replica per micro-batch (the BN span: no sync BN), and
`data.gradient_accumulation_steps` micro-batches per optimizer step, all inside one step call.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from harness import tf_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.datasets import verify_manifest
from harness.errors import ConfigError
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar, track
from image_classification import dataset
from image_classification.config import (
    Config,
    global_batch_size,
    hyperparameters,
    learning_rate_schedule,
)
from image_classification.tensorflow import data
from image_classification.tensorflow.model import build_model as build_resnet
from image_classification.tensorflow.optimizer import build_optimizer

BENCHMARK = "resnet"
FRAMEWORK = "tensorflow"


@dataclasses.dataclass(frozen=True)
class Files:
    """The file lists and batch geometry of a run; the tf.data pipelines are built from it per epoch."""

    train_paths: np.ndarray
    train_labels: np.ndarray
    eval_paths: np.ndarray  # padded to whole global eval batches with label -1 (scores nothing)
    eval_labels: np.ndarray
    num_classes: int
    eval_samples: int
    global_batch: int  # images per optimizer step over all replicas and micro-batches
    global_eval_batch: int


def build_data(cfg: Config, strategy: tf.distribute.Strategy) -> Files:
    """The train and val file lists of `<run.data_dir>` (same classes in both) and the batch sizes."""
    classes = dataset.class_names(cfg.run.data_dir)
    train_paths, train_labels = data.split_files(cfg.run.data_dir, "train", classes)
    eval_paths, eval_labels = data.split_files(cfg.run.data_dir, "val", classes)
    replicas = strategy.num_replicas_in_sync
    global_eval_batch = cfg.data.eval_batch_size * replicas
    padded_paths, padded_labels = data.padded_eval_files(eval_paths, eval_labels, global_eval_batch)
    return Files(train_paths, train_labels, padded_paths, padded_labels, len(classes), len(eval_paths),
                 global_batch_size(cfg, replicas), global_eval_batch)


def train_batches(cfg: Config, strategy: tf.distribute.Strategy, files: Files, epoch: int):
    """This epoch's batches, one tf.data pipeline per worker; the epoch's files in consumption order."""
    order = data.epoch_order(len(files.train_paths), cfg.run.seed, epoch, files.global_batch)

    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.train_dataset(files.train_paths, files.train_labels, order, cfg.data, seed=cfg.run.seed,
                                  epoch=epoch, batch_size=context.get_per_replica_batch_size(files.global_batch),
                                  pipeline=context.input_pipeline_id, num_pipelines=context.num_input_pipelines)

    return strategy.distribute_datasets_from_function(pipeline), files.train_paths[order]


def eval_batches(cfg: Config, strategy: tf.distribute.Strategy, files: Files):
    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.eval_dataset(files.eval_paths, files.eval_labels, cfg.data,
                                 batch_size=context.get_per_replica_batch_size(files.global_eval_batch),
                                 pipeline=context.input_pipeline_id, num_pipelines=context.num_input_pipelines)

    return strategy.distribute_datasets_from_function(pipeline)


def build_model(cfg: Config, num_classes_in_data: int) -> keras.Model:
    """The Keras ResNet; call inside `strategy.scope()` so its variables are distributed."""
    if cfg.model.num_classes != num_classes_in_data:
        raise ConfigError(f"model.num_classes={cfg.model.num_classes}, but {cfg.run.data_dir} holds "
                          f"{num_classes_in_data} classes; set model.num_classes={num_classes_in_data}")
    return build_resnet(cfg.model.num_classes, cfg.model.layers, cfg.model.width, cfg.model.zero_init_residual,
                        cfg.model.bn_eps, cfg.model.bn_momentum, image_size=cfg.data.image_size)


def make_train_step(cfg: Config, strategy: tf.distribute.Strategy, model: keras.Model,
                    optimizer: keras.optimizers.Optimizer, global_batch: int):
    """One optimizer step per call: `gradient_accumulation_steps` micro-batches per replica."""
    accumulation = cfg.data.gradient_accumulation_steps
    num_classes, smoothing = cfg.model.num_classes, cfg.optimizer.label_smoothing

    # float32 (the logits of a mixed-precision model are float32 already); float64 for a float64 model
    loss_dtype = model.dtype_policy.variable_dtype

    def summed_loss(labels, logits):
        # torch's CrossEntropyLoss(label_smoothing=e): cross-entropy against (1 - e) one-hot + e / K
        targets = tf.one_hot(labels, num_classes, dtype=loss_dtype) * (1.0 - smoothing) + smoothing / num_classes
        return tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(targets, tf.cast(logits, loss_dtype)))

    def replica_step(images, labels):
        variables = model.trainable_variables
        gradients, loss = None, 0.0
        for part_images, part_labels in zip(tf.split(images, accumulation), tf.split(labels, accumulation)):
            with tf.GradientTape() as tape:
                # divided by the global batch: the gradients the optimizer all-reduces (sums) over
                # replicas then add up to the gradient of the mean loss of the whole global batch
                part_loss = summed_loss(part_labels, model(part_images, training=True)) / global_batch
            part = tape.gradient(part_loss, variables)
            gradients = part if gradients is None else [g + p for g, p in zip(gradients, part)]
            loss += part_loss
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    @tf.function
    def train_step(iterator):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=next(iterator)),
                               axis=None)

    return train_step


def train_one_epoch(cfg: Config, strategy, files: Files, train_step, optimizer, schedule, epoch: int,
                    steps_per_epoch: int) -> tuple[int, float]:
    """One pass over this epoch's batches; returns (images trained, mean loss)."""
    batches, epoch_files = train_batches(cfg, strategy, files, epoch)
    iterator = iter(batches)
    first_step = (epoch - 1) * steps_per_epoch  # optimizer steps before this epoch (0-based)
    losses = []
    step = 0
    with progress_bar(cfg.run.progress) as bar, \
            data.naming_corrupt_files(epoch_files, lambda: step * files.global_batch):
        task = bar.add_task(f"epoch {epoch}", total=steps_per_epoch, status="") if bar else None
        for step in range(steps_per_epoch):
            # the shared schedule at this optimizer step, as the PyTorch LambdaLR applies it
            optimizer.learning_rate = schedule(first_step + step)
            losses.append(train_step(iterator))
            if bar:  # the previous step's loss: reading it does not wait for the step just queued
                bar.update(task, advance=1, status=f"loss {float(losses[-2 if step else -1]):.3f}")
    return steps_per_epoch * files.global_batch, float(np.mean([float(loss) for loss in losses]))


def make_batchnorm_average(strategy: tf.distribute.Strategy, model: keras.Model):
    """Replicas update BN moving statistics on their own batches; the returned function averages
    them so every replica evaluates the same model (the statistic over the global batch, as one
    replica would see it), like the PyTorch side's `average_batchnorm_statistics`."""
    if strategy.num_replicas_in_sync == 1:
        return lambda: None
    statistics = model.non_trainable_variables  # BN moving means and variances

    def replica_fn():
        context = tf.distribute.get_replica_context()
        for variable in statistics:
            variable.assign(context.all_reduce(tf.distribute.ReduceOp.MEAN, variable.value))

    return tf.function(lambda: strategy.run(replica_fn))


def make_eval_step(strategy: tf.distribute.Strategy, model: keras.Model):
    def replica_step(images, labels):
        predictions = tf.argmax(model(images, training=False), axis=-1, output_type=tf.int32)
        scored = labels >= 0  # padding (label -1) counts for nothing
        return (tf.reduce_sum(tf.cast((predictions == labels) & scored, tf.int64)),
                tf.reduce_sum(tf.cast(scored, tf.int64)))

    @tf.function
    def eval_step(iterator):
        correct, count = strategy.run(replica_step, args=next(iterator))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None))

    return eval_step


def evaluate(cfg: Config, strategy, files: Files, eval_step, average_batchnorm_statistics) -> float:
    """Top-1 accuracy over the whole validation set (each replica a disjoint shard)."""
    average_batchnorm_statistics()
    iterator = iter(eval_batches(cfg, strategy, files))
    correct = total = step = 0
    with data.naming_corrupt_files(files.eval_paths, lambda: step * files.global_eval_batch):
        for _ in track(range(len(files.eval_paths) // files.global_eval_batch), "eval",
                          enabled=cfg.run.progress):
            step_correct, step_total = eval_step(iterator)
            correct += int(step_correct)
            total += int(step_total)
    assert total == files.eval_samples, (total, files.eval_samples)
    return correct / total


def main(cfg: Config) -> RunResult:
    strategy = tf_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=BENCHMARK, eval_every_epochs=cfg.schedule.eval_every_epochs)
    run.init_start()
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
    files = build_data(cfg, strategy)
    steps_per_epoch = len(files.train_paths) // files.global_batch
    if steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} x {strategy.num_replicas_in_sync} replicas x "
                          f"{cfg.data.gradient_accumulation_steps} accumulation steps exceeds the "
                          f"{len(files.train_paths)} training images")
    schedule = learning_rate_schedule(cfg, files.global_batch, steps_per_epoch)
    with strategy.scope():
        model = build_model(cfg, files.num_classes)
        optimizer = build_optimizer(cfg.optimizer, schedule.peak)
        # slots now, in the scope: created lazily inside the replicated step they would not
        # initialize under MirroredStrategy, and a resumed run needs them to restore into
        optimizer.build(model.trainable_variables)
    train_step = make_train_step(cfg, strategy, model, optimizer, files.global_batch)
    eval_step = make_eval_step(strategy, model)
    average_batchnorm_statistics = make_batchnorm_average(strategy, model)
    state = {"model": model, "optimizer": optimizer}
    first_epoch, _ = resume_point(tf_runtime.resume(cfg, benchmark=BENCHMARK, **state))

    run.log_hyperparameters(hyperparameters(cfg, files.global_batch, steps_per_epoch),
                            global_batch_size=files.global_batch, train_samples=len(files.train_paths),
                            eval_samples=files.eval_samples,
                            gradient_accumulation_steps=cfg.data.gradient_accumulation_steps)
    run.start()
    train_seconds, images_trained = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        started = time.perf_counter()
        images, loss = train_one_epoch(cfg, strategy, files, train_step, optimizer, schedule, epoch,
                                       steps_per_epoch)
        train_seconds += time.perf_counter() - started
        images_trained += images
        info(f"epoch {epoch}: loss {loss:.4f}, lr {schedule(epoch * steps_per_epoch):.5f}, "
             f"{images_trained / train_seconds:,.0f} images/s")
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                accuracy = evaluate(cfg, strategy, files, eval_step, average_batchnorm_statistics)
            info(f"epoch {epoch}: top-1 {accuracy:.4f}")
            if run.record_eval(accuracy, epoch):
                break
        tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark=BENCHMARK, epoch=epoch, step=epoch * steps_per_epoch, **state)
    return run.stop(throughput=images_trained / train_seconds if train_seconds else 0.0)


if __name__ == "__main__":
    train_entry("image_classification", FRAMEWORK)
