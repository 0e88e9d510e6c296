"""The RCP test, computed exactly as mlperf-logging 4.1.68's `rcp_checker` computes it.

For each reference point (one global batch size):
- mean: the olympic mean of its samples to converge (sorted; `olympic_drop` runs dropped at each
  end, 4 for MLPerf's unet3d, else 1); stdev: numpy's (population) standard deviation of ALL its
  runs, the dropped ones included;
- the smallest acceptable submission mean: by bisection on [0, mean] to `tolerance`, the smallest
  mean whose one-sided, equal-variance t-test against the reference (scipy's
  `ttest_ind_from_stats`; both sides with the reference's stdev; `runs - 2 * drop` reference samples,
  `submission_runs - 2` submission samples) still has p > alpha (0.05). A stdev of 0 makes it the
  mean itself. The bisection is kept (not the closed form) so the threshold is the same float.
- max speedup = mean / smallest acceptable mean; the threshold a submission's olympic mean must reach
  is mean / max speedup (mlperf-logging divides twice; so do we, for the same float).

The points are pruned first ("pruned_rcps", what mlperf-logging's package checker uses): every point
at a smaller batch size than the fastest-converging point goes, then, left to right, a point that
converges slower than the interpolation of its neighbours goes.

A submission at batch size B (every run logs the same `global_batch_size`) is checked:
- against the point at B when there is one ("found");
- else, between two points, against their linear interpolation (`numpy.interp` of mean and stdev;
  the t-test then counts 2 x submission_runs reference samples, as mlperf-logging does);
- else, below the smallest point, against the smallest point: it passes if it converges no faster
  than that point allows ("slower convergence on smaller batch size"), else an RCP at B is missing;
- else, above the largest point: refused, an RCP at B is missing.
Outcomes: PASS when the olympic mean of the submission (failed runs count as the slowest) reaches the
RCP mean; PASS (normalized) when it is faster than the RCP mean but reaches the threshold: the score
is then scaled by mean / submission mean (mlperf-logging's `scaling.json`); FAIL (faster than the
reference allows) otherwise. With more than `max_failed_runs` failed runs: FAIL, insufficient
convergence. `bypass` (mlperf-logging's `--rcp_bypass`) turns a FAIL against an RCP or a missing
RCP into NEEDS REVIEW: accepted, to be reviewed by the submission committee.

Known difference: mlperf-logging counts a failed run as 1e9 samples to converge, which sorts it
among the converged runs of a benchmark measured in more than 1e9 samples (its gpt3). A failed run
is infinitely slow here (`failed_run_value`; the agreement test passes 1e9 to reproduce it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from compliance.rcp import RcpFile, RcpPoint, Statistics, olympic_mean

MLPERF_FAILED_RUN = 1e9  # mlperf-logging's samples to converge of a failed run


def one_sided_p_value(mean_a: float, stdev_a: float, n_a: int, mean_b: float, stdev_b: float, n_b: int) -> float:
    """P(a's mean is not smaller than b's), from scipy's two-sided equal-variance t-test (as mlperf-logging)."""
    from scipy.stats import ttest_ind_from_stats  # scipy only when a check runs

    t_stat, p_value = ttest_ind_from_stats(mean_a, stdev_a, n_a, mean_b, stdev_b, n_b, equal_var=True)
    return p_value / 2 if t_stat < 0 else 1 - (p_value / 2)


def min_acceptable_mean(mean: float, stdev: float, reference_samples: int, statistics: Statistics) -> float:
    """The smallest submission mean the test accepts against (mean, stdev) (mlperf `_find_min_acceptable_mean`)."""
    if stdev == 0:
        return mean
    submission_samples = statistics.submission_runs - 2  # mlperf-logging: 2, whatever olympic_drop is
    high, low = mean, 0.0
    middle = (low + high) / 2
    while high - low > statistics.tolerance:
        # the same stdev on both sides; mlperf-logging passes the sample counts crosswise (the
        # pooled t statistic is symmetric in them)
        p_value = one_sided_p_value(middle, stdev, reference_samples, mean, stdev, submission_samples)
        if p_value > statistics.alpha:
            high = middle
        else:
            low = middle
        middle = (low + high) / 2
    return middle


@dataclass(frozen=True)
class PointTest:
    """One reference point ready to test against: its statistics and its threshold."""

    global_batch_size: int
    mean: float
    stdev: float
    reference_samples: int  # samples on the reference side of the t-test
    min_mean: float  # the smallest acceptable mean, before any allowance
    point: RcpPoint | None = None  # None for an interpolated point
    between: tuple[int, int] | None = None  # the two batch sizes it was interpolated from

    @property
    def max_speedup(self) -> float:
        return self.mean / self.min_mean

    def threshold(self, statistics: Statistics) -> float:
        """The smallest olympic mean that passes (mlperf-logging: RCP mean / max speedup)."""
        max_speedup = self.max_speedup
        if statistics.min_mean_allowance:  # mlperf-logging's llama31_405b: one eval interval of slack
            max_speedup = self.mean / (self.min_mean - statistics.min_mean_allowance)
        return self.mean / max_speedup


def point_test(point: RcpPoint, statistics: Statistics) -> PointTest:
    ordered = sorted(point.converged_at)
    drop = statistics.olympic_drop
    mean = np.mean(ordered[drop:len(ordered) - drop])
    stdev = np.std(ordered)
    samples = len(ordered) - 2 * drop
    return PointTest(global_batch_size=point.global_batch_size, mean=mean, stdev=stdev, reference_samples=samples,
                     min_mean=min_acceptable_mean(mean, stdev, samples, statistics), point=point)


def interpolate(batch_size: int, low: PointTest, high: PointTest, statistics: Statistics) -> PointTest:
    """A point between two others, as mlperf-logging's `_create_interp_rcp`."""
    sizes = [low.global_batch_size, high.global_batch_size]
    mean = np.interp(batch_size, sizes, [low.mean, high.mean])
    stdev = np.interp(batch_size, sizes, [low.stdev, high.stdev])
    samples = statistics.submission_runs * 2
    return PointTest(global_batch_size=batch_size, mean=mean, stdev=stdev, reference_samples=samples,
                     min_mean=min_acceptable_mean(mean, stdev, samples, statistics), between=tuple(sizes))


def prune(tests: Sequence[PointTest]) -> list[PointTest]:
    """mlperf-logging's `_prune_rcps`: drop points left of the fastest one and points above the
    interpolation of their neighbours (one left-to-right sweep, as it does; not a convex hull)."""
    ordered = sorted(tests, key=lambda test: test.global_batch_size)
    fastest = min(ordered, key=lambda test: test.mean)
    kept = [test for test in ordered if test.global_batch_size >= fastest.global_batch_size]
    i = 1
    while i < len(kept) - 1:
        low, high = kept[i - 1], kept[i + 1]
        between = np.interp(kept[i].global_batch_size, [low.global_batch_size, high.global_batch_size],
                            [low.mean, high.mean])
        if kept[i].mean > between:
            del kept[i]
            i -= 1
        i += 1
    return kept


@dataclass(frozen=True)
class Verdict:
    """The RCP verdict on one benchmark of a submission, with the numbers that decided it."""

    outcome: str  # pass | pass_normalized | needs_review | fail_faster | missing_rcp | insufficient_convergence
    #               | no_batch_size | no_rcp | unusable
    how: str = ""  # found | interpolated | below_range | above_range
    benchmark: str = ""
    framework: str | None = None
    unit: str = "epochs"
    global_batch_size: int | float | None = None
    runs: int = 0
    failed_runs: int = 0
    submission_mean: float | None = None
    reference: PointTest | None = None
    threshold: float | None = None
    norm_factor: float = 1.0
    reason: str = ""  # for the outcomes without numbers
    statistics: Statistics | None = None
    rcp_path: str = ""
    batch_sizes: tuple[int, ...] = ()  # the (pruned) RCP batch sizes

    @property
    def passed(self) -> bool:
        return self.outcome in ("pass", "pass_normalized", "needs_review")

    @property
    def unusable(self) -> bool:
        return self.outcome == "unusable"

    def label(self) -> str:
        return {"pass": "PASS", "pass_normalized": "PASS (normalized)", "needs_review": "NEEDS REVIEW",
                "unusable": "UNUSABLE"}.get(self.outcome, "FAIL")

    def describe(self) -> str:
        """One line: the verdict and the numbers that decided it."""
        head = f"{self.benchmark}" + (f" ({self.framework})" if self.framework else "")
        if self.global_batch_size is not None and self.global_batch_size != -1:
            head += f" at global batch {self.global_batch_size}"
        body = self.reason
        test = self.reference
        if test is not None and self.submission_mean is not None:
            where = {"found": f"the RCP at batch {test.global_batch_size}",
                     "interpolated": f"the RCP interpolated between batch {test.between[0]} and {test.between[1]}"
                     if test.between else "an interpolated RCP",
                     "below_range": f"the smallest RCP batch {test.global_batch_size} (no RCP at this smaller batch)",
                     }.get(self.how, "the RCP")
            n = test.point.runs if test.point is not None else None
            reference = (f"{where}: " + (f"{n} runs, " if n is not None else "")
                         + f"stdev {_num(test.stdev)}; fastest accepted {_num(self.threshold)} {self.unit} "
                           f"(one-sided t-test, alpha {self.statistics.alpha if self.statistics else 0.05})")
            submission = (f"olympic mean {_num(self.submission_mean)} {self.unit} over {self.runs} runs"
                          + (f" ({self.failed_runs} failed, counted as the slowest)" if self.failed_runs else ""))
            if self.outcome == "pass":
                body = f"{submission} >= the RCP mean {_num(test.mean)} ({reference})"
            elif self.outcome == "pass_normalized":
                body = (f"{submission} < the RCP mean {_num(test.mean)} but >= the fastest accepted: score scaled by "
                        f"{_num(self.norm_factor)} (RCP mean / submission mean) ({reference})")
            else:
                state = "converges faster than the reference allows"
                if self.how == "below_range":
                    state = (f"converges faster than the RCP at the smallest batch {test.global_batch_size} allows: "
                             f"an RCP at this batch is missing")
                body = (f"{state}: {submission} < {_num(self.threshold)} (the RCP mean {_num(test.mean)}; "
                        f"{reference})")
                if self.outcome == "needs_review":
                    body += "; accepted under rcp bypass: to be reviewed by the submission committee"
        return f"{head}: RCP {self.label()}: {body}"

    def as_dict(self) -> dict:
        test = self.reference
        return {
            "benchmark": self.benchmark, "framework": self.framework, "outcome": self.outcome, "passed": self.passed,
            "how": self.how, "global_batch_size": self.global_batch_size, "runs": self.runs,
            "failed_runs": self.failed_runs, "unit": self.unit,
            "submission_mean": _plain(self.submission_mean), "threshold": _plain(self.threshold),
            "norm_factor": _plain(self.norm_factor), "reason": self.reason, "rcp": self.rcp_path,
            "rcp_batch_sizes": list(self.batch_sizes),
            "reference": None if test is None else {
                "global_batch_size": test.global_batch_size, "mean": _plain(test.mean), "stdev": _plain(test.stdev),
                "reference_samples": test.reference_samples, "min_mean": _plain(test.min_mean),
                "interpolated_between": list(test.between) if test.between else None},
            "line": self.describe(),
        }


def _plain(value):
    return None if value is None else float(value)


def _num(value) -> str:
    if value is None:
        return "?"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e5:
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) < 10 else f"{value:.2f}"


class RcpTests:
    """The pruned points of one RCP file for one framework, computed once and reused."""

    def __init__(self, rcp: RcpFile, framework: str | None):
        self.rcp = rcp
        self.statistics = rcp.statistics
        self.framework = framework
        points = rcp.points_for(framework)
        self.all = [point_test(point, self.statistics) for point in points]
        self.pruned = prune(self.all) if self.all else []

    def _at(self, batch_size) -> PointTest | None:
        return next((test for test in self.pruned if test.global_batch_size == batch_size), None)

    def _below(self, batch_size) -> PointTest | None:  # mlperf `_find_top_min_rcp`
        candidates = [t for t in self.pruned if 0 < t.global_batch_size < batch_size]
        return max(candidates, key=lambda t: t.global_batch_size) if candidates else None

    def _above(self, batch_size) -> PointTest | None:  # mlperf `_find_bottom_max_rcp`
        candidates = [t for t in self.pruned if batch_size < t.global_batch_size < 1e9]
        return min(candidates, key=lambda t: t.global_batch_size) if candidates else None

    def check(self, batch_size, converged_at: Sequence[float | None], *, bypass: bool = False,
              failed_run_value: float = math.inf) -> Verdict:
        """The verdict on one submission: its batch size and each run's samples to converge (None: failed)."""
        statistics = self.statistics
        failed = sum(value is None for value in converged_at)
        common = dict(benchmark=self.rcp.benchmark, framework=self.framework, unit=self.rcp.convergence.unit,
                      global_batch_size=batch_size, runs=len(converged_at), failed_runs=failed, statistics=statistics,
                      rcp_path=self.rcp.path, batch_sizes=tuple(t.global_batch_size for t in self.pruned))
        drop = statistics.olympic_drop
        if len(converged_at) < 2 * drop + 1:
            return Verdict("unusable", reason=f"{len(converged_at)} runs; the olympic mean needs at least {2 * drop + 1}",
                           **common)
        if failed > statistics.max_failed_runs:
            return Verdict("insufficient_convergence", reason=f"{failed} of {len(converged_at)} runs did not converge; "
                                                              f"at most {statistics.max_failed_runs} may", **common)
        if not self.pruned:
            known = ", ".join(self.rcp.frameworks)
            return Verdict("no_rcp", reason=f"no RCP for framework {self.framework or '(unknown)'} in {self.rcp.path} "
                                            f"(it has: {known})", **common)
        values = [failed_run_value if value is None else value for value in converged_at]
        how, test = "found", self._at(batch_size)
        if test is None:
            low, high = self._below(batch_size), self._above(batch_size)
            if low is not None and high is not None:
                how, test = "interpolated", interpolate(batch_size, low, high, statistics)
            elif low is not None:
                sizes = ", ".join(str(t.global_batch_size) for t in self.pruned)
                outcome = "needs_review" if bypass else "missing_rcp"
                return Verdict(outcome, how="above_range", reason=f"no RCP at this batch size: above the largest RCP batch "
                               f"({sizes}); submit reference runs at {batch_size}"
                               + ("; accepted under rcp bypass: to be reviewed by the submission committee" if bypass else ""),
                               **common)
            else:
                how, test = "below_range", min(self.pruned, key=lambda t: t.global_batch_size)
        mean = olympic_mean(values, drop)
        norm_factor = test.mean / mean
        norm_factor = 1.0 if norm_factor < 1 else norm_factor
        threshold = test.threshold(statistics)
        if mean >= threshold:
            outcome = "pass" if not mean < test.mean else "pass_normalized"
        else:
            outcome = "needs_review" if bypass else ("missing_rcp" if how == "below_range" else "fail_faster")
        return Verdict(outcome, how=how, submission_mean=mean, reference=test, threshold=threshold,
                       norm_factor=norm_factor, **common)


__all__ = ["MLPERF_FAILED_RUN", "one_sided_p_value", "min_acceptable_mean", "PointTest", "point_test", "interpolate",
           "prune", "Verdict", "RcpTests"]
