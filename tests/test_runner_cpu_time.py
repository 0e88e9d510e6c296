"""The CPU time `harness train` reports beside a run's wall time counts the child processes the run
waited for (Minigo's self-play pool does most of its work in them)."""

from __future__ import annotations

import subprocess
import sys

from harness.runner import _cpu_seconds


def test_cpu_seconds_count_a_finished_child_process():
    before = _cpu_seconds()
    # a child that spins on the CPU for 0.5 s of its own CPU time (process_time), whatever the load
    subprocess.run([sys.executable, "-c", "import time\nwhile time.process_time() < 0.5: pass"], check=True)
    assert _cpu_seconds() - before >= 0.5
