"""`invoke bench checker`: this checker against mlperf-logging's on the same valid ResNet log.

    from compliance.bench import run_checker_bench
    numbers = run_checker_bench(lines=200_000)   # prints a table, returns the numbers

Three measurements, each on a log written by `compliance.synth` (this suite's writer) that both
checkers accept:
1. speed: a `lines`-line training-0.7.0 ResNet log, checked in this process by this checker and by
   mlperf-logging 4.1.68's `mlp_compliance`, timed by `harness.paired_timing.compare` as every
   bench is: the same number of times (`rounds`), in alternating order (A B, B A, ...), the page
   cache warm (the log was just written and read once before the first round). Each round gives a paired ratio (their time
   over ours); the headline is the median of the paired CPU-time ratios (CPU time, because the
   wall clock of a shared machine measures the neighbours too), with the wall-time one beside it;
2. memory: peak resident memory of a fresh `python -m compliance check` on a `memory_lines`-line
   log (the child's VmHWM, interpreter and imports included);
3. one 50 MB line: a valid log with one 50 MB event line, checked in this process.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from compliance.checker import check_log
from compliance.logparse import FAST_JSON
from compliance.synth import write_log
from harness import paired_timing  # the one timing method of every bench (only the bench needs harness)

RULESET = "training-0.7.0"


def _ours(path: Path) -> bool:
    return check_log(str(path), RULESET).compliant


def _mlperf_logging() -> Callable[[Path], bool] | None:
    """mlperf-logging's checker as a function of the log path (None when it is not installed)."""
    try:
        from mlperf_logging.compliance_checker import mlp_compliance
    except ImportError:
        return None

    def check(path: Path) -> bool:
        previous = logging.root.manager.disable
        logging.disable(logging.CRITICAL)  # it logs every message; we only want its verdict
        try:
            checker = mlp_compliance.make_checker("training", "0.7.0", True, False)
            return bool(checker.check_file(str(path), "training_0.7.0/common.yaml"))
        finally:
            mlp_compliance.enqueued_configs.clear()
            logging.disable(previous)

    return check


def _with_wall_time(check: Callable[[Path], bool], path: Path) -> Callable[[], tuple[bool, float]]:
    """A call of `check` on `path` that returns its verdict and its own wall seconds (the paired
    timing's clock is the CPU clock)."""
    def call() -> tuple[bool, float]:
        began = time.perf_counter()
        verdict = check(path)
        return verdict, time.perf_counter() - began

    return call


def compare_checkers(path: Path, rounds: int) -> dict[str, Any]:
    """Both checkers on `path`, `rounds` times each, timed by harness.paired_timing (alternating
    rounds, median of the paired ratios) on the CPU clock, the wall time of every call beside it.

    Returns per-side median CPU and wall seconds, both verdicts, and the median of the per-round
    ratios theirs/ours (CPU and wall), or only our side when mlperf-logging is not installed.
    """
    theirs = _mlperf_logging()
    path.read_bytes()  # the page cache warm for both: the rounds time checking, not the disk
    candidates = {"ours": _with_wall_time(_ours, path)}
    if theirs is not None:
        candidates["mlperf_logging"] = _with_wall_time(theirs, path)
    timing = paired_timing.compare(candidates, rounds=rounds, work_per_call=1, unit="logs", warmup=0,
                                   state="warm", clock=time.process_time)
    walls = {name: [wall for _, wall in timing.returned[name]] for name in candidates}
    numbers: dict[str, Any] = {
        "rounds": rounds,
        "order": timing.order,
        "ours_cpu_s": timing.median_seconds("ours"),
        "ours_wall_s": statistics.median(walls["ours"]),
        "ours_compliant": all(verdict for verdict, _ in timing.returned["ours"]),
    }
    if theirs is not None:
        wall_ratios = [t / o for o, t in zip(walls["ours"], walls["mlperf_logging"], strict=True)]
        numbers.update({
            "mlperf_cpu_s": timing.median_seconds("mlperf_logging"),
            "mlperf_wall_s": statistics.median(walls["mlperf_logging"]),
            "mlperf_compliant": all(verdict for verdict, _ in timing.returned["mlperf_logging"]),
            "speedup_cpu": timing.ratio("ours", "mlperf_logging"),
            "speedup_wall": statistics.median(wall_ratios),
            "speedup_cpu_per_round": timing.round_ratios("ours", "mlperf_logging"),
        })
    return numbers


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
                      rounds: int = 5, workdir: str | None = None, out=None) -> dict[str, Any]:
    """Time both checkers, measure memory and the 50 MB line; print a table; return the numbers."""
    out = out or sys.stdout
    numbers: dict[str, Any] = {
        "lines": lines, "ruleset": RULESET, "python": platform.python_version(), "json": FAST_JSON,
        "cpus": os.cpu_count(), "cpu_model": _cpu_model(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
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
        numbers.update(compare_checkers(log, rounds))
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
    numbers["load_average_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    _print_table(numbers, out)
    return numbers


def _cpu_model() -> str:
    """The CPU's name and its widest vector extension (AVX2 / AVX-512): speed ratios depend on both."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({vector})"


def _print_table(n: dict[str, Any], out) -> None:
    rows = [("log", f"{n['lines']:,} lines, {n['log_bytes'] / 2**20:.0f} MiB, valid {n['ruleset']} resnet "
                    f"(built in {n['build_seconds']:.1f} s); page cache warm"),
            ("this checker", f"{n['ours_cpu_s']:.2f} s CPU, {n['ours_wall_s']:.2f} s wall (median of {n['rounds']}); "
                             f"compliant={n['ours_compliant']}")]
    if "mlperf_cpu_s" in n:
        rows.append((f"mlperf-logging {n['mlperf_logging']}", f"{n['mlperf_cpu_s']:.2f} s CPU, {n['mlperf_wall_s']:.2f} s wall "
                                                           f"(median of {n['rounds']}); compliant={n['mlperf_compliant']}"))
        per_round = ", ".join(f"{ratio:.1f}" for ratio in n["speedup_cpu_per_round"])
        rows.append(("speedup", f"{n['speedup_cpu']:.1f}x CPU, {n['speedup_wall']:.1f}x wall: median of {n['rounds']} "
                                f"paired ratios, alternating rounds (CPU per round: {per_round}; goal: >= 20x)"))
    else:
        rows.append(("mlperf-logging", "not installed: no comparison"))
    if "memory_peak_mb" in n:
        rows.append(("peak memory", f"{n['memory_peak_mb']:.1f} MB on {n['memory_lines']:,} lines "
                                    f"(exit code {n['memory_exit_code']}; goal: < 100 MB)"))
    if "big_line_seconds" in n:
        rows.append((f"one {n['big_line_mb']} MB line", f"{n['big_line_seconds']:.2f} s (compliant="
                                                         f"{n['big_line_compliant']}; goal: < 5 s)"))
    load = "" if n["load_average"] is None else f", load average {n['load_average']:.1f} before, {n['load_average_after']:.1f} after"
    rows.append(("machine", f"{n['cpu_model']}, {n['cpus']} CPUs{load}; python {n['python']}, {n['json']}"))
    width = max(len(name) for name, _ in rows)
    out.write("checker bench\n")
    for name, text in rows:
        out.write(f"  {name.ljust(width)}  {text}\n")


if __name__ == "__main__":
    run_checker_bench()
