"""Reference convergence points (RCPs): the file format, its schema, where the shipped files live.

Since MLPerf Training v1.0 a result counts only if it does not converge suspiciously faster than the
reference does at the same global batch size (mlperf-logging's `rcp_checker`). An RCP file holds,
for one benchmark of one ruleset, the reference runs at each global batch size:

    {
      "rcp_format": 1,
      "ruleset": "mlbench-1.0.0-smoke",
      "benchmark": "ncf",
      "convergence": {"unit": "epochs", "field": "epoch_num"},
      "statistics": {"submission_runs": 3, "olympic_drop": 1, "max_failed_runs": 1,
                     "alpha": 0.05, "tolerance": 0.0001, "min_mean_allowance": 0},
      "source": "what these runs are",
      "points": [
        {"framework": "pytorch", "global_batch_size": 2048, "runs": 10,
         "converged_at": [2, 3, ...],          one entry per converged run
         "mean": 2.375, "stdev": 0.4899,       olympic mean and (population) standard deviation
         "hyperparameters": {...},             what defines this point besides the batch size
         "provenance": {...}}                  which logs, seeds, system, command, date
      ]
    }

`convergence` says how a log's samples (or epochs) to converge are read: the `field` of the
metadata of the last `eval_accuracy` before a successful `run_stop` (`epoch_num` rounded to 3
decimals, `samples_count` or `step_num` as logged), or, with `first_passing` (MLPerf's Stable
Diffusion), the first evaluation step at which every named metric meets its bound.
`statistics` are the parameters of the test (see `compliance.rcp_stats`): the number of runs of a
submission, how many runs olympic scoring drops at each end, how many may fail, the one-sided
t-test's alpha, the bisection tolerance, and an allowance subtracted from the smallest acceptable
mean (MLPerf's Llama 3.1 405B: one evaluation interval, 46,080 samples).

`mean` and `stdev` are derived from `converged_at`; the loader recomputes them and refuses a file
where they disagree, so a hand-edited number cannot drift from the runs it claims to summarize.
Every problem is one `RcpFileError` line naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compliance.ruleset import RULES_DIR, load_ruleset

RCP_FORMAT = 1
UNITS = ("epochs", "samples")
FIELDS = ("epoch_num", "samples_count", "step_num")
BOUNDS = ("ge", "gt", "le", "lt")
ANY_FRAMEWORK = "any"  # a point that holds for every framework (MLPerf's RCPs: one reference)
MAX_FILE_BYTES = 16 * 1024 * 1024


class RcpFileError(ValueError):
    """An RCP file that cannot be used: unreadable, not JSON, or against the schema (one line)."""


@dataclass(frozen=True)
class Convergence:
    """How samples (or epochs) to converge are read from one log."""

    unit: str = "epochs"  # for people: epochs | samples
    field: str = "epoch_num"  # metadata field of the evaluation events
    # MLPerf Stable Diffusion: the first eval step where every (metric, bound, value) holds
    first_passing: tuple[tuple[str, str, float], ...] = ()

    def as_dict(self) -> dict:
        data: dict[str, Any] = {"unit": self.unit, "field": self.field}
        if self.first_passing:
            data["first_passing"] = {metric: {bound: value} for metric, bound, value in self.first_passing}
        return data


@dataclass(frozen=True)
class Statistics:
    """The parameters of mlperf-logging's RCP test (`compliance.rcp_stats`)."""

    submission_runs: int  # runs in a submission (the ruleset's number_of_runs)
    olympic_drop: int = 1  # runs dropped at each end by olympic scoring (MLPerf: 4 for unet3d)
    max_failed_runs: int = 1  # more failed runs than this: "insufficient convergence"
    alpha: float = 0.05  # one-sided t-test
    tolerance: float = 0.0001  # of the bisection for the smallest acceptable mean
    min_mean_allowance: float = 0.0  # subtracted from the smallest acceptable mean

    def as_dict(self) -> dict:
        return {"submission_runs": self.submission_runs, "olympic_drop": self.olympic_drop,
                "max_failed_runs": self.max_failed_runs, "alpha": self.alpha, "tolerance": self.tolerance,
                "min_mean_allowance": self.min_mean_allowance}


@dataclass(frozen=True)
class RcpPoint:
    """The reference runs of one framework at one global batch size."""

    framework: str
    global_batch_size: int
    runs: int  # runs made, converged or not
    converged_at: tuple[float, ...]  # samples (or epochs) to converge of each converged run
    mean: float  # olympic mean of converged_at
    stdev: float  # population standard deviation of converged_at (numpy.std, as mlperf-logging)
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    def as_dict(self) -> dict:
        data = {"framework": self.framework, "global_batch_size": self.global_batch_size, "runs": self.runs,
                "converged_at": list(self.converged_at), "mean": self.mean, "stdev": self.stdev,
                "hyperparameters": dict(self.hyperparameters), "provenance": dict(self.provenance)}
        if self.name:
            data = {"name": self.name, **data}
        return data


@dataclass(frozen=True)
class RcpFile:
    ruleset: str
    benchmark: str
    convergence: Convergence
    statistics: Statistics
    points: tuple[RcpPoint, ...]
    source: str = ""
    path: str = ""

    @property
    def frameworks(self) -> tuple[str, ...]:
        return tuple(sorted({point.framework for point in self.points}))

    def points_for(self, framework: str | None) -> tuple[RcpPoint, ...]:
        """The points that apply to a submission of this framework (`any` points apply to all)."""
        return tuple(point for point in self.points
                     if point.framework == ANY_FRAMEWORK or (framework is not None and point.framework == framework))

    def as_dict(self) -> dict:
        return {"rcp_format": RCP_FORMAT, "ruleset": self.ruleset, "benchmark": self.benchmark,
                "convergence": self.convergence.as_dict(), "statistics": self.statistics.as_dict(),
                "source": self.source, "points": [point.as_dict() for point in self.points]}


KNOWN_FRAMEWORKS = ("pytorch", "tensorflow", "jax", "mxnet", "paddle", "mindspore", "onnx")


def framework_name(text: Any) -> str | None:
    """'PyTorch 2.14.1' -> 'pytorch', 'NVIDIA TensorFlow 24.01' -> 'tensorflow' (a system file's field)."""
    if not isinstance(text, str) or not text.strip():
        return None
    lowered = text.lower()
    for name in KNOWN_FRAMEWORKS:
        if name in lowered.replace(" ", "").replace("-", ""):
            return name
    return lowered.split()[0]


def olympic_mean(values: Sequence[float], drop: int):
    """Mean without the `drop` smallest and `drop` largest values (numpy's mean, as mlperf-logging)."""
    import numpy as np  # not at import: `python -m compliance check` starts without numpy

    ordered = sorted(values)
    return np.mean(ordered[drop:len(ordered) - drop])


def point_summary(converged_at: Sequence[float], drop: int) -> tuple[float, float]:
    """(olympic mean, population standard deviation) of one point's converged runs, as floats."""
    import numpy as np

    ordered = sorted(converged_at)
    return float(np.mean(ordered[drop:len(ordered) - drop])), float(np.std(ordered))


# --------------------------------------------------------------------------------------------
# Reading and validating
# --------------------------------------------------------------------------------------------
class _Duplicate(ValueError):
    pass


def _pairs(pairs: list) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


class _Where:
    def __init__(self, path: str):
        self.path = path

    def fail(self, where: str, message: str) -> RcpFileError:
        return RcpFileError(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _expect_object(at: _Where, node: Any, where: str, allowed: Sequence[str], required: Sequence[str]) -> dict:
    if not isinstance(node, dict):
        raise at.fail(where, f"wanted an object, found {_kind(node)}")
    unknown = sorted(set(node) - set(allowed))
    if unknown:
        raise at.fail(where, f"unknown field '{unknown[0]}' (allowed: {', '.join(allowed)})")
    missing = [name for name in required if name not in node]
    if missing:
        raise at.fail(where, f"missing field '{missing[0]}'")
    return node


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _name(at: _Where, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise at.fail(where, f"wanted a name, found {_kind(value)}")
    return value


def _count(at: _Where, value: Any, where: str, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise at.fail(where, f"wanted an integer >= {minimum}, found {_kind(value)}")
    return value


def _number(at: _Where, value: Any, where: str, minimum: float | None = None, positive: bool = False) -> float:
    if not _is_number(value):
        raise at.fail(where, f"wanted a finite number, found {_kind(value)}")
    if positive and not value > 0:
        raise at.fail(where, f"wanted a number > 0, found {value}")
    if minimum is not None and value < minimum:
        raise at.fail(where, f"wanted a number >= {minimum}, found {value}")
    return value


def _parse_convergence(at: _Where, node: Any) -> Convergence:
    node = _expect_object(at, node, "convergence", ("unit", "field", "first_passing"), ("unit", "field"))
    if node["unit"] not in UNITS:
        raise at.fail("convergence.unit", f"wanted one of {', '.join(UNITS)}, found {_kind(node['unit'])}")
    if node["field"] not in FIELDS:
        raise at.fail("convergence.field", f"wanted one of {', '.join(FIELDS)}, found {_kind(node['field'])}")
    passing = []
    if "first_passing" in node:
        metrics = node["first_passing"]
        if not isinstance(metrics, dict) or not metrics:
            raise at.fail("convergence.first_passing", "wanted an object {metric: {le|lt|ge|gt: number}}")
        for metric, bound in metrics.items():
            where = f"convergence.first_passing.{metric}"
            bound = _expect_object(at, bound, where, BOUNDS, ())
            if len(bound) != 1:
                raise at.fail(where, "wanted exactly one of " + ", ".join(BOUNDS))
            (op, value), = bound.items()
            passing.append((metric, op, float(_number(at, value, f"{where}.{op}"))))
    return Convergence(unit=node["unit"], field=node["field"], first_passing=tuple(passing))


def _parse_statistics(at: _Where, node: Any) -> Statistics:
    fields = ("submission_runs", "olympic_drop", "max_failed_runs", "alpha", "tolerance", "min_mean_allowance")
    node = _expect_object(at, node, "statistics", fields, ("submission_runs",))
    drop = _count(at, node.get("olympic_drop", 1), "statistics.olympic_drop", 0)
    runs = _count(at, node["submission_runs"], "statistics.submission_runs", 2 * drop + 1)
    failed = _count(at, node.get("max_failed_runs", 1), "statistics.max_failed_runs", 0)
    if failed > drop:  # a failed run counts as the slowest; olympic scoring must drop every one
        raise at.fail("statistics.max_failed_runs", f"{failed} is more than olympic_drop ({drop}): a failed run "
                                                    "would enter the mean")
    alpha = _number(at, node.get("alpha", 0.05), "statistics.alpha", positive=True)
    if not alpha < 1:
        raise at.fail("statistics.alpha", f"wanted a number between 0 and 1, found {alpha}")
    tolerance = _number(at, node.get("tolerance", 0.0001), "statistics.tolerance", positive=True)
    allowance = _number(at, node.get("min_mean_allowance", 0.0), "statistics.min_mean_allowance", minimum=0)
    return Statistics(submission_runs=runs, olympic_drop=drop, max_failed_runs=failed, alpha=float(alpha),
                      tolerance=float(tolerance), min_mean_allowance=allowance)


def _parse_point(at: _Where, node: Any, index: int, statistics: Statistics) -> RcpPoint:
    where = f"points[{index}]"
    node = _expect_object(at, node, where, ("name", "framework", "global_batch_size", "runs", "converged_at",
                                            "mean", "stdev", "hyperparameters", "provenance"),
                          ("framework", "global_batch_size", "runs", "converged_at", "mean", "stdev"))
    framework = _name(at, node["framework"], f"{where}.framework")
    batch = _count(at, node["global_batch_size"], f"{where}.global_batch_size", 1)
    where = f"{where} ({framework}, batch {batch})"
    name = _name(at, node["name"], f"{where}.name") if "name" in node else ""
    converged = node["converged_at"]
    if not isinstance(converged, list):
        raise at.fail(f"{where}.converged_at", f"wanted a list of numbers, found {_kind(converged)}")
    for i, value in enumerate(converged):
        _number(at, value, f"{where}.converged_at[{i}]", positive=True)
    drop = statistics.olympic_drop
    if len(converged) < 2 * drop + 2:  # the olympic mean and a t-test with at least 2 samples
        raise at.fail(f"{where}.converged_at", f"{len(converged)} converged runs; an RCP needs at least "
                                               f"{2 * drop + 2} (olympic scoring drops {drop} at each end)")
    runs = _count(at, node["runs"], f"{where}.runs", len(converged))
    mean = _number(at, node["mean"], f"{where}.mean")
    stdev = _number(at, node["stdev"], f"{where}.stdev", minimum=0)
    want_mean, want_stdev = point_summary(converged, drop)
    if not math.isclose(mean, want_mean, rel_tol=1e-9, abs_tol=1e-12):
        raise at.fail(f"{where}.mean", f"{mean} is not the olympic mean of converged_at ({want_mean!r})")
    if not math.isclose(stdev, want_stdev, rel_tol=1e-9, abs_tol=1e-12):
        raise at.fail(f"{where}.stdev", f"{stdev} is not the standard deviation of converged_at ({want_stdev!r})")
    hyperparameters = node.get("hyperparameters", {})
    if not isinstance(hyperparameters, dict):
        raise at.fail(f"{where}.hyperparameters", f"wanted an object, found {_kind(hyperparameters)}")
    provenance = node.get("provenance", {})
    if not isinstance(provenance, dict):
        raise at.fail(f"{where}.provenance", f"wanted an object, found {_kind(provenance)}")
    return RcpPoint(framework=framework, global_batch_size=batch, runs=runs, converged_at=tuple(converged),
                    mean=mean, stdev=stdev, hyperparameters=hyperparameters, provenance=provenance, name=name)


def parse_rcp(data: Any, path: str = "<rcp>") -> RcpFile:
    """Validate decoded JSON against the schema; RcpFileError names `path` and the field."""
    at = _Where(path)
    node = _expect_object(at, data, "", ("rcp_format", "ruleset", "benchmark", "convergence", "statistics",
                                         "source", "points"),
                          ("rcp_format", "ruleset", "benchmark", "convergence", "statistics", "points"))
    if node["rcp_format"] != RCP_FORMAT or type(node["rcp_format"]) is not int:
        raise at.fail("rcp_format", f"wanted {RCP_FORMAT}, found {_kind(node['rcp_format'])}")
    ruleset = _name(at, node["ruleset"], "ruleset")
    benchmark = _name(at, node["benchmark"], "benchmark")
    convergence = _parse_convergence(at, node["convergence"])
    statistics = _parse_statistics(at, node["statistics"])
    source = node.get("source", "")
    if not isinstance(source, str):
        raise at.fail("source", f"wanted text, found {_kind(source)}")
    if not isinstance(node["points"], list) or not node["points"]:
        raise at.fail("points", "wanted a non-empty list of points")
    points = tuple(_parse_point(at, item, i, statistics) for i, item in enumerate(node["points"]))
    seen: dict[tuple[str, int], int] = {}
    for i, point in enumerate(points):
        slot = (point.framework, point.global_batch_size)
        if slot in seen:
            raise at.fail(f"points[{i}]", f"a second point for {point.framework} at batch {point.global_batch_size} "
                                          f"(first: points[{seen[slot]}]); merge their runs")
        seen[slot] = i
    return RcpFile(ruleset=ruleset, benchmark=benchmark, convergence=convergence, statistics=statistics,
                   points=points, source=source, path=path)


def load_rcp(path: str | Path) -> RcpFile:
    """Read and validate one RCP file; RcpFileError (one line) for anything wrong with it."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise RcpFileError(f"{name}: is a folder, not an RCP file") from None
    except FileNotFoundError:
        raise RcpFileError(f"{name}: no such RCP file") from None
    except OSError as error:
        raise RcpFileError(f"{name}: cannot read ({error.strerror or error})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise RcpFileError(f"{name}: larger than {MAX_FILE_BYTES // 2**20} MiB: not an RCP file")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise RcpFileError(f"{name}: not UTF-8 text") from None
    except _Duplicate as error:
        raise RcpFileError(f"{name}: key '{error}' given twice in one object") from None
    except json.JSONDecodeError as error:
        raise RcpFileError(f"{name}:{error.lineno}: not valid JSON ({error.msg}, column {error.colno})") from None
    except (ValueError, RecursionError) as error:
        raise RcpFileError(f"{name}: not valid JSON ({str(error)[:80] or 'nested too deeply'})") from None
    return parse_rcp(data, name)


def write_rcp(rcp: RcpFile, path: str | Path) -> None:
    """Write an RCP file (a new one, or one the caller decided to replace), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(_dumps(rcp.as_dict()) + "\n", encoding="utf-8")
    partial.replace(path)


def _dumps(value: Any, depth: int = 0) -> str:
    """JSON with one key per line, and lists of plain values (the runs, the seeds) on one line."""
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(key)}: {_dumps(item, depth + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        return "[\n" + ",\n".join(inner + _dumps(item, depth + 1) for item in value) + "\n" + pad + "]"
    return json.dumps(value)


def shipped_rcp_path(ruleset: str, benchmark: str) -> Path:
    """Where the RCPs of a ruleset's benchmark live: compliance/rules/<ruleset>/rcps/<benchmark>.json."""
    return RULES_DIR / ruleset / "rcps" / f"{benchmark}.json"


def shipped_rcp(ruleset: str, benchmark: str) -> RcpFile | None:
    """The RCP file shipped with a ruleset for a benchmark, or None when there is none.

    RcpFileError if it is broken, or if it is for another ruleset or benchmark, or if its
    submission size differs from the ruleset's number of runs.
    """
    path = shipped_rcp_path(ruleset, benchmark)
    if not path.is_file():
        return None
    rcp = load_rcp(path)
    if rcp.ruleset != ruleset or rcp.benchmark != benchmark:
        raise RcpFileError(f"{path}: says ruleset '{rcp.ruleset}', benchmark '{rcp.benchmark}'; its place says "
                           f"'{ruleset}', '{benchmark}'")
    rules = load_ruleset(ruleset).benchmark(benchmark)
    if rules is not None and rules.number_of_runs != rcp.statistics.submission_runs:
        raise RcpFileError(f"{path}: statistics.submission_runs {rcp.statistics.submission_runs}, but {ruleset} "
                           f"asks {rules.number_of_runs} runs of {benchmark}")
    return rcp


__all__ = ["RCP_FORMAT", "ANY_FRAMEWORK", "Convergence", "Statistics", "RcpPoint", "RcpFile", "RcpFileError",
           "framework_name", "olympic_mean", "point_summary", "parse_rcp", "load_rcp", "write_rcp",
           "shipped_rcp_path", "shipped_rcp"]
