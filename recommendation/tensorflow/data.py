"""NCF data as tf.data pipelines: each epoch's samples (every replica's share) and the evaluation rows.

The samples themselves come from recommendation/sampling.py (NumPy), the same in both frameworks;
this module only cuts them into the global batches the PyTorch side uses (sampling.local_batches:
global batch b is samples [b*G, b*G+G) of the epoch's shuffled order) and feeds them with tf.data.

One replica (CPU, one GPU) reads the epoch's arrays in order, with no copy. Several replicas
(MirroredStrategy, MultiWorkerMirroredStrategy) each take their contiguous share of every global
batch, as PyTorch's ranks do; the shares are padded to one per-replica size so every step has the
same shapes on every replica, and `count` says how many samples of a share are real: the loss
masks the padding, so a step's gradient is exactly the mean over its global batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from recommendation.dataset import Prepared
from recommendation.metrics import distinct_mask
from recommendation.sampling import EpochSamples, local_batches, steps_per_epoch


@dataclasses.dataclass(frozen=True)
class ReplicaShare:
    """One replica's samples of an epoch as flat arrays, `steps` batches of `batch` rows each
    (padded), `counts[s]` of them real, and `global_counts[s]` the size of global batch s."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    counts: np.ndarray  # int32 (steps,)
    global_counts: np.ndarray  # int32 (steps,)
    batch: int


def replica_share(samples: EpochSamples, global_batch_size: int, replica: int, replicas: int) -> ReplicaShare:
    """The samples of `replica` among `replicas` (global replica index), padded to equal batches."""
    bounds = list(local_batches(len(samples), global_batch_size, replica, replicas))
    batch = -(-global_batch_size // replicas)
    index = np.zeros((len(bounds), batch), dtype=np.int64)  # padding repeats sample 0, masked out
    counts = np.zeros(len(bounds), dtype=np.int32)
    for step, (start, stop, _) in enumerate(bounds):
        index[step, :stop - start] = np.arange(start, stop)
        counts[step] = stop - start
    index = index.ravel()
    return ReplicaShare(samples.users[index], samples.items[index], samples.labels[index], counts,
                        np.array([size for _, _, size in bounds], dtype=np.int32), batch)


def epoch_dataset(samples: EpochSamples, global_batch_size: int,
                  context: tf.distribute.InputContext) -> tf.data.Dataset:
    """This input pipeline's batches: (users, items, labels, count, global_count) per replica step.

    A pipeline (one per worker) serves its worker's replicas in turn, as tf.distribute dequeues
    them; on one replica it is the epoch's arrays batched in order.
    """
    replicas = context.num_replicas_in_sync
    if replicas == 1:
        sizes = np.array([stop - start for start, stop, _ in local_batches(len(samples), global_batch_size)],
                         dtype=np.int32)
        rows = tf.data.Dataset.from_tensor_slices((samples.users, samples.items, samples.labels))
        rows = rows.batch(global_batch_size)
        counts = tf.data.Dataset.from_tensor_slices((sizes, sizes))
    else:
        local = replicas // context.num_input_pipelines
        shares = [replica_share(samples, global_batch_size, context.input_pipeline_id * local + index, replicas)
                  for index in range(local)]
        # step-major order: step s of replica 0, step s of replica 1, ..., then step s + 1
        users, items, labels = (np.stack([getattr(share, name).reshape(len(share.counts), share.batch)
                                          for share in shares], axis=1).reshape(-1)
                                for name in ("users", "items", "labels"))
        rows = tf.data.Dataset.from_tensor_slices((users, items, labels)).batch(shares[0].batch)
        counts = tf.data.Dataset.from_tensor_slices((np.stack([share.counts for share in shares], 1).ravel(),
                                                     np.repeat(shares[0].global_counts, local)))
    dataset = tf.data.Dataset.zip(rows, counts).map(lambda row, count: (*row, *count))
    return dataset.prefetch(tf.data.AUTOTUNE)


def distribute_epoch(samples: EpochSamples, global_batch_size: int,
                     strategy: tf.distribute.Strategy) -> tuple[object, int]:
    """The epoch's distributed dataset and its number of steps."""
    distributed = strategy.distribute_datasets_from_function(
        lambda context: epoch_dataset(samples, global_batch_size, context))
    return distributed, steps_per_epoch(len(samples), global_batch_size)


@dataclasses.dataclass(frozen=True)
class EvalData:
    """Every user's evaluation row: its negatives then its held-out positive (last, as the reference)."""

    users: np.ndarray  # (n,) int32
    items: np.ndarray  # (n, negatives + 1) int32
    valid: np.ndarray  # (n, negatives) bool: first occurrence of each negative (metrics.distinct_mask)

    def dataset(self, samples_per_batch: int) -> tf.data.Dataset:
        """Batches of whole users, about `samples_per_batch` scores each."""
        users_per_batch = max(1, samples_per_batch // self.items.shape[1])
        rows = tf.data.Dataset.from_tensor_slices((self.users, self.items, self.valid))
        return rows.batch(users_per_batch).prefetch(tf.data.AUTOTUNE)


def build_eval(prepared: Prepared) -> EvalData:
    """All users; each worker scores all of them (ranking is a small share of an NCF run's time)."""
    negatives = prepared.test_negatives
    items = np.concatenate([negatives, prepared.test_items[:, None]], axis=1)
    return EvalData(np.arange(prepared.n_users, dtype=np.int32), items, distinct_mask(negatives))
