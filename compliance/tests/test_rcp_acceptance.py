"""The RCP check is neither blind nor trigger-happy, on real runs: 30 NCF smoke runs (PyTorch).

The 30 runs (seeds 1001-1030; their samples to converge and provenance in
`data/rcp/ncf-pytorch-smoke-30-runs.json`, written by `python -m compliance rcp build`) converge
after 2 epochs (14 runs) or 3 (16). They are the reference; a submission takes 10 of them, the
runs of an NCF submission in mlbench-1.0.0 (so `submission_runs` is 10 here):
- the fastest third (10 runs, all at 2 epochs, what a submitter who ran 30 seeds and kept the best
  would send) is flagged: its olympic mean 2.0 is below the fastest accepted 2.197;
- 100 random draws of 10 runs: at least 90 pass.
With the smoke ruleset's 3-run submissions the same statistics cannot see that speedup (one
submission sample in the t-test): asserted too, as the documented limit of a 3-run check.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from compliance.rcp import load_rcp, shipped_rcp
from compliance.rcp_stats import RcpTests

DATA = Path(__file__).resolve().parent / "data" / "rcp" / "ncf-pytorch-smoke-30-runs.json"


def _thirty():
    rcp = load_rcp(DATA)
    (point,) = rcp.points
    assert len(point.converged_at) == 30 and point.provenance["seeds"] == list(range(1001, 1031))
    return rcp, point


def test_fastest_third_is_flagged_and_random_draws_pass():
    rcp, point = _thirty()
    runs = list(point.converged_at)
    ten = dataclasses.replace(rcp, statistics=dataclasses.replace(rcp.statistics, submission_runs=10))
    tests = RcpTests(ten, "pytorch")
    fastest_third = sorted(runs)[:10]
    verdict = tests.check(point.global_batch_size, fastest_third)
    assert verdict.outcome == "fail_faster", verdict.describe()
    assert float(verdict.submission_mean) == 2.0 and 2.15 < float(verdict.threshold) < 2.25
    rng = random.Random(16)
    passed = sum(tests.check(point.global_batch_size, rng.sample(runs, 10)).passed for _ in range(100))
    assert passed >= 90, passed


def test_random_three_run_draws_pass_the_shipped_smoke_rcp():
    """The shipped RCP (seeds 1-10) against independent runs (seeds 1001-1030), 3 runs a submission."""
    _, point = _thirty()
    tests = RcpTests(shipped_rcp("mlbench-1.0.0-smoke", "ncf"), "pytorch")
    rng = random.Random(3)
    passed = sum(tests.check(point.global_batch_size, rng.sample(list(point.converged_at), 3)).passed for _ in range(100))
    assert passed >= 90, passed


def test_three_run_submissions_cannot_flag_the_fastest_runs():
    """The limit of mlperf-logging's statistics with 3 runs: one submission sample; 2.0 epochs passes."""
    rcp, point = _thirty()
    verdict = RcpTests(rcp, "pytorch").check(point.global_batch_size, sorted(point.converged_at)[:3])
    assert verdict.outcome == "pass_normalized" and float(verdict.threshold) < 2.0, verdict.describe()
