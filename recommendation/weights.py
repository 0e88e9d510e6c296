"""NeuMF's initial weights in NumPy, drawn from the seed: the same numbers in both frameworks.

Both `pytorch/model.py` and `tensorflow/model.py` start from `initial_weights(...)`, so two runs with
the same seed begin from identical parameters and see identical samples (sampling.py): their
HR@10 curves then differ only by floating-point rounding, which is what the cross-framework
comparison measures. The arrays use the PyTorch `state_dict` names and layouts (nn.Linear weight
is (out, in)); the TensorFlow side maps them one to one (its weight converter).

Distributions are the MLPerf reference's (mlcommons/training recommendation/pytorch/neumf.py):
embeddings N(0, 0.01); MLP kernels Glorot uniform; the final layer LeCun uniform; biases as
PyTorch's nn.Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which the reference keeps.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

_INIT_STREAM = 0x4E434649  # "NCFI": independent of the sampling streams under the same seed


def weight_shapes(n_users: int, n_items: int, factors: int,
                  mlp_layer_sizes: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Parameter names (PyTorch state_dict keys) and shapes of NeuMF, in model order."""
    if len(mlp_layer_sizes) < 1 or mlp_layer_sizes[0] % 2:
        raise ValueError(f"mlp_layer_sizes {mlp_layer_sizes}: the first size is the concatenated "
                         "user+item MLP embedding and must be even")
    half = mlp_layer_sizes[0] // 2
    shapes = {
        "mf_user_embed.weight": (n_users, factors),
        "mf_item_embed.weight": (n_items, factors),
        "mlp_user_embed.weight": (n_users, half),
        "mlp_item_embed.weight": (n_items, half),
    }
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(mlp_layer_sizes)):
        shapes[f"mlp.{index}.weight"] = (fan_out, fan_in)
        shapes[f"mlp.{index}.bias"] = (fan_out,)
    shapes["final.weight"] = (1, mlp_layer_sizes[-1] + factors)
    shapes["final.bias"] = (1,)
    return shapes


def initial_weights(n_users: int, n_items: int, factors: int, mlp_layer_sizes: tuple[int, ...],
                    seed: int) -> dict[str, np.ndarray]:
    """float32 arrays for every parameter, a function of the arguments only."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([_INIT_STREAM, int(seed)])))
    weights: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(n_users, n_items, factors, tuple(mlp_layer_sizes)).items():
        if name.endswith("embed.weight"):
            value = rng.normal(0.0, 0.01, size=shape)
        elif name == "final.weight":
            limit = math.sqrt(3.0 / shape[1])  # LeCun uniform
            value = rng.uniform(-limit, limit, size=shape)
        elif name.endswith(".weight"):
            limit = math.sqrt(6.0 / (shape[0] + shape[1]))  # Glorot uniform
            value = rng.uniform(-limit, limit, size=shape)
        else:
            fan_in = weights[name.replace(".bias", ".weight")].shape[1]
            bound = 1.0 / math.sqrt(fan_in)
            value = rng.uniform(-bound, bound, size=shape)
        weights[name] = value.astype(np.float32)
    return weights
