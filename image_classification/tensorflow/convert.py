"""Weights between the PyTorch ResNet (`state_dict`) and the Keras one, one to one in both directions.

A Keras weight path is the PyTorch key with `/` for `.` and Keras' variable name for PyTorch's
(`resnet/layer1/0/conv1/kernel` <-> `layer1.0.conv1.weight`). Only layouts change:
- conv kernel: PyTorch OIHW (out, in, kh, kw) <-> Keras HWIO (kh, kw, in, out);
- dense kernel: PyTorch (out, in) <-> Keras (in, out);
- BatchNorm: weight/bias/running_mean/running_var <-> gamma/beta/moving_mean/moving_variance.
  PyTorch's `num_batches_tracked` counts BN updates and only matters for `momentum=None`
  (cumulative averaging), which neither model uses; Keras has no such buffer, so it is written as
  0 when converting to PyTorch and ignored the other way.

Arrays are NumPy; wrap them with `torch.from_numpy` for `load_state_dict` (`to_torch_state_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

# Keras variable name -> PyTorch parameter/buffer name
KERAS_TO_TORCH_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                       "moving_mean": "running_mean", "moving_variance": "running_var"}
NUM_BATCHES_TRACKED = "num_batches_tracked"


def torch_key(keras_path: str) -> str:
    """`resnet/layer1/0/conv1/kernel` -> `layer1.0.conv1.weight` (the model's own name dropped)."""
    parts = keras_path.split("/")
    return ".".join(parts[1:-1] + [KERAS_TO_TORCH_NAME[parts[-1]]])


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _keras_layout(array: np.ndarray) -> np.ndarray:
    if array.ndim == 4:
        return array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if array.ndim == 2:
        return array.T  # (out, in) -> (in, out)
    return array


def _torch_layout(array: np.ndarray) -> np.ndarray:
    if array.ndim == 4:
        return array.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    if array.ndim == 2:
        return array.T
    return array


def load_torch_state_dict(model: keras.Model, state_dict: Mapping[str, Any]) -> None:
    """Set every Keras weight from a PyTorch state_dict; every key must be used (strict, like torch)."""
    unused = {key for key in state_dict if not key.endswith(NUM_BATCHES_TRACKED)}
    for variable in model.weights:
        key = torch_key(variable.path)
        if key not in state_dict:
            raise KeyError(f"PyTorch state_dict has no '{key}' for Keras weight '{variable.path}'")
        array = _keras_layout(_to_numpy(state_dict[key]))
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f"'{key}': PyTorch shape {tuple(_to_numpy(state_dict[key]).shape)} does not "
                             f"fit Keras '{variable.path}' {tuple(variable.shape)}")
        variable.assign(array.astype(variable.dtype))
        unused.discard(key)
    if unused:
        raise KeyError(f"PyTorch state_dict keys with no Keras weight: {sorted(unused)[:5]}")


def torch_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """The Keras model's weights as a PyTorch state_dict of NumPy arrays, in PyTorch's key order."""
    state: dict[str, np.ndarray] = {}
    for variable in model.weights:
        key = torch_key(variable.path)
        state[key] = np.ascontiguousarray(_torch_layout(np.asarray(keras.ops.convert_to_numpy(variable))))
        if key.endswith(".running_var"):  # the last buffer of a BatchNorm2d, as torch orders them
            state[key.rsplit(".", 1)[0] + "." + NUM_BATCHES_TRACKED] = np.array(0, dtype=np.int64)
    return state


def to_torch_state_dict(state: Mapping[str, np.ndarray]) -> dict:
    """NumPy arrays -> torch tensors, for `torch_model.load_state_dict(...)`."""
    import torch

    return {key: torch.from_numpy(np.array(value)) for key, value in state.items()}
