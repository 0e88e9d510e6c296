"""`--config reference --runs N` on tiny data, checked as point 8 of the checklist asks (one copy for
the benchmarks' tests): N logs with distinct seeds in the submission layout, which our checker and the
package checker accept apart from the missed target and the count of results."""

from __future__ import annotations

from pathlib import Path

from compliance.checker import check_log
from compliance.package_checker import check_organisation
from compliance.smoke_log import errors_besides_the_target
from compliance.submission import find_organisations
from harness.runner import train as run_train

RULESET = "mlbench-1.0.0"


def check_reference_runs_package(benchmark: str, framework: str, data: Path, overrides: list[str], runs: int,
                                 required: int, tmp_path: Path) -> None:
    """`required` is the ruleset's number of result files for the benchmark (the package checker's
    count error names it); `data` goes in as `run.data_dir`, then `overrides`."""
    results = run_train(benchmark, framework, "reference", runs=runs, out=str(tmp_path / "submission"),
                        overrides=[f"run.data_dir={data}", *overrides])
    assert [result.status for result in results] == ["aborted"] * runs  # the full target after one epoch: missed
    logs = sorted((tmp_path / "submission").glob(f"*/results/*/{benchmark}/result_*.txt"))
    assert len(logs) == runs and len({result.log_file for result in results}) == runs
    seeds = set()
    for log in logs:
        assert errors_besides_the_target(log, RULESET) == []
        seeds.add(check_log(str(log), RULESET).seed)
    assert len(seeds) == runs
    (organisation,) = find_organisations(tmp_path / "submission")
    report = check_organisation(organisation, RULESET)
    assert report.runs_checked == runs
    assert [problem for problem in report.problems
            if "eval_accuracy: wanted an evaluation reaching" not in problem[2]
            and not problem[2].startswith(f"{runs} runs failed")
            and problem[2] != f"{runs} result files, {required} required by {RULESET}"] == [], report.problems
