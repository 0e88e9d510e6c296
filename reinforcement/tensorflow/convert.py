"""Weights between the PyTorch dual network (`state_dict` names, weights.py) and the Keras one, both ways.

Layers are matched by name (DualNet.layers_by_torch_name: `tower.3.bn2` is the Keras layer
`tower_3/bn2`); only layouts change:
- conv kernel: PyTorch OIHW (out, in, kh, kw) <-> Keras HWIO (kh, kw, in, out);
- dense kernel: PyTorch (out, in) <-> Keras (in, out) (both heads flatten channels last, so the
  rows are in the same order);
- batch norm: weight/bias/running_mean/running_var <-> gamma/beta/moving_mean/moving_variance (the
  heads' BN has no gamma/beta in either framework).
Arrays are NumPy; every PyTorch array must be used and every Keras weight set (strict).
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from reinforcement.tensorflow.model import DualNet

_BN = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var"))


def _pairs(layer: keras.layers.Layer, prefix: str):
    """(Keras variable, PyTorch name, to-Keras layout function, to-PyTorch layout function) of one layer."""
    if isinstance(layer, keras.layers.Conv2D):
        yield layer.kernel, f"{prefix}.weight", lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)
        yield layer.bias, f"{prefix}.bias", None, None
    elif isinstance(layer, keras.layers.Dense):
        yield layer.kernel, f"{prefix}.weight", np.transpose, np.transpose
        yield layer.bias, f"{prefix}.bias", None, None
    elif isinstance(layer, keras.layers.BatchNormalization):
        for keras_name, torch_name in _BN:
            variable = getattr(layer, keras_name, None)
            if variable is not None:
                yield variable, f"{prefix}.{torch_name}", None, None
    else:
        raise TypeError(f"no conversion for {type(layer).__name__} ({prefix})")


def load_torch_weights(model: DualNet, weights: Mapping[str, np.ndarray]) -> None:
    """Set every Keras weight from PyTorch-named arrays (`num_batches_tracked` ignored)."""
    unused = {name for name in weights if not name.endswith("num_batches_tracked")}
    for prefix, layer in model.layers_by_torch_name().items():
        for variable, name, to_keras, _ in _pairs(layer, prefix):
            array = np.asarray(weights[name])
            array = to_keras(array) if to_keras else array
            if tuple(array.shape) != tuple(variable.shape):
                raise ValueError(f"{name}: shape {array.shape} does not fit Keras {variable.path} {variable.shape}")
            variable.assign(array.astype(variable.dtype))
            unused.discard(name)
    if unused:
        raise ValueError(f"PyTorch weights not used: {sorted(unused)}")


def torch_weights(model: DualNet) -> dict[str, np.ndarray]:
    """The Keras weights as PyTorch-named arrays (what pytorch.model.load_numpy and the workers read)."""
    weights = {}
    for prefix, layer in model.layers_by_torch_name().items():
        for variable, name, _, to_torch in _pairs(layer, prefix):
            array = np.asarray(keras.ops.convert_to_numpy(variable))
            weights[name] = np.ascontiguousarray(to_torch(array) if to_torch else array)
    return weights
