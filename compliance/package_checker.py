"""python -m compliance package DIR: is a submission package complete and compliant?

For each organisation (DIR itself, or each one under DIR):
- layout: `systems/` and `results/`; every `results/<system>/` has `systems/<system>.json`; result
  files only at `results/<system>/<benchmark>/result_<N>.txt`;
- system descriptions: valid JSON objects with the ruleset's required fields (a misspelt field is
  named with the spelling that was found), a division of closed or open that matches the logs;
- per benchmark: a benchmark of the ruleset, exactly the ruleset's number of result files, every
  run checked (at most `max_failed_runs` non-compliant, as olympic scoring allows), and every run
  logging its own seed;
- per closed-division benchmark with an RCP file in its ruleset (`rules/<ruleset>/rcps/`): the RCP
  check (`compliance.rcp_check`): a note when it passes, an error when it fails (a warning, NEEDS
  REVIEW, under `--rcp-bypass`).

Every problem is one line `org: severity: where: what`; each organisation ends with a verdict line.
Exit code 1 when any organisation has an error, 2 when DIR holds no organisation at all.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from compliance.checker import check_log
from compliance.rcp_check import RcpCache, package_findings
from compliance.ruleset import Ruleset, load_ruleset, show
from compliance.submission import Organisation, find_organisations, root_problem

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


@dataclass
class PackageReport:
    org: str
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (severity, where, what)
    runs_checked: int = 0
    rulesets: set = field(default_factory=set)

    def add(self, severity: str, where: str, what: str) -> None:
        if severity != "off":
            self.problems.append((severity, where, what))

    @property
    def errors(self) -> int:
        return sum(1 for severity, _, _ in self.problems if severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for severity, _, _ in self.problems if severity == "warning")

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def verdict(self) -> str:
        what = f"{self.runs_checked} runs checked" + (f" ({', '.join(sorted(self.rulesets))})" if self.rulesets else "")
        if self.ok:
            warnings = f", {self.warnings} warning{'s' if self.warnings != 1 else ''}" if self.warnings else ""
            return f"{self.org}: package OK ({what}{warnings})"
        return (f"{self.org}: package FAILED: {self.errors} error{'s' if self.errors != 1 else ''}, "
                f"{self.warnings} warning{'s' if self.warnings != 1 else ''} ({what})")

    def as_dict(self) -> dict:
        return {"org": self.org, "ok": self.ok, "errors": self.errors, "warnings": self.warnings,
                "runs_checked": self.runs_checked, "rulesets": sorted(self.rulesets),
                "problems": [{"severity": s, "where": w, "what": m} for s, w, m in self.problems]}


def _ruleset_for(given: str | None, logged: str | None) -> Ruleset:
    return load_ruleset(given or logged or "training-0.7.0")


def check_systems(org: Organisation, report: PackageReport, fields: tuple[str, ...]) -> None:
    for name, description in org.systems.items():
        where = f"systems/{name}.json"
        if description.problem:
            report.add("error", where, description.problem)
            continue
        for field_name in fields:
            if field_name in description.fields:
                continue
            value, note = description.get(field_name)
            hint = f" ({note.split(' read from ')[1]} is there: misspelt?)" if note else ""
            report.add("error", where, f"missing field '{field_name}'{hint}")
        division = description.fields.get("division")
        if isinstance(division, str) and division.lower() not in ("closed", "open"):
            report.add("error", where, f"division {show(division)}: wanted closed or open")
        elif isinstance(division, str) and division != division.lower():
            report.add("warning", where, f"division {show(division)}: written in lower case elsewhere")


def check_organisation(org: Organisation, ruleset: str | None = None, rcp_bypass: bool = False) -> PackageReport:
    report = PackageReport(org=org.name)
    rcp_cache = RcpCache()
    for problem in org.problems:
        report.add("error", org.name, problem)
    for path in org.misplaced:  # still checked, so that every run gets a verdict
        result = check_log(str(path), ruleset)
        report.runs_checked += 1
        if result.ruleset:
            report.rulesets.add(result.ruleset)
        first = f"; first: {result.errors[0].format(path.name)}" if result.errors else ""
        report.add("error", str(path.relative_to(org.folder)),
                   f"result file outside results/<system>/<benchmark>/ (a benchmark folder is missing); "
                   f"{result.verdict()}{first}")
    systems_with_results = {runs.system for runs in org.benchmarks} | {p.parent.name for p in org.misplaced
                                                                       if p.parent.name != "results"}
    for system in sorted(systems_with_results):
        if system not in org.systems:
            close = [name for name in org.systems if name.lower() == system.lower()]
            hint = f" (found systems/{close[0]}.json: the names must match)" if close else ""
            report.add("error", f"results/{system}", f"no systems/{system}.json{hint}")
    fields_checked = False
    for runs in org.benchmarks:
        where = f"results/{runs.system}/{runs.benchmark}"
        results = [check_log(str(path), ruleset) for path in runs.results]
        report.runs_checked += len(results)
        logged_ruleset = next((r.ruleset for r in results if r.ruleset), None)
        rules = _ruleset_for(ruleset, logged_ruleset)
        report.rulesets.add(rules.name)
        if not fields_checked:  # system descriptions against the ruleset of the first benchmark
            check_systems(org, report, rules.package.system_fields)
            fields_checked = True
        bench = rules.benchmark(runs.benchmark)
        if bench is None:
            report.add("error", where, f"'{runs.benchmark}' is not a benchmark of {rules.name} "
                                       f"({', '.join(rules.benchmark_names)})")
            continue
        for path in runs.other_files:
            report.add("warning", f"{where}/{path.name}", "not a result_<N>.txt file")
        if len(runs.results) != bench.number_of_runs:
            report.add("error", where, f"{len(runs.results)} result files, {bench.number_of_runs} required "
                                       f"by {rules.name}")
        failed = [(path, result) for path, result in zip(runs.results, results, strict=True) if not result.successful]
        for path, result in failed:
            first = result.errors[0].format(path.name) if result.errors else result.verdict()
            report.add("error" if len(failed) > rules.package.max_failed_runs else "warning",
                       f"{where}/{path.name}", f"{result.verdict()}; first: {first}" if result.errors else result.verdict())
        if 0 < len(failed) <= rules.package.max_failed_runs:
            report.add("warning", where, f"{len(failed)} failed run accepted under olympic scoring "
                                         f"(at most {rules.package.max_failed_runs})")
        elif len(failed) > rules.package.max_failed_runs:
            report.add("error", where, f"{len(failed)} runs failed; at most {rules.package.max_failed_runs} may")
        # The division of the logs and of the system description agree.
        system = org.systems.get(runs.system)
        system_division = system.fields.get("division") if system is not None and not system.problem else None
        logged = {r.division for r in results if r.division}
        if isinstance(system_division, str) and logged and {system_division.lower()} != logged:
            report.add("error", where, f"logs say division {', '.join(sorted(logged))}, "
                                       f"systems/{runs.system}.json says {show(system_division)}")
        # Every run its own seed.
        seeds = [(path.name, r.seed) for path, r in zip(runs.results, results, strict=True) if r.unusable is None]
        missing = [name for name, seed in seeds if seed is None]
        if missing:
            report.add(rules.package.unique_seeds, where, f"no seed logged in {', '.join(missing[:5])}"
                                                         + ("..." if len(missing) > 5 else ""))
        repeated = Counter(show(seed) for _, seed in seeds if seed is not None)
        for seed_text, count in sorted(repeated.items()):
            if count > 1:
                names = [name for name, seed in seeds if show(seed) == seed_text]
                report.add(rules.package.unique_seeds, where,
                           f"seed {seed_text[:40]} used by {count} runs ({', '.join(names[:5])}): each run needs its own")
        # Convergence against the reference convergence points (closed division, as mlperf-logging).
        division = system_division.lower() if isinstance(system_division, str) else next(iter(logged), None)
        if division == "closed" and len(logged) <= 1:
            framework = system.fields.get("framework") if system is not None and not system.problem else None
            for severity, line in package_findings(runs.results, runs.benchmark, rules.name, framework,
                                                   bypass=rcp_bypass, cache=rcp_cache):
                report.add(severity, where, line)
    if not fields_checked:
        check_systems(org, report, _ruleset_for(ruleset, None).package.system_fields)
    if not org.benchmarks and not org.misplaced:
        report.add("error", org.name, "no results/<system>/<benchmark>/result_N.txt at all")
    return report


def run_package_check(root: str, ruleset: str | None = None, as_json: bool = False, out=None,
                      rcp_bypass: bool = False) -> int:
    out = out or sys.stdout
    path = Path(root)
    problem = root_problem(root)
    if problem:
        out.write(f"{root}: unusable: {problem}\n")
        return EXIT_UNUSABLE
    organisations = find_organisations(path)
    if not organisations:
        out.write(f"{root}: unusable: no organisation (a folder with results/ and systems/) here\n")
        return EXIT_UNUSABLE
    reports = [check_organisation(org, ruleset, rcp_bypass) for org in organisations]
    if as_json:
        json.dump({"ok": all(r.ok for r in reports), "organisations": [r.as_dict() for r in reports]}, out, indent=1)
        out.write("\n")
    else:
        for report in reports:
            for severity, where, what in report.problems:
                out.write(f"{report.org}: {severity}: {where}: {what}\n")
            out.write(report.verdict() + "\n")
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED


__all__ = ["PackageReport", "check_organisation", "run_package_check"]
