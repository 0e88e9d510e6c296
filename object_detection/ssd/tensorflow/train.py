"""SSD (ResNet-34) on COCO 2017 in TensorFlow/Keras 3, to 0.23 box mAP: the benchmark's loop, top to bottom.

    python -m harness train ssd --framework tensorflow --config smoke
    TF_CONFIG=... python -m object_detection.ssd.tensorflow.train --config reference   # per worker

The twin of `../pytorch/train.py`, function for function: the same config, log keys and learning
rate (`../config.py`), the same update rule (`harness.tf_optimizers.TorchSGD`: torch's SGD),
the same loss (`loss.py`), the same augmentation draws (`data.py`). The loop is a custom
`tf.function` train step under the `tf.distribute` strategy of `harness.tf_runtime`; evaluation
runs the model, decoding and TensorFlow's per-class NMS on one device per worker over the whole
val set (as the reference evaluates on rank 0), and pycocotools scores the detections.
"""

from __future__ import annotations

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
from harness.progress import info, progress_bar
from harness.tf_optimizers import TorchSGD
from object_detection import coco_eval
from object_detection.box_ops_tensorflow import decode, per_class_nms
from object_detection.coco_reader import CocoDetection
from object_detection.dataset import annotation_file, check_layout, image_dir
from object_detection.ssd import default_boxes, pretrained
from object_detection.ssd.config import (
    Config,
    check,
    eval_due,
    global_batch_size,
    hyperparameters,
    learning_rate_schedule,
)
from object_detection.ssd.tensorflow import data
from object_detection.ssd.tensorflow.convert import load_backbone
from object_detection.ssd.tensorflow.loss import ssd_loss
from object_detection.ssd.tensorflow.model import build_model as build_ssd

BENCHMARK = "ssd"
FRAMEWORK = "tensorflow"


def read_splits(cfg: Config) -> tuple[CocoDetection, CocoDetection]:
    check_layout(cfg.run.data_dir)
    train = CocoDetection(annotation_file(cfg.run.data_dir, "train"), image_dir(cfg.run.data_dir, "train"))
    val = CocoDetection(annotation_file(cfg.run.data_dir, "val"), image_dir(cfg.run.data_dir, "val"))
    if train.categories != val.categories:
        raise ConfigError(f"{cfg.run.data_dir}: train and val annotations list different categories")
    return train, val


def build_model(cfg: Config, num_classes: int) -> keras.Model:
    """The Keras SSD with the pretrained backbone if configured; call inside `strategy.scope()`."""
    model = build_ssd(cfg.model, num_classes)
    sizes = [int(f.shape[1]) for f in model.feature_maps(keras.ops.zeros((1, cfg.model.image_size,
                                                                           cfg.model.image_size, 3)))]
    if tuple(sizes) != tuple(cfg.model.feature_sizes):
        raise ConfigError(f"model.feature_sizes={list(cfg.model.feature_sizes)}, but a {cfg.model.image_size}x"
                          f"{cfg.model.image_size} input gives maps of {sizes}")
    weights = pretrained.backbone_state_dict(cfg.model.pretrained_backbone, cfg.model.width, cfg.model.layers)
    if weights is not None:
        load_backbone(model, weights)
    return model


def make_train_step(cfg: Config, strategy: tf.distribute.Strategy, model: keras.Model, optimizer: TorchSGD,
                    anchors_cxcywh: tf.Tensor, global_batch: int):
    """One optimizer step per call: `gradient_accumulation_steps` micro-batches per replica."""
    accumulation = cfg.data.gradient_accumulation_steps
    negatives = cfg.loss.negatives_per_positive

    def replica_step(images, gt_boxes, gt_labels):
        variables = model.trainable_variables
        gradients, loss = None, 0.0
        for part in zip(tf.split(images, accumulation), tf.split(gt_boxes, accumulation),
                        tf.split(gt_labels, accumulation)):
            with tf.GradientTape() as tape:
                locs, logits = model(part[0], training=True)
                # over the global batch: the optimizer sums the replicas' gradients -> the global mean;
                # in float32 under mixed precision, else in the model's own precision
                loss_dtype = tf.float64 if locs.dtype == tf.float64 else tf.float32
                part_loss = ssd_loss(tf.cast(locs, loss_dtype), tf.cast(logits, loss_dtype), part[1], part[2],
                                     anchors_cxcywh, negatives, global_batch)
            grads = tape.gradient(part_loss, variables)
            gradients = grads if gradients is None else [g + p for g, p in zip(gradients, grads)]
            loss += part_loss
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    @tf.function
    def train_step(iterator):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=next(iterator)), axis=None)

    return train_step


def train_batches(cfg: Config, strategy, train: CocoDetection, anchors_xyxy: np.ndarray, epoch: int,
                  global_batch: int):
    """An iterator over this epoch's distributed (images, matched boxes, labels) batches."""
    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.train_dataset(train, cfg, anchors_xyxy, epoch=epoch, global_batch=global_batch,
                                  batch_size=context.get_per_replica_batch_size(global_batch),
                                  pipeline=context.input_pipeline_id, num_pipelines=context.num_input_pipelines)

    return iter(strategy.distribute_datasets_from_function(pipeline))


def train_one_epoch(cfg: Config, iterator, train_step, optimizer, schedule, epoch: int, steps_per_epoch: int,
                    global_batch: int) -> tuple[int, float]:
    """One pass over this epoch's batches (`iterator`, from `train_batches`); returns (images trained, mean loss)."""
    first_step = (epoch - 1) * steps_per_epoch
    losses = []
    with progress_bar(cfg.run.progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=steps_per_epoch, status="") if bar else None
        for step in range(steps_per_epoch):
            optimizer.learning_rate = schedule(first_step + step, epoch)  # before the step, as the reference
            losses.append(train_step(iterator))
            if bar:
                bar.update(task, advance=1, status=f"loss {float(losses[-2 if step else -1]):.3f}")
    return steps_per_epoch * global_batch, float(np.mean([float(loss) for loss in losses]))


def make_predict(cfg: Config, model: keras.Model, anchors_cxcywh: tf.Tensor):
    post = cfg.postprocess

    @tf.function
    def predict(images):
        locs, logits = model(images, training=False)
        boxes = decode(tf.cast(locs, tf.float32), anchors_cxcywh[None])
        scores = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        return per_class_nms(boxes, scores, score_threshold=post.score_threshold, iou_threshold=post.nms_iou,
                             candidates_per_class=post.candidates_per_class, max_detections=post.max_detections)

    return predict


def make_batchnorm_average(strategy: tf.distribute.Strategy, model: keras.Model):
    """Replicas update BN statistics on their own batches; average them before evaluating (the reference)."""
    if strategy.num_replicas_in_sync == 1:
        return lambda: None
    statistics = model.non_trainable_variables

    def replica_fn():
        context = tf.distribute.get_replica_context()
        for variable in statistics:
            variable.assign(context.all_reduce(tf.distribute.ReduceOp.MEAN, variable.value))

    return tf.function(lambda: strategy.run(replica_fn))


def evaluate(cfg: Config, val: CocoDetection, coco_gt, predict, average_batchnorm_statistics) -> float:
    """Box mAP@[0.5:0.95] of the whole val set."""
    average_batchnorm_statistics()
    rows = []
    for images, indices in data.eval_dataset(val, cfg):
        boxes, labels, scores, valid = (t.numpy() for t in predict(images))
        for i, index in enumerate(indices.numpy()):
            record = val.records[int(index)]
            n = int(valid[i])
            rows.append(coco_eval.detection_rows(record.image_id, boxes[i, :n], scores[i, :n], labels[i, :n],
                                                 record.width, record.height, val.category_of_label))
    result = coco_eval.evaluate_bbox(coco_gt, np.concatenate(rows) if rows else np.zeros((0, 7)))
    info(result.summary.rstrip())
    return result.ap


def main(cfg: Config) -> RunResult:
    check(cfg)
    strategy = tf_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=BENCHMARK, eval_due=lambda epoch: eval_due(cfg, epoch))
    run.init_start()
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
    train, val = read_splits(cfg)
    coco_gt = coco_eval.load_ground_truth(annotation_file(cfg.run.data_dir, "val"))
    anchors_cxcywh_np = default_boxes.from_config(cfg.model)
    anchors_xyxy = default_boxes.cxcywh_to_xyxy(anchors_cxcywh_np)
    anchors_cxcywh = tf.constant(anchors_cxcywh_np)
    global_batch = global_batch_size(cfg, strategy.num_replicas_in_sync)
    steps_per_epoch = len(train) // global_batch
    if steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} x {strategy.num_replicas_in_sync} replicas x "
                          f"{cfg.data.gradient_accumulation_steps} accumulation steps exceeds the {len(train)} "
                          "training images")
    schedule = learning_rate_schedule(cfg, len(train), global_batch, steps_per_epoch)
    with strategy.scope():
        model = build_model(cfg, train.num_classes)
        optimizer = TorchSGD(schedule.peak, momentum=cfg.optimizer.momentum, weight_decay=cfg.optimizer.weight_decay)
        optimizer.build(model.trainable_variables)  # slots now: a resumed run restores into them
    train_step = make_train_step(cfg, strategy, model, optimizer, anchors_cxcywh, global_batch)
    predict = make_predict(cfg, model, anchors_cxcywh)
    average_batchnorm_statistics = make_batchnorm_average(strategy, model)
    state = {"model": model, "optimizer": optimizer}
    first_epoch, _ = resume_point(tf_runtime.resume(cfg, benchmark=BENCHMARK, **state))

    run.log_hyperparameters(hyperparameters(cfg, len(train), global_batch), global_batch_size=global_batch,
                            train_samples=len(train), eval_samples=len(val),
                            gradient_accumulation_steps=cfg.data.gradient_accumulation_steps)
    run.start()
    train_seconds, images_trained = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        started = time.perf_counter()
        batches = train_batches(cfg, strategy, train, anchors_xyxy, epoch, global_batch)
        images, loss = train_one_epoch(cfg, batches, train_step, optimizer, schedule, epoch, steps_per_epoch,
                                       global_batch)
        train_seconds += time.perf_counter() - started
        images_trained += images
        info(f"epoch {epoch}: loss {loss:.4f}, lr {float(optimizer.learning_rate):.5f}, "
             f"{images_trained / train_seconds:,.1f} images/s")
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                ap = evaluate(cfg, val, coco_gt, predict, average_batchnorm_statistics)
            info(f"epoch {epoch}: box mAP {ap:.4f}")
            if run.record_eval(ap, epoch):
                break
        tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark=BENCHMARK, epoch=epoch, step=epoch * steps_per_epoch, **state)
    return run.stop(throughput=images_trained / train_seconds if train_seconds else 0.0)


if __name__ == "__main__":
    train_entry("object_detection/ssd", FRAMEWORK)
