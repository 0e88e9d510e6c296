"""GNMT configs: every file loads, the reference logs exactly the rules' keys with allowed values, a
smaller model must say REDUCED, and the learning-rate schedule is the reference's, by hand."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from compliance.mllog import constants
from compliance.spec import benchmark_spec
from harness.config import load_config
from harness.errors import ConfigError
from translation.gnmt import config as gnmt_config
from translation.gnmt.config import Config, check, hyperparameters
from translation.gnmt.schedule import learning_rate, lr_schedule

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
REFERENCE = Path(__file__).resolve().parents[1] / "configs" / "reference.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_loads_and_logs_exactly_the_rules_keys(path):
    cfg = check(load_config(Config, path))
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark=constants.GNMT, division="closed")
    values = hyperparameters(cfg, steps_per_epoch=1000)
    assert set(values) == set(spec.hyperparameter_keys_for(values))
    assert spec.check_hyperparameters({**values, constants.GLOBAL_BATCH_SIZE: cfg.data.batch_size_per_replica}) == []


def test_reference_is_the_reference_and_smaller_models_say_so():
    cfg = load_config(Config, REFERENCE)
    assert cfg.model == gnmt_config.Model() and cfg.optimizer == gnmt_config.Optimizer() and cfg.eval == gnmt_config.Eval()
    assert cfg.data == gnmt_config.Data() and cfg.schedule == gnmt_config.Schedule()
    with pytest.raises(ConfigError, match="model.hidden_size=512 is not GNMT v2's 1024"):
        check(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hidden_size=512)))
    with pytest.raises(ConfigError, match="expected 'gnmt_v2' or a label starting with REDUCED"):
        check(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, variant="small")))


def test_closed_division_refuses_another_decay_factor():
    cfg = load_config(Config, REFERENCE, ["optimizer.decay_factor=0.3"])
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark=constants.GNMT, division="closed")
    violations = spec.check_hyperparameters({**hyperparameters(cfg, 100), constants.GLOBAL_BATCH_SIZE: 128})
    assert len(violations) == 1 and constants.OPT_LR_DECAY_FACTOR in violations[0]


def schedule_cfg(**optimizer):
    cfg = Config()
    return dataclasses.replace(cfg, optimizer=dataclasses.replace(cfg.optimizer, **optimizer),
                               schedule=dataclasses.replace(cfg.schedule, max_epochs=10))


def test_schedule_steps_as_the_reference_computes_them():
    # 10 epochs x 100 steps: remain = int(0.666 * 1000) = 666, interval = (1000 - 666) // 4 = 83
    schedule = lr_schedule(schedule_cfg(), steps_per_epoch=100)
    assert (schedule.warmup_steps, schedule.remain_steps, schedule.decay_interval) == (200, 666, 83)
    values = hyperparameters(schedule_cfg(), 100)
    assert values[constants.OPT_LR_REMAIN_STEPS] == 666 and values[constants.OPT_LR_DECAY_INTERVAL] == 83
    # an int is a step count, a float a fraction; warmup is capped at remain_steps
    assert lr_schedule(schedule_cfg(remain_steps=300, decay_interval=0.05), 100).decay_interval == 50
    assert lr_schedule(schedule_cfg(remain_steps=150), 100).warmup_steps == 150


def test_learning_rate_by_hand():
    schedule = lr_schedule(schedule_cfg(), steps_per_epoch=100)
    base = 1e-3
    expected = {
        1: base * 0.01 ** (199 / 200),  # exponential warmup from base / 100
        100: base * 0.01 ** (100 / 200),
        200: base,
        201: base,
        665: base,
        666: base * 0.5,  # first decay at remain_steps
        748: base * 0.5,  # 82 // 83 + 1 = 1
        749: base * 0.25,  # 83 // 83 + 1 = 2
        1000: base * 0.5 ** 4,  # at most 4 decays
    }
    for update, value in expected.items():
        assert learning_rate(update, schedule) == pytest.approx(value, rel=1e-12), update


def test_pytorch_optimizer_follows_the_schedule_from_the_first_update():
    """The reference steps its scheduler before the optimizer: update n uses the rate of step n."""
    from translation.gnmt.pytorch.train import build_optimizer

    schedule = lr_schedule(schedule_cfg(), steps_per_epoch=100)
    model = torch.nn.Linear(2, 1)
    optimizer, scheduler = build_optimizer(schedule_cfg(), model, schedule)
    seen = []
    for _ in range(3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([learning_rate(n, schedule) for n in (1, 2, 3)], rel=1e-12)
    assert math.isclose(seen[0], 1e-3 * 0.01 ** (199 / 200), rel_tol=1e-12)
