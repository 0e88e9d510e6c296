"""Shared fixtures of the harness tests: the tiny NCF dataset (the fastest real benchmark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_ncf_data(tmp_path_factory):
    from recommendation import dataset

    folder = tmp_path_factory.mktemp("ncf") / "tiny"
    dataset.make_tiny(str(folder), seed=0)
    return folder


def run_harness(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m harness ...` in a fresh process, from the repo root, one thread per process."""
    environment = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def results_of(completed: subprocess.CompletedProcess, exit_code: int = 0) -> list[dict]:
    """The `--json` results of `harness train`, which must have exited with `exit_code`: 0 when every run
    reached its target, harness.errors.EXIT_TARGET_MISSED when one did not (1 is a crash, 2 a user error)."""
    assert completed.returncode == exit_code, completed.stderr[-3000:]
    return json.loads(completed.stdout)
