"""Mask R-CNN's input pipeline in PyTorch: the COCO reader, the Mask R-CNN presets, `DataLoader` workers.

Training samples are the train2017 images with annotations (the reference's
remove_images_without_annotations; crowd regions are read and then dropped from the targets, as
its COCODataset does), each transformed by `presets_pytorch.MaskRCNNTrain` with a generator keyed
by (seed, epoch, image index) and carrying the key of its RPN / RoI sampling (`augment.sample_key`):
an image gets the same flip and the same sampled anchors whatever the number of workers or ranks,
and a resumed run replays the epochs of an uninterrupted one. Batches come from
`../batching.py` (shuffled, sharded, grouped by orientation; the same batches as the TensorFlow
pipeline). Evaluation reads every val2017 image (the reference scores all 5,000), each rank a
disjoint shard, images as lists (the model pads each batch to a multiple of 32).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from harness.errors import DatasetError
from harness.torch_runtime import TorchRuntime
from object_detection import augment
from object_detection.coco_reader import CocoDetection
from object_detection.dataset import annotation_file, check_layout, image_dir
from object_detection.loading_pytorch import ShardSampler
from object_detection.maskrcnn.batching import epoch_batches
from object_detection.maskrcnn.config import Config
from object_detection.presets_pytorch import MaskRCNNEval, MaskRCNNTrain


class TrainSet(Dataset):
    """Keys are (epoch, index) pairs; a sample is (image (3, h, w), target dict)."""

    def __init__(self, coco: CocoDetection, transform: MaskRCNNTrain, seed: int):
        self.coco, self.transform, self.seed = coco, transform, seed

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, key):
        epoch, index = key
        image, target = self.transform(self.coco.load_image(index), self.coco.records[index],
                                       augment.sample_rng(self.seed, epoch, index))
        target["sample_key"] = torch.tensor(augment.sample_key(self.seed, epoch, index), dtype=torch.int64)
        return image, target


class EvalSet(Dataset):
    """(image, index into the reader) pairs; sizes and ids are read from the records."""

    def __init__(self, coco: CocoDetection, transform: MaskRCNNEval):
        self.coco, self.transform = coco, transform

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, index: int):
        return self.transform(self.coco.load_image(index)), index


class EpochBatches(Sampler):
    """This rank's batches of (epoch, index) keys from `batching.epoch_batches`; `set_epoch` reshuffles."""

    def __init__(self, landscape: np.ndarray, seed: int, batch_size: int, rank: int, world_size: int):
        self.landscape, self.seed, self.batch_size = landscape, seed, batch_size
        self.rank, self.world_size = rank, world_size
        self.set_epoch(1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches = epoch_batches(self.landscape, self.seed, epoch, self.batch_size, self.rank, self.world_size)

    def __iter__(self):
        return ([(self.epoch, index) for index in batch] for batch in self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def read_splits(cfg: Config) -> tuple[CocoDetection, CocoDetection]:
    """The annotated train images (crowds kept in the records, dropped from the targets) and every
    val image, with the same categories."""
    check_layout(cfg.run.data_dir)
    train = CocoDetection(annotation_file(cfg.run.data_dir, "train"), image_dir(cfg.run.data_dir, "train"),
                          skip_empty=True)
    val = CocoDetection(annotation_file(cfg.run.data_dir, "val"), image_dir(cfg.run.data_dir, "val"), skip_empty=False)
    if train.categories != val.categories:
        raise DatasetError(f"{cfg.run.data_dir}: train and val annotations list different categories")
    return train, val


def landscape(coco: CocoDetection) -> np.ndarray:
    """Orientation of every image (width >= height), from the annotation file's sizes."""
    return np.array([record.width >= record.height for record in coco.records])


def collate(samples: list) -> tuple[list, list]:
    return [sample[0] for sample in samples], [sample[1] for sample in samples]


def build_data(cfg: Config, rt: TorchRuntime, train: CocoDetection, val: CocoDetection) -> tuple[DataLoader, DataLoader]:
    d = cfg.data
    train_set = TrainSet(train, MaskRCNNTrain(d.min_size, d.max_size, flip_probability=d.flip_probability,
                                              mean=d.pixel_mean, std=d.pixel_std), cfg.run.seed)
    eval_set = EvalSet(val, MaskRCNNEval(d.min_size, d.max_size, mean=d.pixel_mean, std=d.pixel_std))
    sampler = EpochBatches(landscape(train), cfg.run.seed, d.batch_size, rt.rank, rt.world_size)
    workers = cfg.run.num_workers
    common = {"num_workers": workers, "pin_memory": rt.device.type == "cuda", "persistent_workers": workers > 0,
              "collate_fn": collate}
    train_loader = DataLoader(train_set, batch_sampler=sampler, **common)
    eval_loader = DataLoader(eval_set, batch_size=d.eval_batch_size,
                             sampler=ShardSampler(len(eval_set), rt.rank, rt.world_size), **common)
    return train_loader, eval_loader
