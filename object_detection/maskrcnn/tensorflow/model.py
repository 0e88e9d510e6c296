"""Mask R-CNN with a ResNet-50-FPN backbone in Keras 3: the layers of `../pytorch/model.py`, name for name.

The PyTorch model is torchvision's MaskRCNN configured as the reference; this is the same network
written out in Keras with torchvision's module names, so `convert.py` maps every weight one to one:

    backbone/body/conv1, bn1, layer1..layer4/<block>/conv1..conv3, bn1..bn3, downsample/0, 1
    backbone/fpn/inner_blocks/<i>/0, layer_blocks/<i>/0            (FPN; P6 = P5 subsampled by 2)
    rpn/head/conv/0/0, cls_logits, bbox_pred
    roi_heads/box_head/fc6, fc7; box_predictor/cls_score, bbox_pred
    roi_heads/mask_head/<i>/0; mask_predictor/conv5_mask, mask_fcn_logits

The detection logic around the layers (anchors, proposals, sampling, losses, post-processing) is in
`rpn.py` and `roi_heads.py`, as torchvision keeps it in rpn.py and roi_heads.py.

What makes the two frameworks compute the same function:
- Padding: PyTorch pads symmetrically; Keras 'same' with stride 2 pads only bottom/right, so the
  stem's 7x7 stride-2 conv and its max pool get explicit ZeroPadding2D and 'valid' (the pool's
  input is a ReLU output, so zero padding equals PyTorch's -inf); the MSRA layout puts the other
  strides in 1x1 convolutions, which need no padding; 3x3 stride-1 convs are 'same' (symmetric).
- Frozen batch norm as torchvision's FrozenBatchNorm2d with eps 0: x * w / sqrt(var) + (b - mean w / sqrt(var)).
- Trainable batch norm (the smoke model): epsilon 1e-5, Keras momentum 0.9 = 1 - PyTorch's 0.1.
- The box head flattens its 7x7 RoI features channel-first, as PyTorch's (N, C, 7, 7).flatten(1).
- FPN's top-down path upsamples by nearest-neighbour x2 (torchvision interpolates to the lateral's
  size, the same map when sizes are multiples of 32: data.size_divisibility).
- Initialization follows the PyTorch model: Kaiming-normal (fan_out) trunk and mask head,
  Kaiming-uniform (a=1) FPN and box FC layers, N(0, 0.01) RPN and classifier, N(0, 0.001)
  regressor, zero biases (PyTorch's default uniform bias for the mask predictor's two layers).
Images are NHWC, BGR 0-255 minus the pixel mean (`presets_tensorflow.maskrcnn_*`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import layers

from object_detection.maskrcnn.tensorflow import roi_heads, rpn

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Keras' moving-average decay = 1 - torch's momentum 0.1


def _he_normal():
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _kaiming_uniform_a1():
    """PyTorch's kaiming_uniform_(a=1): U(+-sqrt(3 / fan_in)) (gain 1)."""
    return keras.initializers.VarianceScaling(1.0, "fan_in", "uniform")


def _torch_default_bias(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def conv(filters: int, kernel: int, name: str, *, stride: int = 1, padding: str = "valid", use_bias: bool = False,
         kernel_initializer=None, bias_initializer="zeros") -> layers.Conv2D:
    return layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=use_bias, name=name,
                         kernel_initializer=kernel_initializer or _he_normal(), bias_initializer=bias_initializer)


class FrozenBatchNorm(layers.Layer):
    """torchvision's FrozenBatchNorm2d with eps 0 (the reference's): fixed statistics and affine map."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def build(self, input_shape):
        channels = (self.channels,)
        self.weight = self.add_weight(name="weight", shape=channels, initializer="ones", trainable=False)
        self.bias = self.add_weight(name="bias", shape=channels, initializer="zeros", trainable=False)
        self.running_mean = self.add_weight(name="running_mean", shape=channels, initializer="zeros", trainable=False)
        self.running_var = self.add_weight(name="running_var", shape=channels, initializer="ones", trainable=False)

    def call(self, x, training=None):
        scale = self.weight * tf.math.rsqrt(self.running_var)
        shift = self.bias - self.running_mean * scale
        return x * tf.cast(scale, x.dtype) + tf.cast(shift, x.dtype)


def norm(kind: str, channels: int, name: str) -> layers.Layer:
    if kind == "frozen":
        return FrozenBatchNorm(channels, name=name)
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


class Bottleneck(layers.Layer):
    """torchvision's Bottleneck (1x1, 3x3, 1x1 to 4x width, plus the shortcut), stride in the first 1x1."""

    def __init__(self, in_channels: int, width: int, stride: int, kind: str, **kwargs):
        super().__init__(**kwargs)
        out = width * 4
        self.conv1 = conv(width, 1, "conv1", stride=stride)
        self.bn1 = norm(kind, width, "bn1")
        self.conv2 = conv(width, 3, "conv2", padding="same")
        self.bn2 = norm(kind, width, "bn2")
        self.conv3 = conv(out, 1, "conv3")
        self.bn3 = norm(kind, out, "bn3")
        self.relu = layers.ReLU(name="relu")
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = keras.Sequential([conv(out, 1, "0", stride=stride), norm(kind, out, "1")], name="downsample")

    def call(self, x, training=None):
        identity = x if self.downsample is None else self.downsample(x, training=training)
        out = self.relu(self.bn1(self.conv1(x), training=training))
        out = self.relu(self.bn2(self.conv2(out), training=training))
        out = self.bn3(self.conv3(out), training=training)
        return self.relu(out + identity)


class ResNetTrunk(layers.Layer):
    """The ResNet trunk of `../pytorch/model.py` (MSRA layout); returns C2..C5."""

    def __init__(self, stem_width: int, widths: Sequence[int], blocks: Sequence[int], kind: str, **kwargs):
        super().__init__(**kwargs)
        self.pad1 = layers.ZeroPadding2D(3, name="pad1")
        self.conv1 = conv(stem_width, 7, "conv1", stride=2)
        self.bn1 = norm(kind, stem_width, "bn1")
        self.relu = layers.ReLU(name="relu")
        self.maxpool_pad = layers.ZeroPadding2D(1, name="maxpool_pad")
        self.maxpool = layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")
        in_channels = stem_width
        self.stages = []
        self.out_channels = []
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            stage = keras.Sequential([Bottleneck(in_channels if b == 0 else width * 4, width, stride if b == 0 else 1, kind,
                                                 name=str(b)) for b in range(count)], name=f"layer{index + 1}")
            setattr(self, f"layer{index + 1}", stage)
            self.stages.append(stage)
            self.out_channels.append(width * 4)
            in_channels = width * 4

    def call(self, images, training=None):
        x = self.relu(self.bn1(self.conv1(self.pad1(images)), training=training))
        x = self.maxpool(self.maxpool_pad(x))
        outputs = []
        for stage in self.stages:
            x = stage(x, training=training)
            outputs.append(x)
        return outputs


class FeaturePyramid(layers.Layer):
    """torchvision's FeaturePyramidNetwork with LastLevelMaxPool: P2..P5 and P6 = P5[::2, ::2]."""

    def __init__(self, in_channels: Sequence[int], channels: int, **kwargs):
        super().__init__(**kwargs)
        self.inner_blocks = [keras.Sequential([conv(channels, 1, "0", use_bias=True, kernel_initializer=_kaiming_uniform_a1())],
                                              name=f"inner_blocks_{i}") for i in range(len(in_channels))]
        self.layer_blocks = [keras.Sequential([conv(channels, 3, "0", padding="same", use_bias=True,
                                                    kernel_initializer=_kaiming_uniform_a1())], name=f"layer_blocks_{i}")
                             for i in range(len(in_channels))]
        self.upsample = layers.UpSampling2D(2, interpolation="nearest", name="upsample")

    def call(self, features):
        last_inner = self.inner_blocks[-1](features[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for index in range(len(features) - 2, -1, -1):
            last_inner = self.inner_blocks[index](features[index]) + self.upsample(last_inner)
            results.insert(0, self.layer_blocks[index](last_inner))
        results.append(results[-1][:, ::2, ::2, :])  # max_pool2d(P5, kernel 1, stride 2)
        return results


class Backbone(layers.Layer):
    def __init__(self, cfg_model, **kwargs):
        super().__init__(**kwargs)
        m = cfg_model
        self.body = ResNetTrunk(m.stem_width, m.widths, m.blocks, m.norm, name="body")
        self.fpn = FeaturePyramid(self.body.out_channels, m.fpn_channels, name="fpn")

    def call(self, images, training=None):
        return self.fpn(self.body(images, training=training))


class RPNHead(layers.Layer):
    """torchvision's RPNHead: a 3x3 conv + ReLU, then objectness (A) and box deltas (4A) per position."""

    def __init__(self, channels: int, anchors: int, **kwargs):
        super().__init__(**kwargs)
        normal = keras.initializers.RandomNormal(stddev=0.01)
        inner = keras.Sequential([conv(channels, 3, "0", padding="same", use_bias=True, kernel_initializer=normal),
                                  layers.ReLU(name="1")], name="0")
        self.conv = keras.Sequential([inner], name="conv")
        self.cls_logits = conv(anchors, 1, "cls_logits", use_bias=True, kernel_initializer=normal)
        self.bbox_pred = conv(anchors * 4, 1, "bbox_pred", use_bias=True, kernel_initializer=normal)

    def call(self, features):
        objectness, deltas = [], []
        for feature in features:
            t = self.conv(feature)
            objectness.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return objectness, deltas


class TwoMLPHead(layers.Layer):
    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.fc6 = layers.Dense(dim, name="fc6", kernel_initializer=_kaiming_uniform_a1())
        self.fc7 = layers.Dense(dim, name="fc7", kernel_initializer=_kaiming_uniform_a1())

    def call(self, pooled):
        x = tf.reshape(tf.transpose(pooled, [0, 3, 1, 2]), [tf.shape(pooled)[0], -1])  # channel-first, as PyTorch
        return tf.nn.relu(self.fc7(tf.nn.relu(self.fc6(x))))


class FastRCNNPredictor(layers.Layer):
    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.cls_score = layers.Dense(num_classes, name="cls_score",
                                      kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
        self.bbox_pred = layers.Dense(num_classes * 4, name="bbox_pred",
                                      kernel_initializer=keras.initializers.RandomNormal(stddev=0.001))

    def call(self, x):
        return self.cls_score(x), self.bbox_pred(x)


class MaskRCNNHeads(keras.Sequential):
    """Four 3x3 conv + ReLU layers (`<i>/0`), Kaiming-normal fan_out, zero biases."""

    def __init__(self, channels: Sequence[int], **kwargs):
        super().__init__([keras.Sequential([conv(c, 3, "0", padding="same", use_bias=True), layers.ReLU(name="1")], name=str(i))
                          for i, c in enumerate(channels)], **kwargs)


class MaskRCNNPredictor(layers.Layer):
    """2x2 stride-2 deconvolution + ReLU, then a 1x1 conv to one 28x28 logit map per class."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.conv5_mask = layers.Conv2DTranspose(channels, 2, strides=2, padding="valid", name="conv5_mask",
                                                 kernel_initializer=_he_normal(),
                                                 bias_initializer=_torch_default_bias(channels * 4))
        self.mask_fcn_logits = conv(num_classes, 1, "mask_fcn_logits", use_bias=True,
                                    bias_initializer=_torch_default_bias(channels))
        self.relu = layers.ReLU(name="relu")

    def call(self, x):
        return self.mask_fcn_logits(self.relu(self.conv5_mask(x)))


class RPNLayers(layers.Layer):
    """Holds the RPN's head (`rpn/head`); anchors, proposals and the loss are in rpn.py."""

    def __init__(self, channels: int, anchors: int, **kwargs):
        super().__init__(**kwargs)
        self.head = RPNHead(channels, anchors, name="head")


class RoIHeadsLayers(layers.Layer):
    """Holds the box and mask heads (`roi_heads/...`); sampling, losses and post-processing are in roi_heads.py."""

    def __init__(self, cfg_model, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        m = cfg_model
        self.box_head = TwoMLPHead(m.box_head_dim, name="box_head")
        self.box_predictor = FastRCNNPredictor(num_classes, name="box_predictor")
        self.mask_head = MaskRCNNHeads(m.mask_head_channels, name="mask_head")
        self.mask_predictor = MaskRCNNPredictor(m.mask_head_channels[-1], m.mask_predictor_channels, num_classes,
                                                name="mask_predictor")


class MaskRCNNLayers(keras.Model):
    """Every layer with weights, named as torchvision's MaskRCNN (see the module docstring)."""

    def __init__(self, cfg_model, num_classes: int, name: str = "maskrcnn"):
        super().__init__(name=name)
        m = cfg_model
        self.cfg_model = m
        self.num_classes = num_classes
        self.backbone = Backbone(m, name="backbone")
        self.rpn = RPNLayers(m.fpn_channels, len(m.anchor_ratios), name="rpn")
        self.roi_heads = RoIHeadsLayers(m, num_classes, name="roi_heads")


def frozen_variables(model: MaskRCNNLayers) -> list:
    """The stem's and the first `frozen_stages - 1` stages' weights (FREEZE_CONV_BODY_AT)."""
    body = model.backbone.body
    stages = model.cfg_model.frozen_stages
    parts = ([body.conv1, body.bn1] if stages >= 1 else []) + body.stages[:max(0, stages - 1)]
    return [variable for part in parts for variable in part.weights]


class MaskRCNN(MaskRCNNLayers):
    """The detector: `losses(...)` in training, `call(...)` for detections (see rpn.py, roi_heads.py).

    Inputs are a batch of images (B, H, W, 3) padded to a multiple of 32 and their own sizes
    `image_sizes` (B, 2) [height, width] before padding; targets are padded per image: boxes
    (B, G, 4) pixels, labels (B, G) with 0 for padding after the real ones, masks (B, G, H, W) uint8,
    sample_key (B,) int64 (the keyed sampling of both frameworks).
    """

    def features(self, images, training=None) -> list:
        return self.backbone(images, training=training)

    def rpn_outputs(self, features):
        objectness, deltas = self.rpn.head(features)
        return rpn.flatten_head_outputs(objectness, deltas)

    def anchors(self, features, images):
        levels = rpn.anchors(features, tf.shape(images)[1:3], self.cfg_model.anchor_sizes, self.cfg_model.anchor_ratios,
                             features[0].dtype)
        return tf.concat(levels, axis=0)

    def proposals(self, features, images, image_sizes, training: bool):
        m = self.cfg_model
        batch = int(images.shape[0])
        logits, deltas, counts = self.rpn_outputs(features)
        anchor_boxes = self.anchors(features, images)
        decoded = rpn.decode(tf.reshape(deltas, [-1, 4]), tf.tile(anchor_boxes, [batch, 1]))
        decoded = tf.reshape(decoded, [batch, -1, 4])
        pre, post = ((m.rpn_pre_nms_top_n_train, m.rpn_post_nms_top_n_train) if training
                     else (m.rpn_pre_nms_top_n_test, m.rpn_post_nms_top_n_test))
        proposals = rpn.filter_proposals(decoded, logits, counts, image_sizes, batch, pre, post, m.rpn_nms_iou)
        return proposals, logits, deltas, anchor_boxes

    def losses(self, images, image_sizes, targets: dict) -> dict:
        """The five losses of torchvision's MaskRCNN in training mode."""
        m = self.cfg_model
        batch = int(images.shape[0])
        features = self.features(images, training=True)
        proposals, logits, deltas, anchor_boxes = self.proposals(features, images, image_sizes, training=True)
        loss_objectness, loss_rpn_box_reg = rpn.rpn_loss(logits, deltas, anchor_boxes, targets, batch, m)
        boxes, box_images, labels, matched, regression = roi_heads.select_training_samples(proposals, targets, batch, m)
        class_logits, box_regression = roi_heads.box_features(self.roi_heads, features, boxes, box_images, image_sizes, m)
        loss_classifier, loss_box_reg = roi_heads.fastrcnn_loss(class_logits, box_regression, labels, regression)
        positive = tf.where(labels > 0)[:, 0]
        positive_boxes, positive_images = tf.gather(boxes, positive), tf.gather(box_images, positive)
        logits_mask = roi_heads.mask_logits(self.roi_heads, features, positive_boxes, positive_images, image_sizes, m)
        loss_mask = roi_heads.maskrcnn_loss(logits_mask, positive_boxes, positive_images, tf.gather(labels, positive),
                                            tf.gather(matched, positive), targets, image_sizes)
        return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg, "loss_mask": loss_mask,
                "loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg}

    def call(self, images, image_sizes, training=False):
        """Detections of each image, concatenated: boxes (D, 4) in the network input's pixels, scores
        (D,), labels (D,), 28x28 mask probabilities (D, 28, 28), and the count per image (B,)."""
        m = self.cfg_model
        batch = int(images.shape[0])
        features = self.features(images, training=False)
        proposals, _, _, _ = self.proposals(features, images, image_sizes, training=False)
        box_images = tf.concat([tf.fill([tf.shape(p)[0]], i) for i, p in enumerate(proposals)], 0)
        class_logits, box_regression = roi_heads.box_features(self.roi_heads, features, tf.concat(proposals, 0),
                                                              box_images, image_sizes, m)
        detections = roi_heads.postprocess_detections(class_logits, box_regression, proposals, image_sizes, batch, m)
        boxes = tf.concat([d[0] for d in detections], 0)
        scores = tf.concat([d[1] for d in detections], 0)
        labels = tf.concat([d[2] for d in detections], 0)
        counts = tf.stack([tf.shape(d[0])[0] for d in detections])
        detection_images = tf.concat([tf.fill([tf.shape(d[0])[0]], i) for i, d in enumerate(detections)], 0)
        logits_mask = roi_heads.mask_logits(self.roi_heads, features, boxes, detection_images, image_sizes, m)
        return boxes, scores, labels, roi_heads.maskrcnn_inference(logits_mask, labels), counts


def build_model(cfg_model, num_classes: int) -> MaskRCNN:
    """A built Mask R-CNN: every weight created (the trunk, FPN and RPN by a forward pass on a small
    batch, the heads on pooled-size inputs)."""
    model = MaskRCNN(cfg_model, num_classes)
    dtype = model.compute_dtype
    features = model.features(tf.zeros([1, 64, 64, 3], dtype))
    model.rpn.head(features)
    channels = cfg_model.fpn_channels
    model.roi_heads.box_predictor(model.roi_heads.box_head(tf.zeros([1, cfg_model.box_pool_size, cfg_model.box_pool_size,
                                                                      channels], dtype)))
    model.roi_heads.mask_predictor(model.roi_heads.mask_head(tf.zeros([1, cfg_model.mask_pool_size,
                                                                       cfg_model.mask_pool_size, channels], dtype)))
    return model
