"""Each check this suite makes beyond mlperf-logging: an error in mlbench-1.0.0, a warning in
training-0.7.0, and what mlperf-logging 4.1.68 itself says (README: "Checks beyond mlperf-logging").

The base log is the hand-written ResNet log (tests/data/handwritten/resnet.txt), which both
rulesets and mlperf-logging accept; each case changes one thing in it. A new check in LOG_CHECKS
needs a case here (the last test fails until it has one).
"""

from __future__ import annotations

import pytest

from compliance.checker import check_log
from compliance.ruleset import LOG_CHECKS, load_ruleset

from . import handwritten as hw
from .conftest import mlperf_logging_outcome


def _no_event_type(log):  # one organisation's own v0.7 logger wrote none
    return [hw.line_of({k: v for k, v in hw.event(line).items() if k != "event_type"}) if line.startswith(hw.MARKER)
            else line for line in log]


def _repeated_field(log):
    i = hw.index(log, "seed")
    log = list(log)
    log[i] = log[i].replace('{"namespace": "",', '{"namespace": "", "namespace": "",', 1)
    return log


def _late_target(log):  # the last evaluation misses; one written after run_stop (same time) reaches it
    log = hw.set_value("eval_accuracy", 0.7501, nth=-1)(log)
    stop = hw.event(log[hw.index(log, "run_stop")])
    reached = {**hw.event(log[hw.index(log, "eval_accuracy", -1)]), "value": 0.7613, "time_ms": stop["time_ms"]}
    i = hw.index(log, "run_stop")
    return log[:i + 1] + [hw.line_of(reached)] + log[i + 1:]


def _after_stop(time_offset_ms):
    def edit(log):  # a line right after run_stop
        i = hw.index(log, "run_stop")
        stop = hw.event(log[i])
        return log[:i + 1] + [hw.line_of({"namespace": "", "time_ms": stop["time_ms"] + time_offset_ms, "event_type":
                                          "POINT_IN_TIME", "key": "train_loss", "value": 0.5, "metadata": {}})] + log[i + 1:]
    return edit


def _no_first_eval(log):  # the first evaluation at epoch 8; the rules want one by epoch 4
    first = {hw.index(log, "eval_start"), hw.index(log, "eval_accuracy"), hw.index(log, "eval_stop")}
    return [line for i, line in enumerate(log) if i not in first]


def _second_run_stop(log):  # the same line twice: both say status success
    i = hw.index(log, "run_stop")
    return log[:i + 1] + [log[i]] + log[i + 1:]


# name -> (edit, severity in mlbench-1.0.0, text of the finding)
CASES = {
    "event_type_field": (_no_event_type, "error", "no event_type"),
    "event_type_matches_key": (hw.set_field("epoch_start", "event_type", "POINT_IN_TIME"), "error",
                               "event_type INTERVAL_START"),
    "duplicate_fields": (_repeated_field, "error", "field 'namespace' twice"),
    "non_finite_numbers": (hw.add_before("init_stop", {"key": "train_loss", "value": float("nan")}), "error", "NaN"),
    "time_ms_number": (hw.set_field("seed", "time_ms", "1600000000003"), "error", "time_ms '1600000000003'"),
    "key_string": (hw.add_before("init_stop", {"key": 7}), "error", "key 7"),
    "metadata_object": (hw.set_field("seed", "metadata", "train.py:12"), "error", "metadata string"),
    "clock_before_run_start": (hw.set_field("seed", "time_ms", 1599999999000), "error", "time never goes backwards"),
    # 1 ms clock skew between processes, as on a v0.7 DLRM submission
    "clock_timed_region": (hw.set_field("eval_stop", "time_ms", 1600000269999), "error", "time never goes backwards"),
    "interval_pairing": (hw.drop("epoch_start"), "error", "no open epoch interval"),
    "repeated_exactly_one": (_second_run_stop, "error", "2, all with value null"),
    "run_stop_status": (hw.set_meta("run_stop", "status", "finished"), "error", "'finished'"),
    "events_after_run_stop": (_after_stop(0), "warning", "no event after run_stop"),
    "events_timed_after_run_stop": (_after_stop(5), "error", "no event timed after run_stop"),
    "target_after_run_stop": (_late_target, "error", "before run_stop"),
    "eval_schedule": (_no_first_eval, "error", "the first evaluation by epoch 4"),
    "out_of_range_quality": (hw.set_value("eval_accuracy", 1.25), "error", "found 1.25"),
    "unknown_ruleset_named": (hw.set_value("submission_ruleset", "mlbench-9"), "error", "an unknown ruleset"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_check_beyond_mlperf_logging(tmp_path, name):
    edit, severity, text = CASES[name]
    path = hw.write(tmp_path / "result_0.txt", edit(hw.lines("resnet")))
    ours = check_log(str(path), "mlbench-1.0.0")
    assert any(f.severity == severity and text in f"wanted {f.wanted}; found {f.found}" for f in ours.findings), \
        [f.format("log") for f in ours.findings]
    assert ours.compliant == (severity != "error")
    assert load_ruleset("mlbench-1.0.0").log.__getattribute__(name) == severity  # the rule file says so too

    compatible = check_log(str(path), "training-0.7.0")
    assert compatible.compliant, [f.format("log") for f in compatible.errors]
    assert any(f.severity == "warning" and text in f"wanted {f.wanted}; found {f.found}" for f in compatible.findings), \
        [f.format("log") for f in compatible.findings]
    # mlperf-logging accepts every one of these logs: that is why training-0.7.0 only warns.
    assert mlperf_logging_outcome(path) in ("ok", None)


def test_the_unchanged_base_log_passes_everything(tmp_path):
    path = hw.write(tmp_path / "result_0.txt", hw.lines("resnet"))
    assert check_log(str(path), "mlbench-1.0.0").findings == []
    assert check_log(str(path), "training-0.7.0").compliant
    assert mlperf_logging_outcome(path) in ("ok", None)


def test_every_check_beyond_mlperf_logging_has_a_case():
    assert sorted(CASES) == sorted(LOG_CHECKS)


# Deliberate differences that stay errors in every ruleset (README: "Deliberate differences"), each
# with what mlperf-logging does: it accepts the first three, and crashes on the others (a crash is
# no verdict; these logs cannot be read as events).
DIFFERENCES = {
    "run_stop timed before run_start (a negative time to train)": (
        hw.set_field("run_stop", "time_ms", 1600000060001), "ok", "a negative time to train"),
    "time_ms not a finite number": (
        lambda log: [line.replace('"time_ms": 1600000000003, "event_type": "POINT_IN_TIME", "key": "seed"',
                                  '"time_ms": NaN, "event_type": "POINT_IN_TIME", "key": "seed"') for line in log],
        "ok", "nan"),
    "time_ms a string float() cannot read": (hw.set_field("seed", "time_ms", "soon"), "fail", "time_ms 'soon'"),
    "no time_ms (Alibaba's time_s)": (
        lambda log: [line.replace('"time_ms": 1600000000003, "event_type": "POINT_IN_TIME", "key": "seed"',
                                  '"time_s": 1600000000.003, "event_type": "POINT_IN_TIME", "key": "seed"') for line in log],
        "crash: KeyError", "time_s instead of time_ms"),
    "no value field": (lambda log: [line.replace('"key": "seed", "value": 42, ', '"key": "seed", ') for line in log],
                       "crash: KeyError", "no value"),
    "no metadata field": (lambda log: [line.replace('"value": 42, "metadata": {}}', '"value": 42}') for line in log],
                          "crash: KeyError", "no metadata"),
}


@pytest.mark.parametrize("name", sorted(DIFFERENCES))
def test_deliberate_differences_are_errors_everywhere(tmp_path, name):
    edit, theirs, text = DIFFERENCES[name]
    path = hw.write(tmp_path / "result_0.txt", edit(hw.lines("resnet")))
    for ruleset in ("mlbench-1.0.0", "training-0.7.0"):
        result = check_log(str(path), ruleset)
        assert not result.compliant and any(text.lower() in f.found.lower() for f in result.errors), \
            (ruleset, [f.format("log") for f in result.findings])
    assert mlperf_logging_outcome(path) in (theirs, None)
