"""ResNet-50 v1.5 in Keras 3, module for module the PyTorch model (`../pytorch/model.py`).

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), with the v1.5 change the
MLPerf reference uses (mlcommons/training image_classification/, after torchvision and NVIDIA's
DeepLearningExamples): the stride 2 of a downsampling bottleneck sits on its 3x3 convolution, not on
the first 1x1. 25,557,032 parameters for 1000 classes.

The layers nest and are named exactly as torchvision's modules, in the same order: `conv1`, `bn1`,
`layer{i}` (a Sequential of blocks `0`, `1`, ...) holding `conv1|bn1|conv2|bn2|conv3|bn3` and
`downsample` (a Sequential of `0` conv, `1` BN), then `fc`. A Keras weight path is the PyTorch key
with `/` for `.` and Keras' variable name for PyTorch's (`layer1/0/conv1/kernel` <->
`layer1.0.conv1.weight`), so `convert.py` maps weights one to one (`torch_key`).

What makes the two frameworks compute the same function:
- Padding: PyTorch pads symmetrically (`padding=k//2`); Keras 'same' with stride 2 pads only at
  the bottom/right of an even-sized input. Every strided conv/pool with a window larger than 1
  gets an explicit ZeroPadding2D and a 'valid' conv; stride-1 3x3 convs use 'same' (symmetric).
- BatchNorm: epsilon 1e-5 (torch's default); Keras' `momentum` is the decay of the moving
  average, `1 - torch momentum` (torch 0.1 -> Keras 0.9). One difference remains, in training
  only: torch's running variance averages the unbiased batch variance (x n/(n-1)), Keras' the
  biased one; over a BN span of 256 images x 7x7 positions the factor is 1.00008.
- Max pooling pads with -inf in PyTorch; its input is a ReLU output (>= 0), so zero padding gives
  the same maximum.
Images are channels_last (NHWC): the layout cuDNN's tensor-core kernels and XLA prefer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers

from harness import tf_runtime

EXPANSION = 4  # a bottleneck's output has 4x the channels of its 3x3 conv
BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d default, as in the reference


def keras_bn_momentum(torch_momentum: float) -> float:
    """Keras' BatchNormalization momentum (moving-average decay) for a PyTorch BN momentum."""
    return 1.0 - torch_momentum


def conv(filters: int, kernel_size: int, stride: int, name: str) -> layers.Conv2D:
    """A bias-free conv, initialized as torchvision's ResNet: kaiming_normal_(fan_out, relu)."""
    return layers.Conv2D(
        filters, kernel_size, strides=stride, use_bias=False, name=name,
        padding="valid" if stride > 1 else "same",  # strided convs get explicit symmetric padding
        kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"))


def batch_norm(name: str, eps: float, momentum: float, zero_gamma: bool = False) -> layers.BatchNormalization:
    return layers.BatchNormalization(axis=-1, epsilon=eps, momentum=keras_bn_momentum(momentum),
                                     gamma_initializer="zeros" if zero_gamma else "ones", name=name)


class Bottleneck(layers.Layer):
    """torchvision `Bottleneck` (v1.5): 1x1 -> 3x3 (stride) -> 1x1 (x4 channels), plus the shortcut.

    `zero_init_residual` starts the last BN's gamma at 0 so each block begins as the identity
    (Goyal et al., "Accurate, Large Minibatch SGD", 2017, section 5.1; torchvision's option).
    """

    def __init__(self, in_channels: int, width: int, stride: int, bn_eps: float, bn_momentum: float,
                 zero_init_residual: bool, **kwargs):
        super().__init__(**kwargs)
        out_channels = width * EXPANSION
        self.conv1 = conv(width, 1, 1, "conv1")
        self.bn1 = batch_norm("bn1", bn_eps, bn_momentum)
        self.pad2 = layers.ZeroPadding2D(1, name="pad2") if stride > 1 else None
        self.conv2 = conv(width, 3, stride, "conv2")
        self.bn2 = batch_norm("bn2", bn_eps, bn_momentum)
        self.conv3 = conv(out_channels, 1, 1, "conv3")
        self.bn3 = batch_norm("bn3", bn_eps, bn_momentum, zero_gamma=zero_init_residual)
        self.relu = layers.ReLU(name="relu")
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            # a 1x1 conv needs no padding: stride 2 'valid' samples the same pixels as PyTorch
            self.downsample = keras.Sequential(
                [conv(out_channels, 1, stride, "0"), batch_norm("1", bn_eps, bn_momentum)], name="downsample")

    def call(self, x, training=None):
        identity = x
        out = self.relu(self.bn1(self.conv1(x), training=training))
        if self.pad2 is not None:
            out = self.pad2(out)
        out = self.relu(self.bn2(self.conv2(out), training=training))
        out = self.bn3(self.conv3(out), training=training)
        if self.downsample is not None:
            identity = self.downsample(x, training=training)
        return self.relu(out + identity)


class ResNet(keras.Model):
    """ResNet v1.5 with bottleneck blocks (torchvision `ResNet`); the defaults are ResNet-50.

    `width` is the channel count of the stem and of the first stage's 3x3 convs (64 in the paper);
    the smoke config shrinks it and `layers`. `bn_momentum` is in PyTorch's convention.
    """

    def __init__(self, num_classes: int = 1000, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                 zero_init_residual: bool = True, bn_eps: float = BN_EPSILON, bn_momentum: float = 0.1,
                 name: str = "resnet"):
        super().__init__(name=name)
        L = keras.layers  # the argument `layers` is the block counts here, as in torchvision
        self.pad1 = L.ZeroPadding2D(3, name="pad1")
        self.conv1 = conv(width, 7, 2, "conv1")
        self.bn1 = batch_norm("bn1", bn_eps, bn_momentum)
        self.relu = L.ReLU(name="relu")
        self.maxpool_pad = L.ZeroPadding2D(1, name="maxpool_pad")
        self.maxpool = L.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")
        in_channels = width
        self.stage_names = tuple(f"layer{index + 1}" for index in range(len(layers)))
        for index, (stage_name, count) in enumerate(zip(self.stage_names, layers)):
            stage_width = width * 2 ** index
            blocks = [Bottleneck(in_channels if block == 0 else stage_width * EXPANSION, stage_width,
                                 2 if index > 0 and block == 0 else 1, bn_eps, bn_momentum, zero_init_residual,
                                 name=str(block)) for block in range(count)]
            setattr(self, stage_name, keras.Sequential(blocks, name=stage_name))  # self.layer1 ...
            in_channels = stage_width * EXPANSION
        self.avgpool = L.GlobalAveragePooling2D(name="avgpool")
        # torch.nn.Linear's default init: U(+-1/sqrt(fan_in)) for weight and bias. float32 logits
        # under a mixed-precision policy keep the softmax and the loss in full precision.
        bound = 1.0 / math.sqrt(in_channels)
        self.fc = L.Dense(num_classes, kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
                          bias_initializer=keras.initializers.RandomUniform(-bound, bound),
                          dtype=tf_runtime.logits_dtype(), name="fc")

    def call(self, images, training=None):
        x = self.conv1(self.pad1(images))
        x = self.relu(self.bn1(x, training=training))
        x = self.maxpool(self.maxpool_pad(x))
        for stage_name in self.stage_names:
            x = getattr(self, stage_name)(x, training=training)
        return self.fc(self.avgpool(x))


def build_model(num_classes: int = 1000, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                zero_init_residual: bool = True, bn_eps: float = BN_EPSILON, bn_momentum: float = 0.1,
                image_size: int = 224) -> ResNet:
    """A built ResNet (weights created), ready for a strategy scope, an optimizer or a converter."""
    model = ResNet(num_classes, layers, width, zero_init_residual, bn_eps, bn_momentum)
    model(keras.Input(shape=(image_size, image_size, 3)))  # a symbolic call creates the weights
    return model


def count_parameters(model: keras.Model) -> int:
    """Trainable parameters, as PyTorch counts them (`p.numel()` over `model.parameters()`)."""
    return int(sum(math.prod(weight.shape) for weight in model.trainable_weights))
