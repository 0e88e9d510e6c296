"""Mask R-CNN's training batches, the same for both frameworks: an epoch's images, sharded and grouped by shape.

The reference (maskrcnn_benchmark/data/build.py) shuffles the training images each epoch, shards
them over the GPUs (DistributedSampler) and batches each GPU's share with a GroupedBatchSampler
that only puts images of the same orientation together (DATALOADER.ASPECT_RATIO_GROUPING: width
>= height or not), so a padded batch wastes little. `epoch_batches` does the same from (seed,
epoch): the permutation, every `world_size`-th image from `rank`, and in each orientation group
a batch as soon as it has `batch_size` images (leftovers are dropped); every rank takes the same
number of batches (the fewest any rank has), so distributed steps stay in lockstep.
"""

from __future__ import annotations

import numpy as np


def group_batches(order: np.ndarray, landscape: np.ndarray, batch_size: int) -> list[list[int]]:
    """Batches of `order`'s indices, each of one orientation, in the order they fill up."""
    pending: dict[bool, list[int]] = {True: [], False: []}
    batches = []
    for index in order:
        group = pending[bool(landscape[index])]
        group.append(int(index))
        if len(group) == batch_size:
            batches.append(group.copy())
            group.clear()
    return batches


def epoch_batches(landscape: np.ndarray, seed: int, epoch: int, batch_size: int, rank: int = 0,
                  world_size: int = 1) -> list[list[int]]:
    """This rank's batches of epoch `epoch` (1-based); `landscape[i]`: image i is at least as wide as high."""
    order = np.random.default_rng([seed, epoch]).permutation(len(landscape))
    per_rank = [group_batches(order[r::world_size], landscape, batch_size) for r in range(world_size)]
    steps = min(len(batches) for batches in per_rank)
    return per_rank[rank][:steps]


def epoch_steps(landscape: np.ndarray, seed: int, epoch: int, batch_size: int, world_size: int = 1,
                batches_per_step: int = 1) -> int:
    """Optimizer steps of epoch `epoch` (every rank the same): its batches over `batches_per_step`
    (gradient-accumulation micro-batches, or the replicas of one TensorFlow worker)."""
    return len(epoch_batches(landscape, seed, epoch, batch_size, 0, world_size)) // batches_per_step


def steps_before(landscape: np.ndarray, seed: int, epoch: int, batch_size: int, world_size: int = 1,
                 batches_per_step: int = 1) -> int:
    """Optimizer steps of the epochs before `epoch`: the learning-rate schedule's position at its start."""
    return sum(epoch_steps(landscape, seed, e, batch_size, world_size, batches_per_step) for e in range(1, epoch))
