"""`invoke bench` (harness/bench.py): the log-writer bench and the front door. The timing rules every
bench follows are tests/test_paired_timing.py's; each benchmark's own bench is tested in its folder."""

from __future__ import annotations

import pytest

from harness.bench import LOGGER_SPEEDUP_TARGET, bench_logger, main


def test_the_logger_bench_times_both_writers_alike_and_checks_their_files():
    result = bench_logger(events=2_000, rounds=2)  # every file is checked to hold 2,000 lines
    assert result["rounds"] == 2 and len(result["round_speedups"]) == 2 and result["state"] == "warm"
    assert min(result["round_speedups"]) <= result["speedup"] <= max(result["round_speedups"])
    assert result["machine"]["cores"] >= 1


def test_an_unknown_bench_is_a_user_error(capsys):
    assert main(["nosuch"]) == 2
    assert "unknown bench 'nosuch'" in capsys.readouterr().err


@pytest.mark.slow
def test_our_log_writer_meets_its_speed_target():
    assert bench_logger()["speedup"] >= LOGGER_SPEEDUP_TARGET
