"""python -m compliance summarize DIR: time to train per run and the score of each benchmark.

For every `<org>/results/<system>/<benchmark>/` the runs are checked (the ruleset from --ruleset or
from each log) and scored the MLPerf way: the ruleset's number of runs, olympic scoring (drop the
fastest and the slowest run, mean of the rest), a non-compliant, aborted or missing run counting as
the dropped slowest one, more than `max_failed_runs` of them failing the benchmark. It also reports
the run-to-run variance (coefficient of variation of the time to train) and how many runs a
confidence level would need for the mean to be within a margin.

Output: a table on stdout, `summary.csv` (one row per system, a score column per benchmark, as
mlperf-logging's summarizer writes), `runs.csv` (one row per run), `summary.json` (all of it, with
the signature of what produced it) and `plots/<org>_<system>_<benchmark>.png` (eval_accuracy
against minutes for every run, with the target).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from compliance.checker import CheckResult, check_log
from compliance.logparse import FAST_JSON
from compliance.ruleset import load_ruleset, show
from compliance.submission import BenchmarkRuns, SystemDescription, find_organisations, root_problem

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
SCORING = "olympic: drop the fastest and the slowest run, mean of the rest; a failed run counts as the slowest"
SYSTEM_COLUMNS = ("division", "availability", "submitter", "system", "number_of_nodes",
                  "host_processor_model_name", "host_processors_count", "accelerator_model_name",
                  "accelerators_count", "framework", "notes")


# --------------------------------------------------------------------------------------------
# Scoring: pure functions.
# --------------------------------------------------------------------------------------------
def olympic_score(times: Sequence[float], failed: int, max_failed: int = 1) -> float | None:
    """Mean time to train without the fastest and the slowest run (MLPerf "benchmark result").

    `failed` runs did not converge (or are missing): each counts as a dropped slowest run, so with
    one failure only the fastest successful run is dropped. None when more than `max_failed` failed
    or nothing would be left to average.
    """
    if failed > max_failed or failed < 0:
        return None
    ordered = sorted(times)
    kept = ordered[max_failed: len(ordered) - (max_failed - failed)]
    if not kept:
        return None
    return sum(kept) / len(kept)


def coefficient_of_variation(times: Sequence[float]) -> float | None:
    """Sample standard deviation over mean of the times to train (None below two runs)."""
    if len(times) < 2:
        return None
    mean = statistics.fmean(times)
    return statistics.stdev(times) / mean if mean > 0 else None


def runs_needed(cv: float | None, confidence: float = 0.95, margin: float = 0.05) -> int | None:
    """Runs for the mean time to train to be within +-margin (relative) at this confidence.

    Normal approximation: n = (z * CV / margin)^2, z the two-sided quantile of the confidence.
    """
    if cv is None:
        return None
    z = statistics.NormalDist().inv_cdf((1.0 + confidence) / 2.0)
    return max(1, math.ceil((z * cv / margin) ** 2))


# --------------------------------------------------------------------------------------------
# The summary.
# --------------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    path: str
    result: CheckResult

    @property
    def minutes(self) -> float | None:
        return self.result.time_to_train_minutes

    @property
    def outcome(self) -> str:
        r = self.result
        if r.unusable is not None:
            return "unusable"
        if not r.compliant:
            return "not compliant"
        if r.status != "success":
            return f"status {r.status or 'missing'}"
        return "ok"


@dataclass
class BenchmarkSummary:
    org: str
    system: str
    benchmark: str
    ruleset: str | None
    number_of_runs: int | None
    runs: list[RunSummary]
    score: float | None = None
    cv: float | None = None
    runs_needed: int | None = None
    target: str = ""
    notes: list[str] = field(default_factory=list)
    plot: str | None = None

    @property
    def successful(self) -> list[RunSummary]:
        return [run for run in self.runs if run.outcome == "ok" and run.minutes is not None]

    @property
    def seeds(self) -> list[Any]:
        return [run.result.seed for run in self.runs]


@dataclass
class SystemRow:
    org: str
    system: str
    columns: dict[str, Any]
    notes: list[str]
    benchmarks: list[BenchmarkSummary]


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def system_columns(description: SystemDescription | None, system: str) -> tuple[dict[str, Any], list[str]]:
    """The table's system columns (as mlperf-logging's summarizer computes them), and notes."""
    notes: list[str] = []
    if description is None:
        return {name: None for name in SYSTEM_COLUMNS} | {"system": system}, [f"no systems/{system}.json"]
    if description.problem:
        return {name: None for name in SYSTEM_COLUMNS} | {"system": system}, \
            [f"systems/{system}.json: {description.problem}"]

    def get(name: str) -> Any:
        value, note = description.get(name)
        if note:
            notes.append(f"systems/{system}.json: {note}")
        return value

    nodes, per_node = get("number_of_nodes"), get("host_processors_per_node")
    accelerators = get("accelerators_per_node")
    node_count = _int(nodes)
    hw_notes, sw_notes = get("hw_notes"), get("sw_notes")
    columns = {
        "division": get("division"),
        "availability": get("status"),
        "submitter": get("submitter"),
        "system": get("system_name") or system,
        "number_of_nodes": nodes,
        "host_processor_model_name": get("host_processor_model_name"),
        "host_processors_count": (_int(per_node) * node_count) if _int(per_node) is not None and node_count is not None else None,
        "accelerator_model_name": get("accelerator_model_name"),
        "accelerators_count": (max(_int(accelerators), 0) * node_count) if _int(accelerators) is not None and node_count is not None else None,
        "framework": get("framework"),
        "notes": ";".join(str(n) for n in (hw_notes, sw_notes) if n),
    }
    for name in ("division", "availability", "submitter", "number_of_nodes", "framework"):
        if columns[name] is None:
            notes.append(f"systems/{system}.json: no field '{'status' if name == 'availability' else name}'")
    return columns, notes


def summarize_benchmark(org: str, runs: BenchmarkRuns, ruleset: str | None) -> BenchmarkSummary:
    results = [RunSummary(str(path), check_log(str(path), ruleset, collect_evals=True)) for path in runs.results]
    used = next((r.result.ruleset for r in results if r.result.ruleset), ruleset)
    summary = BenchmarkSummary(org=org, system=runs.system, benchmark=runs.benchmark, ruleset=used,
                               number_of_runs=None, runs=results)
    rules = load_ruleset(used) if used else None
    bench = rules.benchmark(runs.benchmark) if rules else None
    if bench is None:
        summary.notes.append(f"'{runs.benchmark}' is not a benchmark of {used}: not scored")
        return summary
    summary.number_of_runs = bench.number_of_runs
    summary.target = bench.quality.describe()
    logged = {r.result.benchmark for r in results if r.result.benchmark}
    if logged and logged != {runs.benchmark}:
        summary.notes.append(f"logs say {', '.join(sorted(logged))}, the folder says {runs.benchmark}")
    ok = summary.successful
    failed = len(results) - len(ok)
    missing = max(0, bench.number_of_runs - len(results))
    if missing:
        summary.notes.append(f"{len(results)} of {bench.number_of_runs} runs: {missing} missing, counted as failed")
    if len(results) > bench.number_of_runs:
        summary.notes.append(f"{len(results)} runs, {bench.number_of_runs} expected: all are scored")
    for run in results:
        if run.outcome != "ok":
            summary.notes.append(f"{Path(run.path).name}: {run.outcome}")
    max_failed = rules.package.max_failed_runs
    summary.score = olympic_score([run.minutes for run in ok], failed + missing, max_failed)
    if summary.score is None:
        summary.notes.append(f"no score: {failed + missing} failed or missing runs (at most {max_failed} allowed)")
    summary.cv = coefficient_of_variation([run.minutes for run in ok])
    return summary


def summarize(root: str | os.PathLike, ruleset: str | None = None, confidence: float = 0.95,
              margin: float = 0.05) -> dict[str, Any]:
    """Summaries of every organisation under `root` (see the module docstring)."""
    organisations = find_organisations(root)
    rows: list[SystemRow] = []
    org_notes: dict[str, list[str]] = {}
    for org in organisations:
        org_notes[org.name] = list(org.problems) + [
            f"{path.relative_to(org.folder)}: result file outside results/<system>/<benchmark>/, not scored"
            for path in org.misplaced]
        by_system: dict[str, list[BenchmarkRuns]] = {}
        for runs in org.benchmarks:
            by_system.setdefault(runs.system, []).append(runs)
        for system, benchmark_runs in by_system.items():
            columns, notes = system_columns(org.systems.get(system), system)
            benchmarks = []
            for runs in benchmark_runs:
                summary = summarize_benchmark(org.name, runs, ruleset)
                summary.runs_needed = runs_needed(summary.cv, confidence, margin)
                benchmarks.append(summary)
            rows.append(SystemRow(org.name, system, columns, notes, benchmarks))
    return {"organisations": [org.name for org in organisations], "rows": rows, "org_notes": org_notes,
            "confidence": confidence, "margin": margin}


def signature(rulesets: Sequence[str], confidence: float, margin: float) -> str:
    try:
        version = metadata.version("mlbench-training")
    except metadata.PackageNotFoundError:
        version = "source"
    return (f"mlbench compliance summarize {version} | ruleset {', '.join(rulesets) or 'none'} | {SCORING} | "
            f"runs needed for +-{margin:.0%} at {confidence:.0%} confidence (normal approximation) | "
            f"python {platform.python_version()}, {FAST_JSON}")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_table(summary: dict[str, Any], sig: str) -> str:
    out = io.StringIO()
    out.write(sig + "\n")
    header = ("org", "system", "benchmark", "framework", "accelerators", "runs ok", "score min", "cv",
              "runs needed", "seeds", "notes")
    lines = [header]
    for row in summary["rows"]:
        accel = row.columns.get("accelerator_model_name")
        count = row.columns.get("accelerators_count")
        hardware = f"{count} x {accel}" if accel and count else (accel or "-")
        for bench in row.benchmarks:
            runs_ok = f"{len(bench.successful)}/{bench.number_of_runs or len(bench.runs)}"
            seeds = ",".join(show(s, 12) for s in bench.seeds[:10]) + ("..." if len(bench.seeds) > 10 else "")
            notes = "; ".join(row.notes + bench.notes)
            lines.append((row.org, row.system, bench.benchmark, str(row.columns.get("framework") or "-"), hardware,
                          runs_ok, _fmt(bench.score), _fmt(bench.cv, 3), str(bench.runs_needed or "-"), seeds,
                          notes[:160] + ("..." if len(notes) > 160 else "")))
    widths = [min(max(len(str(line[i])) for line in lines), 40 if i < 10 else 200) for i in range(len(header))]
    for line in lines:
        out.write("  ".join(str(cell)[:widths[i]].ljust(widths[i]) for i, cell in enumerate(line)).rstrip() + "\n")
    for org, notes in summary["org_notes"].items():
        for note in notes:
            out.write(f"{org}: {note}\n")
    return out.getvalue()


def _benchmarks_of(rows: list[SystemRow]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for bench in row.benchmarks:
            if bench.benchmark not in names:
                names.append(bench.benchmark)
    return sorted(names)


def write_outputs(summary: dict[str, Any], out_dir: Path, sig: str, plots: bool = True) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[SystemRow] = summary["rows"]
    benchmarks = _benchmarks_of(rows)
    written = []
    path = out_dir / "summary.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["org", "system_folder", *SYSTEM_COLUMNS, "ruleset", *benchmarks, "notes"])
        for row in rows:
            scores = {b.benchmark: b.score for b in row.benchmarks}
            rulesets = sorted({b.ruleset for b in row.benchmarks if b.ruleset})
            writer.writerow([row.org, row.system, *[row.columns.get(c) for c in SYSTEM_COLUMNS], ";".join(rulesets),
                             *["" if scores.get(b) is None else repr(scores[b]) for b in benchmarks],
                             "; ".join(row.notes + [n for b in row.benchmarks for n in b.notes])])
    written.append(path)
    path = out_dir / "runs.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["org", "system", "benchmark", "run", "outcome", "time_to_train_minutes", "seed",
                         "status", "ruleset", "verdict"])
        for row in rows:
            for bench in row.benchmarks:
                for run in bench.runs:
                    writer.writerow([row.org, row.system, bench.benchmark, Path(run.path).name, run.outcome,
                                     "" if run.minutes is None else repr(run.minutes), run.result.seed,
                                     run.result.status, run.result.ruleset, run.result.verdict()])
    written.append(path)
    if plots:
        written.extend(draw_plots(rows, out_dir / "plots", summary))
    path = out_dir / "summary.json"
    document = {
        "signature": sig,
        "confidence": summary["confidence"], "margin": summary["margin"],
        "organisations": summary["organisations"], "org_notes": summary["org_notes"],
        "systems": [{
            "org": row.org, "system_folder": row.system, **row.columns, "notes": row.notes,
            "benchmarks": [{
                "benchmark": b.benchmark, "ruleset": b.ruleset, "number_of_runs": b.number_of_runs,
                "score_minutes": b.score, "coefficient_of_variation": b.cv, "runs_needed": b.runs_needed,
                "target": b.target, "notes": b.notes, "plot": b.plot,
                "runs": [{"file": Path(r.path).name, "outcome": r.outcome, "time_to_train_minutes": r.minutes,
                          "seed": r.result.seed if isinstance(r.result.seed, (int, float, str)) else show(r.result.seed),
                          "status": r.result.status, "errors": r.result.error_count,
                          "warnings": r.result.warning_count} for r in b.runs],
            } for b in row.benchmarks],
        } for row in rows],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, default=str)
    written.append(path)
    return written


def _numeric_points(points: list[tuple[float, Any]], component: str | None) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for minutes, value in points:
        if component is not None:
            value = value.get(component) if isinstance(value, dict) else None
        if type(value) in (int, float) and math.isfinite(value) and abs(value) < 1e12:
            xs.append(minutes)
            ys.append(float(value))
    return xs, ys


def draw_plots(rows: list[SystemRow], folder: Path, summary: dict[str, Any]) -> list[Path]:
    """One PNG per benchmark of each system: eval_accuracy against minutes, every run, the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row in rows:
        for bench in row.benchmarks:
            rules = load_ruleset(bench.ruleset) if bench.ruleset else None
            quality = rules.benchmark(bench.benchmark).quality if rules and rules.benchmark(bench.benchmark) else None
            components = [name for name, _ in quality.components] if quality and quality.components else [None]
            figure, axes = plt.subplots(figsize=(8, 5))
            for index, run in enumerate(bench.runs):
                for component, marker in zip(components, ".x^v", strict=False):
                    xs, ys = _numeric_points(run.result.eval_points, component)
                    if xs:  # one colour per run, one marker per component, failed runs dotted
                        label = Path(run.path).stem + (f" {component}" if component else "") + \
                            ("" if run.outcome == "ok" else f" ({run.outcome})")
                        axes.plot(xs, ys, marker=marker, linewidth=1, label=label, color=f"C{index % 10}",
                                  linestyle="-" if run.outcome == "ok" else ":")
            if quality is not None:
                for name, target in (quality.components or ((quality.metric, quality.target),)):
                    axes.axhline(target, color="black", linestyle="--", linewidth=1,
                                 label=f"target {name} {'>=' if quality.higher_is_better else '<='} {target}")
            axes.set_xlabel("minutes since run_start")
            axes.set_ylabel(f"eval_accuracy ({quality.metric if quality else 'value'})")
            score = f"score {bench.score:.2f} min" if bench.score is not None else "no score"
            axes.set_title(f"{row.org} / {row.system} / {bench.benchmark}: {score}", fontsize=10)
            figure.text(0.01, 0.01, f"ruleset {bench.ruleset}, {len(bench.runs)} runs, "
                        f"framework {row.columns.get('framework')}", fontsize=7)
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize=6, loc="best")
            axes.grid(alpha=0.3)
            name = "_".join(part.replace("/", "-") for part in (row.org, row.system, bench.benchmark)) + ".png"
            path = folder / name
            figure.savefig(path, dpi=90)
            plt.close(figure)
            bench.plot = str(path)
            written.append(path)
    return written


def run_summarize(root: str, ruleset: str | None = None, out_dir: str | None = None, confidence: float = 0.95,
                  margin: float = 0.05, plots: bool = True, out=None) -> int:
    out = out or sys.stdout
    root_path = Path(root)
    problem = root_problem(root)
    if problem:
        out.write(f"{root}: unusable: {problem}\n")
        return EXIT_UNUSABLE
    summary = summarize(root_path, ruleset, confidence, margin)
    if not summary["organisations"]:
        out.write(f"{root}: unusable: no organisation (a folder with results/ and systems/) here\n")
        return EXIT_UNUSABLE
    rulesets = sorted({b.ruleset for row in summary["rows"] for b in row.benchmarks if b.ruleset})
    sig = signature(rulesets, confidence, margin)
    out.write(render_table(summary, sig))
    target = Path(out_dir) if out_dir else Path("summary")
    try:
        written = write_outputs(summary, target, sig, plots)
    except OSError as error:
        out.write(f"{target}: cannot write the summary ({error.strerror or error})\n")
        return EXIT_UNUSABLE
    out.write(f"wrote {len(written)} files to {target}/ (summary.csv, runs.csv, summary.json"
              f"{', plots/' if plots else ''})\n")
    scored = [b for row in summary["rows"] for b in row.benchmarks]
    if not scored:
        out.write(f"{root}: no results/<system>/<benchmark>/result_N.txt found: nothing to score\n")
        return EXIT_FAILED
    return EXIT_OK if all(b.score is not None for b in scored) else EXIT_FAILED


__all__ = ["olympic_score", "coefficient_of_variation", "runs_needed", "summarize", "run_summarize",
           "write_outputs", "render_table", "signature", "system_columns", "BenchmarkSummary", "SystemRow"]
