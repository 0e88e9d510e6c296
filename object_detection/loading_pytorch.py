"""PyTorch data-loading pieces both detection benchmarks use: evaluation shards, one-line worker errors.

- `ShardSampler`: every `world_size`-th index from `rank`, so each validation image is evaluated
  exactly once over the ranks (no padding, unlike DistributedSampler);
- `batches(loader)`: iterate a DataLoader; a DatasetError raised in a worker process (a corrupt
  image) comes back as its own one line instead of the worker's traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from torch.utils.data import Sampler

from harness.errors import DatasetError


class ShardSampler(Sampler):
    """Every `world_size`-th index from `rank`: each val image is evaluated exactly once."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def batches(loader: Iterable) -> Iterator:
    """Iterate a loader; a DatasetError raised in a worker comes back as its own one line."""
    try:
        yield from loader
    except DatasetError as error:
        last_line = str(error).strip().splitlines()[-1]
        raise DatasetError(last_line.split("DatasetError: ", 1)[-1]) from None
