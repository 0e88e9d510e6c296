"""Every config file loads strictly and logs exactly the hyperparameters its ruleset's ncf rules ask for."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.spec import benchmark_spec
from harness.config import load_config
from harness.errors import ConfigError
from recommendation.config import Config, hyperparameters

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def test_there_are_reference_smoke_and_ml100k_configs():
    assert {path.stem for path in CONFIGS} == {"reference", "smoke", "ml100k"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_fits_its_rules(path):
    cfg = load_config(Config, path)
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark=cfg.benchmark, division=cfg.submission.division)
    logged = hyperparameters(cfg)
    assert set(logged) == set(spec.hyperparameter_keys_for(logged))
    assert spec.check_hyperparameters({**logged, "global_batch_size": cfg.schedule.global_batch_size}) == []
    assert cfg.schedule.eval_every_epochs == 1  # the rules ask for an evaluation every epoch


def test_reference_is_the_mlperf_v06_setting():
    cfg = load_config(Config, next(path for path in CONFIGS if path.stem == "reference"))
    assert cfg == Config(run=cfg.run)  # the file states the defaults, which are the reference's
    assert (cfg.optimizer.base_lr, cfg.optimizer.beta1, cfg.optimizer.beta2) == (0.0045, 0.25, 0.5)
    assert cfg.schedule.global_batch_size == 2**20 and cfg.model.mlp_layer_sizes == (256, 256, 128, 64)
    assert benchmark_spec(ruleset=cfg.ruleset, benchmark="ncf", division="closed").quality_target == 0.635


def test_closed_division_refuses_a_smaller_model(tmp_path):
    cfg = load_config(Config, next(path for path in CONFIGS if path.stem == "reference"), ["model.factors=8"])
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark="ncf", division="closed")
    problems = spec.check_hyperparameters({**hyperparameters(cfg), "global_batch_size": 2**20})
    assert len(problems) == 1 and "model_factors" in problems[0]
    with pytest.raises(ConfigError, match="unknown key 'factor'"):
        load_config(Config, None, ["model.factor=8"])
