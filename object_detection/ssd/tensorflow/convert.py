"""Weights between the PyTorch SSD (`state_dict`) and the Keras one, one to one in both directions.

A Keras weight path is the PyTorch key with `/` for `.`, `_i` for `.i` on the listed modules, and
Keras' variable name for PyTorch's: `ssd/backbone/layer1/0/conv1/kernel` <->
`backbone.layer1.0.conv1.weight`, `ssd/additional_blocks_2/0/bias` <-> `additional_blocks.2.0.bias`,
`ssd/conf_5/kernel` <-> `conf.5.weight`. Only layouts change: conv kernels OIHW <-> HWIO; BatchNorm
weight/bias/running_mean/running_var <-> gamma/beta/moving_mean/moving_variance (PyTorch's
`num_batches_tracked` counts updates and matters only for momentum=None: written as 0, read never).

`load_backbone` puts torchvision's ResNet-34 weights (`../pretrained.py`) into the Keras backbone:
the converter to Keras of the pretrained file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

KERAS_TO_TORCH_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                       "moving_mean": "running_mean", "moving_variance": "running_var"}
NUM_BATCHES_TRACKED = "num_batches_tracked"
_LISTS = re.compile(r"^(additional_blocks|loc|conf)_(\d+)$")


def torch_key(keras_path: str) -> str:
    """`ssd/backbone/layer1/0/conv1/kernel` -> `backbone.layer1.0.conv1.weight` (model name dropped)."""
    parts = keras_path.split("/")[1:]
    parts = [_LISTS.sub(r"\1.\2", part) for part in parts[:-1]] + [KERAS_TO_TORCH_NAME[parts[-1]]]
    return ".".join(parts)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _to_keras(array: np.ndarray) -> np.ndarray:
    return array.transpose(2, 3, 1, 0) if array.ndim == 4 else array  # OIHW -> HWIO


def _to_torch(array: np.ndarray) -> np.ndarray:
    return array.transpose(3, 2, 0, 1) if array.ndim == 4 else array  # HWIO -> OIHW


def load_torch_state_dict(model: keras.Model, state_dict: Mapping[str, Any], prefix: str = "") -> None:
    """Set every Keras weight (under `prefix` of the PyTorch keys) from a state dict; strict both ways."""
    unused = {key for key in state_dict if not key.endswith(NUM_BATCHES_TRACKED)}
    for variable in model.weights:
        key = torch_key(variable.path)
        if not key.startswith(prefix):
            continue
        source = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if source not in state_dict:
            raise KeyError(f"PyTorch state_dict has no '{source}' for Keras weight '{variable.path}'")
        array = _to_keras(_numpy(state_dict[source]))
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f"'{source}': PyTorch shape {tuple(_numpy(state_dict[source]).shape)} does not fit "
                             f"Keras '{variable.path}' {tuple(variable.shape)}")
        variable.assign(array.astype(variable.dtype))
        unused.discard(source)
    if unused:
        raise KeyError(f"PyTorch state_dict keys with no Keras weight: {sorted(unused)[:5]}")


def torch_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """The Keras model's weights as a PyTorch state dict of NumPy arrays."""
    state: dict[str, np.ndarray] = {}
    for variable in model.weights:
        key = torch_key(variable.path)
        state[key] = np.ascontiguousarray(_to_torch(np.asarray(keras.ops.convert_to_numpy(variable))))
        if key.endswith(".running_var"):
            state[key.rsplit(".", 1)[0] + "." + NUM_BATCHES_TRACKED] = np.array(0, dtype=np.int64)
    return state


def to_torch_state_dict(state: Mapping[str, np.ndarray]) -> dict:
    """NumPy arrays -> torch tensors, for `torch_model.load_state_dict(...)`."""
    import torch

    return {key: torch.from_numpy(np.array(value)) for key, value in state.items()}


def load_backbone(model: keras.Model, resnet_state: Mapping[str, np.ndarray]) -> None:
    """torchvision ResNet-34 weights (conv1..layer3, torchvision's names) into `model.backbone`."""
    load_torch_state_dict(model, resnet_state, prefix="backbone.")
