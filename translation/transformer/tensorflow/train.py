"""Transformer training in TensorFlow/Keras 3: WMT17 En-De, Adam with warmup + rsqrt decay, label
smoothing, BLEU on newstest2014 with beam search after every epoch.

Reads top to bottom as the benchmark (MLPerf reference mlcommons/training translation/tensorflow/
transformer/transformer_main.py), the mirror of pytorch/train.py: load the prepared data, build the
Transformer and Adam in the strategy's scope, then per epoch train on the same length-bucketed
batches as the PyTorch run (translation/batching.py, from the seed and the epoch) with a
tf.function step, translate the BLEU set with beam 4 / alpha 0.6 / input length + 50
(translation/beam_search_tensorflow.py), score it with sacrebleu, stop at the target. Everything
that is not this model's business (log, clock, seeding, strategy, checkpoints) is the harness's.

    python -m harness train transformer --framework tensorflow --config smoke
    python -m translation.transformer.tensorflow.train --config reference    # all local GPUs (MirroredStrategy)
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
from translation.beam_search_tensorflow import beam_search
from translation.transformer.config import HYPERPARAMETER_METADATA, Config, check, hyperparameters
from translation.transformer.dataset import Prepared, epoch_batches, load_for_training
from translation.transformer.schedule import learning_rate
from translation.transformer.tensorflow.model import Transformer, build_model, smoothed_cross_entropy
from translation.translate import score, translate
from translation.vocabulary import EOS_ID

FRAMEWORK = "tensorflow"
BATCH_SIGNATURE = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)]


def build_optimizer(cfg: Config, model: Transformer) -> TorchAdam:
    """Adam with the reference's betas and epsilon (PyTorch's update rule, harness.tf_optimizers); the
    learning rate is set every step from schedule.learning_rate. Slots are built now, so a checkpoint
    can be restored into them before the first step."""
    opt = cfg.optimizer
    optimizer = TorchAdam(learning_rate=0.0, beta_1=opt.beta1, beta_2=opt.beta2, epsilon=opt.epsilon)
    optimizer.build(model.trainable_variables)
    return optimizer


def make_train_step(model: Transformer, optimizer: TorchAdam, strategy: tf.distribute.Strategy,
                    label_smoothing: float) -> Callable:
    """One optimizer step on each replica's batch; returns (summed loss, target tokens) over replicas."""
    replicas = strategy.num_replicas_in_sync

    def replica_step(source, target):
        with tf.GradientTape() as tape:
            logits = model(source, target, training=True)
            loss_sum, tokens = smoothed_cross_entropy(logits, target, label_smoothing)
            # the mean over this replica's tokens (the reference), averaged over replicas: Keras sums
            # the replicas' gradients, so each is divided by their number
            loss = loss_sum / tokens / replicas
        # the shared embedding's gradient arrives as IndexedSlices plus a dense part (pre-softmax):
        # summed into one dense table, as PyTorch's and what TorchAdam needs
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss_sum, tokens

    @tf.function(input_signature=[*BATCH_SIGNATURE, tf.TensorSpec([], tf.float32)])
    def single_replica_step(source, target, lr):
        optimizer.learning_rate.assign(lr)
        return replica_step(source, target)

    @tf.function(reduce_retracing=True)  # per-replica batches of any length: shapes generalize after a few traces
    def distributed_step(sources, targets, lr):
        optimizer.learning_rate.assign(lr)
        loss_sums, token_counts = strategy.run(replica_step, args=(sources, targets))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sums, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, token_counts, axis=None))

    return single_replica_step if replicas == 1 else distributed_step


def train_one_epoch(train_step: Callable, strategy: tf.distribute.Strategy, prepared: Prepared,
                    batches: list[list[np.ndarray]], cfg: Config, step: int, epoch: int) -> tuple[float, int]:
    """One pass over the epoch's steps (`batches[s]` holds each replica's batch of step s); returns
    (mean loss per target token, target tokens over all replicas)."""
    opt = cfg.optimizer
    loss_total, tokens_total = 0.0, 0.0
    with progress_bar(cfg.run.progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=len(batches), status="") if bar else None
        for per_replica in batches:
            lr = tf.constant(learning_rate(step, opt.learning_rate, cfg.model.hidden_size, opt.warmup_steps), tf.float32)
            if len(per_replica) == 1:
                source, target = prepared.train_source.pad(per_replica[0]), prepared.train_target.pad(per_replica[0])
                loss_sum, tokens = train_step(source, target, lr)
            else:
                def value(context, name, per_replica=per_replica):
                    return getattr(prepared, name).pad(per_replica[context.replica_id_in_sync_group])
                sources = strategy.experimental_distribute_values_from_function(lambda c: value(c, "train_source"))
                targets = strategy.experimental_distribute_values_from_function(lambda c: value(c, "train_target"))
                loss_sum, tokens = train_step(sources, targets, lr)
            loss_total += loss_sum
            tokens_total += tokens
            step += 1
            if bar:
                bar.advance(task)
    return float(loss_total) / max(1.0, float(tokens_total)), int(float(tokens_total))


def make_decoder(model: Transformer, cfg: Config) -> Callable:
    """padded source ids (n, length) -> the best beam-search output of each sentence (ids, EOS excluded)."""
    encode = tf.function(lambda inputs: model.encode(inputs, training=False),
                         input_signature=[tf.TensorSpec([None, None], tf.int32)])

    def decode_batch(source: np.ndarray) -> list[list[int]]:
        encoder_outputs, bias = encode(tf.constant(source))
        sequences, _ = beam_search(model.decode_step, tf.zeros([len(source)], tf.int32),
                                   model.initial_cache(encoder_outputs, bias), model.vocab_size, cfg.eval.beam_size,
                                   cfg.eval.alpha, source.shape[1] + cfg.eval.extra_decode_length, EOS_ID,
                                   dtype=encoder_outputs.dtype)
        return sequences[:, 0, 1:].numpy().tolist()

    return decode_batch


def evaluate(decode_batch: Callable, prepared: Prepared, cfg: Config) -> bleu.BleuScore:
    """Translate the whole BLEU set and score the detokenized output (every worker the same number)."""
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
    with strategy.scope():
        model = build_model(prepared.vocab_size, cfg.model, seed=cfg.run.seed)
        optimizer = build_optimizer(cfg, model)
    state = {"model": model, "optimizer": optimizer}
    first_epoch, step = resume_point(tf_runtime.resume(cfg, benchmark=cfg.benchmark, **state))
    train_step = make_train_step(model, optimizer, strategy, cfg.optimizer.label_smoothing)
    decode_batch = make_decoder(model, cfg)
    run.log_hyperparameters(hyperparameters(cfg), global_batch_size=cfg.data.max_tokens_per_replica * replicas,
                            train_samples=len(prepared.train_indices), eval_samples=len(prepared.test_references),
                            metadata=HYPERPARAMETER_METADATA)
    run.logger.event(key=constants.EVAL_METRIC_SIGNATURE, value=bleu.signature())
    run.start()
    train_seconds, trained_tokens = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        # step s of replica r trains batch s * replicas + r: the PyTorch ranks' split (batching.shard_batches)
        shards = [epoch_batches(prepared, cfg, epoch, replica, replicas) for replica in range(replicas)]
        batches = [list(step_batches) for step_batches in zip(*shards)]
        began = time.perf_counter()
        loss, tokens = train_one_epoch(train_step, strategy, prepared, batches, cfg, step, epoch)
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
    train_entry("translation/transformer", FRAMEWORK)
