"""`python -m compliance rcp build DIR...`: RCP files from reference runs.

Reads every `result_*.txt` under the folders given (for example the `--runs N` output of `invoke
train`: `<org>/results/<system>/<benchmark>/result_N.txt`, with `<org>/systems/<system>.json` naming
the framework), groups the runs by ruleset and benchmark (one RCP file each) and, inside, by
framework and global batch size (one point each), drops the runs that did not converge, and writes
`<out>/<benchmark>.json` with a summary table. A group with fewer converged runs than `min_runs`
(default: twice the runs of a submission, MLPerf's rule for references) is refused with one line and
nothing is written. The runs of one point must agree on every hyperparameter the ruleset names for the
benchmark: one point is one set of hyperparameters.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from compliance.rcp import (
    Convergence,
    RcpFile,
    RcpPoint,
    Statistics,
    framework_name,
    point_summary,
    write_rcp,
)
from compliance.rcp_logs import RunLog, read_run
from compliance.rcp_stats import point_test
from compliance.ruleset import RuleFileError, UnknownRuleset, load_ruleset, show
from compliance.spec import SpecError, benchmark_spec
from compliance.submission import RESULT_NAME, natural_key, read_system

EXIT_OK, EXIT_REFUSED = 0, 2
FIELD_OF_UNIT = {"epochs": "epoch_num", "samples": "samples_count"}


class BuildRefused(Exception):
    """Input the builder cannot make an RCP from: one line, exit 2."""


@dataclass
class _Run:
    log: RunLog
    framework: str
    system: dict


def find_result_logs(folder: Path) -> list[Path]:
    """Every result_*.txt under a folder (symbolic links to folders not followed), in natural order."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False, onerror=lambda error: None):
        dirs.sort(key=natural_key)
        found.extend(Path(root) / name for name in sorted(files, key=natural_key) if RESULT_NAME.match(name))
    return found


def _system_of(log: Path) -> dict | None:
    """The system description of <org>/results/<system>/<benchmark>/result_N.txt, or None."""
    benchmark_folder = log.parent
    system_folder = benchmark_folder.parent
    if system_folder.parent.name != "results":
        return None
    path = system_folder.parent.parent / "systems" / f"{system_folder.name}.json"
    if not path.is_file():
        return None
    description = read_system(path)
    return None if description.problem else description.fields


def _hyperparameters(ruleset: str, benchmark: str, run: RunLog) -> dict:
    values = run.before_run_start
    try:
        keys = benchmark_spec(ruleset, benchmark, "closed").hyperparameter_keys_for(values)
    except SpecError:
        keys = ()
    return {key: values.get(key) for key in keys}


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def build(folders: Sequence[str], *, ruleset: str | None = None, unit: str = "epochs", framework: str | None = None,
          submission_runs: int | None = None, min_runs: int | None = None) -> list[RcpFile]:
    """RCP files (not yet written) from the result logs under `folders`; BuildRefused with one line."""
    convergence = Convergence(unit=unit, field=FIELD_OF_UNIT[unit])
    runs: list[_Run] = []
    for name in folders:
        folder = Path(name)
        if not folder.is_dir():
            raise BuildRefused(f"{name}: not a folder")
        logs = find_result_logs(folder)
        if not logs:
            raise BuildRefused(f"{name}: no result_*.txt files below this folder")
        for path in logs:
            log = read_run(path)
            if log.problem:
                raise BuildRefused(f"{path}: unusable: {log.problem}")
            system = _system_of(path) or {}
            chosen = framework or framework_name(system.get("framework"))
            if chosen is None:
                raise BuildRefused(f"{path}: no framework (no <org>/systems/<system>.json with a framework field "
                                   f"beside it): give --framework")
            runs.append(_Run(log=log, framework=chosen, system=system))
    groups: dict[tuple[str, str], dict[tuple[str, int], list[_Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        log = run.log
        chosen_ruleset = ruleset or log.ruleset
        if not chosen_ruleset:
            raise BuildRefused(f"{log.path}: no submission_ruleset in the log: give --ruleset")
        if not log.benchmark:
            raise BuildRefused(f"{log.path}: no submission_benchmark in the log")
        size = log.global_batch_size
        if type(size) is not int or size < 1 or len(set(map(show, log.batch_sizes))) > 1:
            raise BuildRefused(f"{log.path}: global_batch_size {show(log.batch_sizes) if log.batch_sizes else 'missing'}: "
                               f"wanted one positive integer")
        groups[(chosen_ruleset, log.benchmark)][(run.framework, size)].append(run)
    built = []
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for (ruleset_name, benchmark), points in sorted(groups.items()):
        statistics = Statistics(submission_runs=submission_runs or _runs_of(ruleset_name, benchmark))
        needed = max(min_runs if min_runs is not None else 2 * statistics.submission_runs,
                     2 * statistics.olympic_drop + 2)
        made = []
        for (framework_label, size), members in sorted(points.items()):
            made.append(_point(ruleset_name, benchmark, framework_label, size, members, convergence, statistics,
                               needed, [Path(f) for f in folders], stamp))
        built.append(RcpFile(ruleset=ruleset_name, benchmark=benchmark, convergence=convergence, statistics=statistics,
                             points=tuple(made),
                             source=f"reference runs of this suite, read by `python -m compliance rcp build` on {stamp}"))
    return built


def _runs_of(ruleset: str, benchmark: str) -> int:
    try:
        rules = load_ruleset(ruleset).benchmark(benchmark)
    except (UnknownRuleset, RuleFileError) as error:
        raise BuildRefused(f"ruleset '{ruleset}': {error}; give --submission-runs") from None
    if rules is None:
        raise BuildRefused(f"'{benchmark}' is not a benchmark of {ruleset}: give --submission-runs")
    return rules.number_of_runs


def _point(ruleset: str, benchmark: str, framework: str, size: int, members: list[_Run], convergence: Convergence,
           statistics: Statistics, needed: int, bases: list[Path], stamp: str) -> RcpPoint:
    label = f"{benchmark} {framework} batch {size}"
    converged = [(run, run.log.converged_at(convergence)) for run in members]
    values = [value for _, value in converged if value is not None]
    if len(values) < needed:
        raise BuildRefused(f"{label}: {len(values)} converged runs of {len(members)}; an RCP needs at least {needed} "
                           f"(twice the {statistics.submission_runs} runs of a {ruleset} submission; --min-runs)")
    hyperparameters = _hyperparameters(ruleset, benchmark, members[0].log)
    for run in members[1:]:
        other = _hyperparameters(ruleset, benchmark, run.log)
        for key, value in hyperparameters.items():
            if show(other.get(key)) != show(value):
                raise BuildRefused(f"{label}: {run.log.path.name} logs {key} {show(other.get(key))}, "
                                   f"{members[0].log.path.name} {show(value)}: one RCP point is one set of hyperparameters")
    mean, stdev = point_summary(values, statistics.olympic_drop)
    base = next((b for b in bases if str(members[0].log.path).startswith(str(b))), bases[0])
    system = members[0].system
    provenance = {
        "built": stamp,
        "tool": "python -m compliance rcp build",
        "source": str(base.resolve()),
        "logs": [_relative(run.log.path, base) for run, _ in converged],
        "seeds": [run.log.seed for run, _ in converged],
        "converged": [value is not None for _, value in converged],
        "system": system.get("system_name"),
        "framework_version": system.get("framework"),
        "hardware": {name: system.get(name) for name in ("number_of_nodes", "host_processor_model_name",
                                                        "host_processor_core_count", "accelerators_per_node",
                                                        "accelerator_model_name") if name in system},
        "software": system.get("other_software_stack"),
    }
    return RcpPoint(framework=framework, global_batch_size=size, runs=len(members), converged_at=tuple(values),
                    mean=mean, stdev=stdev, hyperparameters=hyperparameters, provenance=provenance,
                    name=f"{benchmark}_{framework}_{size}")


def summary_table(rcps: Sequence[RcpFile]) -> str:
    rows = [("ruleset", "benchmark", "framework", "batch", "runs", "converged", "mean", "stdev", "fastest accepted", "unit")]
    for rcp in rcps:
        for point in rcp.points:
            test = point_test(point, rcp.statistics)
            rows.append((rcp.ruleset, rcp.benchmark, point.framework, str(point.global_batch_size), str(point.runs),
                         str(len(point.converged_at)), f"{point.mean:.4g}", f"{point.stdev:.4g}",
                         f"{float(test.threshold(rcp.statistics)):.4g}", rcp.convergence.unit))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    note = (f"mean: olympic mean of the converged runs; stdev: of all of them; fastest accepted: the smallest olympic "
            f"mean of a {rcps[0].statistics.submission_runs}-run submission that passes (one-sided t-test, alpha 0.05)"
            if rcps else "")
    return "\n".join(lines + [note])


def run_build(folders: Sequence[str], *, out: str = "rcps", ruleset: str | None = None, unit: str = "epochs",
              framework: str | None = None, submission_runs: int | None = None, min_runs: int | None = None,
              force: bool = False, stdout=None) -> int:
    """The command: build, refuse to overwrite without --force, write, print the table."""
    stdout = stdout or sys.stdout
    try:
        rcps = build(folders, ruleset=ruleset, unit=unit, framework=framework, submission_runs=submission_runs,
                     min_runs=min_runs)
        out_path = Path(out)
        if out_path.suffix == ".json":
            if len(rcps) != 1:
                raise BuildRefused(f"--out {out}: one file, but the runs make {len(rcps)} RCP files "
                                   f"({', '.join(r.benchmark for r in rcps)}): give a folder")
            targets = [out_path]
        else:
            targets = [out_path / f"{rcp.benchmark}.json" for rcp in rcps]
        for target in targets:
            if target.exists() and not force:
                raise BuildRefused(f"{target}: exists; --force replaces it")
            if target.exists() and not target.is_file():
                raise BuildRefused(f"{target}: exists and is not a file")
    except BuildRefused as error:
        stdout.write(f"rcp build: refused: {error}\n")
        return EXIT_REFUSED
    for rcp, target in zip(rcps, targets):
        write_rcp(rcp, target)
    stdout.write(summary_table(rcps) + "\n")
    for target in targets:
        stdout.write(f"wrote {target}\n")
    return EXIT_OK


__all__ = ["BuildRefused", "build", "run_build", "summary_table", "find_result_logs"]
