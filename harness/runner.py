"""`train`: load a benchmark's config, run it N times, and lay the logs out as a submission.

One run writes `<run.out_dir>/mllog.txt`. `--runs N` (or `--out DIR`) writes the MLPerf
submission layout instead:

    DIR/<org>/results/<system>/<benchmark>/result_0.txt ... result_{N-1}.txt
    DIR/<org>/systems/<system>.json
    DIR/work/<system>/<benchmark>/run_<i>/      config.yaml, checkpoints (outside the package tree)

with a distinct seed per run (seed, seed+1, ...), as the rules ask.
"""

from __future__ import annotations

import dataclasses
import json
import resource
from collections.abc import Sequence
from pathlib import Path

from harness.benchmarks import get_benchmark
from harness.config import load_config, save_config
from harness.lifecycle import RunResult
from harness.progress import info
from harness.system_info import describe_system


def load_benchmark_config(benchmark: str, config: str, overrides: Sequence[str] = ()):
    bench = get_benchmark(benchmark)
    return load_config(bench.config_class(), bench.config_path(config), overrides)


def train(benchmark: str, framework: str, config: str = "smoke", *, runs: int = 1,
          seed: int | None = None, out: str | None = None, overrides: Sequence[str] = (),
          system: str | None = None) -> list[RunResult]:
    bench = get_benchmark(benchmark)
    main = bench.train_main(framework)
    cfg = load_benchmark_config(benchmark, config, overrides)
    base_seed = cfg.run.seed if seed is None else seed
    results = []
    submission_layout = runs > 1 or out is not None
    system_name = system or f"{cfg.submission.platform}-{framework}"
    for index in range(runs):
        run_options = dataclasses.replace(cfg.run, seed=base_seed + index)
        if submission_layout:
            root = Path(out or "submission")
            results_dir = root / cfg.submission.org / "results" / system_name / bench.key
            work_dir = root / "work" / system_name / bench.key / f"run_{index}"
            run_options = dataclasses.replace(run_options, out_dir=str(work_dir),
                                              log_file=str(results_dir / f"result_{index}.txt"))
            _write_system_description(root / cfg.submission.org / "systems" / f"{system_name}.json",
                                      system_name, cfg, framework)
        run_cfg = dataclasses.replace(cfg, run=run_options)
        save_config(run_cfg, Path(run_options.out_dir) / "config.yaml")
        info(f"[bold]{bench.key}[/] {framework} config={config} run {index + 1}/{runs} seed={run_options.seed}")
        cpu_before = _cpu_seconds()
        result = main(run_cfg)
        # CPU time (all threads of this process and of the child processes it has waited for, e.g. a
        # benchmark's worker pool closed at the end of the run) beside the wall time: on a loaded
        # machine it is the fairer measure of what the run costs (smoke calibrations quote both)
        info(f"  {result.status}: quality {result.describe_quality()} in "
             f"{result.time_to_train_minutes:.2f} min ({(_cpu_seconds() - cpu_before) / 60:.2f} CPU-min for the "
             f"whole run), {result.epochs} epochs; log {result.log_file}")
        results.append(result)
    return results


def _cpu_seconds() -> float:
    return sum(usage.ru_utime + usage.ru_stime
               for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def _write_system_description(path: Path, system_name: str, cfg, framework: str) -> None:
    """Written once; a description the user edited is never overwritten."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    description = describe_system(system_name, submitter=cfg.submission.org,
                                  division=cfg.submission.division, status=cfg.submission.status,
                                  framework=framework)
    path.write_text(json.dumps(description, indent=4) + "\n")
