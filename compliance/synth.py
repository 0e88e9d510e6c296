"""Synthetic logs written from the rules: valid ones of any length, and ones broken on purpose.

The checker's tests, the examples beside the rule files and the benchmark (`bench.py`) need logs
that follow a ruleset exactly. They are written by this suite's own log writer (`compliance.mllog`)
from the rule files: every required key with its rule file `example` value, the lifecycle in the
order the harness writes it, blocks and evaluations on the benchmark's schedule, and a quality
that reaches the target at the last evaluation.

    write_log("result_1.txt", "training-0.7.0", "resnet", lines=200_000)
    write_log("bad.txt", "mlbench-1.0.0", "ncf", overrides={"model_factors": 8})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compliance.mllog import constants
from compliance.mllog.logger import MLLogger
from compliance.ruleset import Constraint, KeyRule, Ruleset, load_ruleset, merged_key_rules

_LIFECYCLE = {
    constants.CACHE_CLEAR, constants.INIT_START, constants.INIT_STOP, constants.RUN_START, constants.RUN_STOP,
    constants.BLOCK_START, constants.BLOCK_STOP, constants.EPOCH_START, constants.EPOCH_STOP,
    constants.EVAL_START, constants.EVAL_STOP, constants.EVAL_ACCURACY, constants.SUBMISSION_BENCHMARK,
    constants.SUBMISSION_DIVISION, constants.SUBMISSION_ORG, constants.SUBMISSION_STATUS,
    constants.SUBMISSION_PLATFORM, constants.SEED, constants.GLOBAL_BATCH_SIZE, constants.TRAIN_SAMPLES,
    constants.EVAL_SAMPLES, constants.SUBMISSION_RULESET, constants.SUBMISSION_POC_NAME,
    constants.SUBMISSION_POC_EMAIL, constants.GRADIENT_ACCUMULATION_STEPS,
}
_DROP = object()


def _value_for(rule: KeyRule) -> Any:
    """The rule's example, or a value its constraint allows."""
    if rule.has_example:
        return rule.example
    return _satisfying(rule.value)


def _satisfying(constraint: Constraint) -> Any:
    if constraint.one_of:
        return constraint.one_of[0]
    if constraint.equals is not Constraint().equals:
        return constraint.equals
    if constraint.items is not None:
        return [_satisfying(item) for item in constraint.items]
    if constraint.length is not None:
        return [1] * constraint.length
    if constraint.type == "string":
        return "x"
    if constraint.type == "boolean":
        return True
    if constraint.type == "list":
        return [1]
    if constraint.type == "object":
        return {}
    base = constraint.multiple_of or constraint.power_of_two_times or 1
    low = max([b for b in (constraint.gt, constraint.ge) if b is not None], default=0)
    value = base
    while value <= low:
        value += base
    return value


def _metadata_for(rule: KeyRule) -> dict:
    return {name: _satisfying(constraint) if not constraint.is_empty else 1 for name, constraint in rule.metadata}


def eval_epochs(ruleset: Ruleset, benchmark: str, max_epochs: int) -> list[float]:
    """Epochs at which a run following the benchmark's schedule evaluates (every epoch if none)."""
    schedule = ruleset.benchmark(benchmark).eval_schedule
    if schedule is None or not schedule.gaps:
        return [float(e) for e in range(1, max_epochs + 1)]
    epoch = schedule.first_by_epoch if schedule.first_by_epoch is not None else schedule.gaps[0][1]
    epochs = []
    while epoch <= max_epochs:
        epochs.append(epoch)
        epoch += schedule.max_gap_at(epoch) or 1
    return epochs


def _quality_values(ruleset: Ruleset, benchmark: str, count: int) -> list[Any]:
    """Quality per evaluation: below the target until the last one, which meets it."""
    quality = ruleset.benchmark(benchmark).quality

    def level(target: float, index: int) -> float:
        if index == count - 1:
            return target
        fraction = (index + 1) / count * 0.99
        if quality.higher_is_better:
            return round(target * 0.5 + target * 0.5 * fraction, 6)
        high = target * 2 + 0.5
        return round(high - (high - target) * fraction, 6)

    if quality.components:
        return [{name: level(target, i) for name, target in quality.components} for i in range(count)]
    return [level(quality.target, i) for i in range(count)]


def write_log(path: str | Path, ruleset: str, benchmark: str, division: str = "closed", *,
              variant: str | None = None, epochs: int | None = None, lines: int | None = None,
              overrides: Mapping[str, Any] | None = None, reach_target: bool = True, seed: int = 1,
              start_ms: int = 1_700_000_000_000, epoch_ms: int = 60_000, org: str = "mlbench") -> Path:
    """Write a log that `ruleset` accepts (unless `overrides` break it); return its path.

    `overrides` replaces logged values by key (`_DROP` via `drop_keys` removes them);
    `lines` sizes the log by adding epochs; `reach_target=False` ends with an aborted run.
    """
    rules = load_ruleset(ruleset)
    bench_rules = rules.benchmark(benchmark)
    if bench_rules is None:
        raise ValueError(f"unknown benchmark {benchmark!r} in {ruleset}")
    overrides = dict(overrides or {})
    division_rules = bench_rules.division(division)
    merged = merged_key_rules(rules, benchmark, division)
    chosen_variant = None
    if division_rules is not None and division_rules.select_by:
        chosen_variant = variant or overrides.get(division_rules.select_by) or division_rules.default_variant
        if division_rules.select_by not in overrides and chosen_variant:
            overrides.setdefault(division_rules.select_by, chosen_variant)
        for rule in division_rules.variant(chosen_variant):
            merged[rule.key] = rule
    schedule_rules = rules.benchmark(benchmark)
    if epochs is None:
        epochs = max(int(math.ceil(schedule_rules.eval_schedule.first_by_epoch or 1)) if
                     schedule_rules.eval_schedule else 1, 4)
        if lines is not None:
            per_epoch = 2 + 5 / max(1.0, (schedule_rules.eval_schedule.gaps[-1][1]
                                          if schedule_rules.eval_schedule and schedule_rules.eval_schedule.gaps else 1))
            epochs = max(epochs, int((lines - 60) / per_epoch))
    evals = [e for e in eval_epochs(rules, benchmark, epochs)]
    if not evals or evals[-1] < epochs:
        epochs = int(math.ceil(evals[-1])) if evals else epochs
    qualities = _quality_values(rules, benchmark, len(evals))
    if not reach_target:
        qualities = [_quality_values(rules, benchmark, len(evals) + 1)[i] for i in range(len(evals))]

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    logger = MLLogger(root_dir=str(Path(__file__).resolve().parent.parent), default_stack_offset=1)
    logger.echo_stdout = False
    logger.all_ranks = True
    logger.add_file(str(path))
    clock = [start_ms]

    def log(kind: str, key: str, value: Any = None, metadata: dict | None = None, step_ms: int = 1) -> None:
        if key in overrides and overrides[key] is _DROP:
            return
        if key in overrides:
            value = overrides[key]
        clock[0] += step_ms
        getattr(logger, kind)(key=key, value=value, metadata=metadata, time_ms=clock[0])

    try:
        log("event", constants.CACHE_CLEAR, True)
        log("start", constants.INIT_START)
        log("event", constants.SUBMISSION_BENCHMARK, benchmark)
        log("event", constants.SUBMISSION_ORG, org)
        log("event", constants.SUBMISSION_DIVISION, division)
        log("event", constants.SUBMISSION_STATUS, "onprem")
        log("event", constants.SUBMISSION_PLATFORM, "synthetic")
        if ruleset.startswith("mlbench"):
            log("event", constants.SUBMISSION_RULESET, ruleset)
        log("event", constants.SEED, seed)
        for key, rule in merged.items():
            if key in _LIFECYCLE or rule.count == "any":
                continue
            log("event", key, _value_for(rule), _metadata_for(rule))
        for key in (constants.GLOBAL_BATCH_SIZE, constants.TRAIN_SAMPLES, constants.EVAL_SAMPLES):
            rule = merged.get(key)
            log("event", key, _value_for(rule) if rule is not None else {
                constants.GLOBAL_BATCH_SIZE: 256, constants.TRAIN_SAMPLES: 1000,
                constants.EVAL_SAMPLES: 100}[key])
        for key, value in overrides.items():  # extra keys a test wants logged
            if key not in merged and key not in _LIFECYCLE and value is not _DROP:
                log("event", key, value)
        log("end", constants.INIT_STOP, step_ms=1000)
        log("start", constants.RUN_START)
        epoch, eval_index = 1, 0
        while eval_index < len(evals):
            block_end = int(math.ceil(evals[eval_index]))
            count = max(1, block_end - epoch + 1)
            log("start", constants.BLOCK_START, epoch, {"first_epoch_num": epoch, "epoch_count": count})
            for current in range(epoch, epoch + count):
                log("start", constants.EPOCH_START, current, {"epoch_num": current})
                log("end", constants.EPOCH_STOP, current, {"epoch_num": current}, step_ms=epoch_ms)
            eval_epoch = evals[eval_index]
            log("start", constants.EVAL_START, eval_epoch, {"epoch_num": eval_epoch})
            log("event", constants.EVAL_ACCURACY, qualities[eval_index], {"epoch_num": eval_epoch})
            log("end", constants.EVAL_STOP, eval_epoch, {"epoch_num": eval_epoch}, step_ms=1000)
            log("end", constants.BLOCK_STOP, epoch, {"first_epoch_num": epoch})
            epoch += count
            eval_index += 1
        log("end", constants.RUN_STOP, None,
            {"status": constants.SUCCESS if reach_target else constants.ABORTED, "epoch_num": epoch - 1})
    finally:
        logger.close()
    return path


def write_examples(ruleset: str, folder: Path | None = None) -> list[Path]:
    """The passing and failing example logs kept beside a ruleset's rule files (examples/)."""
    rules = load_ruleset(ruleset)
    folder = Path(folder or Path(rules.folder) / "examples")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for benchmark in rules.benchmark_names:
        passing = write_log(folder / f"{benchmark}.pass.txt", ruleset, benchmark)
        overrides, key = breaking_override(ruleset, benchmark)
        failing = write_log(folder / f"{benchmark}.fail.txt", ruleset, benchmark, overrides=overrides)
        for path, text in ((passing, f"# A {benchmark} log that {ruleset} accepts (written by compliance.synth)."),
                           (failing, f"# expect: {key} -- a {benchmark} log that {ruleset} rejects for this key.")):
            path.write_bytes(text.encode() + b"\n" + path.read_bytes())
        written += [passing, failing]
    return written


def drop_keys(*keys: str) -> dict[str, Any]:
    """`overrides` that leave these keys out of the log."""
    return {key: _DROP for key in keys}


def breaking_override(ruleset: str, benchmark: str, division: str = "closed") -> tuple[dict[str, Any], str]:
    """An override that breaks one closed-division value rule (or drops a required key), and its key."""
    rules = load_ruleset(ruleset)
    division_rules = rules.benchmark(benchmark).division(division)
    candidates = list(division_rules.keys) + list(division_rules.variant(division_rules.default_variant))
    for rule in candidates:
        value = rule.value
        if value.equals is not Constraint().equals:
            bad = "wrong" if isinstance(value.equals, str) else ([0] if isinstance(value.equals, list) else
                                                                 (value.equals or 1) * 10 + 1)
            return {rule.key: bad}, rule.key
        if value.one_of is not None:
            return {rule.key: "not-an-option"}, rule.key
        if value.gt is not None or value.ge is not None:
            return {rule.key: -1}, rule.key
    for rule in candidates:
        if rule.count == "exactly_one":
            return drop_keys(rule.key), rule.key
    return drop_keys(constants.RUN_START), constants.RUN_START


__all__ = ["write_log", "write_examples", "drop_keys", "breaking_override", "eval_epochs"]
