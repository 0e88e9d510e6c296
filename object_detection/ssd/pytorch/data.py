"""SSD's input pipeline in PyTorch: the COCO reader, the SSD presets, `DataLoader` workers.

Training samples are the annotated train2017 images (the reference's `COCODetection` skips the
others), each augmented by `presets_pytorch.SSDTrain` with a generator keyed by (seed, epoch,
image index): an image gets the same augmentation whatever the number of workers or ranks, and a
resumed run replays the epochs of an uninterrupted one. Every epoch is a fresh permutation
(`DistributedSampler` seeded by run.seed and the epoch), sharded over ranks, cut to whole batches.
Evaluation reads the annotated val2017 images, each rank a disjoint shard.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from harness.errors import DatasetError
from harness.torch_runtime import TorchRuntime
from object_detection import augment
from object_detection.coco_reader import CocoDetection
from object_detection.dataset import annotation_file, check_layout, image_dir
from object_detection.presets_pytorch import SSDEval, SSDTrain
from object_detection.ssd.config import Config


class TrainSet(Dataset):
    """Keys are (epoch, index) pairs from `EpochSampler`."""

    def __init__(self, coco: CocoDetection, transform: SSDTrain, seed: int):
        self.coco, self.transform, self.seed = coco, transform, seed

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, key):
        epoch, index = key
        record = self.coco.records[index]
        return self.transform(self.coco.load_image(index), record.normalized_boxes(), record.labels,
                              augment.sample_rng(self.seed, epoch, index))


class EvalSet(Dataset):
    """(image, index into the reader) pairs; sizes and ids are read from the records."""

    def __init__(self, coco: CocoDetection, transform: SSDEval):
        self.coco, self.transform = coco, transform

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, index: int):
        return self.transform(self.coco.load_image(index)), index


class EpochSampler(Sampler):
    """Yields (epoch, index) from a `DistributedSampler`; `set_epoch` reshuffles."""

    def __init__(self, sampler: DistributedSampler):
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class ShardSampler(Sampler):
    """Every `world_size`-th index from `rank`: each val image is evaluated exactly once."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def read_splits(cfg: Config) -> tuple[CocoDetection, CocoDetection]:
    """The annotated train and val images of `run.data_dir` (the same categories in both)."""
    check_layout(cfg.run.data_dir)
    train = CocoDetection(annotation_file(cfg.run.data_dir, "train"), image_dir(cfg.run.data_dir, "train"))
    val = CocoDetection(annotation_file(cfg.run.data_dir, "val"), image_dir(cfg.run.data_dir, "val"))
    if train.categories != val.categories:
        raise DatasetError(f"{cfg.run.data_dir}: train and val annotations list different categories")
    return train, val


def build_data(cfg: Config, rt: TorchRuntime, train: CocoDetection, val: CocoDetection,
               default_boxes_xyxy: torch.Tensor) -> tuple[DataLoader, DataLoader]:
    d = cfg.data
    train_set = TrainSet(train, SSDTrain(cfg.model.image_size, default_boxes_xyxy, match_iou=d.match_iou,
                                         crop_tries=d.crop_tries, jitter=d.jitter, mean=d.mean, std=d.std),
                         cfg.run.seed)
    eval_set = EvalSet(val, SSDEval(cfg.model.image_size, d.mean, d.std))
    sampler = EpochSampler(DistributedSampler(train_set, num_replicas=rt.world_size, rank=rt.rank, shuffle=True,
                                              seed=cfg.run.seed, drop_last=True))
    workers = cfg.run.num_workers
    common = {"num_workers": workers, "pin_memory": rt.device.type == "cuda", "persistent_workers": workers > 0}
    train_loader = DataLoader(train_set, batch_size=d.batch_size, sampler=sampler, drop_last=True, **common)
    eval_loader = DataLoader(eval_set, batch_size=d.eval_batch_size,
                             sampler=ShardSampler(len(eval_set), rt.rank, rt.world_size), **common)
    return train_loader, eval_loader


def batches(loader: Iterable) -> Iterator:
    """Iterate a loader; a DatasetError raised in a worker comes back as its own one line."""
    try:
        yield from loader
    except DatasetError as error:
        last_line = str(error).strip().splitlines()[-1]
        raise DatasetError(last_line.split("DatasetError: ", 1)[-1]) from None


def image_sizes(coco: CocoDetection, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, widths, heights) of reader indices, for scaling detections back to pixels."""
    records = [coco.records[int(i)] for i in indices]
    return (np.array([r.image_id for r in records]), np.array([r.width for r in records], dtype=np.float64),
            np.array([r.height for r in records], dtype=np.float64))
