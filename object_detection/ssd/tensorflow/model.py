"""SSD300 with a ResNet-34 backbone in Keras 3, module for module the PyTorch model (`../pytorch/model.py`).

Same layers, names and order: `backbone` (`conv1`, `bn1`, `layer1`..`layer3` of BasicBlocks
`0`, `1`, ... holding `conv1|bn1|conv2|bn2|downsample`), `additional_blocks` (`0`..`4`, each a
1x1 conv `0` and a 3x3 conv `2`), `loc` and `conf` heads (`0`..`5`); `convert.py` maps every Keras
weight to the PyTorch key of the same name. Outputs are (N, A, 4) and (N, A, classes) in the
default boxes' order, flattened exactly as PyTorch views its NCHW head outputs.

What makes the two frameworks compute the same function (as in image_classification's ResNet):
- Padding: PyTorch pads symmetrically; Keras 'same' with stride 2 pads only bottom/right of an
  even-sized input, so every strided conv and the max pool get an explicit ZeroPadding2D and a
  'valid' conv; stride-1 3x3 convs with padding 1 use 'same' (symmetric); the two unpadded extras
  use 'valid'. The max pool pads with zeros: its input is a ReLU output, as PyTorch's -inf.
- BatchNorm: epsilon 1e-5, Keras momentum 0.9 = 1 - PyTorch's 0.1.
- Initialization follows PyTorch: He-normal (fan_out) backbone convs, Xavier-uniform extras and
  heads, biases uniform in +-1/sqrt(fan_in) (PyTorch's default for a Conv2d bias).
Images are NHWC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers

from object_detection.ssd.default_boxes import boxes_per_position

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Keras' moving-average decay = 1 - torch's momentum 0.1


def _he_conv(filters: int, kernel: int, stride: int, name: str, padding: str) -> layers.Conv2D:
    return layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=name,
                         kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"))


def _xavier_conv(filters: int, kernel: int, stride: int, name: str, padding: str, in_channels: int) -> layers.Conv2D:
    bound = 1.0 / math.sqrt(in_channels * kernel * kernel)
    return layers.Conv2D(filters, kernel, strides=stride, padding=padding, name=name,
                         kernel_initializer="glorot_uniform",
                         bias_initializer=keras.initializers.RandomUniform(-bound, bound))


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


class BasicBlock(layers.Layer):
    """torchvision's BasicBlock: 3x3 (stride) -> 3x3, plus the (projected) shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.pad1 = layers.ZeroPadding2D(1, name="pad1") if stride > 1 else None
        self.conv1 = _he_conv(channels, 3, stride, "conv1", "valid" if stride > 1 else "same")
        self.bn1 = _bn("bn1")
        self.conv2 = _he_conv(channels, 3, 1, "conv2", "same")
        self.bn2 = _bn("bn2")
        self.relu = layers.ReLU(name="relu")
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = keras.Sequential([_he_conv(channels, 1, stride, "0", "valid"), _bn("1")],
                                               name="downsample")

    def call(self, x, training=None):
        identity = x if self.downsample is None else self.downsample(x, training=training)
        out = self.conv1(self.pad1(x) if self.pad1 is not None else x)
        out = self.relu(self.bn1(out, training=training))
        out = self.bn2(self.conv2(out), training=training)
        return self.relu(out + identity)


class ResNetBackbone(layers.Layer):
    """ResNet-34 to layer3, layer3 at stride 1 (see `../pytorch/model.py`)."""

    def __init__(self, width: int = 64, stages: Sequence[int] = (3, 4, 6), **kwargs):
        super().__init__(**kwargs)
        self.pad1 = layers.ZeroPadding2D(3, name="pad1")
        self.conv1 = _he_conv(width, 7, 2, "conv1", "valid")
        self.bn1 = _bn("bn1")
        self.relu = layers.ReLU(name="relu")
        self.maxpool_pad = layers.ZeroPadding2D(1, name="maxpool_pad")
        self.maxpool = layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")
        in_channels = width
        self.stage_names = []
        for index, blocks in enumerate(stages):
            channels = width * 2 ** index
            stride = 2 if index == 1 else 1
            stage = keras.Sequential([BasicBlock(in_channels if b == 0 else channels, channels, stride if b == 0 else 1,
                                                 name=str(b)) for b in range(blocks)], name=f"layer{index + 1}")
            setattr(self, f"layer{index + 1}", stage)
            self.stage_names.append(f"layer{index + 1}")
            in_channels = channels
        self.out_channels = in_channels

    def call(self, images, training=None):
        x = self.relu(self.bn1(self.conv1(self.pad1(images)), training=training))
        x = self.maxpool(self.maxpool_pad(x))
        for name in self.stage_names:
            x = getattr(self, name)(x, training=training)
        return x


class ExtraBlock(layers.Layer):
    """1x1 conv + ReLU, 3x3 conv (stride 2 padded, or stride 1 unpadded) + ReLU; convs named `0`, `2`."""

    def __init__(self, in_channels: int, mid: int, out: int, strided: bool, **kwargs):
        super().__init__(**kwargs)
        self.conv_in = _xavier_conv(mid, 1, 1, "0", "valid", in_channels)
        self.pad = layers.ZeroPadding2D(1, name="pad") if strided else None
        self.conv_out = _xavier_conv(out, 3, 2 if strided else 1, "2", "valid", mid)
        self.relu = layers.ReLU(name="relu")

    def call(self, x):
        x = self.relu(self.conv_in(x))
        return self.relu(self.conv_out(self.pad(x) if self.pad is not None else x))


class SSD300(keras.Model):
    """SSD on the ResNet backbone; the defaults are the reference's SSD300 for COCO (81 classes)."""

    def __init__(self, num_classes: int = 81, width: int = 64, stages: Sequence[int] = (3, 4, 6),
                 extra_mid_channels: Sequence[int] = (256, 256, 128, 128, 128),
                 extra_channels: Sequence[int] = (512, 512, 256, 256, 256),
                 aspect_ratios: Sequence[Sequence[int]] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)), name: str = "ssd"):
        super().__init__(name=name)
        self.num_classes = num_classes
        self.backbone = ResNetBackbone(width, stages, name="backbone")
        channels = [self.backbone.out_channels, *extra_channels]
        self.additional_blocks = [ExtraBlock(channels[i], mid, out, i < len(extra_channels) - 2, name=f"additional_blocks_{i}")
                                  for i, (mid, out) in enumerate(zip(extra_mid_channels, extra_channels))]
        self.num_defaults = boxes_per_position(aspect_ratios)
        self.loc = [_xavier_conv(n * 4, 3, 1, f"loc_{i}", "same", c)
                    for i, (c, n) in enumerate(zip(channels, self.num_defaults))]
        self.conf = [_xavier_conv(n * num_classes, 3, 1, f"conf_{i}", "same", c)
                     for i, (c, n) in enumerate(zip(channels, self.num_defaults))]

    def feature_maps(self, images, training=None):
        maps = [self.backbone(images, training=training)]
        for block in self.additional_blocks:
            maps.append(block(maps[-1]))
        return maps

    def _flatten(self, head_output, values: int, boxes: int):
        # (N, H, W, values x boxes) -> (N, H, W, values, boxes) -> (N, boxes, H, W, values) -> (N, boxes H W, values):
        # PyTorch's view of channel c = value x boxes + box, flattened over (box, row, column)
        shape = keras.ops.shape(head_output)
        x = keras.ops.reshape(head_output, (shape[0], shape[1], shape[2], values, boxes))
        x = keras.ops.transpose(x, (0, 4, 1, 2, 3))
        return keras.ops.reshape(x, (shape[0], -1, values))

    def call(self, images, training=None):
        locs, confs = [], []
        for features, loc, conf, boxes in zip(self.feature_maps(images, training), self.loc, self.conf, self.num_defaults):
            locs.append(self._flatten(loc(features), 4, boxes))
            confs.append(self._flatten(conf(features), self.num_classes, boxes))
        return keras.ops.concatenate(locs, axis=1), keras.ops.concatenate(confs, axis=1)


def build_model(cfg_model, num_classes: int) -> SSD300:
    """A built SSD (weights created) for `cfg_model.image_size` inputs."""
    model = SSD300(num_classes, cfg_model.width, cfg_model.layers, cfg_model.extra_mid_channels,
                   cfg_model.extra_channels, cfg_model.aspect_ratios)
    model(keras.Input(shape=(cfg_model.image_size, cfg_model.image_size, 3)))
    return model


def count_parameters(model: keras.Model) -> int:
    return int(sum(math.prod(weight.shape) for weight in model.trainable_weights))
