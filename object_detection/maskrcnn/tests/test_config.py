"""Every config file loads and passes its rules; the reference logs the reference's values; the learning
rate is the reference's WarmupMultiStepLR, stepped before each update."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.spec import benchmark_spec
from harness.config import load_config
from harness.errors import ConfigError
from object_detection.maskrcnn.config import Config, check, hyperparameters, learning_rate_schedule

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_passes_its_rules(path):
    cfg = load_config(Config, path)
    check(cfg)
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark="maskrcnn", division=cfg.submission.division)
    global_batch = cfg.data.batch_size * (8 if cfg.ruleset == "mlbench-1.0.0" else 1)
    values = hyperparameters(cfg, global_batch)
    assert set(values) == set(spec.hyperparameter_keys_for(values))
    assert spec.check_hyperparameters({**values, "global_batch_size": global_batch}) == []


def test_the_reference_logs_the_reference_values():
    cfg = load_config(Config, CONFIGS[0].parent / "reference.yaml")
    # e2e_mask_rcnn_R_50_FPN_1x on 8 GPUs x 2 images: BASE_LR 0.02, WARMUP 500 from 1/3, STEPS (60000, 80000)
    assert hyperparameters(cfg, 16) == {
        "opt_base_learning_rate": 0.02, "opt_learning_rate_warmup_steps": 500, "opt_learning_rate_warmup_factor": 1 / 3,
        "num_image_candidates": 1000, "opt_learning_rate_decay_factor": 0.1,
        "opt_learning_rate_decay_steps": [60000, 80000], "min_image_size": 800, "max_image_size": 1333}
    # run_and_time.sh's single GPU: 2 images, lr 0.0025, steps (480000, 640000)
    single = hyperparameters(cfg, 2)
    assert single["opt_base_learning_rate"] == 0.0025 and single["opt_learning_rate_decay_steps"] == [480000, 640000]
    # and at 64 images (a v0.7 submission's batch): 0.08, (15000, 20000)
    assert hyperparameters(cfg, 64)["opt_learning_rate_decay_steps"] == [15000, 20000]


def test_learning_rate_is_warmup_multistep_stepped_before_each_update():
    schedule = learning_rate_schedule(Config(), 16)
    # WarmupMultiStepLR(last_epoch=k): 0.02 x (1/3 (1 - k/500) + k/500) x 0.1^bisect_right(STEPS, k)
    assert schedule(1) == pytest.approx(0.02 * (1 / 3 * (1 - 1 / 500) + 1 / 500))
    assert schedule(250) == pytest.approx(0.02 * (1 / 3 * 0.5 + 0.5))
    assert schedule(500) == pytest.approx(0.02) and schedule(59999) == pytest.approx(0.02)
    assert schedule(60000) == pytest.approx(0.002) and schedule(80000) == pytest.approx(0.0002)


def test_a_trunk_that_is_not_four_stages_is_refused():
    with pytest.raises(ConfigError, match="model.widths"):
        check(load_config(Config, None, ["model.widths=[64, 128, 256]"]))
