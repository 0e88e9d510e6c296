"""Every config file loads strictly; the reference obeys the closed-division rules; the LR schedule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from compliance.mllog import constants
from compliance.spec import benchmark_spec
from harness.config import load_config
from harness.errors import ConfigError
from image_classification.config import (
    Config,
    global_batch_size,
    hyperparameters,
    learning_rate_schedule,
    peak_learning_rate,
)

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
IMAGENET_TRAIN = 1_281_167


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_every_config_loads_and_its_hyperparameters_obey_its_ruleset(path):
    cfg = load_config(Config, path)
    assert cfg.benchmark == constants.RESNET
    spec = benchmark_spec(cfg.ruleset, cfg.benchmark, cfg.submission.division)
    for world_size in (1, 8):
        batch = global_batch_size(cfg, world_size)
        values = hyperparameters(cfg, batch, steps_per_epoch=100)
        assert set(values) == set(spec.hyperparameter_keys_for(values))
        assert spec.check_hyperparameters({**values, constants.GLOBAL_BATCH_SIZE: batch}) == []


def test_reference_is_the_defaults_and_the_v07_recipe():
    cfg = load_config(Config, "image_classification/configs/reference.yaml")
    assert dataclasses.replace(cfg, run=Config().run) == Config()  # the file repeats the defaults
    assert cfg.ruleset == "mlbench-1.0.0"
    assert (cfg.model.width, cfg.model.layers, cfg.model.num_classes) == (64, (3, 4, 6, 3), 1000)
    steps = IMAGENET_TRAIN // 1024
    values = hyperparameters(cfg, 1024, steps)
    assert values == {
        "opt_name": "sgd", "sgd_opt_base_learning_rate": 0.4, "sgd_opt_end_learning_rate": 0.0001,
        "sgd_opt_learning_rate_decay_poly_power": 2.0, "sgd_opt_learning_rate_decay_steps": 85 * steps,
        "sgd_opt_weight_decay": 0.0001, "sgd_opt_momentum": 0.9, "model_bn_span": 256,
        "opt_learning_rate_warmup_epochs": 5}
    assert benchmark_spec(cfg.ruleset, "resnet").quality_target == 0.759


def test_lars_logs_the_lars_keys_of_the_rules():
    cfg = load_config(Config, "image_classification/configs/reference.yaml",
                      ["optimizer.name=lars", "optimizer.base_lr=9.1", "optimizer.base_lr_batch_size=0",
                       "optimizer.weight_decay=5e-5", "optimizer.warmup_epochs=2"])
    values = hyperparameters(cfg, 3264, 392)
    spec = benchmark_spec(cfg.ruleset, "resnet")
    assert set(values) == set(spec.hyperparameter_keys_for(values))
    assert values[constants.LARS_OPT_BASE_LEARNING_RATE] == 9.1
    assert values[constants.LARS_EPSILON] == 0.0
    assert spec.check_hyperparameters({**values, constants.GLOBAL_BATCH_SIZE: 3264}) == []


def test_closed_division_refuses_a_weight_decay_the_rules_do_not_allow():
    cfg = load_config(Config, "image_classification/configs/reference.yaml", ["optimizer.weight_decay=3e-4"])
    values = hyperparameters(cfg, 256, 100)
    problems = benchmark_spec(cfg.ruleset, "resnet").check_hyperparameters(
        {**values, constants.GLOBAL_BATCH_SIZE: 256})
    assert any("sgd_opt_weight_decay" in problem for problem in problems)


def test_overrides_and_strictness():
    cfg = load_config(Config, "image_classification/configs/smoke.yaml",
                      ["model.layers=[2, 2, 2, 2]", "data.batch_size=64", "optimizer.nesterov=true"])
    assert cfg.model.layers == (2, 2, 2, 2) and cfg.data.batch_size == 64 and cfg.optimizer.nesterov
    with pytest.raises(ConfigError, match="unknown key 'widht'"):
        load_config(Config, "image_classification/configs/smoke.yaml", ["model.widht=8"])
    with pytest.raises(ConfigError, match="model.width"):
        load_config(Config, "image_classification/configs/smoke.yaml", ["model.width=wide"])
    with pytest.raises(ConfigError, match="optimizer.name='adam'"):
        hyperparameters(load_config(Config, None, ["optimizer.name=adam"]), 256, 10)


def test_linear_scaling_and_learning_rate_schedule():
    cfg = load_config(Config, None, ["optimizer.warmup_epochs=2", "schedule.decay_epochs=10"])
    assert peak_learning_rate(cfg, 256) == 0.1
    assert peak_learning_rate(cfg, 768) == 0.3  # not 0.30000000000000004: the rules test multiples
    assert global_batch_size(load_config(Config, None, ["data.gradient_accumulation_steps=4"]), 2) == 2048
    schedule = learning_rate_schedule(cfg, 2560, steps_per_epoch=100)
    assert (schedule.peak, schedule.warmup_steps, schedule.decay_steps) == (1.0, 200, 800)
    assert schedule(0) == pytest.approx(1.0 / 200)  # linear warmup, never a zero step
    assert schedule(99) == pytest.approx(0.5)
    assert schedule(199) == pytest.approx(1.0)
    assert schedule(200) == pytest.approx(1.0)
    assert schedule(600) == pytest.approx(1e-4 + (1.0 - 1e-4) * 0.5 ** 2)  # power 2, half way
    assert schedule(1000) == pytest.approx(1e-4)
    assert schedule(5000) == pytest.approx(1e-4)  # stays at the end value past the decay
