"""DeepSpeech2 training in TensorFlow/Keras 3, the mirror of pytorch/train.py.

Reads top to bottom as the benchmark (MLPerf Training v0.5 reference, mlcommons/training
speech_recognition/pytorch/train.py): load the duration-sorted manifests (the same batches as the
PyTorch run, batches.py), build DeepSpeech2 and SGD with Nesterov momentum in the strategy's scope,
then per epoch train with `tf.nn.ctc_loss` summed over the batch and divided by its size, the
gradients' global norm clipped at 400; decode the validation set greedily, score the WER with jiwer,
stop at the target; divide the learning rate by 1.1. Everything that is not this model's business
(log, clock, seeding, strategy, checkpoints) is the harness's.

    python -m harness train speech_recognition --framework tensorflow --config smoke
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
from speech_recognition.batches import BatchSource
from speech_recognition.config import Config, hyperparameters
from speech_recognition.dataset import load_splits
from speech_recognition.tensorflow.data import TENSOR_SPECS, batches, to_tensors
from speech_recognition.tensorflow.model import DeepSpeech2, build_model
from speech_recognition.text import BLANK, greedy_decode
from speech_recognition.wer import error_counts

FRAMEWORK = "tensorflow"
CLIP_EPSILON = 1e-6  # torch.nn.utils.clip_grad_norm_: max_norm / (total_norm + 1e-6)


def build_data(cfg: Config, strategy: tf.distribute.Strategy) -> tuple[BatchSource, BatchSource]:
    # one input pipeline per process: MultiWorkerMirrored workers take their rank's share
    rank, world = _worker_rank(strategy)
    train = BatchSource(load_splits(cfg.run.data_dir, cfg.data.train_splits), cfg.schedule.global_batch_size,
                        training=True, augmentation=cfg.data.augmentation, seed=cfg.run.seed, rank=rank, world_size=world)
    evaluation = BatchSource(load_splits(cfg.run.data_dir, cfg.data.eval_splits), cfg.schedule.eval_batch_size,
                             training=False, rank=rank, world_size=world)
    return train, evaluation


def _worker_rank(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    resolver = getattr(strategy, "cluster_resolver", None)
    workers = strategy.extended._num_workers if hasattr(strategy.extended, "_num_workers") else 1  # noqa: SLF001
    return (resolver.task_id if resolver is not None and workers > 1 else 0), max(1, workers)


class SGD(keras.optimizers.SGD):
    """torch.optim.SGD's update, the reference's optimizer: buf = momentum * buf + g; Nesterov steps
    by lr * (g + momentum * buf); L2 adds weight_decay * w to g. Keras keeps lr inside its momentum
    buffer (buf = momentum * buf - lr * g), which differs from PyTorch once the learning rate is
    annealed. Gradients arrive all-reduced and clipped (make_train_step), so none is summed here."""

    def __init__(self, *args, l2: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = tf.cast(gradient, dtype)
        if self.l2:
            gradient = gradient + tf.cast(self.l2, dtype) * variable
        momentum = tf.cast(self.momentum, dtype)
        buffer = self.momentums[self._get_variable_index(variable)]
        self.assign(buffer, momentum * buffer + gradient)
        step = gradient + momentum * buffer if self.nesterov else buffer
        self.assign_sub(variable, tf.cast(learning_rate, dtype) * step)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return grads_and_vars


def build_optimizer(cfg: Config, model: DeepSpeech2) -> SGD:
    if cfg.optimizer.name != "sgd":
        raise ConfigError(f"optimizer.name={cfg.optimizer.name}: DeepSpeech2 trains with sgd")
    optimizer = SGD(learning_rate=cfg.optimizer.base_lr, momentum=cfg.optimizer.momentum,
                    nesterov=cfg.optimizer.nesterov, l2=cfg.optimizer.weight_decay)
    optimizer.build(model.trainable_variables)
    return optimizer


def learning_rate_for(cfg: Config, epoch: int) -> float:
    """The reference divides the learning rate by the anneal factor after every epoch."""
    return cfg.optimizer.base_lr / cfg.optimizer.lr_anneal_factor ** (epoch - 1)


def ctc_loss_sum(logits: tf.Tensor, output_frames, targets, target_lengths) -> tf.Tensor:
    """Summed CTC loss of the batch (float32 at least). An utterance that cannot be aligned (fewer output
    frames than labels plus repeated pairs) adds 0 with a zero gradient: torch's zero_infinity, and the
    reference's warp-ctc run zeroed such a loss.

    float32: `tf.nn.ctc_loss` with dense labels, computed in log space from log-softmax, as torch's.
    float64 (the parity tests): that path has no float64, so TensorFlow's CTC kernel (sparse labels, via
    its v1 form) computes it; the kernel takes the softmax in linear space, which underflows in float32
    once logits spread by ~90 (early training at the smoke learning rate), hence not used for float32.
    Padding of `targets` is 0, the blank, never a target label."""
    if logits.dtype in (tf.float16, tf.bfloat16):
        logits = tf.cast(logits, tf.float32)
    mask = tf.sequence_mask(target_lengths, tf.shape(targets)[1])
    repeats = tf.reduce_sum(tf.cast((targets[:, 1:] == targets[:, :-1]) & mask[:, 1:], tf.int32), axis=1)
    feasible = output_frames >= target_lengths + repeats
    lengths = tf.where(feasible, target_lengths, 0)  # an infeasible utterance's loss is masked out below
    if logits.dtype == tf.float64:
        mask = tf.sequence_mask(lengths, tf.shape(targets)[1])
        labels = tf.SparseTensor(tf.where(mask), tf.boolean_mask(targets, mask) - 1, tf.cast(tf.shape(targets), tf.int64))
        rotated = tf.concat([logits[..., BLANK + 1:], logits[..., :BLANK + 1]], axis=-1)  # the kernel's blank is last
        per_utterance = tf.compat.v1.nn.ctc_loss(labels, tf.transpose(rotated, [1, 0, 2]), output_frames,
                                                 ctc_merge_repeated=True, ignore_longer_outputs_than_inputs=True,
                                                 time_major=True)
    else:
        per_utterance = tf.nn.ctc_loss(labels=targets, logits=logits, label_length=lengths, logit_length=output_frames,
                                       logits_time_major=False, blank_index=BLANK)
    return tf.reduce_sum(tf.where(feasible, per_utterance, tf.zeros_like(per_utterance)))


def clip_by_global_norm(gradients: list[tf.Tensor], max_norm: float) -> list[tf.Tensor]:
    """torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6))."""
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float64))) for g in gradients]))
    scale = tf.minimum(tf.constant(1.0, tf.float64), max_norm / (norm + CLIP_EPSILON))
    return [g * tf.cast(scale, g.dtype) for g in gradients]


def make_train_step(model: DeepSpeech2, optimizer: SGD, strategy: tf.distribute.Strategy, max_norm: float) -> Callable:
    """One optimizer step on one batch; returns the batch's summed loss."""

    def replica_step(features, output_frames, targets, target_lengths, global_count):
        with tf.GradientTape() as tape:
            logits = model(tf.cast(features, model.compute_dtype), training=True)
            loss_sum = ctc_loss_sum(logits, output_frames, targets, target_lengths)
            loss = loss_sum / tf.cast(global_count, loss_sum.dtype)  # the reference's loss / batch size
        gradients = tape.gradient(loss, model.trainable_variables)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        optimizer.apply_gradients(zip(clip_by_global_norm(gradients, max_norm), model.trainable_variables))
        return loss_sum

    @tf.function(input_signature=TENSOR_SPECS)
    def train_step(features, output_frames, targets, target_lengths, global_count):
        loss_sums = strategy.run(replica_step, args=(features, output_frames, targets, target_lengths, global_count))
        return tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sums, axis=None), tf.float64)

    return train_step


def train_one_epoch(train_step: Callable, source: BatchSource, cfg: Config, epoch: int) -> float:
    """One pass over the training batches in order; returns the mean loss per utterance."""
    loss_total, utterances = tf.zeros((), tf.float64), 0
    with progress_bar(cfg.run.progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=len(source), status="") if bar else None
        for batch, tensors in batches(source, epoch, cfg.run.num_workers):
            loss_total += train_step(*tensors)
            utterances += len(batch)
            if bar:
                bar.advance(task)
    return float(loss_total) / max(1, utterances)


def make_best_path_fn(model: DeepSpeech2) -> Callable:
    @tf.function(input_signature=TENSOR_SPECS[:1])
    def best_path(features):
        return tf.argmax(model(tf.cast(features, model.compute_dtype), training=False), axis=-1, output_type=tf.int32)

    return best_path


def evaluate(best_path_fn: Callable, source: BatchSource) -> float:
    """Corpus WER (jiwer) over the whole validation set (greedy decoding as the reference)."""
    errors, words = 0, 0
    for batch in source.iterate(epoch=0, workers=1):
        paths = best_path_fn(to_tensors(batch)[0]).numpy()
        hypotheses = [greedy_decode(path, int(length)) for path, length in zip(paths, batch.output_frames)]
        batch_errors, batch_words = error_counts(list(batch.transcripts), hypotheses)
        errors, words = errors + batch_errors, words + batch_words
    return errors / words if words else float("nan")


def main(cfg: Config) -> RunResult:
    strategy = tf_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=cfg.benchmark, eval_every_epochs=cfg.schedule.eval_every_epochs)
    run.init_start()
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
    train_source, eval_source = build_data(cfg, strategy)
    with strategy.scope():
        model = build_model(cfg.model, seed=cfg.run.seed)
        optimizer = build_optimizer(cfg, model)
    state = {"model": model, "optimizer": optimizer}
    first_epoch, step = resume_point(tf_runtime.resume(cfg, benchmark=cfg.benchmark, **state))
    train_step = make_train_step(model, optimizer, strategy, cfg.optimizer.gradient_clip_norm)
    best_path_fn = make_best_path_fn(model)
    run.log_hyperparameters(hyperparameters(cfg), global_batch_size=cfg.schedule.global_batch_size,
                            train_samples=len(train_source.utterances), eval_samples=len(eval_source.utterances))
    run.start()
    train_seconds, trained = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        optimizer.learning_rate.assign(learning_rate_for(cfg, epoch))
        began = time.perf_counter()
        loss = train_one_epoch(train_step, train_source, cfg, epoch)
        train_seconds += time.perf_counter() - began
        trained += len(train_source.utterances)
        step += len(train_source)
        reached = False
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                wer = evaluate(best_path_fn, eval_source)
            info(f"epoch {epoch}: loss {loss:.3f}, WER {wer:.4f}, lr {learning_rate_for(cfg, epoch):.3g}")
            reached = run.record_eval(wer, epoch)
        tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark=cfg.benchmark, epoch=epoch, step=step,
                                          extra={"eval_history": run.eval_history}, **state)
        if reached:
            break
    return run.stop(throughput=trained / train_seconds if train_seconds else 0.0)


if __name__ == "__main__":
    train_entry("speech_recognition", FRAMEWORK)


__all__ = ["main", "np"]
