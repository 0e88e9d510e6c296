"""The one strict YAML loader shared by configs and rule files (compliance/strict_yaml.py)."""

from __future__ import annotations

import pytest

from compliance import ruleset, strict_yaml
from harness import config


def test_a_key_given_twice_is_refused_with_both_lines():
    with pytest.raises(strict_yaml.YamlError) as error:
        strict_yaml.loads("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n")
    assert error.value.line == 5
    assert error.value.problem == "duplicate key 'c' (first given at line 3)"
    assert error.value.where("x.yaml") == "x.yaml:5"


def test_yaml_1_2_booleans_only_true_and_false():
    data = strict_yaml.loads("a: off\nb: on\nc: yes\nd: no\ne: true\nf: False\ng: [off, TRUE]\n")
    assert data == {"a": "off", "b": "on", "c": "yes", "d": "no", "e": True, "f": False, "g": ["off", True]}


def test_mappings_remember_their_line():
    data = strict_yaml.loads("# comment\ntop:\n  - key: x\n    count: any\n  - key: y\n")
    assert isinstance(data, strict_yaml.LineMap) and data.line == 2
    assert [item.line for item in data["top"]] == [3, 5]


def test_merge_keys_may_be_overridden_but_explicit_duplicates_may_not():
    text = "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  x: 3\n"
    assert strict_yaml.loads(text)["derived"] == {"x": 3, "y": 2}
    with pytest.raises(strict_yaml.YamlError, match="duplicate key 'x'"):
        strict_yaml.loads(text + "  x: 4\n")


@pytest.mark.parametrize("text, problem", [
    ("a: [1, 2\n", "expected ',' or ']'"),
    ("? [1, 2]\n: v\n", "mapping key must be a scalar, found list"),
    ("a: !!python/object:os.system x\n", "could not determine a constructor"),
    ("[" * 600, "nested too deeply"),
], ids=["unclosed list", "list as key", "python object", "600 nested lists"])
def test_invalid_yaml_is_one_error_never_a_traceback(text, problem):
    with pytest.raises(strict_yaml.YamlError, match=problem.replace("[", r"\[")):
        strict_yaml.loads(text)


def test_configs_and_rule_files_use_this_loader(tmp_path):
    """One loader: both wrappers report the same duplicate, each in its own error type."""
    path = tmp_path / "dup.yaml"
    path.write_text("run:\n  seed: 1\n  seed: 2\n")
    with pytest.raises(config.ConfigError, match=r"dup.yaml:3: invalid YAML: duplicate key 'seed' \(first given at line 2\)"):
        config.load_yaml_strict(path)
    with pytest.raises(ruleset.RuleFileError, match=r"dup.yaml:3: duplicate key 'seed' \(first given at line 2\)"):
        ruleset.load_yaml_strict(path)
    path.write_text("log: {clock_timed_region: off}\n")
    assert config.load_yaml_strict(path) == ruleset.load_yaml_strict(path) == {"log": {"clock_timed_region": "off"}}
    assert not hasattr(config, "_StrictLoader") and not hasattr(ruleset, "_StrictLoader")
