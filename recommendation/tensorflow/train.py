"""NCF training in TensorFlow/Keras 3: NeuMF, Adam, binary cross-entropy, HR@10 over all users every epoch.

Reads top to bottom as the benchmark (MLPerf NCF reference, mlcommons/training recommendation/
pytorch/ncf.py), the mirror of pytorch/train.py: load the prepared MovieLens, build NeuMF and Adam
in the strategy's scope, then per epoch draw fresh negatives (4 per positive, sampling.py: the same
samples as the PyTorch run), train on them in global batches with a tf.function step, and rank each
user's held-out item among its 999 negatives; stop at the HR@10 target. Everything that is not
this model's business (log, clock, seeding, strategy, checkpoints) is the harness's.

    python -m harness train recommendation --framework tensorflow --config smoke
    python -m recommendation.tensorflow.train --config reference    # all local GPUs (MirroredStrategy)
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from harness import tf_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.errors import ConfigError
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar
from harness.tf_optimizers import TorchAdam as Adam  # torch.optim.Adam's update rule, the reference's optimizer
from recommendation.config import Config, hyperparameters
from recommendation.dataset import Prepared, load_for_training
from recommendation.metrics import hit_rate_and_ndcg
from recommendation.sampling import epoch_samples
from recommendation.tensorflow.data import EvalData, build_eval, distribute_epoch
from recommendation.tensorflow.model import NeuMF, build_model

FRAMEWORK = "tensorflow"


def build_data(cfg: Config, strategy: tf.distribute.Strategy) -> tuple[Prepared, EvalData]:
    prepared = load_for_training(cfg, strategy.num_replicas_in_sync)
    return prepared, build_eval(prepared)


def build_optimizer(cfg: Config, model: NeuMF) -> Adam:
    """Adam with the reference hyperparameters; its slots are built now, so a checkpoint can be
    restored into them before the first step."""
    if cfg.optimizer.name != "adam":
        raise ConfigError(f"optimizer.name={cfg.optimizer.name}: NCF trains with adam")
    optimizer = Adam(learning_rate=cfg.optimizer.base_lr, beta_1=cfg.optimizer.beta1,
                     beta_2=cfg.optimizer.beta2, epsilon=cfg.optimizer.epsilon)
    optimizer.build(model.trainable_variables)
    return optimizer


def make_train_step(model: NeuMF, optimizer: Adam,
                    strategy: tf.distribute.Strategy) -> Callable:
    """One optimizer step on one global batch; returns the summed loss of its real samples."""

    # float32 (the logit layer computes in float32 under a mixed policy); float64 for a float64 model
    loss_dtype = model.dtype_policy.variable_dtype

    def replica_step(users, items, labels, count, global_count):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(users, items, training=True), loss_dtype)
            per_sample = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, loss_dtype), logits=logits)
            real = tf.range(tf.shape(users)[0]) < count  # padding of an uneven last batch is masked out
            loss_sum = tf.reduce_sum(tf.where(real, per_sample, tf.zeros_like(per_sample)))
            # Each replica divides by the global batch's size and Keras sums the replicas' gradients
            # (optimizer all-reduce): the mean over the global batch, as the reference's BCE mean.
            loss = loss_sum / tf.cast(global_count, loss_dtype)
        # Embedding gradients come as IndexedSlices with a row per sample; summed into dense tables
        # they are the reference's (nn.Embedding, sparse=False) and what Adam needs (see Adam), and
        # replicas all-reduce the tables (31M floats for ml-20m) instead of gathering every row.
        gradients = [tf.convert_to_tensor(gradient) for gradient in tape.gradient(loss, model.trainable_variables)]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss_sum

    @tf.function
    def train_step(batch):
        loss_sums = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sums, axis=None)

    return train_step


def train_one_epoch(train_step: Callable, dataset, steps: int, samples: int, epoch: int, progress: bool) -> float:
    """One pass over the epoch's samples; returns the mean training loss."""
    loss_total = 0.0  # becomes a tensor of the step's loss dtype at the first step
    with progress_bar(progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=steps, status="") if bar else None
        for batch in dataset:
            loss_total += train_step(batch)  # stays on the device: no host sync per step
            if bar:
                bar.advance(task)
    return float(loss_total) / max(1, samples)


def make_rank_fn(model: NeuMF) -> Callable:
    """Per user row: how many distinct negatives score >= the positive (metrics.py's rank), on the device.

    Scores are float32 logits (model.py keeps the logit layer in float32 under a mixed policy).
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None, None], tf.bool)])
    def rank(users, items, valid):
        shape = tf.shape(items)
        scores = model(tf.reshape(tf.broadcast_to(users[:, None], shape), [-1]), tf.reshape(items, [-1]),
                       training=False)
        scores = tf.reshape(tf.cast(scores, model.dtype_policy.variable_dtype), shape)  # float64 model: float64
        beaten_by = (scores[:, :-1] >= scores[:, -1:]) & valid
        return tf.reduce_sum(tf.cast(beaten_by, tf.int32), axis=1)

    return rank


def evaluate(rank_fn: Callable, data: EvalData, k: int, batch_size: int) -> tuple[float, float]:
    """HR@k and NDCG@k over all users (metrics.hit_rate_and_ndcg on the device-computed ranks)."""
    ranks = [rank_fn(users, items, valid).numpy() for users, items, valid in data.dataset(batch_size)]
    return hit_rate_and_ndcg(np.concatenate(ranks), k)


def main(cfg: Config) -> RunResult:
    strategy = tf_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=cfg.benchmark, eval_every_epochs=cfg.schedule.eval_every_epochs)
    run.init_start()
    prepared, eval_data = build_data(cfg, strategy)
    with strategy.scope():
        model = build_model(prepared.n_users, prepared.n_items, cfg.model.factors, cfg.model.mlp_layer_sizes,
                            seed=cfg.run.seed)
        optimizer = build_optimizer(cfg, model)
    state = {"model": model, "optimizer": optimizer}
    first_epoch, step = resume_point(tf_runtime.resume(cfg, benchmark=cfg.benchmark, **state))
    train_step, rank_fn = make_train_step(model, optimizer, strategy), make_rank_fn(model)
    samples_per_epoch = prepared.n_train * (1 + cfg.data.train_negatives_per_positive)
    run.log_hyperparameters(hyperparameters(cfg), global_batch_size=cfg.schedule.global_batch_size,
                            train_samples=samples_per_epoch,
                            eval_samples=prepared.n_users * (1 + cfg.data.eval_negatives_per_user))

    def draw(epoch: int):
        return epoch_samples(prepared.train, cfg.data.train_negatives_per_positive, cfg.run.seed, epoch)

    # The next epoch's negatives are drawn on a CPU thread while this one trains.
    run.start()  # drawing the first epoch's samples is training work: it runs on the clock
    prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    upcoming = prefetch.submit(draw, first_epoch)
    train_seconds, trained_samples = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        samples = upcoming.result()
        if epoch < cfg.schedule.max_epochs:
            upcoming = prefetch.submit(draw, epoch + 1)
        dataset, steps = distribute_epoch(samples, cfg.schedule.global_batch_size, strategy)
        began = time.perf_counter()
        loss = train_one_epoch(train_step, dataset, steps, len(samples), epoch, cfg.run.progress)
        train_seconds += time.perf_counter() - began  # float(loss) waited for the last step
        trained_samples += len(samples)
        step += steps
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                hit_rate, ndcg = evaluate(rank_fn, eval_data, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size)
            info(f"epoch {epoch}: loss {loss:.4f}, HR@{cfg.data.eval_hr_k} {hit_rate:.4f}, "
                 f"NDCG@{cfg.data.eval_hr_k} {ndcg:.4f}")
            reached = run.record_eval(hit_rate, epoch)
        else:
            reached = False
        tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark=cfg.benchmark, epoch=epoch, step=step,
                                          extra={"eval_history": run.eval_history}, **state)
        if reached:
            break
    prefetch.shutdown(wait=False, cancel_futures=True)
    return run.stop(throughput=trained_samples / train_seconds if train_seconds else 0.0)


if __name__ == "__main__":
    train_entry("recommendation", FRAMEWORK)
