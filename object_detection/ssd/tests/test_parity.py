"""PyTorch <-> Keras SSD: the same parameters, names and function (converted weights, same outputs),
the same loss, and the same first training steps.

Outputs are compared before decoding and NMS (the post-processing is checked op by op in
object_detection/tests/test_box_ops.py)."""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch
import torch._dynamo

# isort: split
import keras
import numpy as np
import pytest
import tensorflow as tf

from harness.config import load_config
from object_detection.ssd import default_boxes
from object_detection.ssd.config import Config
from object_detection.ssd.pytorch.loss import ssd_loss_per_image as torch_loss
from object_detection.ssd.pytorch.model import build_model as build_torch
from object_detection.ssd.pytorch.model import count_parameters as count_torch
from object_detection.ssd.tensorflow import convert
from object_detection.ssd.tensorflow.loss import ssd_loss_per_image as keras_loss
from object_detection.ssd.tensorflow.model import build_model as build_keras
from object_detection.ssd.tensorflow.model import count_parameters as count_keras

pytestmark = pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps (.ci/run)

SMOKE = load_config(Config, "object_detection/ssd/configs/smoke.yaml")
REFERENCE_PARAMETERS = 19_972_534  # SSD300-ResNet34 for COCO's 80 categories + background
SMOKE_PARAMETERS = 343_968  # the REDUCED smoke SSD for the tiny COCO's 5 categories + background


def calibrated(model: torch.nn.Module, size: int, seed: int) -> torch.nn.Module:
    """Eval mode with non-trivial BN parameters and statistics (fresh BNs are the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
                module.momentum = 1.0
        model.train()
        model(torch.randn(4, 3, size, size, generator=generator, dtype=next(model.parameters()).dtype))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 0.1
    return model.eval()


def test_ssd300_converts_with_the_same_outputs():
    torch.manual_seed(0)
    torch_model = calibrated(build_torch(Config().model, 81), 300, 1)
    keras_model = build_keras(Config().model, 81)
    assert count_torch(torch_model) == count_keras(keras_model) == REFERENCE_PARAMETERS
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    images = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        locs, logits = (t.numpy() for t in torch_model(images))
    keras_locs, keras_logits = (np.asarray(t) for t in keras_model(images.permute(0, 2, 3, 1).numpy(), training=False))
    assert locs.shape == keras_locs.shape == (1, 8732, 4) and logits.shape == keras_logits.shape == (1, 8732, 81)
    for ours, theirs in ((locs, keras_locs), (logits, keras_logits)):
        scale = np.abs(ours).max()
        assert scale > 0.1
        assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, scale)  # float32, relative to the output's scale
    # and back: Keras -> PyTorch state dict with the same keys and values
    state = convert.torch_state_dict(keras_model)
    assert set(state) == set(torch_model.state_dict())
    reference = torch_model.state_dict()
    assert all(np.array_equal(state[key], reference[key].numpy()) for key in state if "num_batches" not in key)


@pytest.fixture
def float64_keras():
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy("float32")


def test_reduced_ssd_is_the_same_function_in_float64(float64_keras):
    torch.manual_seed(0)
    torch_model = calibrated(build_torch(SMOKE.model, 6).double(), 160, 2)
    keras_model = build_keras(SMOKE.model, 6)
    assert count_torch(torch_model) == count_keras(keras_model) == SMOKE_PARAMETERS
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    images = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        outputs = [t.numpy() for t in torch_model(images)]
    keras_outputs = [np.asarray(t) for t in keras_model(images.permute(0, 2, 3, 1).numpy(), training=False)]
    for ours, theirs in zip(outputs, keras_outputs):
        assert np.abs(ours - theirs).max() <= 1e-10 * np.abs(ours).max()


def test_the_loss_is_the_same_in_both_frameworks():
    rng = np.random.default_rng(0)
    anchors = default_boxes.from_config(SMOKE.model).astype(np.float64)
    corners = default_boxes.cxcywh_to_xyxy(anchors)
    count = len(anchors)
    labels = np.where(rng.random((3, count)) < 0.02, rng.integers(1, 6, (3, count)), 0)
    labels[2] = 0  # an image without positives adds nothing
    boxes = np.where(labels[..., None] > 0, corners + rng.normal(0, 0.01, (3, count, 4)), corners)
    locs, logits = rng.normal(0, 1, (3, count, 4)), rng.normal(0, 2, (3, count, 6))
    ours = torch_loss(torch.from_numpy(locs), torch.from_numpy(logits), torch.from_numpy(boxes),
                      torch.from_numpy(labels), torch.from_numpy(anchors)).numpy()
    theirs = keras_loss(tf.constant(locs), tf.constant(logits), tf.constant(boxes), tf.constant(labels),
                        tf.constant(anchors)).numpy()
    assert ours[2] == 0 and ours[0] > 1
    np.testing.assert_allclose(theirs, ours, rtol=1e-12)
