"""Every config file loads strictly and logs exactly the hyperparameters its ruleset's transformer rules
ask for; the reference is the MLPerf v0.7 `--params=big` setting; a smaller model must say REDUCED."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.spec import benchmark_spec
from harness.config import load_config
from harness.errors import ConfigError
from translation.transformer.config import Config, check, hyperparameters
from translation.transformer.schedule import learning_rate

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def test_there_are_reference_and_smoke_configs():
    assert {path.stem for path in CONFIGS} == {"reference", "smoke"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_fits_its_rules(path):
    cfg = check(load_config(Config, path))
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark=cfg.benchmark, division=cfg.submission.division)
    logged = hyperparameters(cfg)
    assert set(logged) == set(spec.hyperparameter_keys_for(logged))
    assert spec.check_hyperparameters({**logged, "global_batch_size": cfg.data.max_tokens_per_replica}) == []
    assert cfg.schedule.eval_every_epochs == 1  # the reference evaluates BLEU every epoch


def test_reference_is_the_mlperf_v07_big_setting():
    cfg = load_config(Config, next(path for path in CONFIGS if path.stem == "reference"))
    assert cfg == Config(run=cfg.run)  # the file states the defaults, which are the reference's
    model = cfg.model
    assert (model.hidden_size, model.num_hidden_layers, model.num_heads, model.filter_size) == (1024, 6, 16, 4096)
    assert (cfg.optimizer.beta1, cfg.optimizer.beta2, cfg.optimizer.epsilon) == (0.9, 0.997, 1e-9)
    assert (cfg.eval.beam_size, cfg.eval.alpha, cfg.eval.extra_decode_length) == (4, 0.6, 50)
    assert benchmark_spec(ruleset=cfg.ruleset, benchmark="transformer", division="closed").quality_target == 0.25


def test_smoke_model_is_labelled_reduced_and_big_sizes_are_guarded():
    smoke = load_config(Config, next(path for path in CONFIGS if path.stem == "smoke"))
    assert smoke.model.variant.startswith("REDUCED") and check(smoke) is smoke
    with pytest.raises(ConfigError, match="model.hidden_size=512 is not Transformer big's 1024: set model.variant=REDUCED"):
        check(load_config(Config, None, ["model.hidden_size=512"]))
    with pytest.raises(ConfigError, match="expected 'big' or a label starting with REDUCED"):
        check(load_config(Config, None, ["model.variant=small"]))


def test_learning_rate_schedule_is_the_references():
    # 2.0 * 1024^-0.5 * min(1, step / 16000) * rsqrt(max(step, 16000)), written out
    assert learning_rate(0, 2.0, 1024, 16000) == 0.0
    assert learning_rate(8000, 2.0, 1024, 16000) == pytest.approx(2.0 / 32 * 0.5 / 16000 ** 0.5)
    peak = learning_rate(16000, 2.0, 1024, 16000)
    assert peak == pytest.approx(2.0 / 32 / 16000 ** 0.5) and peak == pytest.approx(4.94e-4, rel=1e-3)
    assert learning_rate(64000, 2.0, 1024, 16000) == pytest.approx(peak / 2)
