"""Weights between the PyTorch Mask R-CNN (torchvision's `state_dict`) and the Keras one, one to one both ways.

`named_variables(model)` lists every Keras variable under the PyTorch key of the same weight, by
walking the model's structure (`model.py` keeps torchvision's module names). Only layouts change:
conv kernels OIHW <-> HWIO, the deconvolution's (in, out, kH, kW) <-> (kH, kW, out, in), dense
(out, in) <-> (in, out); trainable BatchNorm weight/bias/running_mean/running_var <->
gamma/beta/moving_mean/moving_variance (PyTorch's `num_batches_tracked` is written as 0, read
never); frozen batch norm keeps torchvision's four buffer names. harness/convert.py does the work
from this name table.

`load_trunk` puts the converted ImageNet weights (`../pretrained.py`, torchvision's names) into
the Keras trunk: the Keras side of the R-50.pkl converter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from harness import convert
from object_detection.maskrcnn.tensorflow import model as keras_model

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


_LAYOUTS = {CONV: convert.CONV, DECONV: convert.CONV, DENSE: convert.DENSE}  # a deconvolution's axes move as a convolution's


def _rows(model: keras_model.MaskRCNNLayers) -> list[convert.Row]:
    """The name table for harness/convert.py: each weight with its layout, a counter after each trainable batch norm."""
    rows = []
    for key, variable, layout in named_variables(model):
        rows.append(convert.Row(key, variable, _LAYOUTS.get(layout)))
        if layout == BATCHNORM and key.endswith(".running_var"):
            rows.append(convert.counter(key.rsplit(".", 1)[0] + "." + convert.NUM_BATCHES_TRACKED))
    return rows


def load_torch_state_dict(model: keras_model.MaskRCNNLayers, state_dict: Mapping[str, Any], prefix: str = "") -> None:
    """Set every Keras weight whose PyTorch key starts with `prefix` from `state_dict` (keys without the
    prefix when one is given); strict both ways."""
    convert.load_torch_layout(_rows(model), state_dict, "Mask R-CNN", prefix=prefix, ignore_counters=True)


def torch_state_dict(model: keras_model.MaskRCNNLayers) -> dict[str, np.ndarray]:
    """The Keras model's weights as a PyTorch state dict of NumPy arrays."""
    return convert.torch_layout(_rows(model))


def parameter_count(model: keras_model.MaskRCNNLayers) -> int:
    """Parameters as PyTorch counts them: every weight (trained or frozen) but batch-norm statistics
    and frozen batch norm, which are buffers there."""
    return sum(int(np.prod(variable.shape)) for key, variable, layout in named_variables(model)
               if layout != FROZEN and not (layout == BATCHNORM and key.endswith((".running_mean", ".running_var"))))
