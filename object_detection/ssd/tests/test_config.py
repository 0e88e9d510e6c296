"""Every config file loads; the reference passes the closed-division rules; default boxes and the
learning-rate schedule are the reference's."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.spec import benchmark_spec
from harness.config import load_config
from object_detection.ssd import default_boxes
from object_detection.ssd.config import Config, check, hyperparameters, learning_rate_schedule

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_passes_its_rules(path):
    cfg = load_config(Config, path)
    check(cfg)
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark="ssd", division=cfg.submission.division)
    values = hyperparameters(cfg, train_images=117_266, global_batch=1024)
    assert set(values) == set(spec.hyperparameter_keys_for(values))
    assert spec.check_hyperparameters({**values, "global_batch_size": 1024}) == []
    assert len(default_boxes.from_config(cfg.model)) == sum(
        n * s * s for n, s in zip(default_boxes.boxes_per_position(cfg.model.aspect_ratios), cfg.model.feature_sizes))


def test_the_reference_logs_the_reference_values():
    cfg = load_config(Config, CONFIGS[0].parent / "reference.yaml")
    values = hyperparameters(cfg, train_images=117_266, global_batch=8 * cfg.data.batch_size)
    # DGX-1 single node: 8 x 128, lr 2.5e-3 x 1024 / 32, --warmup 2.619685 epochs = int(299.99...) steps
    assert values == {"model_bn_span": 128, "opt_base_learning_rate": 0.08, "opt_weight_decay": 5e-4,
                      "opt_learning_rate_warmup_steps": 299, "opt_learning_rate_warmup_factor": 0,
                      "opt_learning_rate_decay_boundary_epochs": [40, 50], "max_samples": 1}


def test_ssd300_has_8732_default_boxes_of_the_reference():
    boxes = default_boxes.from_config(Config().model)
    assert boxes.shape == (8732, 4) and boxes.min() >= 0 and boxes.max() <= 1
    # first map, first shape (21 px), position (0, 0): centre 0.5 x 8 / 300
    assert boxes[0] == pytest.approx([4 / 300, 4 / 300, 21 / 300, 21 / 300])
    # last: the 1x1 map's aspect-2 box turned upright, 261/sqrt(2) x 261*sqrt(2) px, its height clamped to 1
    assert boxes[-1] == pytest.approx([0.5, 0.5, 261 / 300 / 2 ** 0.5, 1.0], rel=1e-6)


def test_learning_rate_schedule_is_the_references():
    schedule = learning_rate_schedule(Config(), train_images=117_266, global_batch=1024, steps_per_epoch=114)
    assert schedule.warmup_steps == 299
    assert schedule(0, 1) == 0.0  # warmup factor 0 starts at 0
    assert schedule(150, 2) == pytest.approx(0.08 * 150 / 299)
    # after warmup the reference keeps the warmup's last value until the first decay
    assert schedule(1000, 10) == pytest.approx(0.08 * 298 / 299)
    assert schedule(40 * 114, 41) == pytest.approx(0.008) and schedule(50 * 114, 51) == pytest.approx(0.0008)
