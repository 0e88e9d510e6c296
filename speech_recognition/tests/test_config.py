"""Every config file loads strictly; the reference is the v0.5 code's values and obeys the closed rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from compliance.mllog import constants
from compliance.spec import benchmark_spec
from harness.config import load_config
from harness.errors import ConfigError
from speech_recognition.config import Config, hyperparameters

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_every_config_loads_and_its_hyperparameters_obey_its_ruleset(path):
    cfg = load_config(Config, path)
    assert cfg.benchmark == constants.DEEPSPEECH2
    spec = benchmark_spec(cfg.ruleset, cfg.benchmark, cfg.submission.division)
    values = hyperparameters(cfg)
    assert set(values) == set(spec.hyperparameter_keys_for(values))
    assert spec.check_hyperparameters({**values, constants.GLOBAL_BATCH_SIZE: cfg.schedule.global_batch_size}) == []


def test_reference_is_the_defaults_and_the_v05_code():
    cfg = load_config(Config, "speech_recognition/configs/reference.yaml")
    assert dataclasses.replace(cfg, run=Config().run) == Config()  # the file repeats the defaults
    assert hyperparameters(cfg) == {
        "opt_name": "sgd", "opt_base_learning_rate": 1e-4, "opt_momentum": 0.9, "opt_nesterov": True,
        "opt_learning_rate_anneal_factor": 1.1, "opt_gradient_clip_norm": 400.0, "opt_weight_decay": 0.0,
        "model_conv_channels": 32, "model_rnn_type": "gru", "model_rnn_hidden_size": 2560, "model_rnn_layers": 3,
        "model_rnn_bidirectional": False}
    assert (cfg.schedule.global_batch_size, cfg.schedule.max_epochs) == (8, 10)
    assert cfg.data.train_splits == ("train-clean-100", "train-clean-360", "train-other-500")
    assert cfg.data.eval_splits == ("dev-clean", "dev-other")
    assert cfg.data.augmentation.tempo_and_gain and not cfg.data.augmentation.noise_dir
    spec = benchmark_spec(cfg.ruleset, "deepspeech2")
    assert (spec.quality_target, spec.higher_is_better) == (0.23, False)


def test_the_closed_division_refuses_the_readme_model():
    """The v0.5 README's 5 bidirectional layers of 800 are not the reference (the code is)."""
    cfg = load_config(Config, "speech_recognition/configs/reference.yaml",
                      ["model.rnn_hidden_size=800", "model.rnn_layers=5"])
    spec = benchmark_spec(cfg.ruleset, "deepspeech2")
    problems = spec.check_hyperparameters({**hyperparameters(cfg), constants.GLOBAL_BATCH_SIZE: 8})
    assert len(problems) == 2 and any("model_rnn_hidden_size" in p for p in problems)


def test_the_smoke_model_is_labelled_reduced_and_only_narrower():
    smoke = load_config(Config, "speech_recognition/configs/smoke.yaml")
    reference = Config()
    assert "REDUCED" in Path("speech_recognition/configs/smoke.yaml").read_text()
    assert smoke.model.rnn_layers == reference.model.rnn_layers and not smoke.model.rnn_bidirectional
    assert smoke.model.conv_channels < reference.model.conv_channels
    assert smoke.model.rnn_hidden_size < reference.model.rnn_hidden_size
    assert dataclasses.replace(smoke.optimizer, base_lr=reference.optimizer.base_lr) == reference.optimizer


def test_unknown_or_mistyped_keys_are_one_line():
    with pytest.raises(ConfigError, match="unknown key 'rnn_units'"):
        load_config(Config, None, ["model.rnn_units=3"])
    with pytest.raises(ConfigError, match="model.rnn_bidirectional: expected bool"):
        load_config(Config, None, ["model.rnn_bidirectional=3"])
