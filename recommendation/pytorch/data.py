"""NCF data as PyTorch tensors: each epoch's samples (this rank's share) and the evaluation rows.

The samples themselves come from recommendation/sampling.py (NumPy), the same in both frameworks;
this module only slices them for the rank and moves them to the device once per epoch (the whole
epoch fits in device memory: 99M samples of ml-20m are ~0.9 GB), so the training loop indexes
device tensors instead of running a DataLoader per batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from harness.torch_runtime import TorchRuntime
from recommendation.dataset import Prepared
from recommendation.metrics import distinct_mask
from recommendation.sampling import EpochSamples, local_batches


@dataclasses.dataclass
class EpochTensors:
    """This rank's training samples of one epoch on the device, and its batches in them."""

    users: torch.Tensor
    items: torch.Tensor
    labels: torch.Tensor
    batches: list[tuple[int, int, int]]  # (start, stop, global batch count) in the local tensors
    global_samples: int


def shard_epoch(samples: EpochSamples, global_batch_size: int, rt: TorchRuntime) -> EpochTensors:
    """Keep this rank's share of every global batch (sampling.local_batches) and move it to the device."""
    pieces, batches, offset = [], [], 0
    for start, stop, global_count in local_batches(len(samples), global_batch_size, rt.rank, rt.world_size):
        pieces.append(slice(start, stop))
        batches.append((offset, offset + stop - start, global_count))
        offset += stop - start
    if rt.world_size == 1:
        users, items, labels = samples.users, samples.items, samples.labels
    else:
        index = np.concatenate([np.arange(piece.start, piece.stop) for piece in pieces])
        users, items, labels = samples.users[index], samples.items[index], samples.labels[index]

    def to_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(rt.device, non_blocking=True)

    return EpochTensors(to_device(users), to_device(items), to_device(labels), batches, len(samples))


@dataclasses.dataclass
class EvalTensors:
    """This rank's evaluation users: per user the negatives then the positive (last, as the reference)."""

    users: torch.Tensor  # (n,) int32
    items: torch.Tensor  # (n, negatives + 1) int32
    valid: torch.Tensor  # (n, negatives) bool: first occurrence of each negative item (metrics.distinct_mask)
    total_users: int


def build_eval(prepared: Prepared, rt: TorchRuntime) -> EvalTensors:
    """Users are split in contiguous, near-equal ranges over the ranks; the counts are summed after."""
    bounds = np.linspace(0, prepared.n_users, rt.world_size + 1).astype(np.int64)
    first, last = int(bounds[rt.rank]), int(bounds[rt.rank + 1])
    negatives = prepared.test_negatives[first:last]
    items = np.concatenate([negatives, prepared.test_items[first:last, None]], axis=1)
    users = np.arange(first, last, dtype=np.int32)
    return EvalTensors(torch.from_numpy(users).to(rt.device), torch.from_numpy(items).to(rt.device),
                       torch.from_numpy(distinct_mask(negatives)).to(rt.device), prepared.n_users)
