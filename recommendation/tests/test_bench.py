"""The benchmark's measurements measure what they say, on known workloads (the real sizes run in `invoke bench`).

The training and evaluation rates are checked against a fake clock (`time.perf_counter`) that only
advances when the model computes: a microsecond per sample. A rate that counted samples outside the
timed region, timed the warm-up, or extrapolated wrongly would then differ from 10^6 samples/s.
"""

from __future__ import annotations

import time

import pytest

from harness.config import load_config
from recommendation.bench import preprocessing_speed
from recommendation.config import Config

COST = 1e-6  # fake seconds a sample


class FakeClock:
    """Stands in for time.perf_counter: time passes only through `spend`."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def spend(self, samples: int) -> None:
        self.now += samples * COST


def test_preprocessing_speed_times_the_real_pipeline_on_one_core(tmp_path):
    result = preprocessing_speed(50_000, workdir=tmp_path)
    # the known workload: 50,000 synthetic ratings shaped like ml-20m (144.4 ratings a user, 26,744 movies)
    assert result["ratings"] == 50_000 and result["cores"] == 1
    assert result["users"] == round(50_000 / 144.4) and result["items"] > 20_000
    # the phases lie inside the total; pinned to one core, the process cannot use more CPU time than wall
    # time (process_time is read just after the wall clock, with 10 ms granularity)
    assert result["read_s"] + result["split_and_negatives_s"] <= result["seconds"]
    assert 0 < result["cpu_seconds"] <= result["seconds"] + 0.05
    assert list(tmp_path.iterdir()) == []  # the synthetic files are removed


def test_training_and_eval_rates_are_samples_over_the_time_they_took(monkeypatch):
    import recommendation.pytorch.throughput as throughput
    from recommendation.pytorch.model import NeuMF

    clock = FakeClock()
    forward = NeuMF.forward

    def costly_forward(self, users, items):
        clock.spend(len(users))
        return forward(self, users, items)

    monkeypatch.setattr(NeuMF, "forward", costly_forward)
    monkeypatch.setattr(time, "perf_counter", clock)
    cfg = load_config(Config, None, ["model.factors=8", "model.mlp_layer_sizes=[16,8]", "run.threads=1",
                                     "run.device=cpu"])
    training = throughput.pytorch_throughput(cfg, steps=2, warmup_steps=1, global_batch_size=512, n_users=100,
                                             n_items=50)
    assert training["samples_per_second"] == pytest.approx(1 / COST, rel=1e-9)
    assert training["device"].startswith("cpu") and training["precision"] == "float32"
    evaluation = throughput.pytorch_eval_time(cfg, users=20, n_users=100, n_items=50, negatives=9)
    assert evaluation["scores_per_second"] == pytest.approx(1 / COST, rel=1e-9)
    # every one of the 100 users scores 10 items at the measured cost
    assert evaluation["extrapolated"] and evaluation["all_users_seconds"] == pytest.approx(100 * 10 * COST, rel=1e-9)
