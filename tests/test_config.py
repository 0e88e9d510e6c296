"""Configs: defaults, strict YAML, typed --set overrides, frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from harness.config import BaseConfig, config_to_dict, load_config, load_yaml_strict, save_config
from harness.errors import ConfigError


@dataclass(frozen=True)
class Optimizer:
    base_lr: float = 0.1
    momentum: float = 0.9
    name: str = "sgd"
    layers: tuple[int, ...] = (3, 4, 6, 3)


@dataclass(frozen=True)
class ExampleConfig(BaseConfig):
    optimizer: Optimizer = Optimizer()


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "optimizer:\n  base_lr: 2\n  layers: [1, 1]\nrun:\n  seed: 5\n")
    cfg = load_config(ExampleConfig, path, ["optimizer.momentum=0.5", "run.out_dir=/tmp/x", "optimizer.base_lr=1e-4"])
    assert cfg.optimizer == Optimizer(base_lr=1e-4, momentum=0.5, layers=(1, 1))
    assert isinstance(cfg.optimizer.base_lr, float)
    assert cfg.run.seed == 5 and cfg.run.out_dir == "/tmp/x" and cfg.run.num_workers == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optimizer.base_lr = 3  # type: ignore[misc]


@pytest.mark.parametrize("text, message", [
    ("optimizer:\n  base_lr: 0.1\n  base_lr: 0.2\n", "duplicate key 'base_lr'"),
    ("optimizer:\n  bse_lr: 0.1\n", "unknown key 'bse_lr'"),
    ("optimizer:\n  base_lr: fast\n", "optimizer.base_lr: expected float, got str 'fast'"),
    ("optimizer:\n  momentum: true\n", "optimizer.momentum: expected float, got bool"),
    ("run:\n  seed: 1.5\n", "run.seed: expected int, got float"),
    ("optimizer: 3\n", "optimizer: expected a section"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("optimizer:\n  base_lr: [\n", "invalid YAML"),
])
def test_bad_files_name_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as error:
        load_config(ExampleConfig, path)
    assert str(path) in str(error.value)


def test_bad_overrides():
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config(ExampleConfig, None, ["optimizer.nope=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(ExampleConfig, None, ["optimizer.base_lr"])
    with pytest.raises(ConfigError, match="run.seed: expected int"):
        load_config(ExampleConfig, None, ["run.seed=abc"])


def test_missing_file_is_one_line():
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(ExampleConfig, "/nonexistent/config.yaml")


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config(ExampleConfig, None, ["optimizer.layers=[2, 2]", "run.seed=9"])
    save_config(cfg, tmp_path / "out" / "config.yaml")
    assert load_config(ExampleConfig, tmp_path / "out" / "config.yaml") == cfg
    assert config_to_dict(cfg)["optimizer"]["layers"] == [2, 2]
    assert load_yaml_strict(tmp_path / "out" / "config.yaml")["run"]["seed"] == 9
