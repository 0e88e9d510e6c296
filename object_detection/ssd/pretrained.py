"""The ImageNet-pretrained ResNet-34 backbone of SSD: fetched as torchvision publishes it, hash-checked.

The reference initializes its backbone with torchvision's `resnet34(pretrained=True)`
(single_stage_detector/ssd/base_model.py), i.e. the file `resnet34-333f7ec4.pth`, whose name
carries the first 8 hex digits of its SHA-256, which torch.hub checks after downloading
(`download_url_to_file(..., hash_prefix)`); `--pretrained-backbone PATH` loads the same file from
disk. Here `model.pretrained_backbone` is that path, or `download` (torch.hub's cache,
`$TORCH_HOME/hub/checkpoints/`, fetched when absent), or empty for random weights (the smoke
config: no download needed, and said so in its file).

`backbone_state_dict` returns the backbone's weights (conv1, bn1, layer1..layer3; layer4 and fc
are not part of SSD) as NumPy arrays under torchvision's names, which both frameworks' models use:
PyTorch loads them directly, Keras through `tensorflow/convert.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness.datasets import file_digest
from harness.download import download
from harness.errors import ConfigError, DatasetError
from harness.progress import info

RESNET34_URL = "https://download.pytorch.org/models/resnet34-333f7ec4.pth"
RESNET34_FILE = "resnet34-333f7ec4.pth"
RESNET34_SHA256_PREFIX = "333f7ec4"  # torchvision's hash convention: the name's suffix
BACKBONE_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")


def hub_checkpoint_dir() -> Path:
    """torch.hub's cache folder ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/...)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def verify_resnet34(path: str | os.PathLike) -> Path:
    """The file's SHA-256 must start with the prefix in its published name; DatasetError if not."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (the ResNet-34 weights, {RESNET34_URL})")
    digest = file_digest(path, "sha256")
    if not digest.startswith(RESNET34_SHA256_PREFIX):
        raise DatasetError(f"{path}: sha256 {digest[:16]}... does not start with {RESNET34_SHA256_PREFIX} "
                           f"(torchvision's published hash of {RESNET34_FILE}); download it again")
    return path


def resnet34_file(setting: str, *, url: str = RESNET34_URL, progress: bool = True) -> Path:
    """The verified weights file for `model.pretrained_backbone` = a path or `download`."""
    if setting != "download":
        return verify_resnet34(setting)
    target = hub_checkpoint_dir() / RESNET34_FILE
    if not target.is_file():
        info(f"downloading {url} to {target}")
        download(url, target, progress=progress)
    return verify_resnet34(target)


def backbone_state_dict(setting: str, width: int, layers) -> dict[str, np.ndarray] | None:
    """torchvision's ResNet-34 weights of conv1..layer3 as NumPy arrays, or None for random weights."""
    if not setting:
        return None
    if width != 64 or tuple(layers) != (3, 4, 6):
        raise ConfigError(f"model.pretrained_backbone={setting!r} holds ResNet-34 weights, but model.width={width}, "
                          f"model.layers={list(layers)} (set model.pretrained_backbone='' for a reduced model)")
    import torch

    path = resnet34_file(setting)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DatasetError(f"{path}: not a PyTorch state dict ({error})") from None
    return {key: value.numpy() for key, value in state.items() if key.startswith(BACKBONE_PREFIXES)}
