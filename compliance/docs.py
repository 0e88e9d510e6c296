"""The rules in words: markdown generated from the rule files (`python -m compliance rules`).

compliance/README.md embeds this output between `<!-- rules:begin -->` and `<!-- rules:end -->`;
a test fails when the README and the rule files disagree, so the docs cannot drift from the rules.
"""

from __future__ import annotations

from compliance.ruleset import LOG_CHECKS, KeyRule, Ruleset, available_rulesets, load_ruleset, show

BEGIN, END = "<!-- rules:begin -->", "<!-- rules:end -->"


def _allowed(rule: KeyRule) -> str:
    parts = []
    if not rule.value.is_empty:
        parts.append(rule.value.describe())
    for name, constraint in rule.metadata:
        parts.append(f"metadata {name}" + ("" if constraint.is_empty else f": {constraint.describe()}"))
    return "; ".join(parts) or "any value"


def _count(rule: KeyRule) -> str:
    if rule.or_keys:
        return "at least one of " + ", ".join((rule.key, *rule.or_keys))
    return rule.count.replace("_", " ")


def _schedule(ruleset: Ruleset, name: str) -> str:
    schedule = ruleset.benchmark(name).eval_schedule
    if schedule is None:
        return "not epoch-based"
    parts = []
    if schedule.first_by_epoch is not None:
        parts.append(f"first by epoch {schedule.first_by_epoch:g}")
    for from_epoch, gap in schedule.gaps:
        every = f"every {gap:g} epoch{'s' if gap != 1 else ''}"
        parts.append(every if from_epoch == float("-inf") else f"{every} from epoch {from_epoch:g}")
    return ", ".join(parts)


def rules_markdown(ruleset: Ruleset) -> str:
    lines = [f"### `{ruleset.name}`: {ruleset.title}", ""]
    if ruleset.extends:
        lines += [f"Derived from `{ruleset.extends}`: other targets, some closed-division values relaxed.", ""]
    lines += ["| benchmark | metric | target | better | runs | evaluation |", "|---|---|---|---|---|---|"]
    for name, bench in ruleset.benchmarks:
        quality = bench.quality
        target = " and ".join(f"{c} {t}" for c, t in quality.components) if quality.components else f"{quality.target:g}"
        for key, condition, value, division in quality.target_when:
            target += f" ({value:g} when {key} {condition.describe()}{', ' + division if division else ''})"
        lines.append(f"| {name} | {quality.metric} | {target} | {quality.direction} | {bench.number_of_runs} "
                     f"| {_schedule(ruleset, name)} |")
    lines += ["", "Closed-division keys (besides the lifecycle keys of `common.yaml`):", ""]
    lines += ["| benchmark | key | count | allowed |", "|---|---|---|---|"]
    for name, bench in ruleset.benchmarks:
        closed = bench.division("closed")
        if closed is None:
            continue
        for rule in closed.keys:
            lines.append(f"| {name} | `{rule.key}` | {_count(rule)} | {_allowed(rule)} |")
        for variant, rules in closed.variants:
            for rule in rules:
                lines.append(f"| {name} ({closed.select_by}={variant}) | `{rule.key}` | {_count(rule)} | {_allowed(rule)} |")
    policy = ruleset.log
    lines += ["", f"Checks beyond mlperf-logging (`log:` in `ruleset.yaml`); events written after run_stop are "
              f"{'counted, as mlperf-logging counts them' if policy.after_run_stop == 'count' else 'not counted'}"
              f"{f'; clock tolerance {policy.clock_tolerance_ms:g} ms' if policy.clock_tolerance_ms else ''}:", "",
              "| check | finds | severity |", "|---|---|---|"]
    lines += [f"| `{name}` | {what} | {getattr(policy, name)} |" for name, what in LOG_CHECKS.items()]
    lines += ["", f"Package: system fields {', '.join(ruleset.package.system_fields) or 'none'}; unique seeds: "
              f"{ruleset.package.unique_seeds}; at most {ruleset.package.max_failed_runs} failed run per benchmark.", ""]
    return "\n".join(lines)


def all_rules_markdown() -> str:
    return "\n".join(rules_markdown(load_ruleset(name)) for name in available_rulesets())


__all__ = ["rules_markdown", "all_rules_markdown", "BEGIN", "END", "show"]
