"""The benchmark's measurements at small sizes (the real sizes run in `invoke bench`); the timing rules
themselves (same repeats, alternating rounds, median of paired ratios) are tests/test_paired_timing.py's."""

from __future__ import annotations

import time

import pytest

from harness.config import load_config
from recommendation.bench import ML20M_RATINGS, PREPROCESSING_BAR, framework_speed, preprocessing_speed
from recommendation.config import Config
from recommendation.synthetic import synthetic_samples


def _in_memory(path) -> bool:
    """tmpfs has no disk to drop a file to: the cold read cannot be cold there."""
    best, kind = "", ""
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, mount_point, fs_type = line.split()[:3]
            if str(path).startswith(mount_point) and len(mount_point) > len(best):
                best, kind = mount_point, fs_type
    return kind in ("tmpfs", "ramfs")


def _small_config(*overrides) -> Config:
    return load_config(Config, None, ["model.factors=8", "model.mlp_layer_sizes=[16,8]", "run.threads=1",
                                      "run.device=cpu", *overrides])


def test_preprocessing_is_timed_with_the_csv_cold_and_warm(tmp_path):
    result = preprocessing_speed(50_000, workdir=tmp_path, rounds=1)
    cold, warm = result["cold"], result["warm"]
    if not _in_memory(tmp_path):
        # the cold run read a CSV that was not in memory; the warm one a CSV that was
        assert cold["csv_resident_before"][0] < 0.1, cold["csv_resident_before"]
    assert warm["csv_resident_before"][0] > 0.9
    for row in (cold, warm):  # the real pipeline ran on the whole file
        assert row["users"] == round(50_000 / 144.4) and row["items"] > 20_000
        assert row["seconds"] >= row["read_s"] + row["split_and_negatives_s"]  # the child's phases fit in the wall time
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
    assert list(tmp_path.iterdir()) == []  # the synthetic files are removed


def test_the_timed_training_call_trains_the_model():
    """What `invoke bench` times is training: the same epoch, trained on again, has a lower loss."""
    from recommendation.pytorch.throughput import training_epoch

    train, signature = training_epoch(_small_config("optimizer.base_lr=0.01"), global_batch_size=256,
                                      n_users=100, n_items=50)
    samples = synthetic_samples(8 * 256, 100, 50, seed=0)
    losses = [train(samples) for _ in range(4)]
    assert losses[-1] < losses[0] - 0.01, losses
    assert signature["device"].startswith("cpu") and signature["precision"] == "float32"


def test_framework_speed_times_every_framework_alike():
    settings = {"global_batch_size": 512, "steps": 2, "rounds": 2, "eval_users": 20, "eval_rounds": 1}
    result = framework_speed(_small_config(), settings, include_tensorflow=False)
    training, evaluation = result["training"], result["evaluation"]
    assert training["work_per_call"] == 2 * 512 and training["rounds"] == 2 and training["state"] == "warm"
    assert len(training["pytorch"]["seconds"]) == 2 and training["pytorch"]["samples_per_s"] > 0
    assert evaluation["extrapolated"] and evaluation["work_per_call"] == 20 * 1_000


@pytest.mark.slow
def test_preprocessing_meets_its_bar_on_ml20m_sized_data(tmp_path):
    """The acceptance bar: >= 1M ratings/s on one core, cold CSV. Asserted on CPU time, which a shared
    machine does not inflate (the wall time is in the result too)."""
    result = preprocessing_speed(ML20M_RATINGS, workdir=tmp_path, rounds=1)
    assert result["cold"]["ratings_per_cpu_second"] >= PREPROCESSING_BAR, result["cold"]


def test_training_and_eval_rates_are_samples_over_the_time_they_took(monkeypatch):
    """A fake clock (time.perf_counter) that advances a microsecond per sample the model computes: a
    rate that counted samples outside the timed region, timed the warm-up, or extrapolated wrongly
    would differ from 10^6 samples/s (the TensorFlow side: tests/test_tensorflow.py)."""
    import recommendation.pytorch.throughput as throughput
    from recommendation.pytorch.model import NeuMF

    clock = {"now": 1000.0}
    forward = NeuMF.forward

    def costly_forward(self, users, items):
        clock["now"] += len(users) * 1e-6
        return forward(self, users, items)

    monkeypatch.setattr(NeuMF, "forward", costly_forward)
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    cfg = _small_config()
    training = throughput.pytorch_throughput(cfg, steps=2, warmup_steps=1, global_batch_size=512, n_users=100,
                                             n_items=50)
    assert training["samples_per_second"] == pytest.approx(1e6, rel=1e-9)
    evaluation = throughput.pytorch_eval_time(cfg, users=20, n_users=100, n_items=50, negatives=9)
    assert evaluation["scores_per_second"] == pytest.approx(1e6, rel=1e-9)
    # every one of the 100 users scores 10 items at the measured cost
    assert evaluation["extrapolated"] and evaluation["all_users_seconds"] == pytest.approx(100 * 10 * 1e-6, rel=1e-9)
