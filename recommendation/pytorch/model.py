"""NeuMF in PyTorch (He et al. 2017, "Neural Collaborative Filtering", sec. 3.4), as the MLPerf
reference (mlcommons/training recommendation/pytorch/neumf.py).

    GMF tower: mf_user_embed(u) * mf_item_embed(i)                         (factors)
    MLP tower: relu(mlp[k](...relu(mlp[0]([mlp_user_embed(u), mlp_item_embed(i)]))))
    logit    : final([GMF, MLP])                                            (factors + last MLP size -> 1)

Parameter names, shapes and the concatenation order match tensorflow/model.py one to one; the
initial values come from recommendation/weights.py (the same numbers in both frameworks).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from recommendation.weights import initial_weights, weight_shapes


class NeuMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int, mlp_layer_sizes: tuple[int, ...]):
        super().__init__()
        shapes = weight_shapes(n_users, n_items, factors, tuple(mlp_layer_sizes))
        self.factors = factors
        self.mlp_layer_sizes = tuple(mlp_layer_sizes)
        self.mf_user_embed = nn.Embedding(n_users, factors)
        self.mf_item_embed = nn.Embedding(n_items, factors)
        self.mlp_user_embed = nn.Embedding(n_users, mlp_layer_sizes[0] // 2)
        self.mlp_item_embed = nn.Embedding(n_items, mlp_layer_sizes[0] // 2)
        self.mlp = nn.ModuleList(nn.Linear(fan_in, fan_out)
                                 for fan_in, fan_out in itertools.pairwise(mlp_layer_sizes))
        self.final = nn.Linear(mlp_layer_sizes[-1] + factors, 1)
        assert {name: tuple(p.shape) for name, p in self.named_parameters()} == shapes

    def load_numpy(self, weights: dict[str, np.ndarray]) -> None:
        """Copy arrays named as in the state_dict (weights.initial_weights, the converter) in place."""
        self.load_state_dict({name: torch.from_numpy(np.asarray(value)) for name, value in weights.items()})

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch,); the sigmoid is in the loss (BCE with logits) and not needed to rank."""
        gmf = self.mf_user_embed(user) * self.mf_item_embed(item)
        mlp = torch.cat([self.mlp_user_embed(user), self.mlp_item_embed(item)], dim=-1)
        for layer in self.mlp:
            mlp = torch.relu(layer(mlp))
        return self.final(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)


def build_model(n_users: int, n_items: int, factors: int, mlp_layer_sizes: tuple[int, ...],
                seed: int) -> NeuMF:
    """NeuMF with the reference initialisation drawn from `seed` (identical to the TensorFlow model's)."""
    model = NeuMF(n_users, n_items, factors, mlp_layer_sizes)
    model.load_numpy(initial_weights(n_users, n_items, factors, mlp_layer_sizes, seed))
    return model
