"""The PyTorch input pipeline: the shared BatchSource (batches.py) in a DataLoader, batches as tensors."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch

from harness.errors import DatasetError
from speech_recognition.batches import Batch, BatchSource


@dataclasses.dataclass(frozen=True)
class TorchBatch:
    features: torch.Tensor  # (N, 1, 161, frames)
    output_frames: torch.Tensor  # (N,) int64
    targets: torch.Tensor  # (N, longest target) int64
    target_lengths: torch.Tensor  # (N,) int64
    transcripts: tuple[str, ...]
    global_count: int


def to_torch(batch: Batch, device: torch.device, dtype: torch.dtype = torch.float32) -> TorchBatch:
    return TorchBatch(torch.from_numpy(batch.features).unsqueeze(1).to(device, dtype, non_blocking=True),
                      torch.from_numpy(batch.output_frames).long(), torch.from_numpy(batch.targets).long(),
                      torch.from_numpy(batch.target_lengths).long(), batch.transcripts, batch.global_count)


class _Batches(torch.utils.data.Dataset):
    """The source's batches; a dataset error comes back as a value, so that the main process raises it
    as itself (one line naming the file), not as a DataLoader worker's multi-line re-raise."""

    def __init__(self, source: BatchSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Batch | DatasetError:
        try:
            return self.source[index]
        except DatasetError as error:
            return error


def loader(source: BatchSource, epoch: int, num_workers: int) -> Iterator[Batch]:
    """The epoch's batches in order; each worker builds whole batches (batch_size=None)."""
    source.epoch = epoch
    batches = torch.utils.data.DataLoader(_Batches(source), batch_size=None, shuffle=False, num_workers=num_workers,
                                          collate_fn=lambda batch: batch, prefetch_factor=4 if num_workers else None)
    for batch in batches:
        if isinstance(batch, DatasetError):
            raise batch
        yield batch
