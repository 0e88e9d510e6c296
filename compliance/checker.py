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

import dataclasses
import gc
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from compliance.logparse import (
    EVENT_TYPES,
    LARGE_LINE_BYTES,
    MARKER,
    MARKER_LENGTH,
    MAX_LINE_BYTES,
    WELL_FORMED_FIELDS,
    NonFiniteNumber,
    UnusableInput,
    _stdlib_loads,
    decode_event,
    decode_event_permissive,
    decode_well_formed,
    duplicate_field,
    fast_loads,
    finite_time,
    float_time,
    json_error_text,
    open_log,
    well_formed_fields,
)
from compliance.ruleset import (
    Constraint,
    KeyRule,
    Quality,
    RuleFileError,
    Ruleset,
    UnknownRuleset,
    available_rulesets,
    division_rules,
    is_number,
    load_ruleset,
    merged_key_rules,
    show,
    type_name,
    values_equal,
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
_EVENT_FIELDS = ("namespace", "time_ms", "event_type", "key", "value", "metadata")
_EVENT_FIELD_GETTER = operator.itemgetter("key", "time_ms", "event_type", "value", "metadata")
_SLOT_KIND = ("", "block", "epoch", "eval")
_NUMBER_TYPES = frozenset((int, float))
_INTERVAL_SLOT = {key: _SLOT_KIND.index(kind) for key, (kind, _) in _INTERVALS.items()}
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
        """What counts towards a score: a compliant run that reached its target and was not aborted.

        mlperf-logging's summarizer scores every log its checker accepts; a compliant log is one
        whose target was reached, so the two agree except on a run that says `aborted` although an
        evaluation reached the target (a warning): the log says it was not a finished timed run.
        """
        return self.compliant and self.target_reached and self.status != "aborted"

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
                 "findings", "dropped", "value_check", "required_meta", "checked_meta", "exactly_one", "slow")

    def __init__(self, rule: KeyRule):
        self.rule = rule
        self.count = 0
        self.first_value: Any = None
        self.first_line = 0
        self.same = True
        self.distinct: list = []
        self.second_line = 0
        self.findings: list[tuple[int, str, str, str]] = []  # (line, field, wanted, found), capped
        self.dropped = 0
        self.value_check = None if rule.value.is_empty else rule.value.check
        self.required_meta = frozenset(name for name, _ in rule.metadata)
        self.checked_meta = tuple((name, c.check) for name, c in rule.metadata if not c.is_empty)
        self.exactly_one = rule.count == "exactly_one"
        self.slow = self.exactly_one or self.value_check is not None or bool(self.checked_meta)

    def missing_metadata(self, line: int, metadata: dict) -> None:
        for name, _ in self.rule.metadata:
            if name not in metadata:
                self.note(line, f"metadata.{name}", "a metadata field " + name, "none")

    def note(self, line: int, where: str, wanted: str, found: str) -> None:
        if len(self.findings) < MAX_FINDINGS_PER_KIND:
            self.findings.append((line, where, wanted, found))
        else:
            self.dropped += 1


def _bounds_test(constraint: Constraint) -> Callable[[float], bool] | None:
    """`constraint.check(x) is None` for a number x, quicker, when the constraint is only bounds."""
    bounds = {"gt": constraint.gt, "ge": constraint.ge, "lt": constraint.lt, "le": constraint.le}
    if not dataclasses.replace(constraint, gt=None, ge=None, lt=None, le=None).is_empty:
        return None
    gt, ge, lt, le = (bounds[name] for name in ("gt", "ge", "lt", "le"))
    return lambda x: (gt is None or x > gt) and (ge is None or x >= ge) and (lt is None or x < lt) and (le is None or x <= le)


BLOCK_BYTES = 64 * 1024  # read in blocks: fewer calls per line than readline, little memory


def _blocks(handle: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """Whole lines joined by b"\n" (without the last newline), block after block; None for a line of
    `limit` bytes or more, dropped in bounded chunks.

    Lines are exactly readline's (a line ends at b"\n"; the last one may not). A line longer than
    a block is completed with one readline, so a 50 MB line is not copied block after block.
    """
    read, readline = handle.read, handle.readline
    carry = b""
    while True:
        data = read(BLOCK_BYTES)
        if not data:
            if carry:
                yield carry
            return
        if carry:
            data = carry + data
        end = data.rfind(b"\n")
        if end >= 0:
            carry = data[end + 1:]
            yield data[:end]
            continue
        rest = readline(max(1, limit - len(data)))  # a line longer than a block: finish it in one call
        line, carry = data + rest, b""
        if len(line) >= limit and not line.endswith(b"\n"):
            while True:
                chunk = readline(limit)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield None
        else:
            yield line[:-1] if line.endswith(b"\n") else line


def _split_block(chunk: bytes) -> tuple[list[bytes | None], list[bytes] | None, list[int] | None, int]:
    """A block's JSON bodies (None for a line without the marker), and the colons outside them.

    When every line starts with the only marker it holds (a log as writers write it), the bodies
    come from one split. Otherwise each line is cut after its last marker, as mlperf-logging's
    `re.sub(".*:::MLLOG ")` does, and the lines and marker positions are returned too.
    """
    if chunk.startswith(MARKER):
        bodies = chunk[MARKER_LENGTH:].split(b"\n" + MARKER)
        count = len(bodies)  # each line starts with a marker, and holds no other, and no line is left
        if chunk.count(MARKER) == count and chunk.count(b"\n") == count - 1:
            return bodies, None, None, 3 * count
    lines = chunk.split(b"\n")
    positions = [line.rfind(MARKER) for line in lines]
    bodies: list[bytes | None] = []
    outside = 0
    for line, position in zip(lines, positions, strict=True):
        if position < 0:
            bodies.append(None)
            outside += line.count(b":")
        else:
            bodies.append(line[position + MARKER_LENGTH:])
            outside += line.count(b":", 0, position + MARKER_LENGTH)
    return bodies, lines, positions, outside


def _typed_by_orjson(body: bytes) -> tuple:
    """decode_well_formed's contract without msgspec: the six fields of a well-formed line, or ValueError."""
    event = fast_loads(body)
    if type(event) is not dict or len(event) != WELL_FORMED_FIELDS:
        raise ValueError("not a well-formed event")
    try:
        fields = event["namespace"], event["time_ms"], event["event_type"], event["key"], event["value"], event["metadata"]
    except KeyError:
        raise ValueError("not a well-formed event") from None
    _, time_ms, event_type, key, _, metadata = fields
    if (type(key) is not str or type(metadata) is not dict or event_type not in EVENT_TYPES
            or type(time_ms) not in _NUMBER_TYPES or not 0 <= time_ms <= 1e17):
        raise ValueError("not a well-formed event")
    return fields


_TYPED = decode_well_formed if decode_well_formed is not None else _typed_by_orjson
_TYPED_FIELDS = well_formed_fields if well_formed_fields is not None else tuple


class _Unusual(Exception):
    """Internal: this line leaves the fast path."""


def _prescan(path: str) -> dict[str, tuple[Any, int]]:
    """The first submission_benchmark / _division / _ruleset of a log, before the main pass.

    Only lines containing `"submission_` are decoded; the scan stops at run_start once the
    benchmark and division are known (they belong to initialization).
    """
    found: dict[str, tuple[Any, int]] = {}
    wanted = ("submission_benchmark", "submission_division", "submission_ruleset")
    limit = LARGE_LINE_BYTES  # a submission line is short: a longer line is skipped, never held whole
    with open_log(path) as handle:
        readline = handle.readline
        lineno = 0
        while True:
            raw = readline(limit)
            if not raw:
                break
            lineno += 1
            if len(raw) >= limit and not raw.endswith(b"\n"):
                while True:
                    chunk = readline(limit)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                continue
            if b'"submission_' in raw:
                position = raw.rfind(MARKER)
                if position < 0:
                    continue
                try:
                    event = fast_loads(raw[position + MARKER_LENGTH:])
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
    # The pass allocates two small dicts per line and frees them at once (JSON makes no cycles):
    # the cyclic garbage collector would only rescan them, about 15% of the time. Off meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _Pass(result, rules, benchmark, division, collect_evals, max_findings_per_kind).run()
    except UnusableInput as error:
        result.unusable = str(error)
    except OSError as error:
        result.unusable = f"cannot read ({error.strerror or error})"
    finally:
        if collecting:
            gc.enable()
    return result


class _Pass:
    """The main pass over one log: state, the per-line step, and the end-of-log checks."""

    def __init__(self, result: CheckResult, rules: Ruleset, benchmark: str | None, division: str | None,
                 collect_evals: bool, cap: int):
        self.result = result
        self.rules = rules
        self.benchmark = benchmark
        self.division = division
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
        self.open_intervals = [0, 0, 0, 0]  # by _INTERVAL_SLOT: -, block, epoch, eval
        self.ignored_after_stop: Counter = Counter()
        self.context: dict[str, Any] = {}  # logged values a target depends on (bert: global_batch_size)
        self.context_keys = frozenset(key for q in ([self.quality] if self.quality else [])
                                      for key, *_ in q.target_when)
        self.evals = 0
        self.first_eval_epoch: float | None = None
        self.previous_eval_epoch: float | None = None
        self.reached_line: int | None = None  # the first evaluation reaching the target, anywhere
        self.reached_time: float | None = None  # the earliest one written before run_stop
        self.best: Any = None
        self.stop_time = 0.0
        self.duplicates_reported: set[int] = set()  # lines whose repeated field is reported
        self.notes: dict[str, list] = {}  # kind -> [severity, line, key, wanted, found, count]: one finding per kind
        self.best_score: float | None = None
        self.valid_check = None if self.quality is None or self.quality.valid.is_empty else self.quality.valid.check
        self.in_valid_range = _bounds_test(self.quality.valid) if self.quality is not None else None
        # One metric, one target: the per-eval test without Quality.reached's generality.
        self.simple_target = self.quality.target if self.quality is not None and not self.quality.components \
            and not self.quality.target_when else None

    # -- the pass ------------------------------------------------------------------------------
    def _plans(self) -> dict[str, tuple]:
        """Per key, everything the per-line step needs, found with one dict lookup: (trackers to
        update on this line, the metadata fields its rules require, watched by order/timing rules,
        lifecycle code, expected event_type, interval slot).

        A tracker whose rule only needs to know that its key occurred (no value rule, not exactly
        one) leaves the plan after its first occurrence (`_retire`): per line, only its required
        metadata is still checked, at the plan's level.
        """
        codes = {"run_start": 1, "run_stop": 2, "eval_accuracy": 4, "seed": 5, "submission_benchmark": 6,
                 "submission_ruleset": 7,
                 **{key: 3 if step > 0 else 8 for key, (_, step) in _INTERVALS.items()}}
        keys = set(self.trackers) | set(self.watched) | set(codes) | set(_EXPECTED_EVENT_TYPE)
        plans = {}
        for key in keys:
            trackers = tuple(self.trackers.get(key, ()))
            need = frozenset().union(*(t.required_meta for t in trackers))
            plans[key] = (trackers, (next(iter(need)) if len(need) == 1 else need) if need else None,
                          key in self.watched, codes.get(key, 0), _EXPECTED_EVENT_TYPE.get(key), _INTERVAL_SLOT.get(key, 0))
        return plans

    def _retire(self, plans: dict[str, tuple], key: str) -> None:
        """Drop from `key`'s plan the trackers that have seen all they need (their first occurrence)."""
        trackers, *rest = plans[key]
        plans[key] = (tuple(t for t in trackers if t.slow or t.count == 0), *rest)

    def _missing_metadata(self, key: str, lineno: int, metadata: dict) -> None:
        for tracker in self.trackers[key]:
            if not metadata.keys() >= tracker.required_meta:
                tracker.missing_metadata(lineno, metadata)

    def run(self) -> None:
        result = self.result
        add = self.findings.add
        plans = self._plans()
        plans_get = plans.get
        tolerance = self.policy.clock_tolerance_ms
        type_policy = self.policy.event_type_matches_key
        pairing = self.policy.interval_pairing
        clock_run, clock_init = self.policy.clock_timed_region, self.policy.clock_before_run_start
        count_after_stop = self.policy.after_run_stop == "count"
        typed, as_fields, typed_count = _TYPED, _TYPED_FIELDS, WELL_FORMED_FIELDS
        limit = MAX_LINE_BYTES
        track = self._track_slow
        opened = self.open_intervals  # [unused, block, epoch, eval]
        previous_time = -math.inf
        in_run = False
        stopped = False
        lineno = 0
        rejected = 0  # lines that are not (valid) events: events = lineno - rejected
        with open_log(result.path) as handle:
            for chunk in _blocks(handle, limit):
                first = lineno + 1
                if chunk is None:  # one line over the limit, skipped
                    lineno = first
                    add("error", lineno, "(line)", f"a line shorter than {limit // 2**20} MiB",
                        "a longer line (skipped)", "long")
                    rejected += 1
                    continue
                # A field given twice: every name in a JSON text is followed by a colon, so a block
                # holding as many colons as its markers, prefixes and decoded fields (and whatever
                # the lines the careful path read) repeats no field; otherwise _recheck_block
                # finds the lines (a colon in a string, a nested object, or a field twice).
                bodies, lines, positions, expected = _split_block(chunk)
                colons = chunk.count(b":")
                for lineno, body in enumerate(bodies, first):
                    if body is None:  # not an event line at all
                        rejected += 1
                        continue
                    # Fast path: a well-formed event line, decoded and typed in one call (msgspec).
                    # Anything else (an extra field, bad JSON, NaN, a missing or mistyped field)
                    # goes to _unusual_line, which tries orjson, then reads the line carefully and
                    # reports exactly what is wrong.
                    try:
                        _, time_ms, event_type, key, value, metadata = as_fields(typed(body))
                        expected += typed_count + len(metadata)
                    except (ValueError, RecursionError):  # msgspec: DecodeError; deep nesting
                        parsed = self._unusual_line(lineno, body, lineno - first, lines, positions)
                        if parsed is None:
                            rejected += 1
                            expected += body.count(b":")
                            continue
                        key, time_ms, event_type, value, metadata, colons_read = parsed
                        expected += colons_read
                    plan = plans_get(key)
                    # -- the clock ------------------------------------------------------------------
                    if time_ms < previous_time and time_ms < previous_time - tolerance:
                        add(clock_run if in_run else clock_init, lineno, key,
                            f"time_ms >= {show(previous_time)} (time never goes backwards)",
                            f"{show(time_ms)}, {show(previous_time - time_ms)} ms earlier than the event before",
                            "clock")
                    previous_time = time_ms
                    if stopped and not self._after_stop(lineno, key, time_ms, count_after_stop):
                        continue
                    if plan is None:
                        continue  # a key no rule mentions: allowed, nothing more to check
                    trackers, need, watched, code, wanted_type, slot = plan
                    if wanted_type is not None and event_type != wanted_type and event_type is not None:
                        add(type_policy, lineno, key, f"event_type {wanted_type}", f"event_type {event_type}", "type")
                    if watched:
                        self._order_and_timing(key, lineno, time_ms)
                    if trackers:
                        retire = False
                        for tracker in trackers:
                            tracker.count += 1
                            if tracker.slow:
                                track(tracker, lineno, value, metadata)
                            elif tracker.count == 1:
                                track(tracker, lineno, value, metadata)
                                retire = True
                        if retire:
                            self._retire(plans, key)
                    if need is not None and (need not in metadata if need.__class__ is str else not metadata.keys() >= need):
                        self._missing_metadata(key, lineno, metadata)
                    if code:
                        if code == 3:  # an interval starts
                            if opened[slot]:
                                add(pairing, lineno, key, f"{_SLOT_KIND[slot]}_stop before the next {key}",
                                    f"a {_SLOT_KIND[slot]} interval still open", "pairing")
                            opened[slot] += 1
                        elif code == 8:  # ... and stops
                            if opened[slot]:
                                opened[slot] -= 1
                            else:
                                add(pairing, lineno, key, f"a {_SLOT_KIND[slot]}_start before it",
                                    f"no open {_SLOT_KIND[slot]} interval", "pairing")
                        elif code == 4:
                            self._eval(lineno, time_ms, value, metadata, stopped)
                        elif code == 1:
                            if not stopped:  # the last run_start before run_stop, as mlperf-logging's summarizer
                                result.run_start_ms = time_ms
                            in_run = True
                        elif code == 2:
                            if not stopped:  # the first run_stop stops the clock; a second one is counted
                                self._run_stop(lineno, time_ms, metadata)
                                stopped = True
                        elif code == 5:
                            if result.seed is None:
                                result.seed = value
                                result.seed_site = (metadata.get("file"), metadata.get("lineno"))
                        elif code == 6:
                            if not isinstance(value, str) or value not in self.rules.benchmark_names:
                                add("error", lineno, key, "one of " + ", ".join(self.rules.benchmark_names) +
                                    f" (the benchmarks of {self.rules.name})", show(value), "benchmark")
                        elif code == 7:
                            if isinstance(value, str) and value not in available_rulesets():
                                add(self.policy.unknown_ruleset_named, lineno, key, "one of " + ", ".join(available_rulesets()),
                                    show(value) + " (an unknown ruleset)", "ruleset")
                            elif value != self.rules.name:
                                add("warning", lineno, key, f"{self.rules.name} (the ruleset checked against)",
                                    show(value), "ruleset")
                if expected != colons:
                    self._recheck_block(first, bodies)
        result.lines = lineno
        result.events = lineno - rejected
        self._finish()

    def _unusual_line(self, lineno: int, body: bytes, index: int, lines: list[bytes] | None,
                      positions: list[int] | None) -> tuple | None:
        """A line the typed decoder refused: (key, time_ms, event_type, value, metadata, the colons
        its decoded fields account for), or None when it is no usable event (reported)."""
        event = None
        try:
            event = fast_loads(body)
            key, time_ms, event_type, value, metadata = _EVENT_FIELD_GETTER(event)
            if (type(key) is not str or type(metadata) is not dict or event_type not in EVENT_TYPES
                    or type(time_ms) not in _NUMBER_TYPES or not 0 <= time_ms <= 1e17):
                raise _Unusual
            return key, time_ms, event_type, value, metadata, len(event) + len(metadata)
        except ValueError as error:  # the decoder refused the line (bad JSON, NaN, bad UTF-8)
            decode_error = error
        except (KeyError, TypeError, IndexError, _Unusual):  # decoded, but unusual
            decode_error = None
        raw = lines[index] if lines is not None else MARKER + body
        parsed = self._slow_event(lineno, positions[index] if positions is not None else 0, raw, event, decode_error)
        return None if parsed is None else (*parsed, body.count(b":"))

    def _slow_event(self, lineno: int, position: int, raw: bytes, event: Any,
                    decode_error: Exception | None) -> tuple | None:
        """An unusual line: report what is wrong with it, or return its fields if it is fine after all.

        `event` is what the fast decoder made of the line (None if it refused it, `decode_error`
        saying why). Lines up to 1 MiB are decoded again by the standard library for a precise
        message; longer ones are explained from the fast decoder's error, so that a 50 MB line
        costs one decode, not three. What mlperf-logging reads without complaint (no event_type, a
        field twice, NaN, time_ms as a string, ...) is read the same way where the ruleset makes
        the finding a warning (LogPolicy); what it cannot read at all stays an error.
        """
        add, policy = self.findings.add, self.policy
        body = raw[position + MARKER_LENGTH:]
        small = len(body) <= LARGE_LINE_BYTES
        text = None
        if event is None:
            if small or fast_loads is _stdlib_loads:
                text = self._decode_text(lineno, position, body)
                try:
                    event = decode_event(text)
                except NonFiniteNumber as error:
                    event = self._non_finite(lineno, text, json_error_text(error))
                    if event is None:
                        return None
                except ValueError as error:
                    add("error", lineno, "(line)", "a JSON object after ':::MLLOG '", json_error_text(error), "json")
                    return None
            else:
                event = self._large_line_event(lineno, position, body, decode_error)
                if event is None:
                    return None
        if type(event) is not dict:
            add("error", lineno, "(line)", "a JSON object after ':::MLLOG '", f"a {type_name(event)}", "json")
            return None
        if raw.count(b'":', position) != len(event) + (len(event["metadata"]) if type(event.get("metadata")) is dict else 0):
            # More `"name":` than fields: nested objects, a string holding '":', or a field twice.
            if small:
                duplicate = duplicate_field(text if text is not None else body.decode("utf-8", "replace"))
            else:  # 50 MB of nested data is not parsed twice: only the event's own fields are counted
                duplicate = next((name for name in _EVENT_FIELDS if body.count(b'"%s":' % name.encode()) > 1), None)
            if duplicate is not None:
                self._duplicate(lineno, duplicate)
                if policy.duplicate_fields == "error":
                    return None
        key = event.get("key")
        if type(key) is not str:
            found = "no key" if "key" not in event else f"key {show(key)}"
            if "key" not in event or policy.key_string == "error":
                add("error", lineno, "(line)", "a string field 'key'", found, "field")
            else:  # mlperf-logging skips such a line (its rules never match it)
                self._note(policy.key_string, lineno, "(line)", "a string field 'key'", found + " (line skipped)", "key")
            return None
        time_ms = event.get("time_ms")
        if finite_time(time_ms) is None:
            wanted = "a field time_ms: milliseconds since the epoch, a number >= 0"
            number = float_time(time_ms) if "time_ms" in event else None
            if number is None or policy.time_ms_number == "error":
                found = "no time_ms" if "time_ms" not in event else f"time_ms {show(time_ms)}"
                if "time_ms" not in event and "time_s" in event:
                    found = "time_s instead of time_ms"
                add("error", lineno, key, wanted, found, "field")
                return None
            self._note(policy.time_ms_number, lineno, key, wanted, f"time_ms {show(time_ms)} (read as {number!r})", "time_ms")
            time_ms = number
        event_type = event.get("event_type")
        if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
            wanted = "event_type INTERVAL_START, INTERVAL_END or POINT_IN_TIME"
            found = "no event_type" if "event_type" not in event else f"event_type {show(event_type)}"
            if policy.event_type_field == "error":
                add("error", lineno, key, wanted, found, "field")
                return None
            self._note(policy.event_type_field, lineno, key, wanted, found, "event_type")
            event_type = None
        if "value" not in event:
            add("error", lineno, key, "a field 'value' (null when there is none)", "no value", "field")
            return None
        metadata = event.get("metadata")
        if type(metadata) is not dict:
            found = "no metadata" if "metadata" not in event else f"metadata {type_name(metadata)}"
            if "metadata" not in event or policy.metadata_object == "error":
                add("error", lineno, key, "a metadata object", found, "field")
                return None
            self._note(policy.metadata_object, lineno, key, "a metadata object", found + " (read as empty)", "metadata")
            metadata = {}
        return key, time_ms, event_type, event["value"], metadata

    def _recheck_block(self, first: int, bodies: list[bytes | None]) -> None:
        """A block with more colons than its lines' decoded fields: find a field given twice.

        The lines were checked already (a repeated field is read as its last value, as json.loads
        and mlperf-logging read it); what is left is to report it, which the ruleset makes an error
        or a warning. Lines the careful path read have been reported there.
        """
        for lineno, body in enumerate(bodies, first):
            if body is None or lineno in self.duplicates_reported:
                continue
            try:
                event = fast_loads(body)
                expected = len(event) + len(event["metadata"])
            except (ValueError, TypeError, KeyError):
                continue
            if body.count(b":") == expected or body.count(b'":') == expected:
                continue
            if len(body) <= LARGE_LINE_BYTES:
                duplicate = duplicate_field(body.decode("utf-8", "replace"))
            else:
                duplicate = next((name for name in _EVENT_FIELDS if body.count(b'"%s":' % name.encode()) > 1), None)
            if duplicate is not None:
                self._duplicate(lineno, duplicate)

    def _duplicate(self, lineno: int, name: str) -> None:
        self.duplicates_reported.add(lineno)
        wanted, found = "each field once in a JSON object", f"field {show(name)} twice"
        if self.policy.duplicate_fields == "error":
            self.findings.add("error", lineno, "(line)", wanted, found + " (a JSON parser keeps only the last one)", "json")
        else:
            self._note(self.policy.duplicate_fields, lineno, "(line)", wanted, found + " (the last one is read)", "duplicate")

    def _note(self, severity: str, lineno: int, key: str, wanted: str, found: str, kind: str) -> None:
        """A finding of the line format that may repeat on every line: errors are listed (capped);
        a warning is reported once, at its first line, with the number of lines like it."""
        if severity == "error":
            self.findings.add(severity, lineno, key, wanted, found, kind)
            return
        note = self.notes.get(kind)
        if note is None:
            self.notes[kind] = [severity, lineno, key, wanted, found, 1]
        else:
            note[5] += 1

    def _non_finite(self, lineno: int, text: str, found: str) -> Any:
        """A line with NaN, Infinity or 1e999: an error, or read as Python's json reads it."""
        severity = self.policy.non_finite_numbers
        if severity == "error":
            self.findings.add("error", lineno, "(line)", "a JSON object after ':::MLLOG '", found, "json")
            return None
        try:
            event = decode_event_permissive(text)
        except ValueError as error:
            self.findings.add("error", lineno, "(line)", "a JSON object after ':::MLLOG '", json_error_text(error), "json")
            return None
        self._note(severity, lineno, "(line)", "finite numbers", found + " (read as a float)", "non_finite")
        return event

    def _decode_text(self, lineno: int, position: int, body: bytes) -> str:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as error:
            self.findings.add("warning", lineno, "(line)", "UTF-8 text",
                              f"invalid byte at column {position + MARKER_LENGTH + error.start + 1} (replaced)", "utf8")
            return body.decode("utf-8", "replace")

    def _large_line_event(self, lineno: int, position: int, body: bytes, error: Exception | None) -> Any:
        """Explain why the fast decoder refused a line over 1 MiB, without decoding it again slowly."""
        message = str(error) if error is not None else "not valid JSON"
        if "UTF-8" in message:  # bad bytes: replace them, as for short lines, and try once more
            text = self._decode_text(lineno, position, body)
            try:
                return fast_loads(text.encode("utf-8", "surrogatepass"))
            except ValueError as retry:
                message = str(retry)
        where = getattr(error, "pos", None)
        found = f"not valid JSON ({message.split(':')[0]})"
        if "infinity" in message or (isinstance(where, int) and body[where:where + 9].lstrip(b"-")[:3] in (b"NaN", b"Inf")):
            found = "NaN or Infinity (not a finite number)"
            if self.policy.non_finite_numbers != "error":
                return self._non_finite(lineno, body.decode("utf-8", "replace"), found)
        add_at = f" at column {where + position + MARKER_LENGTH + 1}" if isinstance(where, int) else ""
        self.findings.add("error", lineno, "(line)", "a JSON object after ':::MLLOG '", found + add_at, "json")
        return None

    def _after_stop(self, lineno: int, key: str, time_ms: float, count: bool) -> bool:
        """An event written after run_stop: True when it is then checked like any other.

        Closing an interval still open at run_stop is bookkeeping (a loop that stops the clock
        inside an epoch closes it right after; the v0.7 DLRM logs do) and counts. A second
        run_stop counts too: "exactly one" decides. Anything else is reported, and counted (as
        mlperf-logging, which reads the whole file) or ignored, as the ruleset says.
        """
        slot = _INTERVAL_SLOT.get(key, 0)
        if (slot and _INTERVALS[key][1] < 0 and self.open_intervals[slot] > 0) or key == "run_stop":
            return True
        policy = self.policy
        if time_ms > self.stop_time + policy.clock_tolerance_ms:
            self.findings.add(policy.events_timed_after_run_stop, lineno, key,
                              f"no event timed after run_stop (time_ms {show(self.stop_time)})",
                              f"time_ms {show(time_ms)}", "after_stop_time")
        else:
            self.findings.add(policy.events_after_run_stop, lineno, key, "no event after run_stop",
                              "one (counted, as mlperf-logging reads the whole log)" if count else "one (ignored)",
                              "after_stop")
        if not count:
            self.ignored_after_stop[key] += 1
        return count

    def _run_stop(self, lineno: int, time_ms: float, metadata: dict) -> None:
        result = self.result
        status = metadata.get("status")
        result.status = status if isinstance(status, str) else None
        result.run_stop_ms = self.stop_time = time_ms
        if "status" in metadata and status not in ("success", "aborted"):  # a missing status: the key rule's
            self.findings.add(self.policy.run_stop_status, lineno, "run_stop metadata.status",
                              "one of 'success', 'aborted'", show(status), "status")

    def _order_and_timing(self, key: str, lineno: int, time_ms: float) -> None:
        if key in self.order:
            self._check_order(key, lineno)
        if key in self.timing:
            self._check_timing(key, lineno, time_ms)
        if key not in self.first_seen:
            self.first_seen[key] = lineno
        previous = self.first_time.get(key)
        if previous is None or time_ms < previous:
            self.first_time[key] = time_ms

    # -- per line ------------------------------------------------------------------------------
    def _track_slow(self, tracker: _Tracker, lineno: int, value: Any, metadata: dict) -> None:
        """The parts of tracking one occurrence that only some keys need (count already updated)."""
        count = tracker.count
        if count == 1:
            tracker.first_value, tracker.first_line = value, lineno
        elif tracker.exactly_one:
            if count == 2:
                tracker.second_line = lineno
            if tracker.same and not values_equal(value, tracker.first_value):
                tracker.same = False
            if len(tracker.distinct) < 5 and not any(values_equal(value, v) for v in tracker.distinct):
                tracker.distinct.append(value)
        if tracker.value_check is not None:
            wanted = tracker.value_check(value)
            if wanted is not None:
                tracker.note(lineno, "value", wanted, show(value))
        for name, check in tracker.checked_meta:
            if name in metadata:
                wanted = check(metadata[name])
                if wanted is not None:
                    tracker.note(lineno, f"metadata.{name}", wanted, show(metadata[name]))

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

    def _eval(self, lineno: int, time_ms: float, value: Any, metadata: dict, after_stop: bool) -> None:
        self.evals += 1
        result = self.result
        if self.collect_evals and len(result.eval_points) < MAX_EVAL_POINTS and result.run_start_ms is not None:
            result.eval_points.append(((time_ms - result.run_start_ms) / 60000.0, value))
        quality = self.quality
        if quality is None:
            return
        if quality.components:
            if not isinstance(value, dict) or any(name not in value for name, _ in quality.components):
                names = ", ".join(name for name, _ in quality.components)
                self.findings.add("error", lineno, quality.key, f"an object with {names}", show(value), "quality")
                return
            numbers = [value[name] for name, _ in quality.components]
        else:
            numbers = (value,)
        valid_check, in_range, fast_range = self.valid_check, True, self.in_valid_range
        for number in numbers:
            if type(number) is not float and type(number) is not int:
                self.findings.add("error", lineno, quality.key, f"a number ({quality.metric})", show(number), "quality")
                return
            if valid_check is not None and (not fast_range(number) if fast_range is not None else valid_check(number) is not None):
                in_range = False
                self.findings.add(self.policy.out_of_range_quality, lineno, quality.key,
                                  f"a {quality.metric} value {quality.valid.describe()}", show(number), "range")
        score = value if not quality.components else min(
            value[name] - target for name, target in quality.components)
        if not quality.higher_is_better:
            score = -score
        if self.best_score is None or score > self.best_score:
            self.best, self.best_score = value, score
        if self.context_keys and not self.context:
            self.context = {t.rule.key: t.first_value for t in self.base_trackers
                            if t.rule.key in self.context_keys and t.count}
        target = self.simple_target
        if target is not None:  # as Quality.reached: a finite number in the valid range, on the right side
            reached = in_range and math.isfinite(value) and (value >= target if quality.higher_is_better else value <= target)
        else:
            reached = quality.reached(value, self.context, self.division)
        if reached:
            if self.reached_line is None:
                self.reached_line = lineno
            if not after_stop and (self.reached_time is None or time_ms < self.reached_time):
                self.reached_time = time_ms
        if self.schedule is not None:
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
    def _finish(self) -> None:
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
            if tracker.dropped:
                self.findings.suppressed[("error", rule.key)] += tracker.dropped
            self._check_count(tracker, counts)
        if self.quality is not None:
            self._check_quality()
        if result.run_start_ms is not None and result.run_stop_ms is not None and result.run_stop_ms < result.run_start_ms:
            # Whatever the ruleset: the time to train would be negative (mlperf-logging does not look).
            add("error", None, "run_stop", f"time_ms >= run_start's ({show(result.run_start_ms)})",
                f"time_ms {show(result.run_stop_ms)}: a negative time to train", "time_to_train")
        for severity, line, key, wanted, found, count in self.notes.values():
            more = f" (and on {count - 1} more line{'s' if count > 2 else ''})" if count > 1 else ""
            add(severity, line, key, wanted, found + more, "note")
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
                    add(self.policy.repeated_exactly_one, tracker.second_line, rule.key, "exactly one occurrence",
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
        stop = result.run_stop_ms
        on_time = self.reached_time is not None and (stop is None or self.reached_time <= stop + self.policy.clock_tolerance_ms)
        if self.reached_line is not None and not on_time:
            # Minigo v0.7 evaluates the saved models after training and stops the clock at the
            # first one that reached the target: its evaluations are timed after run_stop.
            severity = self.policy.target_after_run_stop
            add(severity, self.reached_line, quality.key, f"an evaluation reaching {target} before run_stop",
                "reached only by evaluations written or timed after run_stop (the first here)", "target")
            result.target_reached = severity != "error"
        if self.reached_line is None:
            if self.evals == 0:
                return  # eval_accuracy's own count rule reports it
            best = show(self.best) if self.best is not None else "no usable value"
            add("error", None, quality.key, f"an evaluation reaching {target} before run_stop",
                f"best {best} in {self.evals} evaluation{'s' if self.evals != 1 else ''}", "target")
        elif result.status == "aborted":
            add("warning", None, "run_stop", "status success once the target is reached",
                f"status aborted (target reached at line {self.reached_line})", "status")


__all__ = ["Finding", "CheckResult", "check_log", "resolve_ruleset", "DEFAULT_RULESET", "SUITE_RULESET",
           "UnknownRuleset", "RuleFileError"]
