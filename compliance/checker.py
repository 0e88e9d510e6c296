"""Check one MLLOG file against a ruleset, in one streaming pass.

What is checked (rules from `compliance/rules/<ruleset>/`, see README.md):
- every key rule: how often the key occurs (exactly one, at least one, one of a group), its value
  and its metadata; the closed-division hyperparameters of the benchmark (and of the optimizer
  variant the log picked, e.g. ResNet's sgd or lars keys);
- ordering (init before run, run_start before blocks, ...) and timing (20 minutes of init);
- the quality target, in the metric's direction, reached by an eval before run_stop;
- the eval schedule (first eval by epoch N, no gap longer than the rules allow);
- beyond mlperf-logging: every line is a JSON object with a valid event_type and the fields a
  checker needs; values are finite; time never goes backwards; intervals pair up; run_stop has a
  valid status and is the last timed event; nothing after run_stop counts.

Memory does not grow with the log: the pass keeps counters, the first value of each ruled key and
at most `MAX_FINDINGS_PER_KIND` findings per key and kind (the rest are counted, and the report says
how many). Time is linear in the size of the file.

    result = check_log("result_1.txt", ruleset="training-0.7.0")
    result.compliant, result.errors, result.time_to_train_minutes
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from compliance.logparse import (
    EVENT_TYPES, MARKER, MARKER_LENGTH, MAX_LINE_BYTES, UnusableInput, decode_event, finite_time,
    json_error_text, open_log,
)
from compliance.ruleset import (
    KeyRule, Quality, Ruleset, RuleFileError, UnknownRuleset, available_rulesets, division_rules,
    is_number, load_ruleset, merged_key_rules, show, type_name, values_equal,
)

MAX_FINDINGS_PER_KIND = 20
MAX_EVAL_POINTS = 100_000
DEFAULT_RULESET = "training-0.7.0"
# A log without --ruleset and without submission_ruleset is checked against the ruleset that knows
# its benchmark: MLPerf's own for MLPerf's benchmarks, this suite's for the ones only it has.
SUITE_RULESET = "mlbench-1.0.0"

# Interval keys whose start and stop must pair up (init_start repeats once per rank: not paired).
_INTERVALS = {"block_start": ("block", 1), "block_stop": ("block", -1),
              "epoch_start": ("epoch", 1), "epoch_stop": ("epoch", -1),
              "eval_start": ("eval", 1), "eval_stop": ("eval", -1)}
_EXPECTED_EVENT_TYPE = {
    "init_start": "INTERVAL_START", "init_stop": "INTERVAL_END",
    "run_start": "INTERVAL_START", "run_stop": "INTERVAL_END",
    "block_start": "INTERVAL_START", "block_stop": "INTERVAL_END",
    "epoch_start": "INTERVAL_START", "epoch_stop": "INTERVAL_END",
    "eval_start": "INTERVAL_START", "eval_stop": "INTERVAL_END",
}


@dataclass(frozen=True)
class Finding:
    """One violation (severity error) or warning: where, which key, what was wanted, what was found."""

    severity: str
    line: int | None  # None: the whole log (a count, a target never reached)
    key: str
    wanted: str
    found: str

    def format(self, path: str) -> str:
        where = self.line if self.line is not None else "eof"
        return f"{path}:{where}: {self.severity}: {self.key}: wanted {self.wanted}; found {self.found}"

    def as_dict(self) -> dict:
        return {"severity": self.severity, "line": self.line, "key": self.key,
                "wanted": self.wanted, "found": self.found}


@dataclass
class CheckResult:
    path: str
    ruleset: str | None = None
    ruleset_reason: str = ""
    benchmark: str | None = None
    division: str | None = None
    findings: list[Finding] = field(default_factory=list)
    suppressed: Counter = field(default_factory=Counter)  # (severity, key) -> findings not listed
    unusable: str | None = None  # why the file could not be checked at all
    lines: int = 0
    events: int = 0
    run_start_ms: float | None = None
    run_stop_ms: float | None = None
    status: str | None = None
    seed: Any = None
    seed_site: tuple[Any, Any] | None = None  # (file, lineno) of the seed event, from its metadata
    target_reached: bool = False
    best_quality: Any = None
    quality_target: str = ""
    eval_points: list[tuple[float, Any]] = field(default_factory=list)  # (minutes since run_start, value)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def error_count(self) -> int:
        return len(self.errors) + sum(n for (severity, _), n in self.suppressed.items() if severity == "error")

    @property
    def warning_count(self) -> int:
        return len(self.warnings) + sum(n for (severity, _), n in self.suppressed.items() if severity == "warning")

    @property
    def compliant(self) -> bool:
        return self.unusable is None and self.error_count == 0

    @property
    def successful(self) -> bool:
        """A compliant run that says it succeeded: what counts towards a score."""
        return self.compliant and self.status == "success"

    @property
    def time_to_train_minutes(self) -> float | None:
        if self.run_start_ms is None or self.run_stop_ms is None:
            return None
        return (self.run_stop_ms - self.run_start_ms) / 60000.0

    def verdict(self) -> str:
        if self.unusable is not None:
            return f"unusable: {self.unusable}"
        what = " ".join(x for x in (self.ruleset, self.benchmark, self.division) if x)
        warnings = f"; {self.warning_count} warning{'s' if self.warning_count != 1 else ''}" \
            if self.warning_count else ""
        if self.compliant:
            return f"compliant ({what}{warnings})"
        errors = self.error_count
        return f"NOT compliant ({what}): {errors} violation{'s' if errors != 1 else ''}{warnings}"

    def as_dict(self) -> dict:
        return {
            "path": self.path, "compliant": self.compliant, "unusable": self.unusable,
            "ruleset": self.ruleset, "ruleset_reason": self.ruleset_reason,
            "benchmark": self.benchmark, "division": self.division,
            "errors": self.error_count, "warnings": self.warning_count,
            "findings": [f.as_dict() for f in self.findings],
            "suppressed": [{"severity": s, "key": k, "count": n} for (s, k), n in sorted(self.suppressed.items())],
            "status": self.status, "time_to_train_minutes": self.time_to_train_minutes,
            "target_reached": self.target_reached, "quality_target": self.quality_target,
            "lines": self.lines, "events": self.events,
        }


class _Findings:
    """Findings with a cap per (severity, key, kind), so a hostile log cannot exhaust memory."""

    def __init__(self, cap: int):
        self.cap = cap
        self.items: list[Finding] = []
        self.per_kind: Counter = Counter()
        self.suppressed: Counter = Counter()

    def add(self, severity: str, line: int | None, key: str, wanted: str, found: str, kind: str = "") -> None:
        if severity == "off":
            return
        slot = (severity, key, kind)
        self.per_kind[slot] += 1
        if self.per_kind[slot] > self.cap:
            self.suppressed[(severity, key)] += 1
            return
        self.items.append(Finding(severity, line, key, wanted, found))


class _Tracker:
    """Occurrences of one key under one rule: count, first value, value-rule violations."""

    __slots__ = ("rule", "count", "first_value", "first_line", "same", "distinct", "second_line",
                 "findings", "value_check", "metadata")

    def __init__(self, rule: KeyRule):
        self.rule = rule
        self.count = 0
        self.first_value: Any = None
        self.first_line = 0
        self.same = True
        self.distinct: list = []
        self.second_line = 0
        self.findings: list[tuple[int, str, str, str]] = []  # (line, field, wanted, found)
        self.value_check = None if rule.value.is_empty else rule.value.check
        self.metadata = tuple((name, None if c.is_empty else c.check) for name, c in rule.metadata)


def _prescan(path: str) -> dict[str, tuple[Any, int]]:
    """The first submission_benchmark / _division / _ruleset of a log, before the main pass.

    Only lines containing `"submission_` are decoded; the scan stops at run_start once the
    benchmark and division are known (they belong to initialization).
    """
    found: dict[str, tuple[Any, int]] = {}
    wanted = ("submission_benchmark", "submission_division", "submission_ruleset")
    with open_log(path) as handle:
        readline = handle.readline
        lineno = 0
        while True:
            raw = readline(MAX_LINE_BYTES)
            if not raw:
                break
            lineno += 1
            if len(raw) >= MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while True:
                    chunk = readline(MAX_LINE_BYTES)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                continue
            if b'"submission_' in raw:
                position = raw.rfind(MARKER)
                if position < 0:
                    continue
                try:
                    event = decode_event(raw[position + MARKER_LENGTH:].decode("utf-8", "replace"))
                except ValueError:
                    continue
                if type(event) is dict:
                    key = event.get("key")
                    if key in wanted and key not in found and isinstance(event.get("value"), str):
                        found[key] = (event["value"], lineno)
            elif b'"run_start"' in raw and "submission_benchmark" in found and "submission_division" in found:
                break
            if len(found) == len(wanted):
                break
    return found


def resolve_ruleset(given: str | Ruleset | None, logged: str | None, benchmark: str | None) -> tuple[Ruleset, str]:
    """Which ruleset checks this log, and why (given > named in the log > by benchmark)."""
    if isinstance(given, Ruleset):
        return given, "given"
    if given:
        return load_ruleset(given), "given"
    if logged and logged in available_rulesets():
        return load_ruleset(logged), "from the log's submission_ruleset"
    if benchmark:
        default = load_ruleset(DEFAULT_RULESET)
        if benchmark not in default.benchmark_names and benchmark in load_ruleset(SUITE_RULESET).benchmark_names:
            return load_ruleset(SUITE_RULESET), f"{benchmark} is only in {SUITE_RULESET}"
    return load_ruleset(DEFAULT_RULESET), "default (the log names no ruleset)"


def check_log(path: str, ruleset: str | Ruleset | None = None, *, collect_evals: bool = False,
              max_findings_per_kind: int = MAX_FINDINGS_PER_KIND) -> CheckResult:
    """Check one log file. Never raises for anything in the file; `unusable` when it cannot be read.

    UnknownRuleset / RuleFileError (a ruleset problem, not the log's) propagate to the caller.
    """
    result = CheckResult(path=str(path))
    try:
        first = _prescan(path)
    except UnusableInput as error:
        result.unusable = str(error)
        return result
    except OSError as error:  # read error half-way (I/O error, file vanished)
        result.unusable = f"cannot read ({error.strerror or error})"
        return result
    logged_ruleset = first.get("submission_ruleset", (None, 0))[0]
    benchmark = first.get("submission_benchmark", (None, 0))[0]
    division = first.get("submission_division", (None, 0))[0]
    rules, reason = resolve_ruleset(ruleset, logged_ruleset, benchmark)
    result.ruleset, result.ruleset_reason = rules.name, reason
    if benchmark not in rules.benchmark_names:
        benchmark = None
    if division not in ("closed", "open") or (benchmark and division_rules(rules, benchmark, division) is None):
        division = None
    result.benchmark, result.division = benchmark, division
    try:
        _Pass(result, rules, benchmark, division, logged_ruleset, collect_evals, max_findings_per_kind).run()
    except UnusableInput as error:
        result.unusable = str(error)
    except OSError as error:
        result.unusable = f"cannot read ({error.strerror or error})"
    return result


class _Pass:
    """The main pass over one log: state, the per-line step, and the end-of-log checks."""

    def __init__(self, result: CheckResult, rules: Ruleset, benchmark: str | None, division: str | None,
                 logged_ruleset: str | None, collect_evals: bool, cap: int):
        self.result = result
        self.rules = rules
        self.benchmark = benchmark
        self.division = division
        self.logged_ruleset = logged_ruleset
        self.collect_evals = collect_evals
        self.findings = _Findings(cap)
        self.policy = rules.log
        bench_rules = rules.benchmark(benchmark) if benchmark else None
        self.quality: Quality | None = bench_rules.quality if bench_rules else None
        self.schedule = bench_rules.eval_schedule if bench_rules else None
        self.division_rules = division_rules(rules, benchmark, division) if benchmark and division else None
        # Key rules: common ones overridden by the benchmark's division, plus every variant's.
        self.trackers: dict[str, list[_Tracker]] = {}
        self.base_trackers: list[_Tracker] = []
        for rule in merged_key_rules(rules, benchmark, division).values():
            tracker = _Tracker(rule)
            self.base_trackers.append(tracker)
            self.trackers.setdefault(rule.key, []).append(tracker)
        self.variant_trackers: dict[str, list[_Tracker]] = {}
        if self.division_rules is not None:
            for name, variant in self.division_rules.variants:
                for rule in variant:
                    tracker = _Tracker(rule)
                    self.variant_trackers.setdefault(name, []).append(tracker)
                    self.trackers.setdefault(rule.key, []).append(tracker)
        self.order = {}
        for order_rule in rules.order:
            self.order.setdefault(order_rule.key, []).append(order_rule)
        self.timing = {}
        for timing_rule in rules.timing:
            self.timing.setdefault(timing_rule.key, []).append(timing_rule)
        watched = {r.key for r in rules.order} | {k for r in rules.order for k in r.after + r.before}
        watched |= {r.since_first for r in rules.timing}
        self.watched = frozenset(watched)
        self.first_seen: dict[str, int] = {}
        self.first_time: dict[str, float] = {}  # min time so far of timing `since_first` keys
        self.group_counts: Counter = Counter()
        self.open_intervals = {"block": 0, "epoch": 0, "eval": 0}
        self.ignored_after_stop: Counter = Counter()
        self.context: dict[str, Any] = {}  # logged values a target depends on (bert: global_batch_size)
        self.context_keys = frozenset(key for q in ([self.quality] if self.quality else [])
                                      for key, *_ in q.target_when)
        self.evals = 0
        self.first_eval_epoch: float | None = None
        self.previous_eval_epoch: float | None = None
        self.reached_line: int | None = None
        self.best: Any = None

    # -- the pass ------------------------------------------------------------------------------
    def run(self) -> None:
        result = self.result
        add = self.findings.add
        trackers_get = self.trackers.get
        watched = self.watched
        tolerance = self.policy.clock_tolerance_ms
        event_types = EVENT_TYPES
        expected_type_get = _EXPECTED_EVENT_TYPE.get
        type_policy = self.policy.event_type_matches_key
        clock_run, clock_init = self.policy.clock_timed_region, self.policy.clock_before_run_start
        special = {"run_start", "run_stop", "eval_accuracy", "seed", "submission_benchmark",
                   "submission_ruleset", *_INTERVALS, *self.context_keys}
        decode = decode_event
        previous_time: float | None = None
        in_run = False
        stopped = False
        stop_time = 0.0
        lineno = 0
        events = 0
        with open_log(result.path) as handle:
            readline = handle.readline
            while True:
                raw = readline(MAX_LINE_BYTES)
                if not raw:
                    break
                lineno += 1
                if len(raw) >= MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while True:
                        chunk = readline(MAX_LINE_BYTES)
                        if not chunk or chunk.endswith(b"\n"):
                            break
                    add("error", lineno, "(line)", f"a line shorter than {MAX_LINE_BYTES // 2**20} MiB",
                        "a longer line (skipped)", "long")
                    continue
                position = raw.rfind(MARKER)
                if position < 0:
                    continue
                body = raw[position + MARKER_LENGTH:]
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError as error:
                    add("warning", lineno, "(line)", "UTF-8 text", f"invalid byte at column "
                        f"{position + MARKER_LENGTH + error.start + 1} (replaced)", "utf8")
                    text = body.decode("utf-8", "replace")
                try:
                    event = decode(text)
                except ValueError as error:
                    add("error", lineno, "(line)", "a JSON object after ':::MLLOG '", json_error_text(error), "json")
                    continue
                if type(event) is not dict:
                    add("error", lineno, "(line)", "a JSON object after ':::MLLOG '", f"a {type_name(event)}", "json")
                    continue
                key = event.get("key")
                if type(key) is not str:
                    add("error", lineno, "(line)", "a string field 'key'",
                        "no key" if key is None else f"key {show(key)}", "field")
                    continue
                time_ms = event.get("time_ms")
                if type(time_ms) is not int and type(time_ms) is not float or time_ms < 0:
                    time_ms = finite_time(time_ms)  # None unless a usable number
                    if time_ms is None:
                        found = "no time_ms" if "time_ms" not in event else f"time_ms {show(event.get('time_ms'))}"
                        if "time_ms" not in event and "time_s" in event:
                            found = "time_s instead of time_ms"
                        add("error", lineno, key, "a field time_ms with a number of milliseconds >= 0", found, "field")
                        continue
                elif time_ms > 1e17:
                    add("error", lineno, key, "time_ms a plausible timestamp in milliseconds",
                        f"time_ms {show(time_ms)}", "field")
                    continue
                event_type = event.get("event_type")
                if event_type not in event_types:
                    add("error", lineno, key, "event_type INTERVAL_START, INTERVAL_END or POINT_IN_TIME",
                        "no event_type" if event_type is None else f"event_type {show(event_type)}", "field")
                    continue
                if "value" not in event:
                    add("error", lineno, key, "a field 'value' (null when there is none)", "no value", "field")
                    continue
                metadata = event.get("metadata")
                if type(metadata) is not dict:
                    add("error", lineno, key, "a metadata object",
                        "no metadata" if metadata is None else f"metadata {type_name(metadata)}", "field")
                    continue
                events += 1
                value = event["value"]
                # -- the clock ------------------------------------------------------------------
                if previous_time is not None and time_ms < previous_time - tolerance:
                    add(clock_run if in_run else clock_init, lineno, key,
                        f"time_ms >= {show(previous_time)} (time never goes backwards)",
                        f"{show(time_ms)}, {previous_time - time_ms:g} ms earlier than the line before",
                        "clock")
                previous_time = time_ms
                # -- nothing after run_stop counts, except closing what is still open -----------
                if stopped:
                    if key in _INTERVALS and _INTERVALS[key][1] < 0 and self.open_intervals[_INTERVALS[key][0]] > 0:
                        # Bookkeeping: a loop that stops the clock inside an epoch closes the epoch
                        # (and block) right after run_stop. It extends nothing, so its time is free.
                        self._interval(key, lineno)
                        trackers = trackers_get(key)
                        if trackers is not None:
                            for tracker in trackers:
                                self._track(tracker, lineno, value, metadata)
                        continue
                    if time_ms > stop_time:
                        add("error", lineno, key, f"no event timed after run_stop (time_ms {show(stop_time)})",
                            f"time_ms {show(time_ms)}", "after_stop_time")
                    else:
                        add(self.policy.events_after_run_stop, lineno, key, "no event after run_stop",
                            "one (ignored)", "after_stop")
                    self.ignored_after_stop[key] += 1
                    continue
                expected = expected_type_get(key)
                if expected is not None and event_type != expected:
                    add(type_policy, lineno, key, f"event_type {expected}", f"event_type {event_type}", "type")
                # -- order and timing -----------------------------------------------------------
                if key in watched:
                    if key in self.order:
                        self._check_order(key, lineno)
                    if key in self.timing:
                        self._check_timing(key, lineno, time_ms)
                    if key not in self.first_seen:
                        self.first_seen[key] = lineno
                    if key in self.first_time:
                        self.first_time[key] = min(self.first_time[key], time_ms)
                    else:
                        self.first_time[key] = time_ms
                # -- key rules --------------------------------------------------------------------
                trackers = trackers_get(key)
                if trackers is not None:
                    for tracker in trackers:
                        self._track(tracker, lineno, value, metadata)
                # -- lifecycle --------------------------------------------------------------------
                if key in special:
                    if key == "run_start":
                        if result.run_start_ms is None:
                            result.run_start_ms = time_ms
                        in_run = True
                    elif key == "run_stop":
                        status = metadata.get("status")
                        result.status = status if isinstance(status, str) else None
                        result.run_stop_ms = time_ms
                        stopped, stop_time = True, time_ms
                    elif key in _INTERVALS:
                        self._interval(key, lineno)
                    elif key == "eval_accuracy":
                        self._eval(lineno, time_ms, value, metadata)
                    elif key == "seed":
                        if result.seed is None:
                            result.seed = value
                            result.seed_site = (metadata.get("file"), metadata.get("lineno"))
                    elif key == "submission_benchmark":
                        if value not in self.rules.benchmark_names:
                            add("error", lineno, key, "one of " + ", ".join(self.rules.benchmark_names) +
                                f" (the benchmarks of {self.rules.name})", show(value), "benchmark")
                    elif key == "submission_ruleset":
                        if isinstance(value, str) and value != self.rules.name:
                            known = value in available_rulesets()
                            add("warning", lineno, key, f"{self.rules.name} (the ruleset checked against)",
                                show(value) + ("" if known else " (an unknown ruleset)"), "ruleset")
                    if key in self.context_keys and key not in self.context:
                        self.context[key] = value
        result.lines = lineno
        result.events = events
        self._finish(stopped)

    # -- per line ------------------------------------------------------------------------------
    def _track(self, tracker: _Tracker, lineno: int, value: Any, metadata: dict) -> None:
        tracker.count += 1
        if tracker.count == 1:
            tracker.first_value, tracker.first_line = value, lineno
            if not _finite(value):
                tracker.findings.append((lineno, "value", "finite numbers", show(value)))
        elif tracker.rule.count == "exactly_one":
            if tracker.count == 2:
                tracker.second_line = lineno
            if tracker.same and not values_equal(value, tracker.first_value):
                tracker.same = False
            if len(tracker.distinct) < 5 and not any(values_equal(value, v) for v in tracker.distinct):
                tracker.distinct.append(value)
        if tracker.value_check is not None:
            wanted = tracker.value_check(value)
            if wanted is not None and len(tracker.findings) < MAX_FINDINGS_PER_KIND:
                tracker.findings.append((lineno, "value", wanted, show(value)))
        for name, check in tracker.metadata:
            if name not in metadata:
                if len(tracker.findings) < MAX_FINDINGS_PER_KIND:
                    tracker.findings.append((lineno, f"metadata.{name}", "a metadata field " + name, "none"))
            elif check is not None:
                wanted = check(metadata[name])
                if wanted is not None and len(tracker.findings) < MAX_FINDINGS_PER_KIND:
                    tracker.findings.append((lineno, f"metadata.{name}", wanted, show(metadata[name])))

    def _check_order(self, key: str, lineno: int) -> None:
        first_seen = self.first_seen
        for rule in self.order[key]:
            for other in rule.after:
                if other not in first_seen:
                    self.findings.add("error", lineno, key, f"after {other}", f"no {other} before it", "order")
            for other in rule.before:
                if other in first_seen:
                    self.findings.add("error", lineno, key, f"before {other}",
                                      f"after it ({other} at line {first_seen[other]})", "order")

    def _check_timing(self, key: str, lineno: int, time_ms: float) -> None:
        for rule in self.timing[key]:
            start = self.first_time.get(rule.since_first)
            if start is not None and time_ms - start >= rule.max_minutes * 60000.0:
                self.findings.add("error", lineno, key,
                                  f"less than {rule.max_minutes:g} minutes after the first {rule.since_first}",
                                  f"{(time_ms - start) / 60000.0:.2f} minutes", "timing")

    def _interval(self, key: str, lineno: int) -> None:
        kind, step = _INTERVALS[key]
        if step > 0:
            if self.open_intervals[kind] > 0:
                self.findings.add("error", lineno, key, f"{kind}_stop before the next {key}",
                                  f"a {kind} interval still open", "pairing")
            self.open_intervals[kind] += 1
        elif self.open_intervals[kind] == 0:
            self.findings.add("error", lineno, key, f"a {kind}_start before it", f"no open {kind} interval",
                              "pairing")
        else:
            self.open_intervals[kind] -= 1

    def _eval(self, lineno: int, time_ms: float, value: Any, metadata: dict) -> None:
        quality = self.quality
        self.evals += 1
        if self.collect_evals and len(self.result.eval_points) < MAX_EVAL_POINTS and self.result.run_start_ms is not None:
            self.result.eval_points.append(((time_ms - self.result.run_start_ms) / 60000.0, value))
        if quality is None:
            return
        if quality.components:
            if not isinstance(value, dict) or any(name not in value for name, _ in quality.components):
                names = ", ".join(name for name, _ in quality.components)
                self.findings.add("error", lineno, quality.key, f"an object with {names}", show(value), "quality")
                return
            numbers = [value[name] for name, _ in quality.components]
        else:
            numbers = [value]
        for number in numbers:
            if not is_number(number):
                self.findings.add("error", lineno, quality.key, f"a number ({quality.metric})", show(number), "quality")
                return
            if quality.valid.check(number) is not None:
                self.findings.add(self.policy.out_of_range_quality, lineno, quality.key,
                                  f"a {quality.metric} value {quality.valid.describe()}", show(number), "range")
        if self.best is None or _better(quality, value, self.best):
            self.best = value
        if self.reached_line is None and quality.reached(value, self.context, self.division):
            self.reached_line = lineno
        self._schedule_step(lineno, metadata.get("epoch_num"))

    def _schedule_step(self, lineno: int, epoch: Any) -> None:
        schedule = self.schedule
        if schedule is None or not is_number(epoch):
            return
        severity = self.policy.eval_schedule
        if self.first_eval_epoch is None:
            self.first_eval_epoch = epoch
            if schedule.first_by_epoch is not None and epoch > schedule.first_by_epoch + 1e-9:
                self.findings.add(severity, lineno, "eval_accuracy",
                                  f"the first evaluation by epoch {schedule.first_by_epoch:g}",
                                  f"epoch_num {show(epoch)}", "schedule")
        elif self.previous_eval_epoch is not None and epoch > self.previous_eval_epoch:
            allowed = schedule.max_gap_at(self.previous_eval_epoch)
            gap = epoch - self.previous_eval_epoch
            if allowed is not None and gap > allowed * (1 + 1e-6) + 1e-9:
                self.findings.add(severity, lineno, "eval_accuracy",
                                  f"an evaluation at least every {allowed:g} epochs",
                                  f"epoch_num {show(epoch)}, {gap:g} epochs after the one before", "schedule")
        self.previous_eval_epoch = epoch

    # -- end of log ----------------------------------------------------------------------------
    def _finish(self, stopped: bool) -> None:
        result, add = self.result, self.findings.add
        if result.events == 0:
            found = "an empty file" if result.lines == 0 else f"{result.lines} lines without one"
            add("error", None, "(log)", "':::MLLOG {...}' event lines", found, "empty")
        # Which variant (resnet's optimizer) the log chose: only its keys count.
        active = list(self.base_trackers)
        if self.division_rules is not None and self.division_rules.select_by:
            selector = next((t for t in self.base_trackers if t.rule.key == self.division_rules.select_by), None)
            chosen = selector.first_value if selector is not None and selector.count else None
            active += self.variant_trackers.get(chosen, []) if isinstance(chosen, str) else []
        counts = Counter()
        for tracker in active:
            counts[tracker.rule.key] += tracker.count
        for tracker in active:
            rule = tracker.rule
            for line, where, wanted, found in tracker.findings:
                suffix = "" if where == "value" else f" {where}"
                add("error", line, rule.key + suffix, wanted, found, "rule")
            self._check_count(tracker, counts)
        if self.quality is not None:
            self._check_quality()
        result.findings = sorted(self.findings.items, key=lambda f: (f.line is None, f.line or 0))
        result.suppressed = self.findings.suppressed
        result.best_quality = self.best

    def _check_count(self, tracker: _Tracker, counts: Counter) -> None:
        rule, add = tracker.rule, self.findings.add
        after_stop = self.ignored_after_stop.get(rule.key, 0)
        note = f" ({after_stop} more after run_stop, ignored)" if after_stop else ""
        if rule.count == "exactly_one":
            if tracker.count == 0:
                add("error", None, rule.key, "exactly one occurrence", "none" + note, "count")
            elif tracker.count > 1:
                if tracker.same:  # mlperf-logging: the same value repeated is only a warning
                    add("warning", tracker.second_line, rule.key, "exactly one occurrence",
                        f"{tracker.count}, all with value {show(tracker.first_value)}", "count")
                else:
                    values = ", ".join(show(v) for v in [tracker.first_value, *tracker.distinct])
                    add("error", tracker.second_line, rule.key, "exactly one occurrence",
                        f"{tracker.count} with different values ({values})", "count")
        elif rule.count == "at_least_one":
            group = (rule.key, *rule.or_keys)
            total = sum(counts.get(key, 0) for key in group)
            if total == 0:
                wanted = "at least one occurrence" if not rule.or_keys else \
                    "at least one of " + ", ".join(group)
                add("error", None, rule.key, wanted, "none" + note, "count")

    def _check_quality(self) -> None:
        quality, result, add = self.quality, self.result, self.findings.add
        target = quality.describe(self.context, self.division)
        result.quality_target = target
        result.target_reached = self.reached_line is not None
        if self.reached_line is None:
            if self.evals == 0:
                return  # eval_accuracy's own count rule reports it
            best = show(self.best) if self.best is not None else "no usable value"
            add("error", None, quality.key, f"an evaluation reaching {target} before run_stop",
                f"best {best} in {self.evals} evaluation{'s' if self.evals != 1 else ''}", "target")
        elif result.status == "aborted":
            add("warning", None, "run_stop", "status success once the target is reached",
                f"status aborted (target reached at line {self.reached_line})", "status")


def _finite(value: Any) -> bool:
    """Every number in a (small) value is finite. NaN/Infinity literals never get this far."""
    if type(value) is float:
        return math.isfinite(value)
    return True


def _better(quality: Quality, value: Any, best: Any) -> bool:
    def score(v: Any) -> float | None:
        if quality.components:
            if isinstance(v, dict) and all(is_number(v.get(name)) for name, _ in quality.components):
                return min(v[name] - target for name, target in quality.components)
            return None
        return v if is_number(v) else None

    new, old = score(value), score(best)
    if new is None:
        return False
    if old is None:
        return True
    return new > old if quality.higher_is_better else new < old


__all__ = ["Finding", "CheckResult", "check_log", "resolve_ruleset", "DEFAULT_RULESET", "SUITE_RULESET",
           "UnknownRuleset", "RuleFileError"]
