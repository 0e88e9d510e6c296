"""`python -m harness.bench [NAME]` / `invoke bench [NAME]`: the suite's speed benchmarks.

- logger: events/s of `compliance.mllog` against mlperf-logging's `mllog`, same 100,000 events

Every bench that compares two things times them with `harness.paired_timing.compare` (same repeats,
alternating rounds, median of paired ratios, warm or cold stated) and names its machine
(`harness.machine`); a new benchmark's `bench.py` does the same.
- checker: this checker against mlperf-logging's on a 200,000-line resnet log
- every built benchmark, by key or folder (resnet, image_classification, ...): its own `bench.run_bench()`
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness import machine
from harness.paired_timing import compare

console = Console()
LOGGER_SPEEDUP_TARGET = 10  # compliance.mllog's events/s over mlperf-logging's mllog's


def _write_events(logger, count: int) -> None:
    """A realistic mix: mostly per-step point events with metadata, some intervals."""
    for index in range(count):
        if index % 10 == 0:
            logger.start(key="epoch_start", value=index, metadata={"epoch_num": index})
        elif index % 10 == 9:
            logger.end(key="epoch_stop", value=index, metadata={"epoch_num": index})
        else:
            logger.event(key="train_loss", value=0.5 + index * 1e-6, metadata={"step": index})


def bench_logger(events: int = 100_000, rounds: int = 5) -> dict:
    """Both writers write the same events into a fresh file per call, timed by
    `harness.paired_timing.compare` (one untimed call each, then alternating rounds; the speedup is
    the median of the paired ratios), in one process."""
    from mlperf_logging import mllog as reference_mllog

    from compliance.mllog.logger import MLLogger

    with tempfile.TemporaryDirectory() as folder:
        calls = {"ours": 0, "theirs": 0}

        def path(name: str) -> Path:
            return Path(folder, f"{name}-{calls[name]}.log")

        def ours() -> None:
            logger = MLLogger()
            logger.echo_stdout = False
            logger.add_file(str(path("ours")))
            _write_events(logger, events)
            logger.close()

        def theirs() -> None:
            file_logger = logging.getLogger(f"mlbench_bench_reference_{calls['theirs']}")
            file_logger.propagate = False
            file_logger.setLevel(logging.INFO)
            handler = logging.FileHandler(path("theirs"))
            file_logger.addHandler(handler)
            _write_events(reference_mllog.mllog.MLLogger(logger=file_logger), events)
            handler.close()
            file_logger.removeHandler(handler)

        def before_each(name: str) -> None:  # untimed: check and remove the previous file, then a new name
            previous = path(name)
            if previous.exists():
                lines = sum(1 for _ in previous.open())
                assert lines == events, (name, lines)
                previous.unlink()
            calls[name] += 1

        timing = compare({"ours": ours, "theirs": theirs}, rounds=rounds, warmup=1, work_per_call=events,
                         unit="events", before_each=before_each)
        for name in calls:
            before_each(name)  # the last files are checked too
    result = {"events": events, "rounds": rounds, "state": timing.state, "machine": machine.describe(),
              "ours_events_per_s": timing.rate("ours"), "ours_us_per_event": timing.median_seconds("ours") / events * 1e6,
              "mllog_events_per_s": timing.rate("theirs"),
              "mllog_us_per_event": timing.median_seconds("theirs") / events * 1e6,
              "speedup": timing.ratio("ours", "theirs"), "round_speedups": timing.round_ratios("ours", "theirs")}
    table = Table(title=f"log writer: {events:,} events to a file, median of {rounds} alternating rounds, warm")
    for column in ("writer", "events/s", "us/event"):
        table.add_column(column, justify="right")
    table.add_row("compliance.mllog", f"{result['ours_events_per_s']:,.0f}", f"{result['ours_us_per_event']:.2f}")
    table.add_row("mlperf_logging.mllog 4.1.68", f"{result['mllog_events_per_s']:,.0f}",
                  f"{result['mllog_us_per_event']:.2f}")
    console.print(table)
    console.print(f"speedup: [bold]{result['speedup']:.1f}x[/] (median of the paired ratios "
                  f"{[round(r, 1) for r in result['round_speedups']]}; target >= {LOGGER_SPEEDUP_TARGET}x)")
    console.print(f"machine: {machine.one_line(result['machine'])}")
    return result


def _benchmark_bench(package: str):
    def run() -> dict:
        return importlib.import_module(f"{package}.bench").run_bench()
    return run


def available_benches() -> dict:
    """logger, checker, then every built benchmark by its MLLOG key (its `bench.run_bench()`)."""
    from harness.benchmarks import built_benchmarks

    benches = {"logger": bench_logger,
               "checker": lambda: importlib.import_module("compliance.bench").run_checker_bench()}
    for benchmark in built_benchmarks():
        benches[benchmark.key] = _benchmark_bench(benchmark.package)
    return benches


def _resolve(name: str, benches: dict) -> str | None:
    """A bench's name: logger, checker, or a benchmark by key, folder or path (get_benchmark's names)."""
    from harness.benchmarks import get_benchmark
    from harness.errors import UserError

    if name in benches:
        return name
    try:
        key = get_benchmark(name).key
    except UserError:
        return None
    return key if key in benches else None


def main(argv: list[str] | None = None) -> int:
    benches = available_benches()
    asked = list(argv if argv is not None else sys.argv[1:])
    if not asked or asked == ["all"]:
        asked = list(benches)
    names = [_resolve(name, benches) for name in asked]
    if None in names:
        unknown = asked[names.index(None)]
        print(f"error: unknown bench '{unknown}' (choose from {', '.join(benches)})", file=sys.stderr)
        return 2
    results = {}
    for name in names:
        console.rule(name)
        results[name] = benches[name]()
    out = Path(os.environ.get("MLBENCH_BENCH_OUT", "bench_results.json"))
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **results}, indent=1, default=str))
    console.print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
