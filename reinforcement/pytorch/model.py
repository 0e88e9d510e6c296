"""The Minigo dual network in PyTorch: a residual tower with a policy head and a value head.

MLPerf v0.5 Minigo reference (mlcommons/training, reinforcement/tensorflow/minigo/dual_net.py
model_fn), after AlphaGo Zero (Silver et al. 2017, "Methods: Neural network architecture"):
- a 3x3 convolution of the 17 input planes to k filters, batch norm, ReLU;
- `blocks` residual blocks: conv 3x3, BN, ReLU, conv 3x3, BN, + input, ReLU;
- policy head: 1x1 conv to 2 planes, BN (no centre/scale), ReLU, dense to N*N+1 logits;
- value head: 1x1 conv to 1 plane, BN (no centre/scale), ReLU, dense to fc_width, ReLU, dense to 1, tanh.
Sizes for 9x9 (get_default_hyperparams): k = 32 (the power of two nearest N^2/3), fc_width = 2k = 64,
blocks = N = 9. Convolutions keep their bias (tf.layers.conv2d's default), batch norm momentum
0.997 (PyTorch: 1 - 0.997) and epsilon 1e-5. The heads flatten channels last, as the reference,
so the dense weights are the same numbers in both frameworks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reinforcement.features import PLANES
from reinforcement.weights import initial_weights

BN_MOMENTUM = 1 - 0.997  # reference tf.layers.batch_normalization(momentum=.997): PyTorch counts the other way
BN_EPSILON = 1e-5


def batch_norm(channels: int, affine: bool = True) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM, affine=affine)


class ResidualBlock(nn.Module):
    def __init__(self, filters: int):
        super().__init__()
        self.conv1 = nn.Conv2d(filters, filters, 3, padding=1)
        self.bn1 = batch_norm(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)
        self.bn2 = batch_norm(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class DualNet(nn.Module):
    """(B, 17, N, N) planes -> (policy logits (B, N*N+1), value (B,) in [-1, 1], black's view)."""

    def __init__(self, board_size: int = 9, filters: int = 32, blocks: int = 9, fc_width: int = 64):
        super().__init__()
        points = board_size * board_size
        self.conv_in = nn.Conv2d(PLANES, filters, 3, padding=1)
        self.bn_in = batch_norm(filters)
        self.tower = nn.ModuleList(ResidualBlock(filters) for _ in range(blocks))
        self.policy_conv = nn.Conv2d(filters, 2, 1)
        self.policy_bn = batch_norm(2, affine=False)
        self.policy_fc = nn.Linear(2 * points, points + 1)
        self.value_conv = nn.Conv2d(filters, 1, 1)
        self.value_bn = batch_norm(1, affine=False)
        self.value_fc1 = nn.Linear(points, fc_width)
        self.value_fc2 = nn.Linear(fc_width, 1)

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.bn_in(self.conv_in(planes)))
        for block in self.tower:
            x = block(x)
        policy = torch.relu(self.policy_bn(self.policy_conv(x)))
        logits = self.policy_fc(policy.permute(0, 2, 3, 1).flatten(1))  # channels last, as the reference
        value = torch.relu(self.value_bn(self.value_conv(x)))
        value = torch.relu(self.value_fc1(value.permute(0, 2, 3, 1).flatten(1)))
        return logits, torch.tanh(self.value_fc2(value)).squeeze(1)


def build_model(board_size: int, filters: int, blocks: int, fc_width: int, seed: int) -> DualNet:
    """The network with the shared initial weights of `seed` (weights.py)."""
    model = DualNet(board_size, filters, blocks, fc_width)
    load_numpy(model, initial_weights(board_size, filters, blocks, fc_width, seed))
    return model


def load_numpy(model: DualNet, weights: dict[str, np.ndarray]) -> None:
    state = {name: torch.from_numpy(np.asarray(value)) for name, value in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if not name.endswith("num_batches_tracked")]
    assert not missing and not unexpected, (missing, unexpected)


def numpy_weights(model: DualNet) -> dict[str, np.ndarray]:
    """The state dict as NumPy arrays (what self-play workers load), without BN's step counters."""
    return {name: value.detach().cpu().numpy().copy() for name, value in model.state_dict().items()
            if not name.endswith("num_batches_tracked")}


def make_evaluate(model: DualNet, device: torch.device | str = "cpu"):
    """The search's `evaluate(planes) -> (policies, values)`: inference mode, softmax on the logits."""
    model = model.to(device).eval()

    @torch.inference_mode()
    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, values = model(torch.from_numpy(planes).to(device=device, dtype=torch.float32))
        return torch.softmax(logits.float(), dim=1).cpu().numpy(), values.float().cpu().numpy()

    return evaluate


def evaluator_from_weights(board_size: int, filters: int, blocks: int, fc_width: int, weights: dict[str, np.ndarray]):
    """A worker's evaluate function from a weights file's arrays (workers.py)."""
    model = DualNet(board_size, filters, blocks, fc_width)
    load_numpy(model, weights)
    return make_evaluate(model)


def configure_worker_threads(threads: int) -> None:
    torch.set_num_threads(threads)
