"""GNMT training in TensorFlow/Keras 3: WMT16 En-De, Adam with the reference's warmup / step-decay
schedule, label smoothing, gradient clipping, BLEU on newstest2014 with the reference's beam search
after every epoch.

Reads top to bottom as the benchmark, the mirror of pytorch/train.py (MLPerf reference
mlcommons/training rnn_translator/pytorch): load the prepared data, build GNMT and Adam in the
strategy's scope, then per epoch train on the same length-bucketed batches as the PyTorch run
(translation/batching.py, from the seed and the epoch) with a tf.function step, translate the BLEU
set with translation/beam_search_gnmt_tensorflow.py, detokenize, score it with sacrebleu, stop at
the target. Everything that is not this model's business (log, clock, seeding, strategy,
checkpoints) is the harness's.

    python -m harness train gnmt --framework tensorflow --config smoke
    python -m translation.gnmt.tensorflow.train --config reference    # all local GPUs (MirroredStrategy)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from compliance.mllog import constants
from harness import tf_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar
from harness.tf_optimizers import TorchAdam
from translation import bleu
from translation.batching import shard_batches
from translation.beam_search_gnmt_tensorflow import beam_search
from translation.bpe import BOS_ID, EOS_ID, PAD_ID
from translation.gnmt.config import HYPERPARAMETER_METADATA, Config, check, hyperparameters
from translation.gnmt.dataset import Prepared, epoch_batches, load_for_training, steps_per_epoch
from translation.gnmt.schedule import LearningRateSchedule, learning_rate, lr_schedule
from translation.gnmt.tensorflow.model import GNMT, build_model, smoothed_loss
from translation.translate import score, translate

FRAMEWORK = "tensorflow"
BATCH_SIGNATURE = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32),
                   tf.TensorSpec([None, None], tf.int32)]


def build_optimizer(cfg: Config, model: GNMT) -> TorchAdam:
    """Adam with the reference's betas and epsilon (PyTorch's update rule, harness.tf_optimizers); the
    learning rate is set every step from schedule.learning_rate. Slots are built now, so a checkpoint
    can be restored into them before the first step."""
    opt = cfg.optimizer
    optimizer = TorchAdam(learning_rate=0.0, beta_1=opt.beta1, beta_2=opt.beta2, epsilon=opt.epsilon)
    optimizer.build(model.trainable_variables)
    return optimizer


def make_train_step(model: GNMT, optimizer: TorchAdam, strategy: tf.distribute.Strategy, cfg: Config) -> Callable:
    """One optimizer step on each replica's batch; returns (summed loss, target tokens) over replicas."""
    replicas = strategy.num_replicas_in_sync
    smoothing, max_norm = cfg.optimizer.label_smoothing, cfg.optimizer.grad_clip

    def replica_step(source, lengths, target):
        with tf.GradientTape() as tape:
            logits = model(source, lengths, target[:, :-1], training=True)
            loss_sum, tokens = smoothed_loss(logits, target[:, 1:], smoothing)
            # per sentence, as the reference (trainer.py `loss /= B`), averaged over replicas: Keras
            # sums the replicas' gradients, so each is divided by their number
            loss = loss_sum / tf.cast(tf.shape(source)[0], loss_sum.dtype) / replicas
        # the embedding's gradient arrives as IndexedSlices: densified, as PyTorch's and TorchAdam needs
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        # clip_grad_norm_(5) on the all-reduced gradient, as the reference: the global norm of the
        # sum over replicas (one more all-reduce), and every replica scales its share by the same factor
        summed = gradients if replicas == 1 else tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, gradients)
        factor = tf.minimum(tf.cast(max_norm, loss.dtype) / (tf.linalg.global_norm(summed) + 1e-6), 1.0)
        optimizer.apply_gradients(zip([g * tf.cast(factor, g.dtype) for g in gradients], model.trainable_variables))
        return loss_sum, tokens

    @tf.function(input_signature=[*BATCH_SIGNATURE, tf.TensorSpec([], tf.float32)])
    def single_replica_step(source, lengths, target, lr):
        optimizer.learning_rate.assign(lr)
        return replica_step(source, lengths, target)

    @tf.function
    def distributed_step(sources, lengths, targets, lr):
        optimizer.learning_rate.assign(lr)
        loss_sums, token_counts = strategy.run(replica_step, args=(sources, lengths, targets))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sums, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, token_counts, axis=None))

    return single_replica_step if replicas == 1 else distributed_step


def _arrays(prepared: Prepared, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (prepared.train_source.pad(indices), prepared.train_source.lengths[indices].astype(np.int32),
            prepared.train_target.pad(indices))


def train_one_epoch(train_step: Callable, strategy: tf.distribute.Strategy, prepared: Prepared,
                    batches: list[list[np.ndarray]], schedule: LearningRateSchedule, step: int, epoch: int,
                    progress: bool) -> tuple[float, int]:
    """One pass over the epoch's steps (`batches[s]` holds each replica's batch of step s); returns
    (mean loss per target token, target tokens over all replicas)."""
    loss_total, tokens_total = 0.0, 0.0
    with progress_bar(progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=len(batches), status="") if bar else None
        for per_replica in batches:
            step += 1
            lr = tf.constant(learning_rate(step, schedule), tf.float32)
            if len(per_replica) == 1:
                loss_sum, tokens = train_step(*_arrays(prepared, per_replica[0]), lr)
            else:
                def value(context, part, batches=per_replica):
                    return _arrays(prepared, batches[context.replica_id_in_sync_group])[part]
                parts = [strategy.experimental_distribute_values_from_function(lambda c, p=part: value(c, p))
                         for part in range(3)]
                loss_sum, tokens = train_step(*parts, lr)
            loss_total += loss_sum
            tokens_total += tokens
            if bar:
                bar.advance(task)
    return float(loss_total) / max(1.0, float(tokens_total)), int(float(tokens_total))


def make_decoder(model: GNMT, cfg: Config) -> Callable:
    """padded source ids (n, length) -> each sentence's best beam-search output (ids after BOS)."""
    ev = cfg.eval
    dtype = model.embedder.embeddings.dtype
    hidden, layers = model.hidden_size, model.num_layers
    encode = tf.function(model.initial_cache, input_signature=[tf.TensorSpec([None, None], tf.int32),
                                                               tf.TensorSpec([None], tf.int32)])
    cache_signature = {"keys": tf.TensorSpec([None, None, hidden], dtype),
                       "processed_keys": tf.TensorSpec([None, None, hidden], dtype),
                       "mask": tf.TensorSpec([None, None], tf.bool),
                       "h": tf.TensorSpec([None, layers, hidden], dtype), "c": tf.TensorSpec([None, layers, hidden], dtype)}
    step = tf.function(model.decode_step, input_signature=[tf.TensorSpec([None], tf.int64), cache_signature])

    def decode_batch(source: np.ndarray) -> list[list[int]]:
        lengths = (source != PAD_ID).sum(axis=1).astype(np.int32)
        cache = encode(tf.constant(source, tf.int32), tf.constant(lengths))
        result = beam_search(step, cache, len(source), ev.beam_size, ev.max_length, bos_id=BOS_ID, eos_id=EOS_ID,
                             source_length=source.shape[1], length_norm_factor=ev.length_norm_factor,
                             length_norm_const=ev.length_norm_const, coverage_penalty_factor=ev.coverage_penalty_factor,
                             dtype=tf.float64 if dtype == "float64" else tf.float32)
        return result.sequences[np.arange(len(source)), result.best, 1:].tolist()

    return decode_batch


def evaluate(decode_batch: Callable, prepared: Prepared, cfg: Config) -> bleu.BleuScore:
    """Translate the whole BLEU set, detokenize and score (every worker the same number)."""
    result, _ = score(translate(prepared.test_source, decode_batch, cfg.eval.sentences_per_batch),
                      prepared.vocabulary, prepared.test_references)
    return result


def main(cfg: Config) -> RunResult:
    cfg = check(cfg)
    strategy = tf_runtime.setup(cfg.run)
    replicas = strategy.num_replicas_in_sync
    run = TrainingRun(cfg, benchmark=cfg.benchmark, eval_every_epochs=cfg.schedule.eval_every_epochs)
    run.init_start()
    prepared = load_for_training(cfg, replicas)
    steps = steps_per_epoch(prepared, cfg, replicas)
    schedule = lr_schedule(cfg, steps)
    with strategy.scope():
        model = build_model(prepared.vocab_size, cfg.model, seed=cfg.run.seed)
        optimizer = build_optimizer(cfg, model)
    state = {"model": model, "optimizer": optimizer}
    first_epoch, step = resume_point(tf_runtime.resume(cfg, benchmark=cfg.benchmark, **state))
    train_step = make_train_step(model, optimizer, strategy, cfg)
    decode_batch = make_decoder(model, cfg)
    run.log_hyperparameters(hyperparameters(cfg, steps), global_batch_size=cfg.data.batch_size_per_replica * replicas,
                            train_samples=steps * cfg.data.batch_size_per_replica * replicas,
                            eval_samples=len(prepared.test_references), metadata=HYPERPARAMETER_METADATA)
    run.logger.event(key=constants.EVAL_METRIC_SIGNATURE, value=bleu.signature())
    run.start()
    train_seconds, trained_tokens = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        # step s of replica r trains batch s * replicas + r: the PyTorch ranks' split (batching.shard_batches)
        all_batches = epoch_batches(prepared, cfg, epoch, replicas)
        shards = [shard_batches(all_batches, replica, replicas) for replica in range(replicas)]
        batches = [list(step_batches) for step_batches in zip(*shards)]
        began = time.perf_counter()
        loss, tokens = train_one_epoch(train_step, strategy, prepared, batches, schedule, step, epoch, cfg.run.progress)
        train_seconds += time.perf_counter() - began  # float(loss) waited for the last step
        trained_tokens += tokens
        step += len(batches)
        reached = False
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                result = evaluate(decode_batch, prepared, cfg)
            info(f"epoch {epoch}: loss {loss:.4f}, BLEU {result.score:.2f} ({step} steps)")
            reached = run.record_eval(result.fraction, epoch)
        tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark=cfg.benchmark, epoch=epoch, step=step,
                                          extra={"eval_history": run.eval_history}, **state)
        if reached:
            break
    return run.stop(throughput=trained_tokens / train_seconds if train_seconds else 0.0)


if __name__ == "__main__":
    train_entry("translation/gnmt", FRAMEWORK)
