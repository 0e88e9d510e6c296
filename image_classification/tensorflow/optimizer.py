"""The two optimizers the ResNet rules allow, as Keras 3 optimizers with `../pytorch/optimizer.py`'s rules.

- SGD: `harness.tf_optimizers.TorchSGD`, PyTorch's `torch.optim.SGD` update (what
  `../pytorch/train.py` runs), with L2 weight decay coupled into the gradient. Keras' own SGD folds
  the learning rate into the velocity, which differs from PyTorch whenever the learning rate
  changes, i.e. every step of warmup and polynomial decay; that class keeps both frameworks on one
  rule (it is shared with object_detection).
- `Lars`: layer-wise adaptive rate scaling (You et al. 2017, "Large Batch Training of
  Convolutional Networks"), as the MLPerf reference's `lars_optimizer.py` (mlcommons/training
  image_classification/tensorflow2) computes it: trust = eta * ||w|| / (||g|| + wd * ||w|| + eps)
  (1 where either norm is 0); v = momentum * v + lr * trust * (g + wd * w); w -= v.

`no_wd_on_bn_bias`: BatchNorm gamma/beta and biases (the 1-D variables) get neither weight decay
nor LARS scaling, as in the reference's skip list (`batch_normalization`, `bias`) and Goyal et al.
2017. The learning rate is set from Python every step (`optimizer.learning_rate = schedule(step)`)
with the one schedule both frameworks share (`image_classification.config.LearningRateSchedule`).

Gradients arrive all-reduced (summed over replicas of a per-replica loss that is already divided by
the global batch), so the update runs once on the mean gradient under any strategy.
"""

from __future__ import annotations

import keras
from keras import ops

from harness.errors import ConfigError
from harness.tf_optimizers import TorchSGD, decays
from image_classification.config import Optimizer


class Lars(keras.optimizers.Optimizer):
    """LARS with momentum, the MLPerf reference's update (see the module docstring)."""

    def __init__(self, learning_rate: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4,
                 eta: float = 0.001, epsilon: float = 0.0, no_wd_on_bn_bias: bool = True,
                 name: str = "lars", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        self.l2 = weight_decay
        self.eta = eta
        self.epsilon = epsilon
        self.no_wd_on_bn_bias = no_wd_on_bn_bias

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        scaled_lr = learning_rate
        if decays(variable, self.no_wd_on_bn_bias):
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            g_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            trust = ops.where(w_norm > 0, ops.where(
                g_norm > 0, self.eta * w_norm / (g_norm + self.l2 * w_norm + self.epsilon), 1.0), 1.0)
            scaled_lr = learning_rate * trust
            gradient = gradient + self.l2 * variable
        velocity = self.momentums[self._get_variable_index(variable)]
        self.assign(velocity, velocity * self.momentum + scaled_lr * gradient)
        self.assign_sub(variable, velocity)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "l2": self.l2, "eta": self.eta,
                "epsilon": self.epsilon, "no_wd_on_bn_bias": self.no_wd_on_bn_bias}


def build_optimizer(opt: Optimizer, peak_lr: float) -> keras.optimizers.Optimizer:
    """The optimizer of the config; the training loop sets its learning rate every step."""
    if opt.name == "sgd":
        return TorchSGD(peak_lr, momentum=opt.momentum, weight_decay=opt.weight_decay, nesterov=opt.nesterov,
                        no_wd_on_bn_bias=opt.no_wd_on_bn_bias, name="sgd")
    if opt.name == "lars":
        if opt.nesterov:
            raise ConfigError("optimizer.nesterov=true: LARS has no Nesterov variant (nor does the reference)")
        return Lars(peak_lr, momentum=opt.momentum, weight_decay=opt.weight_decay, eta=opt.lars_eta,
                    epsilon=opt.lars_epsilon, no_wd_on_bn_bias=opt.no_wd_on_bn_bias)
    raise ConfigError(f"optimizer.name={opt.name!r}: expected 'sgd' or 'lars'")
