"""The dual network's parameters by name and shape, and its initial values in NumPy from a seed.

Both frameworks start from `initial_weights(...)` (PyTorch `state_dict` names and layouts; the
TensorFlow side maps them one to one, tensorflow/convert.py), so two runs with the same seed begin
from identical networks. Initialisers are the reference's (mlcommons/training v0.5 dual_net.py,
TF 1 `tf.layers` defaults): Glorot uniform kernels, zero biases, batch norm gamma 1 and beta 0,
moving mean 0 and variance 1.

Layer names (the same in both frameworks, in forward order):
    conv_in, bn_in                                   3x3 convolution of the 17 input planes
    tower.{i}.conv1, tower.{i}.bn1, tower.{i}.conv2, tower.{i}.bn2    residual blocks
    policy_conv, policy_bn, policy_fc                1x1 conv to 2 planes, dense to N*N+1 logits
    value_conv, value_bn, value_fc1, value_fc2       1x1 conv to 1 plane, dense fc_width, dense 1
"""

from __future__ import annotations

import numpy as np

from reinforcement.features import PLANES

_INIT_STREAM = 0x4D474F49  # "MGOI": independent of the self-play streams under the same seed


def weight_shapes(board_size: int, filters: int, blocks: int, fc_width: int) -> dict[str, tuple[int, ...]]:
    """PyTorch state_dict names and shapes, in forward order (batch norm buffers included)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cin: int, cout: int, kernel: int) -> None:
        shapes[f"{name}.weight"] = (cout, cin, kernel, kernel)
        shapes[f"{name}.bias"] = (cout,)

    def bn(name: str, channels: int, affine: bool = True) -> None:
        if affine:
            shapes[f"{name}.weight"] = (channels,)
            shapes[f"{name}.bias"] = (channels,)
        shapes[f"{name}.running_mean"] = (channels,)
        shapes[f"{name}.running_var"] = (channels,)

    def dense(name: str, fan_in: int, fan_out: int) -> None:
        shapes[f"{name}.weight"] = (fan_out, fan_in)
        shapes[f"{name}.bias"] = (fan_out,)

    points = board_size * board_size
    conv("conv_in", PLANES, filters, 3)
    bn("bn_in", filters)
    for index in range(blocks):
        conv(f"tower.{index}.conv1", filters, filters, 3)
        bn(f"tower.{index}.bn1", filters)
        conv(f"tower.{index}.conv2", filters, filters, 3)
        bn(f"tower.{index}.bn2", filters)
    # the heads' batch norms have neither centre nor scale (reference: center=False, scale=False)
    conv("policy_conv", filters, 2, 1)
    bn("policy_bn", 2, affine=False)
    dense("policy_fc", 2 * points, points + 1)
    conv("value_conv", filters, 1, 1)
    bn("value_bn", 1, affine=False)
    dense("value_fc1", points, fc_width)
    dense("value_fc2", fc_width, 1)
    return shapes


def is_buffer(name: str) -> bool:
    return name.endswith(("running_mean", "running_var"))


def trainable_count(board_size: int, filters: int, blocks: int, fc_width: int) -> int:
    return sum(int(np.prod(shape)) for name, shape in weight_shapes(board_size, filters, blocks, fc_width).items()
               if not is_buffer(name))


def initial_weights(board_size: int, filters: int, blocks: int, fc_width: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([_INIT_STREAM, seed])
    weights = {}
    for name, shape in weight_shapes(board_size, filters, blocks, fc_width).items():
        kind = name.rsplit(".", 1)[1]
        is_bn = "bn" in name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
        if kind == "running_var" or (kind == "weight" and is_bn):
            weights[name] = np.ones(shape, np.float32)
        elif kind in ("bias", "running_mean"):
            weights[name] = np.zeros(shape, np.float32)
        else:  # conv or dense kernel: Glorot uniform, fans as TF computes them (receptive field included)
            receptive = int(np.prod(shape[2:])) if len(shape) == 4 else 1
            fan_out, fan_in = shape[0] * receptive, shape[1] * receptive
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            weights[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
    return weights
