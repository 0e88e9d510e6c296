"""`python -m harness.bench [NAME]` / `invoke bench [NAME]`: the suite's speed benchmarks.

- logger: events/s of `compliance.mllog` against mlperf-logging's `mllog`, same 100,000 events
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
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


def _write_events(logger, count: int) -> None:
    """A realistic mix: mostly per-step point events with metadata, some intervals."""
    for index in range(count):
        if index % 10 == 0:
            logger.start(key="epoch_start", value=index, metadata={"epoch_num": index})
        elif index % 10 == 9:
            logger.end(key="epoch_stop", value=index, metadata={"epoch_num": index})
        else:
            logger.event(key="train_loss", value=0.5 + index * 1e-6, metadata={"step": index})


def bench_logger(events: int = 100_000) -> dict:
    """Time both writers on the same events into a file, one after the other, same process."""
    from mlperf_logging import mllog as reference_mllog

    from compliance.mllog.logger import MLLogger

    with tempfile.TemporaryDirectory() as folder:
        ours_path, theirs_path = Path(folder, "ours.log"), Path(folder, "theirs.log")

        ours = MLLogger()
        ours.echo_stdout = False
        ours.add_file(str(ours_path))
        start = time.perf_counter()
        _write_events(ours, events)
        ours_seconds = time.perf_counter() - start
        ours.close()

        file_logger = logging.getLogger("mlbench_bench_reference")
        file_logger.propagate = False
        file_logger.setLevel(logging.INFO)
        handler = logging.FileHandler(theirs_path)
        file_logger.addHandler(handler)
        theirs = reference_mllog.mllog.MLLogger(logger=file_logger)
        start = time.perf_counter()
        _write_events(theirs, events)
        theirs_seconds = time.perf_counter() - start
        handler.close()
        file_logger.removeHandler(handler)

        ours_lines = sum(1 for _ in ours_path.open())
        theirs_lines = sum(1 for _ in theirs_path.open())
    assert ours_lines == theirs_lines == events, (ours_lines, theirs_lines)
    result = {"events": events,
              "ours_events_per_s": events / ours_seconds, "ours_us_per_event": ours_seconds / events * 1e6,
              "mllog_events_per_s": events / theirs_seconds,
              "mllog_us_per_event": theirs_seconds / events * 1e6,
              "speedup": theirs_seconds / ours_seconds}
    table = Table(title=f"log writer: {events:,} events to a file")
    for column in ("writer", "events/s", "us/event"):
        table.add_column(column, justify="right")
    table.add_row("compliance.mllog", f"{result['ours_events_per_s']:,.0f}", f"{result['ours_us_per_event']:.2f}")
    table.add_row("mlperf_logging.mllog 4.1.68", f"{result['mllog_events_per_s']:,.0f}",
                  f"{result['mllog_us_per_event']:.2f}")
    console.print(table)
    console.print(f"speedup: [bold]{result['speedup']:.1f}x[/] (target >= 10x)")
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
