"""The speed benchmark's measurements run end to end at small sizes (the real sizes: `invoke bench
reinforcement`), and its FLOP count is the network's."""

from __future__ import annotations

import pytest
import torch

from reinforcement import bench
from reinforcement.pytorch.model import DualNet


def test_forward_flops_count_every_multiply_add_of_the_network():
    """Counted independently from the PyTorch modules' shapes (batch norm, ReLU, tanh and the residual
    additions are not multiply-adds and are left out on both sides)."""
    for net in (bench.SMOKE_NET, bench.REFERENCE_NET):
        model, points = DualNet(*net), net[0] * net[0]
        macs = sum(m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * points
                   for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        macs += sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
        assert bench.forward_flops(*net) == 2 * macs


def test_playouts_against_openspiel_small():
    result = bench.bench_playouts(games=20, rounds=2)
    assert result["ours_playouts_per_s"] > 0 and result["openspiel_playouts_per_s"] > 0
    assert result["max_moves"] == 162 and 20 < result["moves_per_playout"] <= 162
    assert result["ours_over_openspiel"] > 0


@pytest.mark.parametrize("framework", ["pytorch", pytest.param("tensorflow", marks=pytest.mark.slow)])
def test_selfplay_and_network_rates_small(framework):
    result = bench.bench_framework(framework, games=2, readouts=4, seconds=0.2)
    assert result["selfplay_positions_per_s"] > 0 and 0 < result["network_busy_share"] < 1
    for name in ("smoke", "reference"):
        assert result[name]["forward_gflops"] > 0 and result[name]["train_gflops"] > 0
    assert result["train_over_selfplay"] > 0
