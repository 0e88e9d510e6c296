"""ImageNet input pipeline in PyTorch: torchvision `ImageFolder` and transforms, `DataLoader` workers.

Training (the MLPerf reference's augmentation, torchvision's references): `RandomResizedCrop` of
8%-100% of the area at aspect 3/4-4/3 resized to `image_size`, horizontal flip with probability
1/2, ImageNet mean/std normalization. Evaluation: shorter side resized to `eval_resize`, central
`image_size` crop. Images are decoded with PIL in `run.num_workers` worker processes per rank.

Randomness is keyed by (seed, epoch, image index): the sampler hands the epoch to the dataset with
every index and the dataset seeds the crop and flip from it, so an image gets the same
augmentation whatever the number of workers, and a resumed run replays exactly the epochs of an
uninterrupted one. Each epoch is a fresh permutation (`DistributedSampler`, seeded by run.seed and
the epoch), sharded over ranks, cut to whole batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from torchvision import transforms

from harness.errors import DatasetError
from harness.torch_runtime import TorchRuntime
from image_classification.config import Config, Data


def train_transform(data: Data) -> transforms.Compose:
    return transforms.Compose([
        transforms.RandomResizedCrop(data.image_size, scale=(data.min_crop_area, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(data.mean, data.std),
    ])


def eval_transform(data: Data) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize(data.eval_resize),
        transforms.CenterCrop(data.image_size),
        transforms.ToTensor(),
        transforms.Normalize(data.mean, data.std),
    ])


def load_image(path: str) -> Image.Image:
    """PIL decode to RGB; a file that does not decode stops the run with one line naming it."""
    try:
        with open(path, "rb") as handle:
            return Image.open(handle).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: not a readable image ({error}); replace the file or prepare "
                           "the dataset again") from None


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class ImageFolder(torchvision.datasets.ImageFolder):
    """`ImageFolder` whose augmentation of image `index` in `epoch` depends on (seed, epoch, index) only.

    Keys are `(epoch, index)` pairs from `EpochSampler` (a bare index means epoch 0: evaluation).
    """

    def __init__(self, root: str, transform, seed: int):
        try:
            super().__init__(root, transform=transform, loader=load_image)
        except FileNotFoundError as error:  # a class folder without images
            raise DatasetError(f"{root}: {error}") from None
        self.seed = seed

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        # only the CPU generator the transforms draw from; the caller's state is put back after
        generator = torch.random.default_generator
        state = generator.get_state()
        generator.manual_seed(sample_seed(self.seed, epoch, index))
        try:
            return super().__getitem__(index)
        finally:
            generator.set_state(state)


class EpochSampler(Sampler):
    """Yields `(epoch, index)` from a `DistributedSampler`; `set_epoch` reshuffles."""

    def __init__(self, sampler: DistributedSampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class ShardSampler(Sampler):
    """Every `world_size`-th index from `rank`: each image is evaluated exactly once over all ranks
    (`DistributedSampler` would pad with repeats and count some twice)."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_data(cfg: Config, rt: TorchRuntime) -> tuple[DataLoader, DataLoader]:
    """Train and eval loaders over `<run.data_dir>/train` and `/val`; same classes in both."""
    train_set = ImageFolder(f"{cfg.run.data_dir}/train", train_transform(cfg.data), cfg.run.seed)
    eval_set = ImageFolder(f"{cfg.run.data_dir}/val", eval_transform(cfg.data), cfg.run.seed)
    if train_set.classes != eval_set.classes:
        extra = sorted(set(train_set.classes) ^ set(eval_set.classes))
        raise DatasetError(f"{cfg.run.data_dir}: train/ and val/ hold different classes (e.g. '{extra[0]}')")
    sampler = EpochSampler(DistributedSampler(train_set, num_replicas=rt.world_size, rank=rt.rank,
                                              shuffle=True, seed=cfg.run.seed, drop_last=True))
    workers = cfg.run.num_workers
    common = {"num_workers": workers, "pin_memory": rt.device.type == "cuda", "persistent_workers": workers > 0}
    train_loader = DataLoader(train_set, batch_size=cfg.data.batch_size, sampler=sampler, drop_last=True,
                              **common)
    eval_loader = DataLoader(eval_set, batch_size=cfg.data.eval_batch_size,
                             sampler=ShardSampler(len(eval_set), rt.rank, rt.world_size), **common)
    return train_loader, eval_loader


def batches(loader: Iterable) -> Iterator:
    """Iterate a loader; a DatasetError raised in a worker comes back as its own one line.

    (DataLoader re-raises a worker's exception with the worker's traceback in the message.)
    """
    try:
        yield from loader
    except DatasetError as error:
        last_line = str(error).strip().splitlines()[-1]
        raise DatasetError(last_line.split("DatasetError: ", 1)[-1]) from None
