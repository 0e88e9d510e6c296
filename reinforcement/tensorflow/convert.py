"""Weights between the PyTorch dual network (`state_dict` names, weights.py) and the Keras one, both ways.

Layers are matched by name (DualNet.layers_by_torch_name: `tower.3.bn2` is the Keras layer
`tower_3/bn2`); only layouts change (harness/convert.py does the work from this name table):
- conv kernel: PyTorch OIHW (out, in, kh, kw) <-> Keras HWIO (kh, kw, in, out);
- dense kernel: PyTorch (out, in) <-> Keras (in, out) (both heads flatten channels last, so the
  rows are in the same order);
- batch norm: weight/bias/running_mean/running_var <-> gamma/beta/moving_mean/moving_variance (the
  heads' BN has no gamma/beta in either framework).
Arrays are NumPy; every PyTorch array must be used and every Keras weight set (strict; BN's
`num_batches_tracked` counters are ignored).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from harness.convert import Row, layer_rows, load_torch_layout, torch_layout
from reinforcement.tensorflow.model import DualNet


def named_variables(model: DualNet) -> Iterator[Row]:
    """The name table: every Keras weight under its PyTorch name, layer by layer."""
    for prefix, layer in model.layers_by_torch_name().items():
        yield from layer_rows(layer, prefix)


def load_torch_weights(model: DualNet, weights: Mapping[str, np.ndarray]) -> None:
    """Set every Keras weight from PyTorch-named arrays (`num_batches_tracked` ignored)."""
    load_torch_layout(named_variables(model), weights, "dual network", ignore_counters=True)


def torch_weights(model: DualNet) -> dict[str, np.ndarray]:
    """The Keras weights as PyTorch-named arrays (what pytorch.model.load_numpy and the workers read)."""
    return torch_layout(named_variables(model))
