"""The checker bench (small here; `invoke bench checker` runs the real sizes), its speed claim, and the generated docs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from compliance.bench import compare_checkers, run_checker_bench
from compliance.docs import BEGIN, END, all_rules_markdown
from compliance.synth import write_log

README = Path(__file__).resolve().parent.parent / "README.md"


def test_bench_runs_small(tmp_path):
    out = io.StringIO()
    numbers = run_checker_bench(lines=3000, memory_lines=3000, big_line_mb=2, rounds=1, workdir=str(tmp_path), out=out)
    assert numbers["ours_compliant"] and numbers.get("mlperf_compliant", True)
    assert numbers["memory_exit_code"] == 0 and numbers["memory_peak_mb"] < 100
    assert numbers["big_line_compliant"] and numbers["big_line_seconds"] < 5
    assert "speedup" in out.getvalue() or "not installed" in out.getvalue()


def test_the_checker_is_much_faster_than_mlperf_logging(tmp_path):
    """The speed claim, small enough for CI: both checkers on one 20,000-line log, 3 rounds each in
    alternating order, the median of the paired CPU-time ratios (as `invoke bench checker`).

    The README's figure is >= 20x on 200,000 lines (the bench). The bound here, 10x, is half of
    it: the 2-core AMD EPYC development machine gave 21.6x on this size at load average 14, and an
    AVX2 machine, where orjson's share of the time is larger, gives less; it fails when the checker
    loses half its per-line speed (or mlperf-logging becomes twice as fast).
    """
    pytest.importorskip("mlperf_logging")
    log = write_log(tmp_path / "speed.txt", "training-0.7.0", "resnet", lines=20_000)
    numbers = compare_checkers(log, rounds=3)
    assert numbers["ours_compliant"] and numbers["mlperf_compliant"]
    assert numbers["speedup_cpu"] >= 10, numbers


@pytest.mark.slow
def test_bench_full_size(tmp_path):
    numbers = run_checker_bench(workdir=str(tmp_path))
    assert numbers["speedup_cpu"] >= 20 and numbers["memory_peak_mb"] < 100 and numbers["big_line_seconds"] < 5


def test_readme_rules_section_is_generated_from_the_rule_files():
    text = README.read_text()
    section = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert section == all_rules_markdown().strip(), (
        "compliance/README.md is out of date: regenerate the section between the rules markers with "
        "`python -m compliance rules`")
