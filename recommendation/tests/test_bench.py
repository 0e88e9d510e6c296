"""The benchmark's measurements run end to end at small sizes (the real sizes run in `invoke bench`)."""

from __future__ import annotations

import pytest

from harness.config import load_config
from recommendation.bench import preprocessing_speed
from recommendation.config import Config


def test_preprocessing_speed_times_the_real_pipeline(tmp_path):
    result = preprocessing_speed(50_000, workdir=tmp_path)
    assert result["ratings"] == 50_000 and result["cores"] == 1
    assert result["users"] == round(50_000 / 144.4) and result["items"] > 20_000
    assert result["ratings_per_second"] == pytest.approx(50_000 / result["seconds"])
    assert result["seconds"] >= result["read_s"] + result["split_and_negatives_s"]
    assert list(tmp_path.iterdir()) == []  # the synthetic files are removed


def test_training_and_eval_timings_use_the_training_code():
    from recommendation.pytorch.throughput import pytorch_eval_time, pytorch_throughput

    cfg = load_config(Config, None, ["model.factors=8", "model.mlp_layer_sizes=[16,8]", "run.threads=1",
                                     "run.device=cpu"])
    training = pytorch_throughput(cfg, steps=2, warmup_steps=1, global_batch_size=512, n_users=100, n_items=50)
    assert training["samples_per_second"] == pytest.approx(2 * 512 / training["seconds"])
    assert training["device"].startswith("cpu") and training["precision"] == "float32"
    evaluation = pytorch_eval_time(cfg, users=20, n_users=100, n_items=50, negatives=9)
    assert evaluation["extrapolated"] and evaluation["all_users_seconds"] == pytest.approx(evaluation["seconds"] * 5)
