"""Weights between the PyTorch ResNet (`state_dict`) and the Keras one, one to one in both directions.

A Keras weight path is the PyTorch key with `/` for `.` and Keras' variable name for PyTorch's
(`resnet/layer1/0/conv1/kernel` <-> `layer1.0.conv1.weight`). Only layouts change
(harness/convert.py does the work from this name table):
- conv kernel: PyTorch OIHW (out, in, kh, kw) <-> Keras HWIO (kh, kw, in, out);
- dense kernel: PyTorch (out, in) <-> Keras (in, out);
- BatchNorm: weight/bias/running_mean/running_var <-> gamma/beta/moving_mean/moving_variance.
  PyTorch's `num_batches_tracked` counts BN updates and only matters for `momentum=None`
  (cumulative averaging), which neither model uses; Keras has no such buffer, so it is written as
  0 when converting to PyTorch and ignored the other way.

Arrays are NumPy; wrap them with `torch.from_numpy` for `load_state_dict`
(`harness.convert.to_torch_state_dict`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import keras
import numpy as np

from harness.convert import KERAS_TO_TORCH_NAME, Row, load_torch_layout, rows_by_path, torch_layout


def torch_key(keras_path: str) -> str:
    """`resnet/layer1/0/conv1/kernel` -> `layer1.0.conv1.weight` (the model's own name dropped)."""
    parts = keras_path.split("/")
    return ".".join(parts[1:-1] + [KERAS_TO_TORCH_NAME[parts[-1]]])


def named_variables(model: keras.Model) -> Iterator[Row]:
    """The name table: every Keras weight under its PyTorch key, and the BN counters (harness.convert.rows_by_path)."""
    return rows_by_path(model.weights, torch_key)


def load_torch_state_dict(model: keras.Model, state_dict: Mapping[str, Any]) -> None:
    """Set every Keras weight from a PyTorch state_dict; every key must be used (strict, like torch)."""
    load_torch_layout(named_variables(model), state_dict, "ResNet", ignore_counters=True)


def torch_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """The Keras model's weights as a PyTorch state_dict of NumPy arrays, in PyTorch's key order."""
    return torch_layout(named_variables(model))
