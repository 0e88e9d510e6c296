"""harness.tf_optimizers.TorchAdam takes torch.optim.Adam's steps: compared in float64, where both
frameworks' arithmetic is exact to rounding, on gradients spanning six decades (so epsilon and the
bias corrections matter) and a learning rate that changes every step."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import torch

from harness.tf_optimizers import TorchAdam


def test_torch_adam_steps_equal_torch_optim_adam_in_float64():
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(40, 6))
    gradients = [rng.normal(size=(40, 6)) * 10.0 ** rng.uniform(-6, 0, size=(40, 6)) for _ in range(6)]
    # Keras keeps the learning rate in a float32 variable: rates exact in float32, so both sides use the same
    rates = [float(np.float32(rate)) for rate in rng.uniform(1e-3, 1e-1, size=6)]
    betas, epsilon = (0.9, 0.997), 1e-6

    weight = torch.nn.Parameter(torch.tensor(initial))
    reference = torch.optim.Adam([weight], lr=1.0, betas=betas, eps=epsilon)
    variable = tf.Variable(initial)
    ours = TorchAdam(learning_rate=0.0, beta_1=betas[0], beta_2=betas[1], epsilon=epsilon)
    ours.build([variable])
    for gradient, rate in zip(gradients, rates):
        reference.param_groups[0]["lr"] = rate
        weight.grad = torch.tensor(gradient)
        reference.step()
        ours.learning_rate.assign(rate)
        ours.apply_gradients([(tf.constant(gradient), variable)])

    expected = weight.detach().numpy()
    moved = np.abs(expected - initial).max()
    assert moved > 1e-2  # it trained
    # float64 rounding of six steps (measured ~1e-15); a float32 rounding anywhere (a hyperparameter
    # cast through float32 once made it 1e-7) is far outside
    assert np.abs(variable.numpy() - expected).max() <= 1e-12 * moved
