"""DeepSpeech2 in Keras 3, layer for layer the PyTorch model (pytorch/model.py; same names and order).

The input is (N, 161 bins, frames, 1), channels last (TensorFlow's CPU convolutions are NHWC only);
before the GRUs the features are laid out channel-major (channel x bin), as PyTorch's view(N, C*F, T),
so the first GRU's input weights map one to one. Keras layers are set to PyTorch's conventions:
batch norm momentum 0.1 (Keras: 0.9) and epsilon 1e-5, GRU with `reset_after=True` (PyTorch's
r * (W_hn h + b_hn)) and separate input and recurrent biases, initializers drawing from PyTorch's
default distributions (uniform +-1/sqrt(fan_in) for convolutions and the output layer, +-1/sqrt(hidden)
for the GRUs). convert.py maps weights both ways (the GRU gate order differs: PyTorch r, z, n; Keras z, r, h).

Batch norm keeps one difference: PyTorch's running variance uses the unbiased batch variance, Keras
the biased one, a factor n / (n - 1) with n = batch x frames (x bins for the convolutions), so
1 + 1e-4 or less for any real batch; training-mode outputs are the same.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from speech_recognition.architecture import CONV1_KERNEL, CONV1_STRIDE, CONV2_KERNEL, CONV2_STRIDE, HARDTANH_MAX
from speech_recognition.features import NUM_BINS
from speech_recognition.text import NUM_CLASSES

BN_MOMENTUM = 0.9  # Keras' decay of the running statistics = 1 - PyTorch's momentum 0.1
BN_EPSILON = 1e-5


def _uniform(bound: float, seed) -> keras.initializers.Initializer:
    return keras.initializers.RandomUniform(-bound, bound, seed=seed)


class DeepSpeech2(keras.Model):
    def __init__(self, conv_channels: int = 32, rnn_hidden_size: int = 2560, rnn_layers: int = 3,
                 num_classes: int = NUM_CLASSES, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        seeds = keras.random.SeedGenerator(seed) if seed is not None else None

        def conv(name, channels_in, kernel, stride):
            bound = 1.0 / math.sqrt(channels_in * kernel[0] * kernel[1])
            return keras.layers.Conv2D(conv_channels, kernel, strides=stride, padding="valid", name=name,
                                       kernel_initializer=_uniform(bound, seeds), bias_initializer=_uniform(bound, seeds))

        self.conv1 = conv("conv1", 1, CONV1_KERNEL, CONV1_STRIDE)
        self.conv1_bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="conv1_bn")
        self.conv2 = conv("conv2", conv_channels, CONV2_KERNEL, CONV2_STRIDE)
        self.conv2_bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="conv2_bn")
        gru_bound = 1.0 / math.sqrt(rnn_hidden_size)
        self.rnns = [keras.layers.GRU(rnn_hidden_size, return_sequences=True, reset_after=True, use_bias=True,
                                      kernel_initializer=_uniform(gru_bound, seeds),
                                      recurrent_initializer=_uniform(gru_bound, seeds),
                                      bias_initializer=_uniform(gru_bound, seeds), name=f"rnns_{index}")
                     for index in range(rnn_layers)]
        self.fc_bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="fc_bn")
        self.fc = keras.layers.Dense(num_classes, use_bias=False, name="fc",
                                     kernel_initializer=_uniform(1.0 / math.sqrt(rnn_hidden_size), seeds))
        self.conv_channels = conv_channels

    def call(self, spectrograms, training=False):
        """(N, 161, frames, 1) -> logits (N, output frames, 29)."""
        x = tf.clip_by_value(self.conv1_bn(self.conv1(spectrograms), training=training), 0.0, HARDTANH_MAX)
        x = tf.clip_by_value(self.conv2_bn(self.conv2(x), training=training), 0.0, HARDTANH_MAX)
        shape = tf.shape(x)  # (N, bins, frames, channels)
        x = tf.transpose(x, [0, 2, 3, 1])  # (N, frames, channels, bins): channel-major features
        x = tf.reshape(x, [shape[0], shape[2], self.conv_channels * x.shape[-1]])
        for rnn in self.rnns:
            x = rnn(x, training=training)
        return self.fc(self.fc_bn(x, training=training))


def build_model(cfg_model, seed: int | None = None) -> DeepSpeech2:
    """The configured network with its weights created (a dummy forward pass on 31 frames)."""
    if cfg_model.rnn_type != "gru" or cfg_model.rnn_bidirectional:
        from harness.errors import ConfigError

        raise ConfigError(f"model: the v0.5 DeepSpeech2 has unidirectional GRUs (rnn_type={cfg_model.rnn_type}, "
                          f"rnn_bidirectional={cfg_model.rnn_bidirectional})")
    model = DeepSpeech2(cfg_model.conv_channels, cfg_model.rnn_hidden_size, cfg_model.rnn_layers, seed=seed)
    model(tf.zeros([1, NUM_BINS, 31, 1]))
    return model


def parameter_count(model: keras.Model) -> int:
    return sum(int(tf.size(weight)) for weight in model.trainable_weights)
