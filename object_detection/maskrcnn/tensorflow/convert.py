"""Weights between the PyTorch Mask R-CNN (torchvision's `state_dict`) and the Keras one, one to one both ways.

`named_variables(model)` lists every Keras variable under the PyTorch key of the same weight, by
walking the model's structure (`model.py` keeps torchvision's module names). Only layouts change:
conv kernels OIHW <-> HWIO, the deconvolution's (in, out, kH, kW) <-> (kH, kW, out, in), dense
(out, in) <-> (in, out); trainable BatchNorm weight/bias/running_mean/running_var <->
gamma/beta/moving_mean/moving_variance (PyTorch's `num_batches_tracked` is written as 0, read
never); frozen batch norm keeps torchvision's four buffer names.

`load_trunk` puts the converted ImageNet weights (`../pretrained.py`, torchvision's names) into
the Keras trunk: the Keras side of the R-50.pkl converter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from object_detection.maskrcnn.tensorflow import model as keras_model

NUM_BATCHES_TRACKED = "num_batches_tracked"
BATCHNORM_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
CONV, DECONV, DENSE, VECTOR = "conv", "deconv", "dense", "vector"
BATCHNORM, FROZEN = "batchnorm", "frozen"  # vectors of a trainable / a frozen batch norm


def _layer_variables(layer, prefix: str) -> list[tuple[str, Any, str]]:
    if isinstance(layer, keras.layers.Conv2DTranspose):
        return [(f"{prefix}.weight", layer.kernel, DECONV)] + ([(f"{prefix}.bias", layer.bias, VECTOR)] if layer.use_bias else [])
    if isinstance(layer, keras.layers.Conv2D):
        return [(f"{prefix}.weight", layer.kernel, CONV)] + ([(f"{prefix}.bias", layer.bias, VECTOR)] if layer.use_bias else [])
    if isinstance(layer, keras.layers.Dense):
        return [(f"{prefix}.weight", layer.kernel, DENSE), (f"{prefix}.bias", layer.bias, VECTOR)]
    if isinstance(layer, keras_model.FrozenBatchNorm):
        return [(f"{prefix}.{name}", getattr(layer, name), FROZEN) for name in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [(f"{prefix}.{BATCHNORM_NAMES[name]}", getattr(layer, name), BATCHNORM)
                for name in ("gamma", "beta", "moving_mean", "moving_variance")]
    raise TypeError(f"no PyTorch name for {type(layer).__name__} at {prefix}")


def named_variables(model: keras_model.MaskRCNNLayers) -> list[tuple[str, Any, str]]:
    """(PyTorch key, Keras variable, layout) of every weight, in torchvision's state_dict order."""
    found = []
    body = model.backbone.body
    found += _layer_variables(body.conv1, "backbone.body.conv1") + _layer_variables(body.bn1, "backbone.body.bn1")
    for s, stage in enumerate(body.stages):
        for b, block in enumerate(stage.layers):
            prefix = f"backbone.body.layer{s + 1}.{b}"
            for name in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3"):
                found += _layer_variables(getattr(block, name), f"{prefix}.{name}")
            if block.downsample is not None:
                found += _layer_variables(block.downsample.layers[0], f"{prefix}.downsample.0")
                found += _layer_variables(block.downsample.layers[1], f"{prefix}.downsample.1")
    fpn = model.backbone.fpn
    for kind in ("inner_blocks", "layer_blocks"):
        for i, block in enumerate(getattr(fpn, kind)):
            found += _layer_variables(block.layers[0], f"backbone.fpn.{kind}.{i}.0")
    head = model.rpn.head
    found += _layer_variables(head.conv.layers[0].layers[0], "rpn.head.conv.0.0")
    found += _layer_variables(head.cls_logits, "rpn.head.cls_logits") + _layer_variables(head.bbox_pred, "rpn.head.bbox_pred")
    roi = model.roi_heads
    found += _layer_variables(roi.box_head.fc6, "roi_heads.box_head.fc6") + _layer_variables(roi.box_head.fc7, "roi_heads.box_head.fc7")
    found += _layer_variables(roi.box_predictor.cls_score, "roi_heads.box_predictor.cls_score")
    found += _layer_variables(roi.box_predictor.bbox_pred, "roi_heads.box_predictor.bbox_pred")
    for i, block in enumerate(roi.mask_head.layers):
        found += _layer_variables(block.layers[0], f"roi_heads.mask_head.{i}.0")
    found += _layer_variables(roi.mask_predictor.conv5_mask, "roi_heads.mask_predictor.conv5_mask")
    found += _layer_variables(roi.mask_predictor.mask_fcn_logits, "roi_heads.mask_predictor.mask_fcn_logits")
    return found


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def to_keras(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == CONV:
        return array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if layout == DECONV:
        return array.transpose(2, 3, 1, 0)  # (in, out, kH, kW) -> (kH, kW, out, in)
    if layout == DENSE:
        return array.T
    return array


def to_torch(array: np.ndarray, layout: str) -> np.ndarray:
    if layout in (CONV, DECONV):
        return array.transpose(3, 2, 0, 1)
    if layout == DENSE:
        return array.T
    return array


def load_torch_state_dict(model: keras_model.MaskRCNNLayers, state_dict: Mapping[str, Any], prefix: str = "") -> None:
    """Set every Keras weight whose PyTorch key starts with `prefix` from `state_dict` (keys without the
    prefix when one is given); strict both ways."""
    unused = {key for key in state_dict if not key.endswith(NUM_BATCHES_TRACKED)}
    for key, variable, layout in named_variables(model):
        if not key.startswith(prefix):
            continue
        source = key[len(prefix):]
        if source not in state_dict:
            raise KeyError(f"PyTorch state_dict has no '{source}' for Keras weight '{variable.path}'")
        array = to_keras(_numpy(state_dict[source]), layout)
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f"'{source}': PyTorch shape {tuple(_numpy(state_dict[source]).shape)} does not fit "
                             f"Keras '{variable.path}' {tuple(variable.shape)}")
        variable.assign(array.astype(variable.dtype))
        unused.discard(source)
    if unused:
        raise KeyError(f"PyTorch state_dict keys with no Keras weight: {sorted(unused)[:5]}")


def torch_state_dict(model: keras_model.MaskRCNNLayers) -> dict[str, np.ndarray]:
    """The Keras model's weights as a PyTorch state dict of NumPy arrays."""
    state: dict[str, np.ndarray] = {}
    for key, variable, layout in named_variables(model):
        state[key] = np.ascontiguousarray(to_torch(np.asarray(keras.ops.convert_to_numpy(variable)), layout))
        if layout == BATCHNORM and key.endswith(".running_var"):
            state[key.rsplit(".", 1)[0] + "." + NUM_BATCHES_TRACKED] = np.array(0, dtype=np.int64)
    return state


def parameter_count(model: keras_model.MaskRCNNLayers) -> int:
    """Parameters as PyTorch counts them: every weight (trained or frozen) but batch-norm statistics
    and frozen batch norm, which are buffers there."""
    return sum(int(np.prod(variable.shape)) for key, variable, layout in named_variables(model)
               if layout != FROZEN and not (layout == BATCHNORM and key.endswith((".running_mean", ".running_var"))))
