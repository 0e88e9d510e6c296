"""Keras 3 optimizers that apply PyTorch's update rules, so both frameworks of a benchmark train alike.

`TorchSGD`: `torch.optim.SGD`'s update (dampening 0), L2 weight decay coupled into the gradient:

    g += wd * w;  buf = momentum * buf + g;  w -= lr * (g + momentum * buf if nesterov else buf)

Keras' own SGD folds the learning rate into the velocity (v = momentum * v - lr * g), which differs
from PyTorch whenever the rate changes (warmup, step or polynomial decay). `no_wd_on_bn_bias`
exempts the 1-D variables (BatchNorm gamma/beta, biases) from weight decay, as the ResNet
reference's skip list does (Goyal et al. 2017); the detection references decay every parameter.
`bias_lr_factor` and `bias_weight_decay` give biases (variables named `bias`, and BatchNorm's
`beta`, PyTorch's BatchNorm bias) their own rate factor and decay, as Detectron-style references
put them in their own parameter groups (Mask R-CNN: SOLVER.BIAS_LR_FACTOR 2, WEIGHT_DECAY_BIAS 0).
The learning rate is set from Python each step (`optimizer.learning_rate = lr`) from the
benchmark's schedule. Used by image_classification (with its LARS) and object_detection.

`TorchAdam`: `torch.optim.Adam`'s update, epsilon added to the bias-corrected sqrt(v_t):

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

where Keras (and TF1's Adam) add epsilon before the correction, an epsilon sqrt(1 - b2^t) times
smaller in the first steps. Gradients must be dense (Keras squares an IndexedSlices' values before
summing duplicate rows): densify embedding gradients before `apply_gradients`. The learning rate is
set from Python each step (`optimizer.learning_rate.assign(lr)`) from the benchmark's schedule; Keras
keeps it in a float32 variable, so a float64 run takes the float32-rounded rate (exact for rates
such as 2^-k).

The hyperparameters are Python floats, turned into constants of the variable's dtype directly:
`tf.cast(0.9, tf.float64)` goes through a float32 tensor (0.8999999761...), which is what Keras'
own Adam does, and made a float64 run differ from torch.optim.Adam by ~1e-7 relative.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def is_bias(variable) -> bool:
    """A PyTorch `bias` parameter: a Keras `bias`, or a BatchNorm `beta`. Inside a tf.function the
    optimizer sees the backing tf.Variable, named by its layer path ("dense/bias:0"): the last part counts."""
    return variable.name.split(":")[0].rsplit("/", 1)[-1] in ("bias", "beta")


def decays(variable, no_wd_on_bn_bias: bool) -> bool:
    """Weight decay for this variable? Not for 1-D ones (BN, bias) if they are excluded."""
    return not (no_wd_on_bn_bias and len(variable.shape) <= 1)


class TorchSGD(keras.optimizers.Optimizer):
    """torch.optim.SGD(lr, momentum, dampening=0, weight_decay, nesterov) as a Keras optimizer."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, no_wd_on_bn_bias: bool = False, bias_lr_factor: float = 1.0,
                 bias_weight_decay: float | None = None, name: str = "torch_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        self.l2 = weight_decay  # not Keras' `weight_decay`, which is decoupled (AdamW-style)
        self.nesterov = nesterov
        self.no_wd_on_bn_bias = no_wd_on_bn_bias
        self.bias_lr_factor = bias_lr_factor
        self.bias_weight_decay = bias_weight_decay

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        l2 = self.l2
        if is_bias(variable):
            if self.bias_lr_factor != 1.0:
                learning_rate = learning_rate * self.bias_lr_factor
            if self.bias_weight_decay is not None:
                l2 = self.bias_weight_decay
        if l2 and decays(variable, self.no_wd_on_bn_bias):
            gradient = gradient + l2 * variable
        buffer = self.momentums[self._get_variable_index(variable)]
        # torch starts the buffer at the first gradient; a zero buffer times momentum is the same
        self.assign(buffer, buffer * self.momentum + gradient)
        step = gradient + self.momentum * buffer if self.nesterov else buffer
        self.assign_sub(variable, learning_rate * step)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "l2": self.l2, "nesterov": self.nesterov,
                "no_wd_on_bn_bias": self.no_wd_on_bn_bias, "bias_lr_factor": self.bias_lr_factor,
                "bias_weight_decay": self.bias_weight_decay}


def _constant(value, dtype) -> tf.Tensor:
    """`value` in `dtype`, without the float32 detour `tf.cast` takes for a Python float."""
    return tf.cast(value, dtype) if tf.is_tensor(value) else tf.constant(value, dtype)


class TorchAdam(keras.optimizers.Adam):
    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = _constant(self.beta_1, dtype), _constant(self.beta_2, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        gradient = tf.cast(gradient, dtype)
        self.assign_add(m, (gradient - m) * (1 - beta_1))
        self.assign_add(v, (tf.square(gradient) - v) * (1 - beta_2))
        denominator = tf.sqrt(v) / tf.sqrt(1 - tf.pow(beta_2, step)) + _constant(self.epsilon, dtype)
        self.assign_sub(variable, tf.cast(learning_rate, dtype) / (1 - tf.pow(beta_1, step)) * m / denominator)
