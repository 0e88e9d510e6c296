"""Mask R-CNN (ResNet-50 FPN) on COCO 2017 in TensorFlow/Keras 3, to box AP 0.377 and mask AP 0.339: the loop.

    python -m harness train maskrcnn --framework tensorflow --config smoke
    TF_CONFIG=... python -m object_detection.maskrcnn.tensorflow.train --config reference   # per worker

The twin of `../pytorch/train.py`, function for function: the same config, log keys and learning
rate (`../config.py`), the same update rule (`harness.tf_optimizers.TorchSGD`: torch's SGD, biases
at twice the rate without weight decay), the same losses and keyed sampling (`model.py`), the same
batches (`data.py`). The loop is a custom `tf.function` train step under the `tf.distribute`
strategy of `harness.tf_runtime`; evaluation runs the model on one device per worker over the whole
val set, and pycocotools scores boxes and masks (`../evaluation.py`, shared with PyTorch).
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from harness import tf_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.datasets import verify_manifest
from harness.errors import ConfigError, DatasetError
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar
from harness.tf_optimizers import TorchSGD
from object_detection import coco_eval
from object_detection.coco_reader import CocoDetection
from object_detection.dataset import annotation_file, check_layout, image_dir
from object_detection.maskrcnn import evaluation, pretrained
from object_detection.maskrcnn.batching import epoch_steps, steps_before
from object_detection.maskrcnn.config import (
    Config,
    LearningRateSchedule,
    check,
    global_batch_size,
    hyperparameters,
    learning_rate_schedule,
)
from object_detection.maskrcnn.tensorflow import convert, data
from object_detection.maskrcnn.tensorflow.model import MaskRCNN, frozen_variables
from object_detection.maskrcnn.tensorflow.model import build_model as build_maskrcnn

BENCHMARK = "maskrcnn"
FRAMEWORK = "tensorflow"


def read_splits(cfg: Config) -> tuple[CocoDetection, CocoDetection]:
    """As `../pytorch/data.py`: the annotated train images, every val image."""
    check_layout(cfg.run.data_dir)
    train = CocoDetection(annotation_file(cfg.run.data_dir, "train"), image_dir(cfg.run.data_dir, "train"),
                          skip_empty=True)
    val = CocoDetection(annotation_file(cfg.run.data_dir, "val"), image_dir(cfg.run.data_dir, "val"), skip_empty=False)
    if train.categories != val.categories:
        raise DatasetError(f"{cfg.run.data_dir}: train and val annotations list different categories")
    return train, val


def build_model(cfg: Config, num_classes: int) -> MaskRCNN:
    """The Keras Mask R-CNN with the MSRA trunk weights if configured; call inside `strategy.scope()`."""
    model = build_maskrcnn(cfg.model, num_classes)
    weights = pretrained.trunk_state_dict(cfg.model.pretrained_backbone, cfg.model)
    if weights is not None:
        convert.load_torch_state_dict(model, weights, prefix="backbone.body.")
    return model


def trained_variables(model: MaskRCNN) -> list:
    """The trainable variables but the frozen stages' (FREEZE_CONV_BODY_AT), in a fixed order."""
    frozen = {id(variable) for variable in frozen_variables(model)}
    return [variable for variable in model.trainable_variables if id(variable) not in frozen]


def make_optimizer(cfg: Config, peak: float) -> TorchSGD:
    opt = cfg.optimizer
    return TorchSGD(peak, momentum=opt.momentum, weight_decay=opt.weight_decay, bias_lr_factor=opt.bias_lr_factor,
                    bias_weight_decay=opt.bias_weight_decay)


def make_train_step(cfg: Config, strategy: tf.distribute.Strategy, model: MaskRCNN, optimizer: TorchSGD):
    """One optimizer step per call: `gradient_accumulation_steps` micro-batches per replica."""
    accumulation = cfg.data.gradient_accumulation_steps
    replicas = strategy.num_replicas_in_sync
    variables = trained_variables(model)

    def replica_step(images, image_sizes, targets):
        gradients, total = None, 0.0
        parts = tf.split(images, accumulation), tf.split(image_sizes, accumulation)
        target_parts = {key: tf.split(value, accumulation) for key, value in targets.items()}
        for index in range(accumulation):
            part_targets = {key: value[index] for key, value in target_parts.items()}
            with tf.GradientTape() as tape:
                losses = model.losses(parts[0][index], parts[1][index], part_targets)
                # the five losses are means over this replica's micro-batch; the optimizer sums the
                # replicas' gradients, so each replica contributes 1 / (replicas x micro-batches)
                loss = tf.add_n([tf.cast(value, tf.float32) for value in losses.values()])
                scaled = loss / (accumulation * replicas)
            grads = tape.gradient(scaled, variables)
            gradients = grads if gradients is None else [g + p for g, p in zip(gradients, grads)]
            total += loss / accumulation
        optimizer.apply_gradients(zip(gradients, variables))
        return total

    @tf.function(reduce_retracing=True)
    def train_step(iterator):
        per_replica = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    return train_step


def train_batches(cfg: Config, strategy, train: CocoDetection, epoch: int, global_batch: int):
    """An iterator over this epoch's distributed (images, image sizes, targets) batches."""
    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.train_dataset(train, cfg, epoch=epoch, batch_size=context.get_per_replica_batch_size(global_batch),
                                  pipeline=context.input_pipeline_id, num_pipelines=context.num_input_pipelines)

    return iter(strategy.distribute_datasets_from_function(pipeline))


def train_one_epoch(cfg: Config, iterator, train_step, optimizer, schedule: LearningRateSchedule, epoch: int,
                    steps_per_epoch: int, first_step: int, global_batch: int) -> tuple[int, float]:
    """One pass over this epoch's batches (`iterator`, from `train_batches`); returns (images trained, mean loss)."""
    losses = []
    with progress_bar(cfg.run.progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=steps_per_epoch, status="") if bar else None
        for step in range(steps_per_epoch):
            optimizer.learning_rate = schedule(first_step + step + 1)  # update k uses lr(k), as the reference
            losses.append(train_step(iterator))
            if bar:
                bar.update(task, advance=1, status=f"loss {float(losses[-2 if step else -1]):.3f}")
    return steps_per_epoch * global_batch, float(np.mean([float(loss) for loss in losses]))


def make_predict(model: MaskRCNN):
    @tf.function(reduce_retracing=True)
    def predict(images, image_sizes):
        return model(images, image_sizes, training=False)

    return predict


def evaluate(cfg: Config, val: CocoDetection, coco_gt, predict) -> dict[str, float]:
    """{"BBOX": box AP, "SEGM": mask AP} of the whole val set."""
    rows, segmentations = [], []
    for images, image_sizes, indices in data.eval_dataset(val, cfg):
        boxes, scores, labels, masks, counts = (t.numpy() for t in predict(images, image_sizes))
        offset = 0
        for i, index in enumerate(indices.numpy()):
            n = int(counts[i])
            part = slice(offset, offset + n)
            offset += n
            height, width = (int(v) for v in image_sizes[i].numpy())
            image_rows, image_segmentations = evaluation.image_results(
                val.records[int(index)], height, width, boxes[part], scores[part], labels[part], masks[part],
                val.category_of_label)
            rows.append(image_rows)
            segmentations += image_segmentations
    quality, summary = evaluation.score(coco_gt, rows, segmentations)
    info(summary)
    return quality


def main(cfg: Config) -> RunResult:
    check(cfg)
    strategy = tf_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=BENCHMARK, eval_every_epochs=cfg.schedule.eval_every_epochs)
    run.init_start()
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
    train, val = read_splits(cfg)
    coco_gt = coco_eval.load_ground_truth(annotation_file(cfg.run.data_dir, "val"))
    global_batch = global_batch_size(cfg, strategy.num_replicas_in_sync)
    # the epoch's steps and the schedule's position (batching.py): a worker's pipeline batches per
    # replica, and its replicas take consecutive batches
    workers = max(1, getattr(strategy.extended, "_num_workers", 1))
    replicas_per_worker = strategy.num_replicas_in_sync // workers
    orientation = data.landscape(train)

    def steps_of(epoch: int) -> tuple[int, int]:
        arguments = (orientation, cfg.run.seed, epoch, global_batch // strategy.num_replicas_in_sync, workers,
                     replicas_per_worker)
        return epoch_steps(*arguments), steps_before(*arguments)

    if steps_of(1)[0] == 0:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} x {strategy.num_replicas_in_sync} replicas x "
                          f"{cfg.data.gradient_accumulation_steps} accumulation steps exceeds the {len(train)} "
                          "training images (in batches of one orientation)")
    schedule = learning_rate_schedule(cfg, global_batch)
    with strategy.scope():
        model = build_model(cfg, train.num_classes)
        optimizer = make_optimizer(cfg, schedule.peak)
        optimizer.build(trained_variables(model))  # slots now: a resumed run restores into them
    train_step = make_train_step(cfg, strategy, model, optimizer)
    predict = make_predict(model)
    state = {"model": model, "optimizer": optimizer}
    first_epoch, _ = resume_point(tf_runtime.resume(cfg, benchmark=BENCHMARK, **state))

    run.log_hyperparameters(hyperparameters(cfg, global_batch), global_batch_size=global_batch,
                            train_samples=len(train), eval_samples=len(val),
                            gradient_accumulation_steps=cfg.data.gradient_accumulation_steps)
    run.start()
    train_seconds, images_trained = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        started = time.perf_counter()
        steps, first_step = steps_of(epoch)
        batches = train_batches(cfg, strategy, train, epoch, global_batch)
        images, loss = train_one_epoch(cfg, batches, train_step, optimizer, schedule, epoch, steps, first_step,
                                       global_batch)
        train_seconds += time.perf_counter() - started
        images_trained += images
        info(f"epoch {epoch}: loss {loss:.4f}, lr {float(optimizer.learning_rate):.5f}, "
             f"{images_trained / train_seconds:,.1f} images/s")
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                quality = evaluate(cfg, val, coco_gt, predict)
            info(f"epoch {epoch}: box AP {quality['BBOX']:.4f}, mask AP {quality['SEGM']:.4f}")
            if run.record_eval(quality, epoch):
                break
        tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark=BENCHMARK, epoch=epoch, step=first_step + steps, **state)
    return run.stop(throughput=images_trained / train_seconds if train_seconds else 0.0)


if __name__ == "__main__":
    train_entry("object_detection/maskrcnn", FRAMEWORK)
