"""Patterns of published MLPerf v0.7 results that mlperf-logging 4.1.68 accepts (issue 9), in logs
these tests write: training-0.7.0 gives mlperf-logging's verdict with warnings, and the summarizer
and package checker score them as its summarizer does; mlbench-1.0.0 refuses what breaks its rules.

1. An organisation's own logger: no event_type on any line, time_ms 0 on the submission_* lines
   (written before the run, or after run_stop), booleans written as the strings "True"/"False".
2. Asynchronous evaluation (Minigo): the saved models are evaluated after training; the
   evaluations are timed after the run_stop that is written last, timed when the first model that
   reached the target was saved. File order is not time order.
3. Clocks of two processes 1 ms apart: eval_stop 1 ms before the event written before it.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from compliance.checker import check_log

from .conftest import mlperf_logging_outcome, run_cli

T0 = 1_594_000_000_000  # an arbitrary July 2020 epoch, in ms


def _line(time_ms, key, value=None, event_type="POINT_IN_TIME", **metadata) -> str:
    event = {"namespace": "main", "time_ms": time_ms, "event_type": event_type, "key": key, "value": value,
             "metadata": {"file": "main.py", "lineno": 1, **metadata}}
    if event_type is None:  # the organisation's logger writes no event_type at all
        del event["event_type"]
    return ":::MLLOG " + json.dumps(event) + "\n"


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    return path


def own_logger_gnmt(path: Path, start_ms: int, minutes: float, submission_at_end: bool = False,
                    event_types: bool = False) -> Path:
    """Pattern 1 on GNMT: reaches BLEU 0.2412 at epoch 3; run_stop - run_start = `minutes`.
    `event_types` adds them (as POINT_IN_TIME), to show what else this suite's rules refuse."""
    stop_ms = start_ms + round(minutes * 60_000)

    def e(t, key, value=None, **metadata):
        return _line(t, key, value, "POINT_IN_TIME" if event_types else None, **metadata)
    submission = [e(0, "submission_benchmark", "gnmt"), e(0, "submission_division", "closed"),
                  e(0, "submission_org", "Vendor"), e(0, "submission_platform", "pod-8"),
                  e(0, "submission_status", "research")]
    lines = [e(start_ms - 90_000, "cache_clear", True), e(start_ms - 89_000, "init_start")]
    lines += [] if submission_at_end else submission
    lines += [e(start_ms - 80_000, key, value) for key, value in (
        ("global_batch_size", 2048), ("opt_base_learning_rate", 0.002), ("opt_learning_rate_alt_decay_func", "True"),
        ("opt_learning_rate_decay_factor", 0.5), ("opt_learning_rate_decay_interval", 809),
        ("opt_learning_rate_decay_steps", 4), ("opt_learning_rate_remain_steps", 6453), ("max_sequence_length", 75),
        ("opt_learning_rate_alt_warmup_func", "False"), ("opt_learning_rate_warmup_steps", 200),
        ("train_samples", 3975116), ("eval_samples", 3003))]
    lines += [e(start_ms - 1, "init_stop"), e(start_ms, "run_start")]
    epoch_ms = (stop_ms - start_ms - 10) // 3
    for epoch, bleu in ((1, 0.1805), (2, 0.2271), (3, 0.2412)):
        begin = start_ms + 1 + (epoch - 1) * epoch_ms
        lines += [e(begin, "block_start", first_epoch_num=epoch, epoch_count=1),
                  e(begin + 1, "epoch_start", epoch_num=epoch), e(begin + epoch_ms - 5, "epoch_stop", epoch_num=epoch),
                  e(begin + epoch_ms - 4, "eval_start", epoch_num=epoch),
                  e(begin + epoch_ms - 3, "eval_accuracy", bleu, epoch_num=epoch),
                  e(begin + epoch_ms - 2, "eval_stop", epoch_num=epoch),
                  e(begin + epoch_ms - 1, "block_stop", first_epoch_num=epoch)]
    lines += [e(stop_ms, "run_stop", status="success")]
    lines += submission if submission_at_end else []
    return _write(path, lines)


def async_eval_minigo(path: Path, start_ms: int, minutes: float) -> Path:
    """Pattern 2: 6 generations trained; all evaluated afterwards (timed later); generation 4 is the
    first to win 50%, and run_stop, written last, is timed when it was saved: `minutes` after run_start."""
    generation_ms = round(minutes * 60_000) // 4
    lines = [_line(start_ms - 60_000, "cache_clear", True), _line(start_ms - 59_000, "init_start", event_type="INTERVAL_START")]
    lines += [_line(start_ms - 58_000, key, value) for key, value in (
        ("submission_benchmark", "minigo"), ("submission_division", "closed"), ("submission_org", "Vendor"),
        ("submission_platform", "pod-8"), ("submission_status", "onprem"), ("train_batch_size", 8192),
        ("lr_boundaries", [12500, 18750]), ("lr_rates", [0.032, 0.0032, 0.00032]),
        ("min_selfplay_games_per_generation", 8192))]
    lines += [_line(start_ms - 1, "init_stop", event_type="INTERVAL_END"), _line(start_ms, "run_start", event_type="INTERVAL_START")]
    saved = {}
    for generation in range(1, 7):
        begin = start_ms + (generation - 1) * generation_ms
        saved[generation] = begin + generation_ms
        lines += [_line(begin + 1, "epoch_start", event_type="INTERVAL_START", epoch_num=generation),
                  _line(begin + 2, "actual_selfplay_games_per_generation", 8200, epoch_num=generation),
                  _line(saved[generation], "save_model", {"iteration": generation}),
                  _line(saved[generation], "epoch_stop", event_type="INTERVAL_END", epoch_num=generation)]
    evaluated = saved[6] + 3_600_000  # an hour after training, every saved model is evaluated
    for generation, win_rate in zip(range(1, 7), (0.12, 0.31, 0.44, 0.52, 0.49, 0.55), strict=True):
        lines += [_line(evaluated, "eval_start", event_type="INTERVAL_START", epoch_num=generation),
                  _line(evaluated, "eval_accuracy", win_rate, epoch_num=generation),
                  _line(evaluated, "eval_stop", event_type="INTERVAL_END", epoch_num=generation)]
    lines += [_line(saved[4], "run_stop", event_type="INTERVAL_END", status="success")]
    return _write(path, lines)


def skewed_dlrm(path: Path) -> Path:
    """Pattern 3: DLRM whose eval_stop is timed 1 ms before the eval_accuracy written before it."""
    s = T0
    lines = [_line(s, "cache_clear", True), _line(s + 1, "init_start", event_type="INTERVAL_START")]
    lines += [_line(s + 2, key, value) for key, value in (
        ("submission_benchmark", "dlrm"), ("submission_division", "closed"), ("submission_org", "Vendor"),
        ("submission_platform", "dgx"), ("submission_status", "onprem"), ("global_batch_size", 55296),
        ("opt_base_learning_rate", 24.0), ("opt_learning_rate_warmup_steps", 2750), ("lr_decay_start_steps", 49315),
        ("sgd_opt_base_learning_rate", 24.0), ("sgd_opt_learning_rate_decay_poly_power", 2),
        ("sgd_opt_learning_rate_decay_steps", 27772), ("train_samples", 4195197692), ("eval_samples", 89137319))]
    lines += [_line(s + 60_000, "init_stop", event_type="INTERVAL_END"), _line(s + 60_001, "run_start", event_type="INTERVAL_START"),
              _line(s + 60_002, "block_start", event_type="INTERVAL_START", first_epoch_num=0, epoch_count=1),
              _line(s + 150_000, "eval_start", event_type="INTERVAL_START", epoch_num=0.5),
              _line(s + 160_000, "eval_accuracy", 0.8027, epoch_num=0.5),
              _line(s + 159_999, "eval_stop", event_type="INTERVAL_END", epoch_num=0.5),  # another process's clock
              _line(s + 160_001, "run_stop", event_type="INTERVAL_END", status="success"),
              _line(s + 160_002, "block_stop", event_type="INTERVAL_END", first_epoch_num=0)]
    return _write(path, lines)


def _findings(result, severity):
    return [f"{f.key}: wanted {f.wanted}; found {f.found}" for f in result.findings if f.severity == severity]


@pytest.mark.parametrize("at_end", [False, True], ids=["submission lines first", "submission lines after run_stop"])
def test_an_organisations_own_logger(tmp_path, at_end):
    path = own_logger_gnmt(tmp_path / "result_0.txt", T0, 30.0, submission_at_end=at_end)
    result = check_log(str(path), "training-0.7.0")
    assert result.compliant, _findings(result, "error")
    assert result.time_to_train_minutes == 30.0 and result.target_reached
    warnings = " | ".join(_findings(result, "warning"))
    assert "no event_type" in warnings and "time never goes backwards" in warnings
    assert mlperf_logging_outcome(path) in ("ok", None)
    # This suite's rules: every line typed, one writer's clock, booleans as booleans.
    assert "no event_type" in " | ".join(_findings(check_log(str(path), "mlbench-1.0.0"), "error"))
    typed = own_logger_gnmt(tmp_path / "typed.txt", T0, 30.0, submission_at_end=at_end, event_types=True)
    errors = " | ".join(_findings(check_log(str(typed), "mlbench-1.0.0"), "error"))
    assert "opt_learning_rate_alt_decay_func: wanted a value of type boolean; found 'True'" in errors
    assert "opt_learning_rate_alt_warmup_func: wanted a value of type boolean; found 'False'" in errors
    assert "time never goes backwards" in errors  # time_ms 0 on the submission lines


def test_asynchronous_evaluation(tmp_path):
    path = async_eval_minigo(tmp_path / "result_0.txt", T0, 40.0)
    result = check_log(str(path), "training-0.7.0")
    assert result.compliant, _findings(result, "error")
    assert result.time_to_train_minutes == 40.0 and result.target_reached
    warnings = " | ".join(_findings(result, "warning"))
    assert "run_stop" in warnings and "time never goes backwards" in warnings
    assert "reached only by evaluations written or timed after run_stop" in warnings
    assert mlperf_logging_outcome(path) in ("ok", None)
    ours = check_log(str(path), "mlbench-1.0.0")
    errors = " | ".join(_findings(ours, "error"))
    assert "time never goes backwards" in errors and "reached only by evaluations" in errors


def test_one_millisecond_of_clock_skew(tmp_path):
    path = skewed_dlrm(tmp_path / "result_0.txt")
    result = check_log(str(path), "training-0.7.0")
    assert result.compliant and [f.found for f in result.warnings] == [f"{T0 + 159_999}, 1 ms earlier than the event before"]
    assert mlperf_logging_outcome(path) in ("ok", None)


# -- a submission of such logs: scored as mlperf-logging's summarizer scores it -------------------
GNMT_MINUTES = [31.5, 29.25, 33.0, 30.75, 28.5, 35.25, 30.0, 32.25, 29.75, 34.5]  # 10 runs
MINIGO_MINUTES = [41.0, 38.5, 45.25, 40.0, 39.75, 43.5, 37.0, 42.25, 44.0, 40.5]
SYSTEM = {"submitter": "Vendor", "division": "closed", "status": "research", "system_name": "pod-8",
          "number_of_nodes": "1", "host_processors_per_node": "2", "host_processor_model_name": "cpu",
          "host_processor_core_count": "32",  # read by mlperf-logging's summarizer
          "accelerators_per_node": "8", "accelerator_model_name": "accel", "framework": "tf",
          "hw_notes": "", "sw_notes": ""}


@pytest.fixture(scope="module")
def vendor(tmp_path_factory) -> Path:
    org = tmp_path_factory.mktemp("submission") / "Vendor"
    (org / "systems").mkdir(parents=True)
    (org / "systems" / "pod-8.json").write_text(json.dumps(SYSTEM))
    for index, minutes in enumerate(GNMT_MINUTES):
        own_logger_gnmt(org / "results" / "pod-8" / "gnmt" / f"result_{index}.txt", T0 + index * 10**8, minutes,
                        submission_at_end=index % 2 == 1)
    for index, minutes in enumerate(MINIGO_MINUTES):
        async_eval_minigo(org / "results" / "pod-8" / "minigo" / f"result_{index}.txt", T0 + index * 10**8, minutes)
    return org


def _olympic(minutes: list[float]) -> float:
    kept = sorted(minutes)[1:-1]  # MLPerf: drop the fastest and the slowest run
    return math.fsum(kept) / len(kept)


def test_the_submission_is_scored_and_packaged(tmp_path, vendor):
    code, out, err = run_cli("summarize", str(vendor), "--ruleset", "training-0.7.0", "--out", str(tmp_path / "s"),
                             "--no-plots")
    assert code == 0, out + err
    document = json.loads((tmp_path / "s" / "summary.json").read_text())
    scores = {b["benchmark"]: b["score_minutes"] for s in document["systems"] for b in s["benchmarks"]}
    # Durations are multiples of 15 s: the only difference left is float rounding (~1e-15 relative).
    assert scores["gnmt"] == pytest.approx(_olympic(GNMT_MINUTES), rel=1e-12)
    assert scores["minigo"] == pytest.approx(_olympic(MINIGO_MINUTES), rel=1e-12)
    code, out, _ = run_cli("package", str(vendor), "--ruleset", "training-0.7.0")
    assert code == 0 and out.strip().splitlines()[-1].startswith("Vendor: package OK (20 runs checked"), out


def test_mlperf_loggings_summarizer_gives_the_same_scores(tmp_path, vendor):
    pytest.importorskip("mlperf_logging")
    completed = subprocess.run([sys.executable, "-m", "mlperf_logging.result_summarizer", str(vendor), "training", "0.7.0",
                                "--csv", str(tmp_path / "theirs.csv")], capture_output=True, text=True, cwd=tmp_path,
                               check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    with open(tmp_path / "theirs.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["gnmt"]) == pytest.approx(_olympic(GNMT_MINUTES), rel=1e-12)
    assert float(row["minigo"]) == pytest.approx(_olympic(MINIGO_MINUTES), rel=1e-12)
