"""Our RCP check gives mlperf-logging 4.1.68's `rcp_checker` verdict on every generated submission.

mlperf-logging ships the RCPs of MLPerf Training 1.0.0 to 6.1.0 (90 files). Each is read into our
format (`compliance.rcp_mlperf`), and submissions are generated from it: result logs at a batch size
on an RCP point (pruned ones included), between two, below the smallest and above the largest; their
runs converge slower than the reference, at its mean, a little and much faster, and exactly at
(and one step under) the fastest accepted mean; some with a failed run, some with too many, some
under `rcp_bypass`. For each case mlperf-logging's own API (`rcp_checker.check_directory`, as its
package checker calls it: pruned RCPs) and ours (`compliance.rcp_check.check_runs`) read the same
folder; the pass/fail, the message category and the score normalization factor must be equal
(floats compared exactly: the same arithmetic is done in the same order).

Where mlperf-logging crashes on a case (mismatched batch sizes, a successful run without a passing
evaluation), the test asserts the crash and our verdict separately; a crash never counts as a verdict.
Known difference, asserted as such: mlperf-logging counts a failed run as 1e9 samples, which sorts
it among gpt3's converged runs (1.1e9 to 1.4e10 samples); we count it as infinitely slow. For those
cases the test checks that ours with the 1e9 sentinel gives mlperf-logging's verdict.
"""

from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path

import pytest

from compliance.rcp_check import RcpCache, check_runs
from compliance.rcp_mlperf import convert, mlperf_rcp_files
from compliance.rcp_stats import MLPERF_FAILED_RUN, Verdict

rcp_checker = pytest.importorskip("mlperf_logging.rcp_checker.rcp_checker")
RCP_ROOT = Path(rcp_checker.__file__).parent
CASES_PER_FILE = 4  # 90 files: 360 cases, plus the crash and too-few-runs cases


def _line(key: str, value, metadata: dict | None = None, event_type: str = "POINT_IN_TIME") -> str:
    return ":::MLLOG " + json.dumps({"namespace": "", "time_ms": 1700000000000, "event_type": event_type,
                                     "key": key, "value": value, "metadata": metadata or {}}) + "\n"


def write_run(path: Path, benchmark: str, batch_size, converged_at, rcp, status: str = "success",
              evaluations: bool = True) -> None:
    """A minimal result log both readers accept; `converged_at` is where the last evaluation is."""
    field = rcp.convergence.field
    lines = [_line("submission_benchmark", benchmark)]
    if batch_size is not None:
        lines.append(_line("global_batch_size", batch_size))
    lines.append(_line("run_start", None, event_type="INTERVAL_START"))
    if evaluations:
        if rcp.convergence.first_passing:  # Stable Diffusion: FID and CLIP at each step
            half = converged_at // 2 if isinstance(converged_at, int) else converged_at / 2
            for step, fid, clip in ((half, 140.0, 0.10), (converged_at, 85.0, 0.17)):
                lines.append(_line("eval_accuracy", fid, {"metric": "FID", field: step}))
                lines.append(_line("eval_accuracy", clip, {"metric": "CLIP", field: step}))
        else:
            half = converged_at // 2 if isinstance(converged_at, int) else round(converged_at / 2, 3)
            lines.append(_line("eval_accuracy", 0.1, {field: half}))
            lines.append(_line("eval_accuracy", 0.9, {field: converged_at}))
    lines.append(_line("run_stop", None, {"status": status}, event_type="INTERVAL_END"))
    path.write_text("".join(lines))


def _quantize(value: float, integers: bool, up: bool) -> float:
    if integers:
        return int(math.ceil(value) if up else math.floor(value))
    scaled = value * 1000
    return (math.ceil(scaled) if up else math.floor(scaled)) / 1000


def generate_cases(rcp, rng: random.Random, tests) -> list[dict]:
    """Submissions for one RCP file: batch size x speed x failures x bypass."""
    sizes = sorted(point.global_batch_size for point in rcp.points)
    integers = all(float(v).is_integer() for point in rcp.points for v in point.converged_at)
    n = rcp.statistics.submission_runs
    cases = []
    for _ in range(CASES_PER_FILE):
        where = rng.choice(["on", "on", "between", "below", "above"])
        if where == "on":
            size = rng.choice(sizes)
        elif where == "between" and any(b - a > 1 for a, b in zip(sizes, sizes[1:])):
            a, b = rng.choice([(a, b) for a, b in zip(sizes, sizes[1:]) if b - a > 1])
            size = rng.randint(a + 1, b - 1)
        elif where == "below" and sizes[0] > 1:
            size = max(1, sizes[0] // 2)
        else:
            size = sizes[-1] * 2
        # the reference's mean near this batch size, and the threshold we compute there
        nearest = min(tests.all, key=lambda t: abs(t.global_batch_size - size))
        probe = tests.check(size, [float(nearest.mean)] * n)
        base = float(probe.reference.mean) if probe.reference is not None else float(nearest.mean)
        threshold = float(probe.threshold) if probe.threshold is not None else base
        speed = rng.choice(["slower", "at_mean", "a_little_faster", "much_faster", "at_threshold", "under_threshold"])
        if speed == "at_threshold":
            values = [_quantize(threshold, integers, up=True)] * n
        elif speed == "under_threshold":
            step = 1 if integers else 0.001
            values = [_quantize(threshold, integers, up=False) - (step if _quantize(threshold, integers, False) >= threshold else 0)] * n
        else:
            factor = {"slower": 1.15, "at_mean": 1.0, "a_little_faster": 0.96, "much_faster": 0.6}[speed]
            values = [_quantize(base * factor * rng.uniform(0.97, 1.03), integers, up=rng.random() < 0.5)
                      for _ in range(n)]
        values = [max(v, 1 if integers else 0.001) for v in values]
        failed = rng.choices([0, 1, rcp.statistics.max_failed_runs + 1], weights=[6, 3, 1])[0]
        cases.append({"batch_size": size, "values": values, "failed": failed, "bypass": rng.random() < 0.3,
                      "where": where, "speed": speed})
    return cases


def mlperf_message(verdict: Verdict, batch_size, bypass: bool) -> str:
    """The message mlperf-logging's check_directory returns for our verdict."""
    missing = f"Missing RCP, please submit RCP with BS = {batch_size}"
    base = {"insufficient_convergence": "Insufficient convergence", "no_batch_size": "Could not detect global_batch_size",
            "no_rcp": "Cannot find any RCPs"}.get(verdict.outcome)
    if base is None:
        if verdict.how == "found":
            base = "RCP found"
        elif verdict.how == "interpolated":
            base = "RCP Interpolation"
        elif verdict.how == "below_range" and verdict.outcome in ("pass", "pass_normalized"):
            base = "RCP not found but slower convergence on smaller batch size"
        else:
            base = missing
    if verdict.outcome == "needs_review":
        base += " passed using rcp_bypass"
    return base


def run_mlperf(folder: Path, version: str, bypass: bool):
    return rcp_checker.check_directory(str(folder), "training", version, False, False, rcp_file=None,
                                       rcp_pass="pruned_rcps", rcp_bypass=bypass, set_scaling=False)


@pytest.fixture(scope="module")
def quiet_logging():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)  # mlperf-logging logs every record it computes
    yield
    root.setLevel(level)


def _write_case(folder: Path, rcp, case: dict) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, value in enumerate(case["values"]):
        path = folder / f"result_{i}.txt"
        write_run(path, rcp.benchmark, case["batch_size"], value, rcp,
                  status="aborted" if i < case["failed"] else "success")
        paths.append(path)
    return paths


def test_our_verdict_is_mlperf_loggings_on_every_generated_submission(tmp_path, quiet_logging):
    files = mlperf_rcp_files(RCP_ROOT)
    assert len(files) == 90  # training 1.0.0 .. 6.1.0, as shipped by mlperf-logging 4.1.68
    rng = random.Random(20241)
    compared, crashes, outcomes, sentinel_cases, disagreements = 0, 0, {}, 0, []
    for file_index, path in enumerate(files):
        rcp = convert(path)
        version = path.parent.name.split("_", 1)[1]
        cache = RcpCache(rcp)
        tests = cache.tests_for(rcp, None)
        for case_index, case in enumerate(generate_cases(rcp, rng, tests)):
            folder = tmp_path / f"{file_index}-{case_index}"
            paths = _write_case(folder, rcp, case)
            ours = check_runs(paths, framework=None, bypass=case["bypass"], cache=cache)
            if rcp.benchmark not in rcp_checker.submission_runs["training"]:  # dlrm: not in its table
                with pytest.raises(KeyError):
                    run_mlperf(folder, version, case["bypass"])
                crashes += 1
                continue
            passed, message, norm = run_mlperf(folder, version, case["bypass"])
            huge = case["failed"] and max(max(p.converged_at) for p in rcp.points) >= MLPERF_FAILED_RUN
            if huge:  # the known difference: compare with mlperf-logging's sentinel
                sentinel_cases += 1
                ours = check_runs(paths, framework=None, bypass=case["bypass"], cache=cache,
                                  failed_run_value=MLPERF_FAILED_RUN)
            expected_norm = ours.norm_factor if ours.how in ("found", "interpolated", "below_range") else 1.0
            got = (ours.passed, mlperf_message(ours, case["batch_size"], case["bypass"]), expected_norm)
            if (passed, message, norm) != got:
                disagreements.append(f"{path.parent.name}/{path.name} {case}: mlperf {(passed, message, norm)}, ours {got}: "
                                     f"{ours.describe()}")
            compared += 1
            outcomes[ours.outcome] = outcomes.get(ours.outcome, 0) + 1
            outcomes[ours.how or "-"] = outcomes.get(ours.how or "-", 0) + 1
    assert disagreements == [], "\n".join(disagreements[:20])
    assert compared + crashes == 360 and crashes == 4 * CASES_PER_FILE  # dlrm of 1.0.0, 1.1.0, 2.0.0, 2.1.0
    # the cases cover every outcome and every place a batch size can fall
    for outcome in ("pass", "pass_normalized", "fail_faster", "missing_rcp", "needs_review", "insufficient_convergence",
                    "found", "interpolated", "below_range", "above_range"):
        assert outcomes.get(outcome, 0) >= 5, (outcome, outcomes)
    assert sentinel_cases >= 1


def test_where_mlperf_logging_crashes_the_test_says_so(tmp_path, quiet_logging):
    """Crashes are asserted as crashes; our verdict on the same folder is a clear one."""
    files = {path.parent.name + "/" + path.stem: path for path in mlperf_rcp_files(RCP_ROOT)}
    resnet = convert(files["training_1.0.0/rcps_resnet"])
    # batch sizes that differ between runs: mlperf-logging returns no benchmark and then indexes with it
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, size in enumerate([3264, 3264, 4096, 3264, 3264]):
        write_run(folder / f"result_{i}.txt", "resnet", size, 40, resnet)
    with pytest.raises(KeyError):
        run_mlperf(folder, "1.0.0", False)
    ours = check_runs(sorted(folder.iterdir()), cache=RcpCache(resnet))
    assert ours.outcome == "no_batch_size" and not ours.passed and "differs between runs" in ours.reason
    # a run that says success without an evaluation: mlperf-logging reads an unset variable
    folder = tmp_path / "no-eval"
    folder.mkdir()
    for i in range(5):
        write_run(folder / f"result_{i}.txt", "resnet", 3264, 40, resnet, evaluations=i != 0)
    with pytest.raises(UnboundLocalError):
        run_mlperf(folder, "1.0.0", False)
    ours = check_runs(sorted(folder.iterdir()), cache=RcpCache(resnet))
    assert ours.failed_runs == 1 and ours.how == "found"
    # Stable Diffusion: a successful run none of whose evaluations passes FID <= 90 and CLIP >= 0.15
    sd = convert(files["training_4.0.0/rcps_stable_diffusion"])
    folder = tmp_path / "sd"
    folder.mkdir()
    for i in range(10):
        path = folder / f"result_{i}.txt"
        write_run(path, "stable_diffusion", 512, 3000000, sd)
        if i == 0:
            path.write_text(path.read_text().replace('"value": 85.0', '"value": 95.0'))
    with pytest.raises(ValueError, match="empty"):
        run_mlperf(folder, "4.0.0", False)
    ours = check_runs(sorted(folder.iterdir()), cache=RcpCache(sd))
    assert ours.failed_runs == 1 and ours.passed


def test_too_few_runs_mlperf_fails_on_nan_we_say_unusable(tmp_path, quiet_logging):
    files = {path.parent.name + "/" + path.stem: path for path in mlperf_rcp_files(RCP_ROOT)}
    resnet = convert(files["training_2.0.0/rcps_resnet"])
    folder = tmp_path / "two"
    folder.mkdir()
    for i in range(2):
        write_run(folder / f"result_{i}.txt", "resnet", 3264, 60, resnet)
    with pytest.warns(RuntimeWarning):  # numpy: mean of an empty slice
        passed, message, _ = run_mlperf(folder, "2.0.0", False)
    assert (passed, message) == (False, "RCP found")
    ours = check_runs(sorted(folder.iterdir()), cache=RcpCache(resnet))
    assert ours.outcome == "unusable" and "olympic mean needs at least 3" in ours.reason
