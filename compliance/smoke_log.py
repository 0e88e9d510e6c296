"""What every benchmark's tests ask of a smoke log, which misses the full target by design: our
checker's errors other than the quality target, and the checks that mlperf-logging's own checker
(training, ruleset 0.7.0) fails on it. One copy for all the benchmarks' tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from compliance.checker import check_log
from compliance.mllog import constants


def errors_besides_the_target(log: str | Path, ruleset: str = "mlbench-1.0.0-smoke") -> list[str]:
    """Our checker's errors on `log` other than 'no evaluation reached the target' (a usable log is
    asserted first)."""
    result = check_log(str(log), ruleset)
    assert result.unusable is None, result.unusable
    return [f.format(str(log)) for f in result.errors
            if not (f.key == constants.EVAL_ACCURACY and f.wanted.startswith("an evaluation reaching"))]


def mlperf_logging_failures(log: str | Path, cwd: str | Path, rule_file: str) -> list[str]:
    """The lines in which mlperf-logging's checker (training 0.7.0, run in `cwd`) reports a failed check
    on `log` ("Failed checks for <key> : <test>", "ERROR - FAILED"), after asserting that it checked
    the log against `rule_file` (e.g. "closed_ssd.yaml"), so a wrong benchmark name cannot pass."""
    completed = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
                                "--ruleset", "0.7.0", str(log)], cwd=cwd, capture_output=True, text=True, check=False)
    output = completed.stdout + completed.stderr
    assert f"training_0.7.0/{rule_file}" in output, output
    return [line for line in output.splitlines() if "failed" in line.lower() or "ERROR" in line]
