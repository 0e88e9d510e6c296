"""The checker bench (small here; `invoke bench checker` runs the real sizes) and the generated docs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from compliance.bench import run_checker_bench
from compliance.docs import BEGIN, END, all_rules_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def test_bench_runs_small(tmp_path):
    out = io.StringIO()
    numbers = run_checker_bench(lines=3000, memory_lines=3000, big_line_mb=2, repeats=1, workdir=str(tmp_path), out=out)
    assert numbers["ours_compliant"] and numbers.get("mlperf_compliant", True)
    assert numbers["memory_exit_code"] == 0 and numbers["memory_peak_mb"] < 100
    assert numbers["big_line_compliant"] and numbers["big_line_seconds"] < 5
    assert "speedup" in out.getvalue() or "not installed" in out.getvalue()


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
