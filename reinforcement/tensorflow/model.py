"""The Minigo dual network in Keras 3: the mirror of pytorch/model.py, layer for layer and name for name.

MLPerf v0.5 Minigo reference (mlcommons/training, reinforcement/tensorflow/minigo/dual_net.py
model_fn), which is TensorFlow itself: channels-last planes (B, N, N, 17), a 3x3 convolution to k
filters with batch norm and ReLU, `blocks` residual blocks, a policy head (1x1 conv to 2 planes,
BN without centre/scale, ReLU, dense to N*N+1 logits) and a value head (1x1 conv to 1 plane, BN,
ReLU, dense fc_width, ReLU, dense 1, tanh). Convolutions keep their bias, BN momentum 0.997,
epsilon 1e-5, and the moving variance takes the unbiased batch variance, as TF 1's fused batch
norm (and PyTorch) do; Keras 3 would take the biased one.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from reinforcement.features import PLANES
from reinforcement.weights import initial_weights

BN_MOMENTUM = 0.997
BN_EPSILON = 1e-5


class BatchNorm(keras.layers.BatchNormalization):
    """Keras batch norm with the reference's moving-variance update (Bessel-corrected batch variance)."""

    def __init__(self, center: bool = True, scale: bool = True, **kwargs):
        super().__init__(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, center=center, scale=scale, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable):
            return super().call(inputs, training=False)
        x = ops.cast(inputs, "float32" if inputs.dtype in ("float16", "bfloat16") else inputs.dtype)
        mean, variance = ops.moments(x, axes=[0, 1, 2])
        count = ops.cast(ops.prod(ops.shape(x)[:-1]), x.dtype)
        momentum = float(self.momentum)  # a Python float: a float32 constant would round 0.997 (-7e-6 relative)
        self.moving_mean.assign(ops.cast(self.moving_mean * momentum + mean * (1 - momentum), self.moving_mean.dtype))
        unbiased = variance * count / (count - 1)
        self.moving_variance.assign(ops.cast(self.moving_variance * momentum + unbiased * (1 - momentum),
                                             self.moving_variance.dtype))
        outputs = ops.batch_normalization(x, mean, variance, axis=-1,
                                          offset=ops.cast(self.beta, x.dtype) if self.center else None,
                                          scale=ops.cast(self.gamma, x.dtype) if self.scale else None,
                                          epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)


def _conv(filters: int, kernel: int, name: str, dtype) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(filters, kernel, padding="same", name=name, dtype=dtype)


class ResidualBlock(keras.layers.Layer):
    def __init__(self, filters: int, dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.conv1 = _conv(filters, 3, "conv1", dtype)
        self.bn1 = BatchNorm(name="bn1", dtype=dtype)
        self.conv2 = _conv(filters, 3, "conv2", dtype)
        self.bn2 = BatchNorm(name="bn2", dtype=dtype)

    def call(self, x, training=False):
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        return ops.relu(x + self.bn2(self.conv2(y), training=training))


class DualNet(keras.Model):
    """(B, N, N, 17) planes -> (policy logits (B, N*N+1), value (B,) in [-1, 1], black's view)."""

    def __init__(self, board_size: int = 9, filters: int = 32, blocks: int = 9, fc_width: int = 64, dtype=None):
        super().__init__(name="dual_net", dtype=dtype)
        self.board_size = board_size
        points = board_size * board_size
        self.conv_in = _conv(filters, 3, "conv_in", dtype)
        self.bn_in = BatchNorm(name="bn_in", dtype=dtype)
        # a Sequential, not a Python list: tf.train.Checkpoint (harness.tf_runtime) does not follow a
        # Keras 3 model's list attributes, and would miss the blocks' batch norm statistics
        self.tower = keras.Sequential([ResidualBlock(filters, dtype=dtype, name=f"tower_{index}")
                                       for index in range(blocks)], name="tower")
        self.policy_conv = _conv(2, 1, "policy_conv", dtype)
        self.policy_bn = BatchNorm(center=False, scale=False, name="policy_bn", dtype=dtype)
        self.policy_fc = keras.layers.Dense(points + 1, name="policy_fc", dtype=dtype)
        self.value_conv = _conv(1, 1, "value_conv", dtype)
        self.value_bn = BatchNorm(center=False, scale=False, name="value_bn", dtype=dtype)
        self.value_fc1 = keras.layers.Dense(fc_width, name="value_fc1", dtype=dtype)
        self.value_fc2 = keras.layers.Dense(1, name="value_fc2", dtype=dtype)
        self.build((None, board_size, board_size, PLANES))

    def build(self, input_shape):
        super().build(input_shape)
        self.call(keras.KerasTensor(input_shape, dtype=self.dtype or "float32"))

    def call(self, planes, training=False):
        x = ops.relu(self.bn_in(self.conv_in(planes), training=training))
        x = self.tower(x, training=training)
        points = self.board_size * self.board_size
        policy = ops.relu(self.policy_bn(self.policy_conv(x), training=training))
        logits = self.policy_fc(ops.reshape(policy, (-1, 2 * points)))
        value = ops.relu(self.value_bn(self.value_conv(x), training=training))
        value = ops.relu(self.value_fc1(ops.reshape(value, (-1, points))))
        return logits, ops.tanh(ops.squeeze(self.value_fc2(value), axis=-1))

    def layers_by_torch_name(self) -> dict[str, keras.layers.Layer]:
        """Each layer under its PyTorch module name (weights.py), for the converter."""
        named = {"conv_in": self.conv_in, "bn_in": self.bn_in}
        for index, block in enumerate(self.tower.layers):
            for part in ("conv1", "bn1", "conv2", "bn2"):
                named[f"tower.{index}.{part}"] = getattr(block, part)
        for name in ("policy_conv", "policy_bn", "policy_fc", "value_conv", "value_bn", "value_fc1", "value_fc2"):
            named[name] = getattr(self, name)
        return named


def build_model(board_size: int, filters: int, blocks: int, fc_width: int, seed: int, dtype=None) -> DualNet:
    """The network with the shared initial weights of `seed` (weights.py)."""
    from reinforcement.tensorflow.convert import load_torch_weights

    model = DualNet(board_size, filters, blocks, fc_width, dtype=dtype)
    load_torch_weights(model, initial_weights(board_size, filters, blocks, fc_width, seed))
    return model


def to_channels_last(planes) -> tf.Tensor:
    """(B, 17, N, N) uint8 planes (features.py) -> (B, N, N, 17) float32."""
    return tf.cast(tf.transpose(planes, (0, 2, 3, 1)), tf.float32)


def make_evaluate(model: DualNet):
    """The search's `evaluate(planes) -> (policies, values)`: inference mode, softmax on the logits."""
    size = model.board_size

    @tf.function(input_signature=[tf.TensorSpec([None, PLANES, size, size], tf.uint8)], reduce_retracing=True)
    def forward(planes):
        logits, values = model(to_channels_last(planes), training=False)
        return tf.nn.softmax(tf.cast(logits, tf.float32)), tf.cast(values, tf.float32)

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        policies, values = forward(tf.convert_to_tensor(planes))
        return policies.numpy(), values.numpy()

    return evaluate


def evaluator_from_weights(board_size: int, filters: int, blocks: int, fc_width: int, weights: dict[str, np.ndarray]):
    """A worker's evaluate function from a weights file's arrays (PyTorch names; workers.py)."""
    from reinforcement.tensorflow.convert import load_torch_weights

    model = DualNet(board_size, filters, blocks, fc_width)
    load_torch_weights(model, weights)
    return make_evaluate(model)


def configure_worker_threads(threads: int) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
