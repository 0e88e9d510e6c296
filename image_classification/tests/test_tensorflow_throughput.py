"""The throughput comparison the bench prints (slow: it builds and trains two full ResNet-50s), timed by
harness.paired_timing (its rules: tests/test_paired_timing.py); the target, ratio >= 0.95, asserted
at the bench's CPU settings."""

from __future__ import annotations

import importlib.util
import sys

# torch.optim loads triton lazily, and libtriton loaded after TensorFlow's LLVM crashes the process:
# load it first, so a session that runs PyTorch tests after these ones survives
if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401

# isort: split
import keras
import pytest

from image_classification.bench import RATIO_TARGET, _settings
from image_classification.tensorflow.throughput import tensorflow_throughput


@pytest.mark.slow
def test_throughput_compares_the_two_resnet50s_on_one_batch():
    before = keras.mixed_precision.global_policy().name
    result = tensorflow_throughput(batch_size=2, steps=1, image_size=64, rounds=2)
    assert keras.mixed_precision.global_policy().name == before  # the policy is put back
    assert result["ours_parameters"] == 25_557_032
    assert result["keras_applications_parameters"] == 25_583_592  # its convs carry biases
    assert result["timing"]["state"] == "warm" and len(result["round_ratios"]) == 2
    assert min(result["round_ratios"]) <= result["ratio"] <= max(result["round_ratios"])
    assert {"framework", "device", "precision", "batch_size", "image_size", "steps", "rounds"} <= result.keys()


@pytest.mark.slow
def test_our_keras_resnet_trains_as_fast_as_keras_applications():
    result = tensorflow_throughput(**_settings(on_gpu=False))
    assert result["ratio"] >= RATIO_TARGET, result["round_ratios"]
