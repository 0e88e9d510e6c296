"""Rule files: load, validate and merge the declarative rules of one ruleset.

A ruleset is a folder `compliance/rules/<name>/`:

    ruleset.yaml       name, source, benchmarks, divisions, log and package policies
                       (a derived ruleset says `extends:` and overrides targets / relaxes values)
    common.yaml        lifecycle keys every log must have, ordering and timing rules
    <benchmark>.yaml   quality target and direction, number of runs, eval schedule, and the keys
                       of each division (closed hyperparameters with their allowed values)
    examples/          a passing and a failing log per benchmark, checked by the tests

Rules are data: a key rule says how often a key must occur and what its value and metadata must
be, in a small fixed vocabulary (`equals`, `one_of`, `gt`, `multiple_of`, ...). Nothing in a rule
file is evaluated as code. Files are read with a YAML loader that rejects duplicate keys (in
mlperf-logging's `training_0.7.0/closed_ssd.yaml` a second `CHECK:` silently replaces the first),
and every record is validated against the schema below, so a typo is an error naming file and
line, not a check that silently never runs.

`load_ruleset(name)` returns an immutable `Ruleset`; it is cached per name (the objects are frozen,
so the cache holds no mutable state).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compliance import strict_yaml
from compliance.strict_yaml import LineMap as _Map

RULES_DIR = Path(__file__).resolve().parent / "rules"

SEVERITIES = ("error", "warning", "off")
COUNTS = ("exactly_one", "at_least_one", "any")
TYPES = ("number", "integer", "string", "boolean", "list", "object", "any")
DIVISIONS = ("closed", "open")


class RuleFileError(ValueError):
    """A rule file that cannot be used: unreadable, invalid YAML, duplicate key, schema violation."""


class UnknownRuleset(ValueError):
    """No rules folder of that name."""


def load_yaml_strict(path: Path) -> Any:
    """Parse one rule file with the suite's strict loader (`compliance.strict_yaml`: duplicate keys
    refused, YAML 1.2 booleans, every mapping knows its line); RuleFileError names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuleFileError(f"{path}: cannot read rule file ({error})") from None
    try:
        return strict_yaml.loads(text)
    except strict_yaml.YamlError as error:
        raise RuleFileError(f"{error.where(str(path))}: {error.problem}") from None


# --------------------------------------------------------------------------------------------
# Value constraints: the vocabulary of what a value may be.
# --------------------------------------------------------------------------------------------
_UNSET = object()
_INTEGER_TOLERANCE = 1e-5  # mlperf-logging's is_integer(): |round(x) - x| < 1e-5


def is_number(value: Any) -> bool:
    return (type(value) is int or type(value) is float) and type(value) is not bool


def _is_integral(x: float) -> bool:
    return math.isfinite(x) and abs(round(x) - x) < _INTEGER_TOLERANCE


def values_equal(a: Any, b: Any, _depth: int = 0) -> bool:
    """Equality for rule values: numbers compare with a 1e-9 relative tolerance, lists item-wise.

    Values nested deeper than 64 levels (a hostile log's) compare unequal rather than recurse.
    """
    if is_number(a) and is_number(b):
        if a == b:
            return True
        try:
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
        except OverflowError:  # an integer too large for a float equals no float
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if _depth > 64:
            return False
        return len(a) == len(b) and all(values_equal(x, y, _depth + 1) for x, y in zip(a, b, strict=True))
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, dict) or isinstance(b, dict):
        if _depth > 64 or not (isinstance(a, dict) and isinstance(b, dict)) or a.keys() != b.keys():
            return False
        return all(values_equal(a[key], b[key], _depth + 1) for key in a)
    return a == b


def show(value: Any, limit: int = 60, _depth: int = 0) -> str:
    """A short, bounded rendering of a logged value for messages (a 50 MB value stays short)."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "..."
        return "'" + text.replace("\n", "\\n") + "'"
    if isinstance(value, (list, tuple)):
        if _depth >= 3 and value:
            return "[...]"
        parts, size = [], 2
        for item in value[:8]:
            part = show(item, limit, _depth + 1)
            size += len(part) + 2
            if size > limit:
                break
            parts.append(part)
        more = len(value) - len(parts)
        return "[" + ", ".join(parts) + (f", ... ({len(value)} items)" if more else "") + "]"
    if isinstance(value, dict):
        if _depth >= 3 and value:
            return "{...}"
        keys = list(value)[:4]
        inner = ", ".join(f"{show(k, 20)}: {show(value[k], 20, _depth + 1)}" for k in keys)
        return "{" + inner + (", ..." if len(value) > 4 else "") + "}"
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _has_type(value: Any, wanted: str) -> bool:
    if wanted == "any":
        return True
    if wanted == "number":
        return is_number(value)
    if wanted == "integer":
        return type(value) is int or (type(value) is float and value.is_integer())
    if wanted == "string":
        return isinstance(value, str)
    if wanted == "boolean":
        return type(value) is bool
    if wanted == "list":
        return isinstance(value, list)
    if wanted == "object":
        return isinstance(value, dict)
    raise AssertionError(wanted)


@dataclass(frozen=True)
class Constraint:
    """What one value must be. Every field is optional; all given ones must hold."""

    type: str | None = None
    equals: Any = _UNSET
    one_of: tuple | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    multiple_of: float | None = None  # value / multiple_of is an integer (mlperf is_integer)
    power_of_two_times: float | None = None  # value = power_of_two_times * 2**N, N an integer
    length: int | None = None  # a list of exactly this many items
    items: tuple[Constraint, ...] | None = None  # constraints on the first items of a list
    not_empty: bool = False  # not '' (mlperf: v['value'] != ''), not null, not an empty list

    FIELDS = ("type", "equals", "one_of", "gt", "ge", "lt", "le", "multiple_of",
              "power_of_two_times", "length", "items", "not_empty")

    @functools.cached_property
    def is_empty(self) -> bool:
        return all(getattr(self, name) == getattr(_EMPTY_DEFAULTS, name) for name in self.FIELDS)

    @functools.cached_property
    def numeric(self) -> bool:
        return any(getattr(self, name) is not None
                   for name in ("gt", "ge", "lt", "le", "multiple_of", "power_of_two_times"))

    def only_type(self) -> Constraint:
        """The same constraint without its value rules (what a relaxed / open division keeps)."""
        return Constraint(type=self.type)

    def check(self, value: Any) -> str | None:
        """None when `value` satisfies every part; otherwise what was wanted, in words."""
        if self.type is not None and not _has_type(value, self.type):
            return f"a value of type {self.type}"
        if self.equals is not _UNSET and not values_equal(value, self.equals):
            return show(self.equals)
        if self.one_of is not None and not any(values_equal(value, option) for option in self.one_of):
            return "one of " + ", ".join(show(option) for option in self.one_of)
        if self.not_empty and (value is None or value == "" or value == [] or value == {}):
            return "a non-empty value"
        if self.numeric:
            if not is_number(value) or (type(value) is float and not math.isfinite(value)):
                return "a finite number " + self.describe_numeric()
            if self.gt is not None and not value > self.gt:
                return f"a number > {show(self.gt)}"
            if self.ge is not None and not value >= self.ge:
                return f"a number >= {show(self.ge)}"
            if self.lt is not None and not value < self.lt:
                return f"a number < {show(self.lt)}"
            if self.le is not None and not value <= self.le:
                return f"a number <= {show(self.le)}"
            try:
                if self.multiple_of is not None and not _is_integral(value / self.multiple_of):
                    return f"a multiple of {show(self.multiple_of)}"
                if self.power_of_two_times is not None:
                    ratio = value / self.power_of_two_times
                    if not (ratio > 0 and _is_integral(math.log2(ratio))):
                        return f"{show(self.power_of_two_times)} * 2^N for an integer N"
            except OverflowError:  # an integer of hundreds of digits
                return self.describe_numeric()
        if self.length is not None and (not isinstance(value, list) or len(value) != self.length):
            return f"a list of {self.length} items"
        if self.items is not None:
            if not isinstance(value, list) or len(value) < len(self.items):
                return f"a list of at least {len(self.items)} items"
            for index, item_rule in enumerate(self.items):
                wanted = item_rule.check(value[index])
                if wanted is not None:
                    return f"item {index}: {wanted}"
        return None

    def describe_numeric(self) -> str:
        parts = []
        for name, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(self, name) is not None:
                parts.append(f"{symbol} {show(getattr(self, name))}")
        if self.multiple_of is not None:
            parts.append(f"a multiple of {show(self.multiple_of)}")
        if self.power_of_two_times is not None:
            parts.append(f"{show(self.power_of_two_times)} * 2^N")
        return ", ".join(parts)

    def describe(self) -> str:
        """The whole constraint in words (for docs and `--explain`)."""
        parts = []
        if self.type is not None and self.type != "any":
            parts.append(self.type)
        if self.equals is not _UNSET:
            parts.append(f"= {show(self.equals)}")
        if self.one_of is not None:
            parts.append("one of " + ", ".join(show(option) for option in self.one_of))
        if self.not_empty:
            parts.append("not empty")
        if self.numeric:
            parts.append(self.describe_numeric())
        if self.length is not None:
            parts.append(f"{self.length} items")
        if self.items is not None:
            parts.extend(f"item {i}: {rule.describe()}" for i, rule in enumerate(self.items))
        return ", ".join(parts) or "any value"


_EMPTY_DEFAULTS = Constraint()


# --------------------------------------------------------------------------------------------
# The records of a ruleset.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyRule:
    """One key: how often it must occur in the log, and what its value and metadata must be."""

    key: str
    count: str = "any"  # exactly_one | at_least_one | any
    or_keys: tuple[str, ...] = ()  # at_least_one of {key, *or_keys} (mlperf AT_LEAST_ONE_OR)
    value: Constraint = Constraint()
    metadata: tuple[tuple[str, Constraint], ...] = ()  # each field required, with its constraint
    hyperparameter: bool = False  # part of spec.hyperparameter_keys
    example: Any = _UNSET  # a valid value (the reference's), for docs and synthetic logs
    origin: str = ""  # file:line of the record

    @property
    def has_example(self) -> bool:
        return self.example is not _UNSET

    def relaxed(self) -> KeyRule:
        """Keys and types stay; value rules go (open division, smoke relaxations)."""
        return dataclasses.replace(self, value=self.value.only_type())


@dataclass(frozen=True)
class OrderRule:
    """When `key` occurs, every `after` key has occurred and no `before` key has yet."""

    key: str
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    origin: str = ""


@dataclass(frozen=True)
class TimingRule:
    """`key` occurs less than `max_minutes` after the first `since_first` (the 20-min init rule)."""

    key: str
    since_first: str
    max_minutes: float
    origin: str = ""


@dataclass(frozen=True)
class Quality:
    """The quality target of a benchmark and which way is better."""

    metric: str  # human name: top1_accuracy, map, bleu, hr_at_10, win_rate, wer, ...
    target: float  # the primary target (the first component when there are several)
    direction: str  # higher | lower
    valid: Constraint = Constraint()  # range of a sane value (mlperf-logging: accuracy < 1.0)
    components: tuple[tuple[str, float], ...] = ()  # e.g. (("BBOX", 0.377), ("SEGM", 0.339))
    # (key, condition, target, division or ""): bert's 0.706 from a global batch of 8192, closed only
    target_when: tuple[tuple[str, Constraint, float, str], ...] = ()
    key: str = "eval_accuracy"

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def target_for(self, context: Mapping[str, Any] | None, division: str | None = None) -> float:
        if context:
            for key, condition, target, only_division in self.target_when:
                if only_division and only_division != division:
                    continue
                if key in context and condition.check(context[key]) is None:
                    return target
        return self.target

    def _meets(self, value: Any, target: float) -> bool:
        if not is_number(value) or (type(value) is float and not math.isfinite(value)):
            return False
        if self.valid.check(value) is not None:
            return False
        return value >= target if self.direction == "higher" else value <= target

    def reached(self, value: Any, context: Mapping[str, Any] | None = None, division: str | None = None) -> bool:
        """True when one logged quality value meets the target (and is in the valid range)."""
        if self.components:
            if not isinstance(value, Mapping):
                return False
            return all(name in value and self._meets(value[name], target)
                       for name, target in self.components)
        return self._meets(value, self.target_for(context, division))

    def describe(self, context: Mapping[str, Any] | None = None, division: str | None = None) -> str:
        symbol = ">=" if self.direction == "higher" else "<="
        if self.components:
            return " and ".join(f"{name} {symbol} {target}" for name, target in self.components)
        text = f"{self.metric} {symbol} {self.target_for(context, division)}"
        valid = self.valid.describe() if not self.valid.is_empty else ""
        return text + (f" ({valid})" if valid else "")


@dataclass(frozen=True)
class EvalSchedule:
    """How often quality must be evaluated: "at least as frequently as the reference"."""

    first_by_epoch: float | None = None  # the first eval at or before this epoch
    gaps: tuple[tuple[float, float], ...] = ()  # (from_epoch, max_gap) pairs, sorted

    def max_gap_at(self, epoch: float) -> float | None:
        allowed = None
        for from_epoch, max_gap in self.gaps:
            if epoch + 1e-9 >= from_epoch:
                allowed = max_gap
        return allowed


@dataclass(frozen=True)
class DivisionRules:
    keys: tuple[KeyRule, ...] = ()
    select_by: str | None = None  # a key whose value picks one of `variants` (resnet: opt_name)
    variants: tuple[tuple[str, tuple[KeyRule, ...]], ...] = ()
    default_variant: str | None = None

    def variant(self, name: str | None) -> tuple[KeyRule, ...]:
        for variant_name, rules in self.variants:
            if variant_name == name:
                return rules
        return ()

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.variants)


@dataclass(frozen=True)
class BenchmarkRules:
    name: str
    title: str
    number_of_runs: int
    quality: Quality
    eval_schedule: EvalSchedule | None
    divisions: tuple[tuple[str, DivisionRules], ...]
    source: str = ""
    file: str = ""

    def division(self, name: str) -> DivisionRules | None:
        for division_name, rules in self.divisions:
            if division_name == name:
                return rules
        return None


@dataclass(frozen=True)
class LogPolicy:
    """How strictly the checks beyond mlperf-logging's bite in this ruleset (error|warning|off)."""

    clock_timed_region: str = "error"  # time goes backwards between run_start and run_stop
    clock_before_run_start: str = "error"  # ... during initialization
    clock_tolerance_ms: float = 0.0
    event_type_matches_key: str = "error"  # *_start is INTERVAL_START, *_stop INTERVAL_END
    eval_schedule: str = "error"
    events_after_run_stop: str = "warning"  # reported and ignored; a later timestamp is an error
    out_of_range_quality: str = "warning"  # an eval value outside the metric's valid range


@dataclass(frozen=True)
class PackagePolicy:
    system_fields: tuple[str, ...] = ()
    unique_seeds: str = "error"
    max_failed_runs: int = 1  # olympic scoring drops one non-converging run as the slowest


@dataclass(frozen=True)
class Ruleset:
    name: str
    title: str
    sources: tuple[str, ...]
    benchmarks: tuple[tuple[str, BenchmarkRules], ...]
    common: tuple[KeyRule, ...]
    order: tuple[OrderRule, ...]
    timing: tuple[TimingRule, ...]
    log: LogPolicy
    package: PackagePolicy
    extends: str | None = None
    folder: str = ""

    @property
    def benchmark_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.benchmarks)

    def benchmark(self, name: str) -> BenchmarkRules | None:
        for benchmark_name, rules in self.benchmarks:
            if benchmark_name == name:
                return rules
        return None


# --------------------------------------------------------------------------------------------
# Schema validation: every record checked, every unknown field an error.
# --------------------------------------------------------------------------------------------
class _Where:
    def __init__(self, path: Path):
        self.path = path

    def at(self, node: Any, what: str = "") -> str:
        line = getattr(node, "line", 0)
        return f"{self.path.parent.name}/{self.path.name}" + (f":{line}" if line else "") + \
            (f": {what}" if what else "")

    def fail(self, node: Any, message: str) -> RuleFileError:
        return RuleFileError(f"{self.at(node)}: {message}")


def _expect_map(where: _Where, node: Any, what: str, allowed: Iterable[str],
                required: Iterable[str] = ()) -> Mapping:
    if not isinstance(node, dict):
        raise where.fail(node, f"{what}: wanted a mapping, found {type_name(node)}")
    unknown = sorted(set(node) - set(allowed), key=str)
    if unknown:
        raise where.fail(node, f"{what}: unknown field '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
    missing = [name for name in required if name not in node]
    if missing:
        raise where.fail(node, f"{what}: missing field '{missing[0]}'")
    return node


def _expect(where: _Where, parent: Any, value: Any, what: str, kinds: tuple[type, ...], kind_name: str) -> Any:
    if not isinstance(value, kinds) or (type(value) is bool and bool not in kinds):
        raise where.fail(parent, f"{what}: wanted {kind_name}, found {type_name(value)} {show(value)}")
    return value


def _number(where: _Where, parent: Any, value: Any, what: str) -> float:
    _expect(where, parent, value, what, (int, float), "a number")
    if not math.isfinite(value):
        raise where.fail(parent, f"{what}: wanted a finite number, found {value}")
    return value


def _str_list(where: _Where, parent: Any, value: Any, what: str) -> tuple[str, ...]:
    _expect(where, parent, value, what, (list,), "a list of names")
    for item in value:
        _expect(where, parent, item, what, (str,), "a name")
    return tuple(value)


def _parse_constraint(where: _Where, node: Mapping, what: str, extra_allowed: Iterable[str] = ()) -> Constraint:
    fields: dict[str, Any] = {}
    for name in Constraint.FIELDS:
        if name not in node:
            continue
        value = node[name]
        label = f"{what}.{name}"
        if name == "type":
            if value not in TYPES:
                raise where.fail(node, f"{label}: wanted one of {', '.join(TYPES)}, found {show(value)}")
        elif name == "one_of":
            _expect(where, node, value, label, (list,), "a list")
            if not value:
                raise where.fail(node, f"{label}: wanted a non-empty list")
            value = tuple(value)
        elif name in ("gt", "ge", "lt", "le"):
            _number(where, node, value, label)
        elif name in ("multiple_of", "power_of_two_times"):
            if _number(where, node, value, label) <= 0:
                raise where.fail(node, f"{label}: wanted a number > 0, found {show(value)}")
        elif name == "length":
            _expect(where, node, value, label, (int,), "an integer")
            if value < 0:
                raise where.fail(node, f"{label}: wanted an integer >= 0")
        elif name == "items":
            _expect(where, node, value, label, (list,), "a list of constraints")
            value = tuple(_parse_constraint(where, _expect_map(where, item, f"{label}[{i}]", Constraint.FIELDS),
                                            f"{label}[{i}]") for i, item in enumerate(value))
        elif name == "not_empty":
            _expect(where, node, value, label, (bool,), "true or false")
        fields[name] = value
    constraint = Constraint(**fields)
    bounds = [b for b in (constraint.gt, constraint.ge) if b is not None]
    tops = [t for t in (constraint.lt, constraint.le) if t is not None]
    if bounds and tops and max(bounds) > min(tops):
        raise where.fail(node, f"{what}: empty range (lower bound {max(bounds)} > upper bound {min(tops)})")
    return constraint


_KEY_FIELDS = ("key", "count", "or_keys", "metadata", "hyperparameter", "example", "note") + Constraint.FIELDS


def _parse_key_rule(where: _Where, node: Any, what: str) -> KeyRule:
    node = _expect_map(where, node, what, _KEY_FIELDS, required=("key",))
    key = _expect(where, node, node["key"], f"{what}.key", (str,), "a key name")
    what = f"{what} ({key})"
    count = node.get("count", "any")
    if count not in COUNTS:
        raise where.fail(node, f"{what}.count: wanted one of {', '.join(COUNTS)}, found {show(count)}")
    or_keys = _str_list(where, node, node.get("or_keys", []), f"{what}.or_keys")
    if or_keys and count != "at_least_one":
        raise where.fail(node, f"{what}.or_keys: only with count: at_least_one")
    value = _parse_constraint(where, node, what)
    metadata = []
    if "metadata" in node:
        meta_node = _expect_map(where, node["metadata"], f"{what}.metadata", allowed=node["metadata"]
                                if isinstance(node["metadata"], dict) else ())
        for field_name, rule_node in meta_node.items():
            _expect(where, meta_node, field_name, f"{what}.metadata", (str,), "a field name")
            if rule_node is None:
                rule_node = _Map()
            rule_node = _expect_map(where, rule_node, f"{what}.metadata.{field_name}", Constraint.FIELDS)
            metadata.append((field_name, _parse_constraint(where, rule_node, f"{what}.metadata.{field_name}")))
    hyperparameter = _expect(where, node, node.get("hyperparameter", False), f"{what}.hyperparameter",
                             (bool,), "true or false")
    example = node.get("example", _UNSET)
    if "note" in node:
        _expect(where, node, node["note"], f"{what}.note", (str,), "text")
    rule = KeyRule(key=key, count=count, or_keys=or_keys, value=value, metadata=tuple(metadata),
                   hyperparameter=hyperparameter, example=example, origin=where.at(node))
    if rule.has_example:
        wanted = rule.value.check(example)
        if wanted is not None:  # a rule file that contradicts itself is caught on load
            raise where.fail(node, f"{what}.example {show(example)} breaks its own rule: wanted {wanted}")
    return rule


def _parse_key_list(where: _Where, node: Any, what: str) -> tuple[KeyRule, ...]:
    _expect(where, node, node, what, (list,), "a list of key rules")
    rules = tuple(_parse_key_rule(where, item, f"{what}[{i}]") for i, item in enumerate(node))
    seen: dict[str, KeyRule] = {}
    for rule in rules:
        if rule.key in seen:
            raise RuleFileError(f"{rule.origin}: key '{rule.key}' has two records "
                                f"(first at {seen[rule.key].origin}); merge them")
        seen[rule.key] = rule
    return rules


def _severity(where: _Where, node: Mapping, name: str, default: str) -> str:
    value = node.get(name, default)
    if value not in SEVERITIES:
        raise where.fail(node, f"log.{name}: wanted one of {', '.join(SEVERITIES)}, found {show(value)}")
    return value


def _parse_log_policy(where: _Where, node: Any) -> LogPolicy:
    fields = [f.name for f in dataclasses.fields(LogPolicy)]
    node = _expect_map(where, node if node is not None else _Map(), "log", fields)
    defaults = LogPolicy()
    values: dict[str, Any] = {}
    for name in fields:
        if name == "clock_tolerance_ms":
            values[name] = _number(where, node, node.get(name, defaults.clock_tolerance_ms), f"log.{name}")
        else:
            values[name] = _severity(where, node, name, getattr(defaults, name))
    return LogPolicy(**values)


def _parse_package_policy(where: _Where, node: Any) -> PackagePolicy:
    node = _expect_map(where, node if node is not None else _Map(), "package",
                       ("system_fields", "unique_seeds", "max_failed_runs"))
    max_failed = _expect(where, node, node.get("max_failed_runs", 1), "package.max_failed_runs", (int,), "an integer")
    return PackagePolicy(
        system_fields=_str_list(where, node, node.get("system_fields", []), "package.system_fields"),
        unique_seeds=_severity(where, node, "unique_seeds", "error"),
        max_failed_runs=max_failed)


def _parse_quality(where: _Where, node: Any) -> Quality:
    node = _expect_map(where, node, "quality", ("metric", "target", "components", "direction", "valid",
                                                 "target_when", "key"), required=("metric", "direction"))
    metric = _expect(where, node, node["metric"], "quality.metric", (str,), "a metric name")
    direction = node["direction"]
    if direction not in ("higher", "lower"):
        raise where.fail(node, f"quality.direction: wanted higher or lower, found {show(direction)}")
    components: tuple[tuple[str, float], ...] = ()
    if "components" in node:
        comp_node = node["components"]
        if not isinstance(comp_node, dict) or not comp_node:
            raise where.fail(node, "quality.components: wanted a mapping of component name to target")
        components = tuple((str(name), _number(where, node, target, f"quality.components.{name}"))
                           for name, target in comp_node.items())
        if "target" in node:
            raise where.fail(node, "quality: give either target or components, not both")
        target = components[0][1]
    else:
        if "target" not in node:
            raise where.fail(node, "quality: missing field 'target'")
        target = _number(where, node, node["target"], "quality.target")
    valid = Constraint()
    if "valid" in node:
        valid = _parse_constraint(where, _expect_map(where, node["valid"], "quality.valid", Constraint.FIELDS),
                                  "quality.valid")
    target_when = []
    for i, item in enumerate(node.get("target_when", []) or []):
        item = _expect_map(where, item, f"quality.target_when[{i}]",
                           ("key", "target", "division") + Constraint.FIELDS, required=("key", "target"))
        only_division = item.get("division", "")
        if only_division and only_division not in DIVISIONS:
            raise where.fail(item, f"quality.target_when[{i}].division: wanted one of {', '.join(DIVISIONS)}")
        target_when.append((_expect(where, item, item["key"], "key", (str,), "a key"),
                            _parse_constraint(where, item, f"quality.target_when[{i}]"),
                            _number(where, item, item["target"], f"quality.target_when[{i}].target"),
                            only_division))
    quality = Quality(metric=metric, target=target, direction=direction, valid=valid,
                      components=components, target_when=tuple(target_when),
                      key=node.get("key", "eval_accuracy"))
    for name, value in components or (("target", target),):
        if valid.check(value) is not None:
            raise where.fail(node, f"quality.{name} {value} is outside quality.valid ({valid.describe()})")
    return quality


def _parse_eval_schedule(where: _Where, node: Any) -> EvalSchedule | None:
    if node is None:
        return None
    node = _expect_map(where, node, "eval_schedule", ("first_by_epoch", "max_gap_epochs", "note"))
    first = node.get("first_by_epoch")
    if first is not None:
        _number(where, node, first, "eval_schedule.first_by_epoch")
    gaps_node = node.get("max_gap_epochs")
    gaps: list[tuple[float, float]] = []
    if isinstance(gaps_node, list):
        for i, item in enumerate(gaps_node):
            item = _expect_map(where, item, f"eval_schedule.max_gap_epochs[{i}]", ("from_epoch", "max_gap"),
                               required=("from_epoch", "max_gap"))
            gaps.append((_number(where, item, item["from_epoch"], "from_epoch"),
                         _number(where, item, item["max_gap"], "max_gap")))
    elif gaps_node is not None:
        gaps.append((float("-inf"), _number(where, node, gaps_node, "eval_schedule.max_gap_epochs")))
    if any(gap <= 0 for _, gap in gaps):
        raise where.fail(node, "eval_schedule.max_gap_epochs: gaps must be > 0")
    return EvalSchedule(first_by_epoch=first, gaps=tuple(sorted(gaps)))


def _parse_division(where: _Where, node: Any, what: str, closed: DivisionRules | None) -> DivisionRules:
    node = _expect_map(where, node, what, ("keys", "select_by", "variants", "default_variant",
                                           "same_keys_as_closed", "note"))
    if node.get("same_keys_as_closed"):
        if closed is None:
            raise where.fail(node, f"{what}.same_keys_as_closed: no closed division to copy")
        extra = _parse_key_list(where, node.get("keys", []), f"{what}.keys")
        relax = lambda rules: tuple(rule.relaxed() for rule in rules)  # noqa: E731
        merged = {rule.key: rule for rule in relax(closed.keys)}
        merged.update({rule.key: rule for rule in extra})
        return DivisionRules(keys=tuple(merged.values()), select_by=closed.select_by,
                             variants=tuple((name, relax(rules)) for name, rules in closed.variants),
                             default_variant=closed.default_variant)
    keys = _parse_key_list(where, node.get("keys", []), f"{what}.keys")
    select_by = node.get("select_by")
    variants: list[tuple[str, tuple[KeyRule, ...]]] = []
    if select_by is not None:
        _expect(where, node, select_by, f"{what}.select_by", (str,), "a key name")
        if select_by not in {rule.key for rule in keys}:
            raise where.fail(node, f"{what}.select_by: '{select_by}' has no key rule in {what}.keys")
        variants_node = _expect_map(where, node.get("variants"), f"{what}.variants",
                                    allowed=node.get("variants") if isinstance(node.get("variants"), dict) else ())
        for name, variant_node in variants_node.items():
            variants.append((str(name), _parse_key_list(where, variant_node, f"{what}.variants.{name}")))
        if not variants:
            raise where.fail(node, f"{what}.variants: wanted at least one variant")
    elif "variants" in node:
        raise where.fail(node, f"{what}.variants: needs select_by")
    default_variant = node.get("default_variant")
    if default_variant is not None and default_variant not in [name for name, _ in variants]:
        raise where.fail(node, f"{what}.default_variant: '{default_variant}' is not a variant")
    base = {rule.key for rule in keys}
    for name, rules in variants:
        clash = base & {rule.key for rule in rules}
        if clash:
            raise where.fail(node, f"{what}.variants.{name}: key '{sorted(clash)[0]}' is also in {what}.keys")
    return DivisionRules(keys=keys, select_by=select_by, variants=tuple(variants),
                         default_variant=default_variant)


def _source_comment(path: Path) -> str:
    """The `# Source:` lines at the top of a rule file (every file must name its source)."""
    lines = []
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.startswith("#"):
                    break
                lines.append(line[1:].strip())
    except OSError:
        return ""
    text = " ".join(lines)
    return text if "Source:" in text else ""


def _parse_benchmark_file(path: Path, name: str) -> BenchmarkRules:
    where = _Where(path)
    node = load_yaml_strict(path)
    node = _expect_map(where, node, path.name, ("benchmark", "title", "number_of_runs", "quality",
                                                "eval_schedule", "closed", "open", "note"),
                       required=("benchmark", "number_of_runs", "quality"))
    if node["benchmark"] != name:
        raise where.fail(node, f"benchmark: file is {path.name}, but it says '{node['benchmark']}'")
    source = _source_comment(path)
    if not source:
        raise RuleFileError(f"{where.at(None)}: a rule file starts with a '# Source:' comment naming the rules it implements")
    runs = _expect(where, node, node["number_of_runs"], "number_of_runs", (int,), "an integer")
    if runs < 1:
        raise where.fail(node, "number_of_runs: wanted an integer >= 1")
    closed = _parse_division(where, node["closed"], "closed", None) if "closed" in node else None
    divisions = []
    if closed is not None:
        divisions.append(("closed", closed))
    if "open" in node:
        divisions.append(("open", _parse_division(where, node["open"], "open", closed)))
    return BenchmarkRules(
        name=name, title=str(node.get("title", name)), number_of_runs=runs,
        quality=_parse_quality(where, node["quality"]),
        eval_schedule=_parse_eval_schedule(where, node.get("eval_schedule")),
        divisions=tuple(divisions), source=source, file=str(path))


def _parse_common(path: Path) -> tuple[tuple[KeyRule, ...], tuple[OrderRule, ...], tuple[TimingRule, ...]]:
    where = _Where(path)
    node = _expect_map(where, load_yaml_strict(path), path.name, ("keys", "order", "timing", "note"),
                       required=("keys",))
    if not _source_comment(path):
        raise RuleFileError(f"{where.at(None)}: a rule file starts with a '# Source:' comment")
    keys = _parse_key_list(where, node["keys"], "keys")
    order = []
    for i, item in enumerate(node.get("order", []) or []):
        item = _expect_map(where, item, f"order[{i}]", ("key", "after", "before"), required=("key",))
        order.append(OrderRule(key=_expect(where, item, item["key"], f"order[{i}].key", (str,), "a key"),
                               after=_str_list(where, item, item.get("after", []), f"order[{i}].after"),
                               before=_str_list(where, item, item.get("before", []), f"order[{i}].before"),
                               origin=where.at(item)))
    timing = []
    for i, item in enumerate(node.get("timing", []) or []):
        item = _expect_map(where, item, f"timing[{i}]", ("key", "since_first", "max_minutes"),
                           required=("key", "since_first", "max_minutes"))
        timing.append(TimingRule(key=_expect(where, item, item["key"], "key", (str,), "a key"),
                                 since_first=_expect(where, item, item["since_first"], "since_first", (str,), "a key"),
                                 max_minutes=_number(where, item, item["max_minutes"], f"timing[{i}].max_minutes"),
                                 origin=where.at(item)))
    return keys, tuple(order), tuple(timing)


def _relax(rules: tuple[KeyRule, ...], keys: set[str]) -> tuple[KeyRule, ...]:
    return tuple(rule.relaxed() if rule.key in keys else rule for rule in rules)


def _apply_derivation(parent: Ruleset, node: Mapping, where: _Where) -> tuple[tuple[str, BenchmarkRules], ...]:
    """A derived ruleset (the smoke one): other targets, and relaxed closed-division values."""
    targets = node.get("targets") or {}
    relax = node.get("relax") or {}
    runs = node.get("number_of_runs")
    if runs is not None and (type(runs) is not int or runs < 1):
        raise where.fail(node, f"number_of_runs: wanted an integer >= 1, found {show(runs)}")
    _expect(where, node, targets, "targets", (dict,), "a mapping benchmark -> target")
    _expect(where, node, relax, "relax", (dict,), "a mapping benchmark -> [keys]")
    names = parent.benchmark_names
    for label, mapping in (("targets", targets), ("relax", relax)):
        for benchmark in mapping:
            if benchmark not in names:
                raise where.fail(mapping, f"{label}.{benchmark}: not a benchmark of {parent.name}")
    benchmarks = []
    for name, rules in parent.benchmarks:
        quality = rules.quality
        if name in targets:
            target = targets[name]
            if quality.components:
                target_map = _expect_map(where, target, f"targets.{name}", [c for c, _ in quality.components],
                                         required=[c for c, _ in quality.components])
                components = tuple((c, _number(where, targets, target_map[c], f"targets.{name}.{c}"))
                                   for c, _ in quality.components)
                quality = dataclasses.replace(quality, components=components, target=components[0][1])
            else:
                quality = dataclasses.replace(quality, target=_number(where, targets, target, f"targets.{name}"))
            for _, value in quality.components or (("target", quality.target),):
                if quality.valid.check(value) is not None:
                    raise where.fail(targets, f"targets.{name}: {value} outside {quality.valid.describe()}")
        relaxed_keys = set(_str_list(where, relax, relax.get(name, []), f"relax.{name}"))
        divisions = []
        for division_name, division in rules.divisions:
            if division_name == "closed" and relaxed_keys:
                known = {rule.key for rule in division.keys} | {
                    rule.key for _, variant in division.variants for rule in variant}
                unknown = relaxed_keys - known
                if unknown:
                    raise where.fail(relax, f"relax.{name}: '{sorted(unknown)[0]}' is not a closed-division key")
                division = dataclasses.replace(
                    division, keys=_relax(division.keys, relaxed_keys),
                    variants=tuple((v, _relax(r, relaxed_keys)) for v, r in division.variants))
            divisions.append((division_name, division))
        benchmarks.append((name, dataclasses.replace(rules, quality=quality, divisions=tuple(divisions),
                                                     number_of_runs=runs or rules.number_of_runs)))
    return tuple(benchmarks)


def available_rulesets() -> tuple[str, ...]:
    if not RULES_DIR.is_dir():
        return ()
    return tuple(sorted(entry.name for entry in RULES_DIR.iterdir()
                        if (entry / "ruleset.yaml").is_file()))


@functools.lru_cache(maxsize=16)
def load_ruleset(name: str) -> Ruleset:
    """Load, validate and merge one ruleset; UnknownRuleset / RuleFileError with a clear message."""
    return load_ruleset_from(RULES_DIR, name)


def load_ruleset_from(rules_dir: Path, name: str) -> Ruleset:
    """`load_ruleset` for a rules folder of one's own (tests, drafts of new rules); not cached."""
    rules_dir = Path(rules_dir)
    known = sorted(entry.name for entry in rules_dir.iterdir() if (entry / "ruleset.yaml").is_file()) \
        if rules_dir.is_dir() else []
    if not isinstance(name, str) or not name or "/" in name or os.sep in name or name.startswith("."):
        raise UnknownRuleset(f"unknown ruleset {name!r} (available: {', '.join(known)})")
    folder = rules_dir / name
    path = folder / "ruleset.yaml"
    if not path.is_file():
        raise UnknownRuleset(f"unknown ruleset '{name}' (available: {', '.join(known)})")
    where = _Where(path)
    node = _expect_map(where, load_yaml_strict(path), "ruleset.yaml",
                       ("ruleset", "title", "sources", "extends", "benchmarks", "divisions", "log", "package",
                        "targets", "relax", "number_of_runs", "note"), required=("ruleset", "title"))
    if node["ruleset"] != name:
        raise where.fail(node, f"ruleset: folder is '{name}', but the file says '{node['ruleset']}'")
    if not _source_comment(path):
        raise RuleFileError(f"{where.at(None)}: a rule file starts with a '# Source:' comment")
    sources = _str_list(where, node, node.get("sources", []), "sources")
    if "extends" in node:
        parent_name = _expect(where, node, node["extends"], "extends", (str,), "a ruleset name")
        if parent_name == name:
            raise where.fail(node, "extends: a ruleset cannot extend itself")
        for forbidden in ("benchmarks", "divisions"):
            if forbidden in node:
                raise where.fail(node, f"{forbidden}: a derived ruleset takes them from '{parent_name}'")
        parent = load_ruleset(parent_name) if rules_dir == RULES_DIR else load_ruleset_from(rules_dir, parent_name)
        if parent.extends:
            raise where.fail(node, "extends: only one level of derivation")
        benchmarks = _apply_derivation(parent, node, where)
        return dataclasses.replace(
            parent, name=name, title=str(node["title"]), sources=sources or parent.sources,
            benchmarks=benchmarks, extends=parent_name, folder=str(folder),
            log=_parse_log_policy(where, node["log"]) if "log" in node else parent.log,
            package=_parse_package_policy(where, node["package"]) if "package" in node else parent.package)
    for forbidden in ("targets", "relax", "number_of_runs"):
        if forbidden in node:
            raise where.fail(node, f"{forbidden}: only a derived ruleset (extends:) overrides these")
    names = _str_list(where, node, node.get("benchmarks", []), "benchmarks")
    if not names:
        raise where.fail(node, "benchmarks: wanted at least one benchmark")
    divisions = _str_list(where, node, node.get("divisions", list(DIVISIONS)), "divisions")
    if set(divisions) - set(DIVISIONS):
        raise where.fail(node, f"divisions: wanted some of {', '.join(DIVISIONS)}")
    common, order, timing = _parse_common(folder / "common.yaml")
    benchmarks = []
    for benchmark in names:
        benchmark_path = folder / f"{benchmark}.yaml"
        if not benchmark_path.is_file():
            raise where.fail(node, f"benchmarks: no rule file {benchmark}.yaml for '{benchmark}'")
        rules = _parse_benchmark_file(benchmark_path, benchmark)
        missing = [d for d in divisions if rules.division(d) is None]
        if missing:
            raise RuleFileError(f"{benchmark_path}: no '{missing[0]}' division section")
        benchmarks.append((benchmark, rules))
    stray = sorted(p.stem for p in folder.glob("*.yaml") if p.stem not in {"ruleset", "common", *names})
    if stray:
        raise where.fail(node, f"benchmarks: rule file {stray[0]}.yaml is not listed (it would never run)")
    return Ruleset(name=name, title=str(node["title"]), sources=sources, benchmarks=tuple(benchmarks),
                   common=common, order=order, timing=timing,
                   log=_parse_log_policy(where, node.get("log")),
                   package=_parse_package_policy(where, node.get("package")), folder=str(folder))


def division_rules(ruleset: Ruleset, benchmark: str, division: str) -> DivisionRules | None:
    rules = ruleset.benchmark(benchmark)
    return rules.division(division) if rules is not None else None


def merged_key_rules(ruleset: Ruleset, benchmark: str | None, division: str | None) -> dict[str, KeyRule]:
    """Common rules overridden by the benchmark's division rules, key by key (variants excluded).

    A benchmark record replaces the common record of the same key entirely, as a later config's
    record replaces an earlier one's in mlperf-logging (`overwrite_messages`).
    """
    merged = {rule.key: rule for rule in ruleset.common}
    division_rule_set = division_rules(ruleset, benchmark, division) if benchmark and division else None
    if division_rule_set is not None:
        merged.update({rule.key: rule for rule in division_rule_set.keys})
    return merged


__all__ = [
    "Constraint", "KeyRule", "OrderRule", "TimingRule", "Quality", "EvalSchedule", "DivisionRules",
    "BenchmarkRules", "LogPolicy", "PackagePolicy", "Ruleset", "RuleFileError", "UnknownRuleset",
    "load_ruleset", "load_ruleset_from", "available_rulesets", "merged_key_rules", "division_rules", "load_yaml_strict",
    "show", "type_name", "is_number", "values_equal", "RULES_DIR",
]
