"""The Keras ResNet-50 v1.5: size, names, padding, initialization, mixed precision."""

from __future__ import annotations

import importlib.util
import sys

# torch.optim loads triton lazily, and libtriton loaded after TensorFlow's LLVM crashes the process:
# load it first, so a session that runs PyTorch tests after these ones survives
if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401

# isort: split
import keras
import numpy as np
import pytest
import tensorflow as tf

from image_classification.tensorflow.convert import torch_key
from image_classification.tensorflow.model import build_model, count_parameters


@pytest.fixture(scope="module")
def resnet50():
    return build_model()


def test_resnet50_has_the_reference_parameter_count(resnet50):
    assert count_parameters(resnet50) == 25_557_032
    # BN moving statistics are the only non-trainable weights (PyTorch buffers)
    assert {v.path.rsplit("/", 1)[1] for v in resnet50.non_trainable_weights} == {"moving_mean", "moving_variance"}


def test_weights_carry_torchvision_names_in_torchvision_order(resnet50):
    keys = [torch_key(variable.path) for variable in resnet50.weights]
    assert len(keys) == len(set(keys)) == 267  # 53 convs + 53 BNs x 4 + fc weight and bias
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "layer1.0.conv1.weight"]
    block = [key for key in keys if key.startswith("layer2.0.")]
    assert block == [f"layer2.0.{name}" for name in (
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
        "conv2.weight", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var",
        "conv3.weight", "bn3.weight", "bn3.bias", "bn3.running_mean", "bn3.running_var",
        "downsample.0.weight", "downsample.1.weight", "downsample.1.bias", "downsample.1.running_mean",
        "downsample.1.running_var")]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert sum(key.endswith(".0.weight") and "downsample" in key for key in keys) == 4


def test_v1_5_puts_the_stride_on_the_3x3_conv(resnet50):
    block = resnet50.layer2.layers[0]
    assert block.conv1.strides == (1, 1) and block.conv2.strides == (2, 2)
    assert block.downsample.layers[0].strides == (2, 2)
    assert resnet50.layer1.layers[0].conv2.strides == (1, 1)


def test_strided_convs_pad_symmetrically_like_pytorch():
    """Keras 'same' at stride 2 pads only bottom/right; PyTorch pads both sides (conv1: 3, 3)."""
    model = build_model(num_classes=2, layers=(1, 1, 1, 1), width=4, image_size=16)
    model.conv1.kernel.assign(np.ones(model.conv1.kernel.shape, np.float32))
    ones = tf.ones([1, 16, 16, 3])
    out = model.conv1(model.pad1(ones))[0, :, :, 0].numpy()
    assert out.shape == (8, 8)
    # top-left sees rows/cols -3..3 (4x4 valid pixels), bottom-right rows 11..17 (5x5 valid)
    assert out[0, 0] == 3 * 4 * 4 and out[-1, -1] == 3 * 5 * 5
    np.testing.assert_array_equal(out, out.T)  # a symmetric input stays symmetric


def test_zero_init_residual_and_batchnorm_settings():
    zero = build_model(num_classes=3, layers=(1, 1, 1, 1), width=4, image_size=32, bn_eps=2e-5, bn_momentum=0.2)
    plain = build_model(num_classes=3, layers=(1, 1, 1, 1), width=4, image_size=32, zero_init_residual=False)
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        assert not np.any(getattr(zero, stage).layers[0].bn3.gamma.numpy())
        assert np.all(getattr(plain, stage).layers[0].bn3.gamma.numpy() == 1.0)
        assert np.all(getattr(zero, stage).layers[0].bn2.gamma.numpy() == 1.0)
    bn = zero.layer1.layers[0].bn1
    assert bn.epsilon == pytest.approx(2e-5) and bn.momentum == pytest.approx(0.8)  # Keras = 1 - torch
    assert not any(layer.use_bias for layer in _convs(zero))


def _convs(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]


def test_conv_init_is_he_normal_fan_out():
    model = build_model(num_classes=10, layers=(1, 1, 1, 1), width=64, image_size=32)
    kernel = model.layer3.layers[0].conv2.kernel.numpy()  # 3x3x256x256
    expected = np.sqrt(2.0 / (3 * 3 * kernel.shape[-1]))
    assert kernel.std() == pytest.approx(expected, rel=0.02)
    bound = 1.0 / np.sqrt(model.fc.kernel.shape[0])
    assert np.abs(model.fc.kernel.numpy()).max() <= bound


def test_mixed_precision_keeps_float32_logits():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(num_classes=5, layers=(1, 1, 1, 1), width=4, image_size=32)
        logits = model(tf.random.normal([2, 32, 32, 3]), training=False)
        assert model.conv1.compute_dtype == "bfloat16" and model.conv1.kernel.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert logits.dtype == tf.float32 and logits.shape == (2, 5)
