"""Shared paths and helpers of the compliance tests (no test reads ../shared: the fixtures are copied here)."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = DATA / "mlperf_training_v0.7"


def verdicts() -> list[tuple[int, str]]:
    """(mlperf-logging exit code, relative path) for every fixture log."""
    rows = []
    for line in (FIXTURES / "verdicts.txt").read_text().splitlines():
        code, path = line.split(maxsplit=1)
        rows.append((int(code), path.strip()))
    return rows


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`python -m compliance ARGV` in this process: (exit code, stdout, stderr)."""
    from compliance.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli():
    return run_cli


def mlperf_logging_outcome(path: str | Path) -> str | None:
    """What mlperf-logging 4.1.68's checker does with a log: "ok", "fail", or "crash: <exception>".

    A crash is not a verdict: a test says which of the three it expects (a crash only where
    mlperf-logging is known to crash, and then the test says so). None when it is not installed.
    """
    try:
        from mlperf_logging.compliance_checker import mlp_compliance
    except ImportError:
        return None
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        checker = mlp_compliance.make_checker("training", "0.7.0", True, False)
        try:
            return "ok" if checker.check_file(str(path), "training_0.7.0/common.yaml") else "fail"
        except Exception as error:  # noqa: BLE001 - reported as what it is, never as a verdict
            return f"crash: {type(error).__name__}"
        finally:
            mlp_compliance.enqueued_configs.clear()  # its module-level queue, left full by a crash
    finally:
        logging.disable(previous)


def mlperf_logging_verdict(path: str | Path) -> bool | None:
    """mlperf-logging's verdict (True compliant); AssertionError if it crashes instead of judging."""
    outcome = mlperf_logging_outcome(path)
    if outcome is None:
        return None
    assert not outcome.startswith("crash"), f"mlperf-logging gave no verdict on {path}: {outcome}"
    return outcome == "ok"


assert sys.version_info >= (3, 11)
