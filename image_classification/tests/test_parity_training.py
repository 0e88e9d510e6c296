"""PyTorch and TensorFlow train alike: same weights + same batches -> same losses and updated weights.

Covers the loss (label smoothing), the learning-rate schedule, the optimizer update rules (torch SGD
incl. Nesterov, LARS), weight decay with and without BN/bias, and gradient accumulation.
"""

from __future__ import annotations

# torch (with torch._dynamo, which loads triton) before TensorFlow: see test_parity_model.py
import torch
import torch._dynamo

# isort: split
import numpy as np
import pytest
import tensorflow as tf

from image_classification.config import (
    Config,
    Data,
    Model,
    Optimizer,
    Schedule,
    learning_rate_schedule,
)
from image_classification.pytorch.model import build_model as build_torch
from image_classification.pytorch.optimizer import (
    build_optimizer as build_torch_optimizer,
)
from image_classification.tensorflow import convert
from image_classification.tensorflow.optimizer import (
    build_optimizer as build_keras_optimizer,
)
from image_classification.tensorflow.train import build_model as build_keras
from image_classification.tensorflow.train import make_train_step

STEPS, MICRO_BATCH, IMAGE = 3, 16, 32  # BN over fewer images turns float noise into chaos


def config(optimizer: Optimizer, accumulation: int) -> Config:
    return Config(model=Model(width=8, layers=(1, 1, 1, 1), num_classes=10),
                  data=Data(image_size=IMAGE, batch_size=MICRO_BATCH, gradient_accumulation_steps=accumulation),
                  optimizer=optimizer, schedule=Schedule(max_epochs=2, decay_epochs=2))


@pytest.mark.parametrize("optimizer,accumulation", [
    # the reference: SGD, no weight decay on BN/bias; with gradient accumulation
    (Optimizer(name="sgd", base_lr=0.05, base_lr_batch_size=0, warmup_epochs=1, weight_decay=1e-3), 2),
    (Optimizer(name="lars", base_lr=0.2, base_lr_batch_size=0, warmup_epochs=1, lars_eta=0.02,
               no_wd_on_bn_bias=False), 1),
])
def test_one_config_trains_the_same_in_both_frameworks(optimizer, accumulation):
    cfg = config(optimizer, accumulation)
    global_batch = MICRO_BATCH * accumulation
    schedule = learning_rate_schedule(cfg, global_batch, steps_per_epoch=2)  # warmup, then decay
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(STEPS * global_batch, 3, IMAGE, IMAGE, generator=generator)
    labels = torch.randint(0, 10, (STEPS * global_batch,), generator=generator)

    torch.manual_seed(0)
    torch_model = build_torch(10, (1, 1, 1, 1), 8, zero_init_residual=False)
    with torch.no_grad():  # non-zero gammas everywhere, so that every layer's update shows
        for module in torch_model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
    initial = {name: parameter.detach().clone() for name, parameter in torch_model.named_parameters()}
    keras_model = build_keras(cfg, 10)
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())

    # PyTorch: as ../pytorch/train.py steps (loss / accumulation per micro-batch, LambdaLR)
    torch_optimizer = build_torch_optimizer(cfg.optimizer, torch_model, schedule.peak)
    scheduler = torch.optim.lr_scheduler.LambdaLR(torch_optimizer, lambda step: schedule(step) / schedule.peak)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.optimizer.label_smoothing)
    torch_model.train()
    torch_losses = []
    for step in range(STEPS):
        total = 0.0
        for micro in range(accumulation):
            start = (step * accumulation + micro) * MICRO_BATCH
            loss = loss_fn(torch_model(images[start:start + MICRO_BATCH]), labels[start:start + MICRO_BATCH])
            (loss / accumulation).backward()
            total += loss.item() / accumulation
        torch_optimizer.step()
        torch_optimizer.zero_grad()
        scheduler.step()
        torch_losses.append(total)

    # TensorFlow: the train step of ../tensorflow/train.py under the default strategy
    keras_optimizer = build_keras_optimizer(cfg.optimizer, schedule.peak)
    train_step = make_train_step(cfg, tf.distribute.get_strategy(), keras_model, keras_optimizer, global_batch)
    batches = iter(tf.data.Dataset.from_tensor_slices(
        (images.permute(0, 2, 3, 1).numpy(), labels.numpy().astype(np.int32))).batch(global_batch))
    keras_losses = []
    for step in range(STEPS):
        keras_optimizer.learning_rate = schedule(step)
        keras_losses.append(float(train_step(batches)))

    np.testing.assert_allclose(keras_losses, torch_losses, rtol=1e-5)
    keras_state = convert.torch_state_dict(keras_model)
    for name, parameter in torch_model.named_parameters():
        theirs = parameter.detach().numpy()
        assert not torch.equal(parameter, initial[name]), name  # every parameter moved
        np.testing.assert_allclose(keras_state[name], theirs, atol=2e-5, rtol=1e-4, err_msg=name)



@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_is_torch_sgd_under_a_changing_learning_rate(nesterov):
    """Keras' own SGD folds the learning rate into the velocity; ours follows torch.optim.SGD."""
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(4, 3, generator=generator, requires_grad=True)
    bias = torch.randn(3, generator=generator, requires_grad=True)
    opt = Optimizer(name="sgd", nesterov=nesterov, weight_decay=0.01)
    torch_optimizer = torch.optim.SGD([{"params": [weight], "weight_decay": 0.01}, {"params": [bias], "weight_decay": 0.0}],
                                      lr=1.0, momentum=opt.momentum, nesterov=nesterov)
    keras_weight, keras_bias = tf.Variable(weight.detach().numpy()), tf.Variable(bias.detach().numpy())
    keras_optimizer = build_keras_optimizer(opt, 1.0)
    for step, learning_rate in enumerate([0.1, 0.4, 0.2, 0.05]):
        gradients = [torch.randn(4, 3, generator=generator), torch.randn(3, generator=generator)]
        weight.grad, bias.grad = gradients
        for group in torch_optimizer.param_groups:
            group["lr"] = learning_rate
        torch_optimizer.step()
        keras_optimizer.learning_rate = learning_rate
        keras_optimizer.apply_gradients(zip([g.numpy() for g in gradients], [keras_weight, keras_bias]))
        np.testing.assert_allclose(keras_weight.numpy(), weight.detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=step)
        np.testing.assert_allclose(keras_bias.numpy(), bias.detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=step)
