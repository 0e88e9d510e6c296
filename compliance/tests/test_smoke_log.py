"""compliance.smoke_log, the two checks every benchmark's training tests make of a smoke log, on the
hand-written GNMT log (tests/data/handwritten/): one that misses only the target, one that also
lacks a hyperparameter."""

from __future__ import annotations

import pytest

from compliance.smoke_log import errors_besides_the_target, mlperf_logging_failures

from . import handwritten as hw

# both evaluations below the smoke target (0.005) and the full one (0.24): only the target is missed
MISSES_THE_TARGET = hw.chain(hw.set_value("eval_accuracy", 0.0011, nth=0), hw.set_value("eval_accuracy", 0.0042, nth=-1))


def test_a_log_missing_only_the_target_has_no_other_error(tmp_path):
    log = hw.write(tmp_path / "gnmt.txt", MISSES_THE_TARGET(hw.lines("gnmt")))
    assert errors_besides_the_target(log) == []
    assert errors_besides_the_target(log, "mlbench-1.0.0") == []


def test_other_errors_are_kept(tmp_path):
    log = hw.write(tmp_path / "gnmt.txt", hw.drop("opt_adam_beta_1")(MISSES_THE_TARGET(hw.lines("gnmt"))))
    errors = errors_besides_the_target(log)
    assert len(errors) == 1 and "opt_adam_beta_1" in errors[0]


def test_mlperf_logging_reports_the_target_and_only_it(tmp_path):
    log = hw.write(tmp_path / "gnmt.txt", MISSES_THE_TARGET(hw.lines("gnmt")))
    failures = mlperf_logging_failures(log, tmp_path, "closed_gnmt.yaml")
    assert failures and all("eval_accuracy" in line or line.endswith("FAILED") for line in failures), failures
    assert any("eval_accuracy" in line for line in failures)


def test_mlperf_logging_passes_a_log_that_reaches_the_target(tmp_path):
    assert mlperf_logging_failures(hw.HANDWRITTEN / "gnmt.txt", tmp_path, "closed_gnmt.yaml") == []


def test_the_rule_file_must_be_the_one_checked(tmp_path):
    with pytest.raises(AssertionError):
        mlperf_logging_failures(hw.HANDWRITTEN / "gnmt.txt", tmp_path, "closed_ssd.yaml")
