"""The RCP check of a submission: `python -m compliance rcp check DIR` and a step of `package`.

For each benchmark folder (`<org>/results/<system>/<benchmark>/result_*.txt`, or a folder of
result files given directly) the runs' samples to converge are read (`compliance.rcp_logs`) and
judged against the benchmark's RCP file (`compliance.rcp_stats`): the one given with `--rcp`, else
the one shipped with the ruleset (`compliance/rules/<ruleset>/rcps/<benchmark>.json`). The points
used are those of the submission's framework (the system description's `framework` field, or
`--framework`); points written for `any` framework apply to every submission.

Each verdict is one line with the numbers that decided it. Exit codes: 0 every benchmark passes
(a NEEDS REVIEW under `--rcp-bypass` included), 1 one fails, 2 unusable input: a malformed RCP
file, no RCP file for the benchmark, too few runs for the olympic mean, no result files.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from compliance.rcp import RcpFile, RcpFileError, framework_name, load_rcp, shipped_rcp, shipped_rcp_path
from compliance.rcp_logs import read_run
from compliance.rcp_stats import RcpTests, Verdict
from compliance.submission import RESULT_NAME, find_organisations, natural_key, read_system, root_problem

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


class RcpCache:
    """RCP files and their pruned point statistics, loaded once per (file, framework)."""

    def __init__(self, rcp: RcpFile | None = None):
        self.given = rcp
        self.files: dict[tuple[str, str], RcpFile | None] = {}
        self.tests: dict[tuple[int, str | None], RcpTests] = {}

    def rcp_for(self, ruleset: str | None, benchmark: str) -> RcpFile | None:
        """The given file, else the shipped one (None when the ruleset ships none); RcpFileError if broken."""
        if self.given is not None:
            return self.given
        if not ruleset:
            return None
        if (ruleset, benchmark) not in self.files:
            self.files[(ruleset, benchmark)] = shipped_rcp(ruleset, benchmark)
        return self.files[(ruleset, benchmark)]

    def tests_for(self, rcp: RcpFile, framework: str | None) -> RcpTests:
        slot = (id(rcp), framework)
        if slot not in self.tests:
            self.tests[slot] = RcpTests(rcp, framework)
        return self.tests[slot]


def _unusable(benchmark: str, reason: str, framework: str | None = None) -> Verdict:
    return Verdict("unusable", benchmark=benchmark, framework=framework, reason=reason)


def check_runs(paths: Sequence[Path], *, benchmark: str | None = None, ruleset: str | None = None,
               framework: str | None = None, bypass: bool = False, cache: RcpCache | None = None,
               failed_run_value: float | None = None) -> Verdict:
    """The RCP verdict on one benchmark's result files. RcpFileError for a broken RCP file."""
    cache = cache or RcpCache()
    label = benchmark or "?"
    if not paths:
        return _unusable(label, "no result_*.txt files", framework)
    runs = [read_run(path) for path in paths]
    for run in runs:
        if run.problem:
            return _unusable(label, f"{run.path.name}: {run.problem}", framework)
    named = sorted({run.benchmark for run in runs if run.benchmark})
    if len(named) > 1:
        return _unusable(label, "the logs name different benchmarks: " + ", ".join(named), framework)
    benchmark = benchmark or (named[0] if named else None)
    if benchmark is None:
        return _unusable(label, "no submission_benchmark in the logs", framework)
    if named and named[0] != benchmark:
        return _unusable(benchmark, f"the logs say submission_benchmark '{named[0]}'", framework)
    if ruleset is None and cache.given is None:
        logged = sorted({run.ruleset for run in runs if run.ruleset})
        if len(logged) > 1:
            return _unusable(benchmark, "the logs name different rulesets: " + ", ".join(logged), framework)
        ruleset = logged[0] if logged else None
    rcp = cache.rcp_for(ruleset, benchmark)
    if rcp is None:
        where = shipped_rcp_path(ruleset, benchmark) if ruleset else "(no ruleset: give --ruleset or --rcp)"
        return _unusable(benchmark, f"no RCP file {where} (build one: python -m compliance rcp build)", framework)
    if rcp.benchmark != benchmark:
        return _unusable(benchmark, f"the RCP file {rcp.path} is for '{rcp.benchmark}'", framework)
    sizes = [run.global_batch_size for run in runs]
    missing = [run.path.name for run, size in zip(runs, sizes) if not _is_size(size)]
    if missing or len(set(sizes)) != 1:
        reason = (f"no usable global_batch_size in {', '.join(missing[:3])}" if missing else
                  "global_batch_size differs between runs: " + ", ".join(
                      f"{size} ({', '.join(r.path.name for r, s in zip(runs, sizes) if s == size)[:80]})"
                      for size in sorted(set(sizes))))
        return Verdict("no_batch_size", benchmark=benchmark, framework=framework, unit=rcp.convergence.unit,
                       runs=len(runs), reason=reason, rcp_path=rcp.path)
    converged = [run.converged_at(rcp.convergence) for run in runs]
    extra = {} if failed_run_value is None else {"failed_run_value": failed_run_value}
    return cache.tests_for(rcp, framework).check(sizes[0], converged, bypass=bypass, **extra)


def _is_size(value) -> bool:
    return type(value) in (int, float) and value > 0 and value == int(value)


def _result_files(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    except OSError:
        return []
    return [entry for entry in entries if RESULT_NAME.match(entry.name) and entry.is_file()]


def _framework_of_folder(folder: Path) -> str | None:
    """The framework of <org>/results/<system>/<benchmark>/ from <org>/systems/<system>.json."""
    system_file = folder.parent.parent.parent / "systems" / f"{folder.parent.name}.json"
    if folder.parent.parent.name != "results" or not system_file.is_file():
        return None
    description = read_system(system_file)
    return None if description.problem else framework_name(description.fields.get("framework"))


def benchmark_folders(root: Path) -> list[tuple[str, Path, str | None]]:
    """(label, folder, framework) for a folder of result files or every benchmark of a submission tree."""
    if _result_files(root):
        return [(str(root), root, _framework_of_folder(root))]
    found = []
    for org in find_organisations(root):
        for runs in org.benchmarks:
            system = org.systems.get(runs.system)
            framework = None
            if system is not None and not system.problem:
                framework = framework_name(system.fields.get("framework"))
            found.append((f"{org.name}/results/{runs.system}/{runs.benchmark}", runs.folder, framework))
    return found


def run_rcp_check(root: str, *, ruleset: str | None = None, rcp_file: str | None = None, framework: str | None = None,
                  bypass: bool = False, as_json: bool = False, out=None) -> int:
    """`python -m compliance rcp check DIR`: a verdict line per benchmark; the exit code."""
    out = out or sys.stdout
    problem = root_problem(root)
    if problem:
        out.write(f"{root}: unusable: {problem}\n")
        return EXIT_UNUSABLE
    try:
        cache = RcpCache(load_rcp(rcp_file) if rcp_file else None)
    except RcpFileError as error:
        out.write(f"{error}\n")
        return EXIT_UNUSABLE
    folders = benchmark_folders(Path(root))
    if not folders:
        out.write(f"{root}: unusable: no result_*.txt here and no <org>/results/<system>/<benchmark>/ below\n")
        return EXIT_UNUSABLE
    verdicts = []
    for label, folder, found_framework in folders:
        chosen = framework or found_framework
        try:
            verdict = check_runs(_result_files(folder), benchmark=folder.name if label != str(root) else None,
                                 ruleset=ruleset, framework=chosen, bypass=bypass, cache=cache)
        except RcpFileError as error:
            out.write(f"{error}\n")
            return EXIT_UNUSABLE
        verdicts.append((label, verdict))
        if not as_json:
            out.write(f"{label}: {verdict.describe()}\n")
    if any(v.unusable for _, v in verdicts):
        code = EXIT_UNUSABLE
    else:
        code = EXIT_OK if all(v.passed for _, v in verdicts) else EXIT_FAILED
    if as_json:
        json.dump({"exit_code": code, "verdicts": [{"folder": label, **v.as_dict()} for label, v in verdicts]},
                  out, indent=1)
        out.write("\n")
    return code


def package_findings(results: Sequence[Path], benchmark: str, ruleset: str, framework_field,
                     bypass: bool = False, cache: RcpCache | None = None) -> list[tuple[str, str]]:
    """(severity, line) for `package`: nothing when the ruleset ships no RCP for the benchmark;
    a note for a pass, a warning for NEEDS REVIEW, an error for a fail. RcpFileError if broken."""
    cache = cache or RcpCache()
    if cache.rcp_for(ruleset, benchmark) is None:
        return []
    verdict = check_runs(results, benchmark=benchmark, ruleset=ruleset, framework=framework_name(framework_field),
                         bypass=bypass, cache=cache)
    severity = "error" if not verdict.passed else ("warning" if verdict.outcome == "needs_review" else "note")
    return [(severity, verdict.describe())]


__all__ = ["RcpCache", "check_runs", "benchmark_folders", "run_rcp_check", "package_findings"]
