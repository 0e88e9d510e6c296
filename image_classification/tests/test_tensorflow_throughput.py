"""The throughput comparison the bench prints measures what it says (slow: it builds two full ResNet-50s).

A fake clock (`time.perf_counter`) advances only while a model computes, from inside the compiled
train steps (tf.py_function): 1 fake ms an image for ours, 2 for keras.applications'. Whatever the
rounds and the statistic, the bench must then report 1000 and 500 images/s and a ratio of 2.
"""

from __future__ import annotations

import importlib.util
import sys

# torch.optim loads triton lazily, and libtriton loaded after TensorFlow's LLVM crashes the process:
# load it first, so a session that runs PyTorch tests after these ones survives
if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401

# isort: split
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from image_classification.tensorflow import throughput


class FakeClock:
    """Stands in for time.perf_counter: time passes only when a Costly model computes."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Costly(keras.Model):
    """A model that spends `cost` fake seconds per image on `clock` each time it runs."""

    def __init__(self, inner: keras.Model, cost: float, clock: FakeClock):
        super().__init__(name=f"costly_{inner.name}")
        self.inner, self.cost, self.clock = inner, cost, clock

    def _spend(self, images):
        self.clock.now += int(images) * self.cost
        return np.float32(0.0)

    def call(self, images, training=None):
        logits = self.inner(images, training=training)
        return logits + tf.cast(tf.py_function(self._spend, [tf.shape(images)[0]], tf.float32), logits.dtype)


@pytest.mark.slow
def test_throughput_reports_the_rates_of_a_known_workload(monkeypatch):
    clock = FakeClock()
    build_ours, build_theirs = throughput.build_model, keras.applications.ResNet50
    monkeypatch.setattr(throughput, "build_model", lambda **kwargs: Costly(build_ours(**kwargs), 1e-3, clock))
    monkeypatch.setattr(keras.applications, "ResNet50", lambda **kwargs: Costly(build_theirs(**kwargs), 2e-3, clock))
    monkeypatch.setattr(time, "perf_counter", clock)
    before = keras.mixed_precision.global_policy().name
    result = throughput.tensorflow_throughput(batch_size=2, steps=1, image_size=64, rounds=2)
    assert keras.mixed_precision.global_policy().name == before  # the policy is put back
    assert result["ours_parameters"] == 25_557_032
    assert result["keras_applications_parameters"] == 25_583_592  # its convs carry biases
    assert result["ours_images_per_s"] == pytest.approx(1000, rel=1e-9)
    assert result["keras_applications_images_per_s"] == pytest.approx(500, rel=1e-9)
    assert result["ratio"] == pytest.approx(2.0, rel=1e-9)
    assert {"framework", "device", "precision", "batch_size", "image_size", "steps", "rounds"} <= result.keys()


@pytest.mark.slow
def test_our_keras_resnet_trains_as_fast_as_keras_applications():
    """The bench's target, ratio >= 0.95, at the bench's CPU settings (harness.paired_timing)."""
    from image_classification.bench import RATIO_TARGET, _settings

    result = throughput.tensorflow_throughput(**_settings(on_gpu=False))
    assert result["ratio"] >= RATIO_TARGET, result["round_ratios"]
