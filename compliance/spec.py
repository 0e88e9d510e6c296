"""One benchmark's rules as the training code needs them: target, direction, runs, hyperparameter keys.

    from compliance.spec import benchmark_spec
    spec = benchmark_spec(ruleset="mlbench-1.0.0-smoke", benchmark="resnet", division="closed")
    spec.quality_target, spec.higher_is_better, spec.number_of_runs
    spec.hyperparameter_keys_for({"opt_name": "lars"})     # the LARS keys
    spec.check_hyperparameters({...})                       # [] or one readable line per violation

It is read from the same rule files the checker enforces (`compliance/rules/<ruleset>/`), so what
the harness logs, what the docs say and what the checker wants cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compliance.ruleset import (
    BenchmarkRules,
    DivisionRules,
    EvalSchedule,
    KeyRule,
    Quality,
    RuleFileError,
    Ruleset,
    UnknownRuleset,
    available_rulesets,
    load_ruleset,
    show,
)


class SpecError(ValueError):
    """Unknown ruleset, benchmark or division (or a broken rule file), in one readable line."""


def _plain(value: Any) -> Any:
    """Config values as a log carries them: tuples become lists (JSON has no tuples)."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class BenchmarkSpec:
    """The rules of one benchmark in one division of one ruleset."""

    ruleset: str
    benchmark: str
    division: str
    title: str
    quality: Quality
    number_of_runs: int
    eval_schedule: EvalSchedule | None
    _division_rules: DivisionRules
    _common: tuple[KeyRule, ...]

    # -- quality ---------------------------------------------------------------------------------
    @property
    def quality_metric(self) -> str:
        return self.quality.metric

    @property
    def quality_target(self) -> float:
        """The target (for Mask R-CNN, with two components, the first one: box AP)."""
        return self.quality.target

    @property
    def quality_targets(self) -> dict[str, float]:
        """Every component's target: {"BBOX": 0.377, "SEGM": 0.339}, or {metric: target}."""
        if self.quality.components:
            return dict(self.quality.components)
        return {self.quality.metric: self.quality.target}

    @property
    def higher_is_better(self) -> bool:
        return self.quality.higher_is_better

    def target_reached(self, value: Any, context: Mapping[str, Any] | None = None) -> bool:
        """True when `value` (a float, or {"BBOX": .., "SEGM": ..} for Mask R-CNN) meets the target.

        The same test the checker applies to eval_accuracy, including the metric's valid range.
        `context` gives logged values a target depends on (BERT: global_batch_size).
        """
        if isinstance(value, Mapping):
            return self.quality.reached(_plain(value), context, self.division)
        if isinstance(value, (str, bytes, bool)):  # the checker does not count these either
            return False
        try:  # numpy / torch / tf scalars are numbers too
            number = float(value)
        except (TypeError, ValueError):
            return False
        return math.isfinite(number) and self.quality.reached(number, context, self.division)

    @property
    def eval_every_epochs(self) -> float | None:
        """The largest allowed gap between evaluations from the start (None: not epoch-based)."""
        if self.eval_schedule is None or not self.eval_schedule.gaps:
            return None
        return self.eval_schedule.gaps[0][1]

    # -- hyperparameters -------------------------------------------------------------------------
    def _variant_name(self, values: Mapping[str, Any] | None) -> str | None:
        rules = self._division_rules
        if rules.select_by is None:
            return None
        chosen = values.get(rules.select_by) if values else None
        if isinstance(chosen, str) and chosen in rules.variant_names:
            return chosen
        return rules.default_variant

    def _hyperparameter_rules(self, values: Mapping[str, Any] | None) -> tuple[KeyRule, ...]:
        rules = self._division_rules
        chosen = rules.keys + rules.variant(self._variant_name(values))
        return tuple(rule for rule in chosen if rule.hyperparameter)

    @property
    def hyperparameter_keys(self) -> tuple[str, ...]:
        """Every hyperparameter key a run must log (lifecycle keys aside), for the default optimizer."""
        return tuple(rule.key for rule in self._hyperparameter_rules(None))

    def hyperparameter_keys_for(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        """The keys for these values: ResNet with opt_name 'lars' needs the lars_* keys."""
        return tuple(rule.key for rule in self._hyperparameter_rules(values))

    def _value_rules(self, values: Mapping[str, Any]) -> dict[str, KeyRule]:
        rules = {rule.key: rule for rule in self._common}
        rules.update({rule.key: rule for rule in self._division_rules.keys})
        rules.update({rule.key: rule for rule in self._division_rules.variant(self._variant_name(values))})
        return rules

    def check_hyperparameters(self, values: Mapping[str, Any]) -> list[str]:
        """Violations of this division's rules, one readable line each; [] when all is well.

        Every required hyperparameter key must be there; every value given for a key the rules
        constrain (including global_batch_size) must be allowed. Keys the rules do not know are
        not this function's business.
        """
        values = {key: _plain(value) for key, value in values.items()}
        problems = [f"{key}: wanted a value, found none (the key is missing)"
                    for key in self.hyperparameter_keys_for(values) if key not in values]
        for key, rule in self._value_rules(values).items():
            if key in values:
                wanted = rule.value.check(values[key])
                if wanted is not None:
                    problems.append(f"{key}: wanted {wanted}, found {show(values[key])}")
        return problems

    def describe(self) -> str:
        keys = ", ".join(self.hyperparameter_keys) or "none"
        return (f"{self.benchmark} ({self.ruleset}, {self.division}): {self.quality.describe(None, self.division)}, "
                f"{self.number_of_runs} runs, hyperparameters: {keys}")


def benchmark_spec(ruleset: str, benchmark: str, division: str = "closed") -> BenchmarkSpec:
    """The spec of `benchmark` in `division` of `ruleset`; SpecError names what is unknown."""
    try:
        rules: Ruleset = load_ruleset(ruleset)
    except UnknownRuleset:
        raise SpecError(f"unknown ruleset '{ruleset}' (available: {', '.join(available_rulesets())})") from None
    except RuleFileError as error:
        raise SpecError(f"ruleset '{ruleset}' has a broken rule file: {error}") from None
    benchmark_rules: BenchmarkRules | None = rules.benchmark(benchmark)
    if benchmark_rules is None:
        raise SpecError(f"unknown benchmark '{benchmark}' in ruleset '{ruleset}' "
                        f"(benchmarks: {', '.join(rules.benchmark_names)})")
    division_rules = benchmark_rules.division(division)
    if division_rules is None:
        divisions = ", ".join(name for name, _ in benchmark_rules.divisions)
        raise SpecError(f"unknown division '{division}' for {benchmark} in '{ruleset}' (divisions: {divisions})")
    return BenchmarkSpec(
        ruleset=rules.name, benchmark=benchmark, division=division, title=benchmark_rules.title,
        quality=benchmark_rules.quality, number_of_runs=benchmark_rules.number_of_runs,
        eval_schedule=benchmark_rules.eval_schedule, _division_rules=division_rules, _common=rules.common)


__all__ = ["BenchmarkSpec", "SpecError", "benchmark_spec"]
