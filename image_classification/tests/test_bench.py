"""`invoke bench image_classification`, PyTorch side: ours against torchvision's ResNet-50 timed by
harness.paired_timing (whose rules tests/test_paired_timing.py checks with a fake clock). The fast
test checks the wiring at a toy size; the slow one runs the bench's CPU settings and asserts the
target, ratio >= 0.95 (image_classification/bench.py RATIO_TARGET)."""

from __future__ import annotations

import pytest

from image_classification.bench import RATIO_TARGET, _settings
from image_classification.pytorch.throughput import pytorch_throughput


def test_both_resnets_are_timed_alike_in_alternating_rounds():
    result = pytorch_throughput(batch_size=2, steps=1, image_size=32, rounds=2, num_classes=10)
    timing = result["timing"]
    assert timing["reference"] == "torchvision" and timing["state"] == "warm" and timing["warmup_calls"] == 1
    assert len(timing["ours"]["seconds"]) == len(timing["torchvision"]["seconds"]) == 2
    assert len(result["round_ratios"]) == 2 and min(result["round_ratios"]) <= result["ratio"] <= max(result["round_ratios"])
    # the same network (torchvision's is ResNet-50 v1.5 too): same parameter count at 10 classes
    assert result["ours_parameters"] == result["torchvision_parameters"]


@pytest.mark.slow
def test_our_resnet_trains_as_fast_as_torchvision_s():
    result = pytorch_throughput(**_settings(on_gpu=False))
    assert result["ratio"] >= RATIO_TARGET, result["round_ratios"]
