"""The one strict YAML loader of this suite: configs (`harness.config`) and rule files (`compliance.ruleset`).

- a key given twice in one mapping is an error, never a silent override (mlperf-logging's
  `training_0.7.0/closed_ssd.yaml` gives `CHECK:` twice, so its first check never runs);
- mapping keys are scalars;
- every mapping remembers the line it starts on (`LineMap.line`), so a schema error names it;
- YAML 1.2 booleans: only true/false (any case style YAML allows) are booleans. YAML 1.1 (PyYAML's
  default) also reads yes/no/on/off, so `verify_data: off` or a severity `off` would be False;
- SafeLoader underneath: no Python objects, nothing executed.

It imports only PyYAML, so `harness` and `compliance` both import it without a cycle. Callers turn
`YamlError` into their own error type (ConfigError, RuleFileError) with the file name in front.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class YamlError(ValueError):
    """Invalid YAML or a duplicate key: `problem` in words, `line` (1-based) when known."""

    def __init__(self, problem: str, line: int | None):
        super().__init__(f"{line}: {problem}" if line else problem)
        self.problem = problem
        self.line = line

    def where(self, source: str) -> str:
        """`source:line` (or just `source` when the line is unknown)."""
        return f"{source}:{self.line}" if self.line else str(source)


class LineMap(dict):
    """A mapping read from YAML that knows the line it starts on (for error messages)."""

    line: int = 0


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping and reads YAML 1.2 booleans."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> LineMap:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, whose keys the explicit ones override
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key must be a scalar, found {type(key).__name__}", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first given at line {seen[key]})", key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    result = LineMap(loader.construct_mapping(node, deep=True))  # flattens `<<` merges
    result.line = node.start_mark.line + 1
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def loads(text: str) -> Any:
    """Parse YAML text strictly; YamlError (problem, line) for invalid YAML or a duplicate key."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise YamlError(problem, mark.line + 1 if mark is not None else None) from None
    except RecursionError:  # thousands of nested brackets
        raise YamlError("nested too deeply", None) from None


__all__ = ["YamlError", "LineMap", "loads"]
