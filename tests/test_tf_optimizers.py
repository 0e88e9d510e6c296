"""harness.tf_optimizers: Keras optimizers that are PyTorch's update rules, step for step, compared in
float64, where both frameworks' arithmetic is exact to rounding."""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch

# isort: split
import numpy as np
import pytest
import tensorflow as tf

from harness.tf_optimizers import TorchAdam, TorchSGD


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


@pytest.mark.parametrize("nesterov, no_wd_on_bn_bias", [(False, False), (True, False), (False, True)])
def test_torch_sgd_is_torch_optim_sgd_under_a_changing_learning_rate(nesterov, no_wd_on_bn_bias):
    # float64 on both sides: the same arithmetic in the same order, so only rounding of the last
    # bit may differ (1e-12 relative); a rule that differs (Keras' lr folded into the velocity)
    # is off by percents after the first rate change. The rates are powers of two: Keras keeps the
    # learning rate in a float32 variable (unless floatx is float64), which holds those exactly.
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=generator, dtype=torch.float64, requires_grad=True)
    bias_decay = 0.0 if no_wd_on_bn_bias else 0.01
    torch_optimizer = torch.optim.SGD([{"params": [weight], "weight_decay": 0.01},
                                       {"params": [bias], "weight_decay": bias_decay}],
                                      lr=1.0, momentum=0.9, nesterov=nesterov)
    keras_weight, keras_bias = tf.Variable(weight.detach().numpy()), tf.Variable(bias.detach().numpy())
    keras_optimizer = TorchSGD(1.0, momentum=0.9, weight_decay=0.01, nesterov=nesterov,
                               no_wd_on_bn_bias=no_wd_on_bn_bias)
    for step, learning_rate in enumerate([0.125, 0.5, 0.25, 0.0625]):
        gradients = [torch.randn(4, 3, generator=generator, dtype=torch.float64),
                     torch.randn(3, generator=generator, dtype=torch.float64)]
        weight.grad, bias.grad = gradients
        for group in torch_optimizer.param_groups:
            group["lr"] = learning_rate
        torch_optimizer.step()
        keras_optimizer.learning_rate = learning_rate
        keras_optimizer.apply_gradients(zip([g.numpy() for g in gradients], [keras_weight, keras_bias]))
        np.testing.assert_allclose(keras_weight.numpy(), weight.detach().numpy(), rtol=1e-12, err_msg=step)
        np.testing.assert_allclose(keras_bias.numpy(), bias.detach().numpy(), rtol=1e-12, err_msg=step)


def test_torch_sgd_gives_biases_their_own_rate_and_decay():
    """Detectron-style groups (Mask R-CNN's make_optimizer): biases at 2x the rate without weight decay."""
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=generator, dtype=torch.float64, requires_grad=True)
    torch_optimizer = torch.optim.SGD([{"params": [weight], "weight_decay": 0.01, "factor": 1.0},
                                       {"params": [bias], "weight_decay": 0.0, "factor": 2.0}], lr=1.0, momentum=0.9)
    keras_weight = tf.Variable(weight.detach().numpy(), name="kernel")
    keras_bias = tf.Variable(bias.detach().numpy(), name="bias")
    keras_optimizer = TorchSGD(1.0, momentum=0.9, weight_decay=0.01, bias_lr_factor=2.0, bias_weight_decay=0.0)
    for step, learning_rate in enumerate([0.125, 0.5, 0.25]):
        gradients = [torch.randn(4, 3, generator=generator, dtype=torch.float64),
                     torch.randn(3, generator=generator, dtype=torch.float64)]
        weight.grad, bias.grad = gradients
        for group in torch_optimizer.param_groups:
            group["lr"] = learning_rate * group["factor"]
        torch_optimizer.step()
        keras_optimizer.learning_rate = learning_rate
        keras_optimizer.apply_gradients(zip([g.numpy() for g in gradients], [keras_weight, keras_bias]))
        np.testing.assert_allclose(keras_weight.numpy(), weight.detach().numpy(), rtol=1e-12, err_msg=step)
        np.testing.assert_allclose(keras_bias.numpy(), bias.detach().numpy(), rtol=1e-12, err_msg=step)
    assert not np.allclose(bias.detach().numpy(), weight.detach().numpy()[0])


def test_torch_sgd_finds_the_biases_of_keras_layers_inside_a_tf_function():
    """How the training steps run: Keras layers, apply_gradients in a tf.function, where the optimizer
    sees tf.Variables named by path ("dense/bias:0"). One step of lr 1 on a Dense of zeros on input 1:
    d(sum(x W + b))/db = 1, so the bias moves by bias_lr_factor x lr, the kernel by x (= 1) x lr."""
    import keras

    layer = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros")
    layer.build((None, 1))
    optimizer = TorchSGD(1.0, momentum=0.0, bias_lr_factor=2.0, bias_weight_decay=0.0)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(tf.ones((1, 1))))
        optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables), layer.trainable_variables))

    step()
    assert layer.kernel.numpy().item() == -1.0 and layer.bias.numpy().item() == -2.0
