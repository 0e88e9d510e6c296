"""Weights between the PyTorch SSD (`state_dict`) and the Keras one, one to one in both directions.

A Keras weight path is the PyTorch key with `/` for `.`, `_i` for `.i` on the listed modules, and
Keras' variable name for PyTorch's: `ssd/backbone/layer1/0/conv1/kernel` <->
`backbone.layer1.0.conv1.weight`, `ssd/additional_blocks_2/0/bias` <-> `additional_blocks.2.0.bias`,
`ssd/conf_5/kernel` <-> `conf.5.weight`. Only layouts change (harness/convert.py does the work from
this name table): conv kernels OIHW <-> HWIO; BatchNorm weight/bias/running_mean/running_var <->
gamma/beta/moving_mean/moving_variance (PyTorch's `num_batches_tracked` counts updates and matters
only for momentum=None: written as 0, read never).

`load_backbone` puts torchvision's ResNet-34 weights (`../pretrained.py`) into the Keras backbone:
the converter to Keras of the pretrained file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import keras
import numpy as np

from harness.convert import KERAS_TO_TORCH_NAME, Row, load_torch_layout, rows_by_path, torch_layout

_LISTS = re.compile(r"^(additional_blocks|loc|conf)_(\d+)$")


def torch_key(keras_path: str) -> str:
    """`ssd/backbone/layer1/0/conv1/kernel` -> `backbone.layer1.0.conv1.weight` (model name dropped)."""
    parts = keras_path.split("/")[1:]
    parts = [_LISTS.sub(r"\1.\2", part) for part in parts[:-1]] + [KERAS_TO_TORCH_NAME[parts[-1]]]
    return ".".join(parts)


def named_variables(model: keras.Model) -> Iterator[Row]:
    """The name table: every Keras weight under its PyTorch key, and the BN counters (harness.convert.rows_by_path)."""
    return rows_by_path(model.weights, torch_key)


def load_torch_state_dict(model: keras.Model, state_dict: Mapping[str, Any], prefix: str = "") -> None:
    """Set every Keras weight (under `prefix` of the PyTorch keys) from a state dict; strict both ways."""
    load_torch_layout(named_variables(model), state_dict, "SSD", prefix=prefix, ignore_counters=True)


def torch_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """The Keras model's weights as a PyTorch state dict of NumPy arrays."""
    return torch_layout(named_variables(model))


def load_backbone(model: keras.Model, resnet_state: Mapping[str, np.ndarray]) -> None:
    """torchvision ResNet-34 weights (conv1..layer3, torchvision's names) into `model.backbone`."""
    load_torch_state_dict(model, resnet_state, prefix="backbone.")
