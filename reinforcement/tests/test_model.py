"""The dual network in both frameworks: the reference's sizes, the same numbers before and after
conversion, and the same training steps (float64, through each framework's own train_one_generation)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

from harness.runner import load_benchmark_config
from harness.torch_runtime import TorchRuntime
from reinforcement import loop
from reinforcement.pytorch import model as torch_model
from reinforcement.pytorch import train as torch_train
from reinforcement.tensorflow import convert
from reinforcement.tensorflow import model as keras_model
from reinforcement.tensorflow import train as keras_train
from reinforcement.weights import initial_weights, trainable_count, weight_shapes
from reinforcement.window import ReplayWindow

pytestmark = pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps (.ci/run)

REFERENCE = (9, 32, 9, 64)  # board, filters (the power of two nearest 81/3), blocks (N), fc width (2k)
CPU = TorchRuntime(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), amp_dtype=None)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planes(count: int, seed: int, size: int = 9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stones = rng.random((count, 16, size, size)) < 0.3
    to_play = np.broadcast_to((rng.random((count, 1, 1, 1)) < 0.5), (count, 1, size, size))
    return np.concatenate([stones, to_play], axis=1).astype(np.uint8)


def test_reference_sizes_and_parameter_count():
    """191,386 trainable parameters on 9x9 (README), the same in both frameworks and by the formula."""
    assert trainable_count(*REFERENCE) == 191_386
    torch_net = torch_model.DualNet(*REFERENCE)
    assert sum(p.numel() for p in torch_net.parameters()) == 191_386
    keras_net = keras_model.DualNet(*REFERENCE)
    assert sum(int(np.prod(v.shape)) for v in keras_net.trainable_variables) == 191_386
    assert {n: tuple(v.shape) for n, v in torch_net.state_dict().items() if "num_batches" not in n} == \
        weight_shapes(*REFERENCE)
    # the heads: 2 planes -> 82 logits, 1 plane -> 64 -> 1
    assert torch_net.policy_fc.weight.shape == (82, 162) and torch_net.value_fc1.weight.shape == (64, 81)
    # the smoke's network (configs/smoke.yaml: 5x5, 16 filters, 2 blocks, fc width 32): 14,146 (README)
    smoke = (5, 16, 2, 32)
    assert trainable_count(*smoke) == 14_146 == sum(p.numel() for p in torch_model.DualNet(*smoke).parameters())
    assert sum(int(np.prod(v.shape)) for v in keras_model.DualNet(*smoke).trainable_variables) == 14_146


def test_initial_weights_are_glorot_uniform_with_zero_biases():
    weights = initial_weights(*REFERENCE, seed=3)
    limit = np.sqrt(6 / (32 * 9 + 32 * 9))  # a 3x3 conv, 32 -> 32: fan in = fan out = 288
    kernel = weights["tower.0.conv1.weight"]
    assert 0.95 * limit < np.abs(kernel).max() <= limit and abs(kernel.mean()) < 0.01 * limit
    assert not weights["tower.0.conv1.bias"].any() and (weights["bn_in.weight"] == 1).all()
    assert not np.array_equal(initial_weights(*REFERENCE, seed=4)["conv_in.weight"], weights["conv_in.weight"])


def test_forward_parity_after_conversion_float64_and_float32():
    weights = initial_weights(*REFERENCE, seed=1)
    rng = np.random.default_rng(0)
    for name in weights:  # non-trivial batch norm statistics too
        if name.endswith(("running_mean", "bias")):
            weights[name] = rng.normal(0, 0.1, weights[name].shape).astype(np.float32)
        if name.endswith("running_var"):
            weights[name] = rng.uniform(0.5, 2, weights[name].shape).astype(np.float32)
    batch = planes(16, 1)
    for dtype, bound in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        net = torch_model.DualNet(*REFERENCE).to(dtype)
        torch_model.load_numpy(net, weights)
        net.eval()
        with torch.no_grad():
            torch_logits, torch_value = net(torch.from_numpy(batch).to(dtype))
        keras_net = keras_model.DualNet(*REFERENCE, dtype="float64" if dtype == torch.float64 else "float32")
        convert.load_torch_weights(keras_net, weights)
        keras_logits, keras_value = keras_net(keras_model.to_channels_last(batch) if dtype == torch.float32
                                              else tf.cast(tf.transpose(batch, (0, 2, 3, 1)), tf.float64), training=False)
        scale = float(torch_logits.abs().max())
        assert np.abs(np.asarray(keras_logits) - torch_logits.numpy()).max() <= bound * max(1.0, scale)
        assert np.abs(np.asarray(keras_value) - torch_value.numpy()).max() <= bound
    # and back: Keras -> PyTorch names and layouts give the original arrays
    back = convert.torch_weights(keras_net)
    assert set(back) == set(weights) and all(np.array_equal(back[n], weights[n]) for n in weights)


def small_config(*overrides: str):
    return load_benchmark_config("reinforcement", "smoke", ["model.filters=8", "model.blocks=1", "model.fc_width=16",
                                                            "train.batch_size=32", "train.examples_per_generation=96",
                                                            "run.progress=false", *overrides])


def filled_window(size: int = 9) -> ReplayWindow:
    from reinforcement.features import pack

    rng = np.random.default_rng(5)
    window = ReplayWindow(500, size)
    pi = rng.dirichlet(np.ones(size * size + 1), 300).astype(np.float32)
    window.add(pack(planes(300, 2, size)), pi, rng.choice([-1.0, 1.0], 300).astype(np.float32))
    return window


def test_training_steps_agree_between_frameworks_in_float64():
    """Three SGD steps (batch 32, the schedule crossing a learning-rate boundary) through each framework's
    train_one_generation: the same weights, batch norm statistics included, to 1e-9."""
    cfg = small_config("train.lr_boundaries=[1]", "train.lr_rates=[0.05,0.02]")
    weights = initial_weights(9, 8, 1, 16, seed=0)
    window = filled_window()

    net = torch_model.DualNet(9, 8, 1, 16).double()
    torch_model.load_numpy(net, weights)
    optimizer = torch_train.build_optimizer(cfg, net)
    step, _, _ = torch_train.train_one_generation(net, optimizer, window, cfg, loop.training_rng(1, 1), 0, CPU, 1)
    assert step == 3

    keras_net = keras_model.DualNet(9, 8, 1, 16, dtype="float64")
    convert.load_torch_weights(keras_net, weights)
    keras_optimizer = keras_train.build_optimizer(cfg, keras_net)
    keras_step = keras_train.make_train_step(keras_net, keras_optimizer, cfg.train.l2_strength)
    step, _, _ = keras_train.train_one_generation(keras_step, keras_optimizer, window, cfg, loop.training_rng(1, 1), 0, 1)
    assert step == 3

    trained_torch = {n: v.detach().numpy() for n, v in net.state_dict().items() if "num_batches" not in n}
    trained_keras = convert.torch_weights(keras_net)
    moved = 0.0
    for name, value in trained_torch.items():
        assert np.abs(trained_keras[name] - value).max() <= 1e-9 * max(1.0, np.abs(value).max()), name
        moved = max(moved, np.abs(value - weights[name]).max())
    assert moved > 1e-3  # the steps did change the weights


def test_keras_checkpoint_restores_every_weight(tmp_path):
    """harness.tf_runtime's checkpoint (tf.train.Checkpoint) holds every variable, the residual
    blocks' batch norm statistics included (Keras 3 list attributes would be skipped)."""
    from harness import tf_runtime

    weights = initial_weights(9, 8, 2, 16, seed=0)
    for name in weights:
        weights[name] = weights[name] + np.float32(0.5)  # every value unlike a fresh network's
    saved = keras_model.DualNet(9, 8, 2, 16)
    convert.load_torch_weights(saved, weights)
    tf_runtime.save_payload(tmp_path, model=saved)
    restored = keras_model.build_model(9, 8, 2, 16, seed=0)
    tf_runtime.load_payload(tmp_path, model=restored)
    back = convert.torch_weights(restored)
    assert all(np.array_equal(back[name], weights[name]) for name in weights)
