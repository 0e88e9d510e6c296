"""`invoke bench checker`: this checker against mlperf-logging's on the same valid ResNet log.

    from compliance.bench import run_checker_bench
    numbers = run_checker_bench(lines=200_000)   # prints a table, returns the numbers

Three measurements, each on a log written by `compliance.synth` (this suite's writer) that both
checkers accept:
1. speed: a `lines`-line training-0.7.0 ResNet log, checked in this process by this checker
   (best of `repeats`: a short run on a shared machine is at the mercy of its neighbours) and by
   mlperf-logging 4.1.68's `mlp_compliance` (one run: it is slow, so its noise averages out);
   CPU time is the headline ratio (the wall clock of a shared machine is noisy), wall time is shown;
2. memory: peak resident memory of a fresh `python -m compliance check` on a `memory_lines`-line
   log (the child's ru_maxrss, interpreter and imports included);
3. one 50 MB line: a valid log with one 50 MB event line, checked in this process.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from compliance.checker import check_log
from compliance.logparse import FAST_JSON
from compliance.synth import write_log

RULESET = "training-0.7.0"


def _time_ours(path: Path, repeats: int) -> tuple[float, float, bool]:
    best_cpu, best_wall, compliant = float("inf"), float("inf"), False
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        result = check_log(str(path), RULESET)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
        compliant = result.compliant
    return best_cpu, best_wall, compliant


def _time_mlperf_logging(path: Path) -> tuple[float, float, bool] | None:
    try:
        from mlperf_logging.compliance_checker import mlp_compliance
    except ImportError:
        return None
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # it logs every message; we only want its verdict
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        checker = mlp_compliance.make_checker("training", "0.7.0", True, False)
        valid = checker.check_file(str(path), "training_0.7.0/common.yaml")
        return time.process_time() - cpu, time.perf_counter() - wall, bool(valid)
    finally:
        logging.disable(previous)


def _peak_memory_mb(path: Path) -> tuple[float, int]:
    """Peak RSS (MB) of a fresh checker process on `path`, and its exit code."""
    # VmHWM (this process image's peak) rather than ru_maxrss, which Linux carries over from the
    # parent through fork + exec, and the parent has just held mlperf-logging's parsed log.
    code = ("import resource, sys\n"
            "from compliance.__main__ import main\n"
            f"rc = main(['check', '--quiet', '--ruleset', '{RULESET}', sys.argv[1]])\n"
            "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n"
            "    peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
            "except (OSError, StopIteration, ValueError):\n"
            "    pass\n"
            "sys.stderr.write('%d\\n' % peak)\n"
            "sys.exit(rc)\n")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    completed = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                               check=False)
    peak_kb = int(completed.stderr.strip().splitlines()[-1])
    return peak_kb / 1024.0, completed.returncode


def _log_with_big_line(path: Path, size: int) -> Path:
    write_log(path, RULESET, "resnet")
    lines = path.read_bytes().splitlines(keepends=True)
    blob = {"namespace": "", "time_ms": json.loads(lines[5].split(b":::MLLOG ", 1)[1])["time_ms"],
            "event_type": "POINT_IN_TIME", "key": "tracked_blob", "value": "x" * size,
            "metadata": {"file": "bench.py", "lineno": 1}}
    lines.insert(6, b":::MLLOG " + json.dumps(blob).encode() + b"\n")
    path.write_bytes(b"".join(lines))
    return path


def run_checker_bench(lines: int = 200_000, memory_lines: int = 1_000_000, big_line_mb: int = 50,
                      repeats: int = 5, workdir: str | None = None, out=None) -> dict[str, Any]:
    """Time both checkers, measure memory and the 50 MB line; print a table; return the numbers."""
    out = out or sys.stdout
    numbers: dict[str, Any] = {
        "lines": lines, "ruleset": RULESET, "python": platform.python_version(), "json": FAST_JSON,
        "cpus": os.cpu_count(), "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        numbers["mlperf_logging"] = metadata.version("mlperf-logging")
    except metadata.PackageNotFoundError:
        numbers["mlperf_logging"] = None
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        log = write_log(folder / "resnet_bench.txt", RULESET, "resnet", lines=lines)
        numbers["build_seconds"] = time.perf_counter() - started
        numbers["log_bytes"] = log.stat().st_size
        numbers["ours_cpu_s"], numbers["ours_wall_s"], numbers["ours_compliant"] = _time_ours(log, repeats)
        theirs = _time_mlperf_logging(log)
        if theirs is not None:
            numbers["mlperf_cpu_s"], numbers["mlperf_wall_s"], numbers["mlperf_compliant"] = theirs
            numbers["speedup_cpu"] = numbers["mlperf_cpu_s"] / numbers["ours_cpu_s"]
            numbers["speedup_wall"] = numbers["mlperf_wall_s"] / numbers["ours_wall_s"]
        log.unlink()
        if memory_lines:
            big = write_log(folder / "resnet_memory.txt", RULESET, "resnet", lines=memory_lines)
            numbers["memory_lines"] = memory_lines
            numbers["memory_peak_mb"], numbers["memory_exit_code"] = _peak_memory_mb(big)
            big.unlink()
        if big_line_mb:
            huge = _log_with_big_line(folder / "resnet_big_line.txt", big_line_mb * 1_000_000)
            started = time.perf_counter()
            result = check_log(str(huge), RULESET)
            numbers["big_line_mb"] = big_line_mb
            numbers["big_line_seconds"] = time.perf_counter() - started
            numbers["big_line_compliant"] = result.compliant
    _print_table(numbers, out)
    return numbers


def _print_table(n: dict[str, Any], out) -> None:
    rows = [("log", f"{n['lines']:,} lines, {n['log_bytes'] / 2**20:.0f} MiB, valid {n['ruleset']} resnet "
                    f"(built in {n['build_seconds']:.1f} s)"),
            ("this checker", f"{n['ours_cpu_s']:.2f} s CPU, {n['ours_wall_s']:.2f} s wall (best of runs); "
                             f"compliant={n['ours_compliant']}")]
    if "mlperf_cpu_s" in n:
        rows.append((f"mlperf-logging {n['mlperf_logging']}", f"{n['mlperf_cpu_s']:.2f} s CPU, {n['mlperf_wall_s']:.2f} s wall; "
                                                           f"compliant={n['mlperf_compliant']}"))
        rows.append(("speedup", f"{n['speedup_cpu']:.1f}x CPU, {n['speedup_wall']:.1f}x wall (goal: >= 20x)"))
    else:
        rows.append(("mlperf-logging", "not installed: no comparison"))
    if "memory_peak_mb" in n:
        rows.append(("peak memory", f"{n['memory_peak_mb']:.1f} MB on {n['memory_lines']:,} lines "
                                    f"(exit code {n['memory_exit_code']}; goal: < 100 MB)"))
    if "big_line_seconds" in n:
        rows.append((f"one {n['big_line_mb']} MB line", f"{n['big_line_seconds']:.2f} s (compliant="
                                                         f"{n['big_line_compliant']}; goal: < 5 s)"))
    rows.append(("signature", f"python {n['python']}, {n['json']}, {n['cpus']} CPUs, load average "
                              f"{n['load_average']:.1f}" if n["load_average"] is not None else f"python {n['python']}"))
    width = max(len(name) for name, _ in rows)
    out.write("checker bench\n")
    for name, text in rows:
        out.write(f"  {name.ljust(width)}  {text}\n")


if __name__ == "__main__":
    run_checker_bench()
