"""Configs: defaults in a dataclass, then a YAML file loaded strictly, then `--set a.b=v` overrides.

Unknown keys, duplicate keys and wrong types are errors that name the file and the key. The result
is frozen (`dataclasses.replace` makes changed copies), logged, and written next to the results.

A benchmark declares its config as nested frozen dataclasses:

    @dataclass(frozen=True)
    class Optimizer:
        base_lr: float = 0.1
    @dataclass(frozen=True)
    class Config(BaseConfig):
        optimizer: Optimizer = Optimizer()

and loads it with `load_config(Config, "configs/smoke.yaml", ["optimizer.base_lr=0.2"])`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from compliance import strict_yaml
from harness.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    """Options of one run that are not hyperparameters: where things are, how to run, what to log."""

    seed: int = 1
    data_dir: str = "data"
    out_dir: str = "runs/latest"
    log_file: str = ""  # default: <out_dir>/mllog.txt
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision where the device supports it (CUDA); ignored on CPU
    deterministic: bool = False
    num_workers: int = 2
    threads: int = 0  # intra-op CPU threads; 0 = framework default
    verify_data: str = "full"  # full (sha256 of every file) | size | off
    checkpoint_every_epochs: int = 0  # 0 = never
    resume: bool = False
    progress: bool = True
    # False trains the whole epoch budget even after the target is met (convergence studies, tests);
    # the status is still decided by the last evaluation
    stop_at_target: bool = True


@dataclass(frozen=True)
class Submission:
    """What the `submission_*` keys of the log say."""

    org: str = "reference"
    platform: str = "cpu"
    division: str = "closed"
    status: str = "onprem"
    poc_name: str = ""
    poc_email: str = ""


@dataclass(frozen=True)
class BaseConfig:
    """Fields every benchmark config has. Benchmarks subclass it and add their own sections."""

    benchmark: str = ""
    ruleset: str = "mlbench-1.0.0"
    run: RunOptions = RunOptions()
    submission: Submission = Submission()


def load_yaml_strict(path: str | os.PathLike) -> Any:
    """Parse a YAML file with the suite's strict loader (`compliance.strict_yaml`: duplicate keys
    refused, YAML 1.2 booleans, so `verify_data: off` stays "off"); ConfigError names file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read ({error})") from None
    try:
        return strict_yaml.loads(text)
    except strict_yaml.YamlError as error:
        raise ConfigError(f"{error.where(str(path))}: invalid YAML: {error.problem}") from None


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field's annotation; convert only losslessly (int -> float, list -> tuple)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {annotation}, got {type(value).__name__} {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        items = [_coerce(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a section (mapping), got {type(value).__name__} {value!r}")
        return _build(annotation, value, where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config field type {annotation!r} at {where}")
    raise ConfigError(f"{where}: expected {_type_name(annotation)}, got {type(value).__name__} {value!r}")


def _build(cls: type[T], values: Mapping[str, Any], where: str, base: T | None = None) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        known = ", ".join(sorted(names))
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {known})")
    current = base if base is not None else cls()
    changes = {}
    for name, value in values.items():
        annotation = hints[name]
        key_where = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(annotation) and isinstance(value, Mapping):
            changes[name] = _build(annotation, value, key_where, getattr(current, name))
        else:
            changes[name] = _coerce(value, annotation, key_where)
    return dataclasses.replace(current, **changes)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=v` -> (['a', 'b'], v), with v parsed as a YAML scalar/list (so 3 is int, 1e-4 is float)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key=value, e.g. run.seed=3")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"override '{text}': empty key segment")
    try:
        value = strict_yaml.loads(raw) if raw.strip() else ""
    except strict_yaml.YamlError:
        value = raw
    # YAML 1.1 reads 1e-4 as a string; numbers written like that are meant as floats.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return path, value


def _nest(path: Sequence[str], value: Any) -> dict:
    nested: Any = value
    for part in reversed(path):
        nested = {part: nested}
    return nested


def _merge(into: dict, update: Mapping) -> dict:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), Mapping):
            into[key] = _merge(dict(into[key]), value)
        else:
            into[key] = value
    return into


def load_config(cls: type[T], path: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> T:
    """Defaults of `cls`, updated by the YAML file at `path`, then by `key=value` overrides."""
    config = cls()
    if path is not None:
        data = load_yaml_strict(path)
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping of config sections")
        config = _build(cls, data, str(path), config)
    merged: dict = {}
    for text in overrides:
        key_path, value = parse_override(text)
        _merge(merged, _nest(key_path, value))
    if merged:
        config = _build(cls, merged, "--set", config)
    return config


def config_to_dict(config: Any) -> dict:
    """A plain, JSON-able dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Write the final config as YAML next to the results (a new file; never overwrites silently)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")


__all__ = ["BaseConfig", "RunOptions", "Submission", "load_config", "load_yaml_strict",
           "config_to_dict", "save_config", "parse_override", "field"]
