"""`torch.optim.SGD` as a Keras 3 optimizer: the update both detection references train with.

PyTorch's rule, with L2 weight decay coupled into the gradient on every variable (the SSD and
Mask R-CNN references pass all parameters, BN and biases included):
    g += wd * w;  buf = momentum * buf + g;  w -= lr * buf
Keras' own SGD folds the learning rate into the velocity (v = momentum * v - lr * g), which differs
from PyTorch whenever the rate changes (warmup, step decay). The training loop sets
`optimizer.learning_rate` from the shared schedule before each step. (image_classification's
optimizer.py holds the same rule with ResNet's no-decay-on-BN option.)
"""

from __future__ import annotations

import keras
from keras import ops


class TorchSGD(keras.optimizers.Optimizer):
    """torch.optim.SGD(lr, momentum, dampening=0, weight_decay, nesterov=False)."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
                 name: str = "torch_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        self.l2 = weight_decay  # not Keras' `weight_decay`, which is decoupled (AdamW-style)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2:
            gradient = gradient + self.l2 * variable
        buffer = self.momentums[self._get_variable_index(variable)]
        # torch starts the buffer at the first gradient; a zero buffer times momentum is the same
        self.assign(buffer, buffer * self.momentum + gradient)
        self.assign_sub(variable, learning_rate * buffer)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "l2": self.l2}
