"""Keras 3 optimizers that apply PyTorch's update rules, so both frameworks of a benchmark train alike.

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
