"""RCPs: building them from reference logs, the file format, the check and its verdict lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from compliance.rcp import (
    RULES_DIR,
    RcpFileError,
    Statistics,
    framework_name,
    load_rcp,
    parse_rcp,
    shipped_rcp,
    shipped_rcp_path,
)
from compliance.rcp_stats import min_acceptable_mean
from compliance.ruleset import load_ruleset

from .conftest import run_cli
from .rcp_helpers import write_submission

# synthetic reference runs: epochs to converge of each (framework, batch size) point
REFERENCE = {("PyTorch 2.14.1", 2048): [3, 4, 4, 5, 5, 5, 6, 7, None],
             ("PyTorch 2.14.1", 4096): [5, 6, 6, 7, 7, 7, 8, 9],
             ("TensorFlow 2.21.0", 2048): [5, 6, 6, 6, 7, 7, 7, 8]}


@pytest.fixture(scope="module")
def rcp_file(tmp_path_factory) -> Path:
    """An RCP file built by the command from synthetic reference runs (real, compliant smoke NCF logs)."""
    root = tmp_path_factory.mktemp("reference")
    for (framework, size), epochs in REFERENCE.items():
        write_submission(root / f"{framework.split()[0]}-{size}", epochs, framework=framework, batch_size=size,
                         system=f"ref-{framework.split()[0].lower()}")
    out = root / "rcps"
    code, stdout, _ = run_cli("rcp", "build", *(str(p) for p in sorted(root.iterdir())), "--out", str(out))
    assert code == 0, stdout
    assert "ncf        pytorch     2048   9     8          4.833  1.166  2.296" in stdout, stdout
    return out / "ncf.json"


def test_built_file_holds_each_point_with_its_runs_statistics_and_provenance(rcp_file):
    rcp = load_rcp(rcp_file)
    assert (rcp.ruleset, rcp.benchmark, rcp.convergence.field) == ("mlbench-1.0.0-smoke", "ncf", "epoch_num")
    assert rcp.statistics.submission_runs == 3  # the smoke ruleset's number of runs
    assert [(p.framework, p.global_batch_size, p.runs, len(p.converged_at)) for p in rcp.points] == [
        ("pytorch", 2048, 9, 8), ("pytorch", 4096, 8, 8), ("tensorflow", 2048, 8, 8)]
    point = rcp.points[0]
    # olympic mean and population stdev, by hand: [3,4,4,5,5,5,6,7] -> mean of the middle six
    assert point.mean == pytest.approx((4 + 4 + 5 + 5 + 5 + 6) / 6, rel=1e-12)
    assert point.stdev == pytest.approx(math.sqrt(sum((x - 4.875) ** 2 for x in [3, 4, 4, 5, 5, 5, 6, 7]) / 8), rel=1e-12)
    assert point.hyperparameters["opt_name"] == "adam" and "model_factors" in point.hyperparameters
    assert point.provenance["seeds"] == list(range(1, 10)) and point.provenance["converged"][-1] is False
    assert point.provenance["framework_version"] == "PyTorch 2.14.1" and len(point.provenance["logs"]) == 9


def test_min_acceptable_mean_is_the_t_test_boundary():
    """Independent of the bisection: the closed form mean - t(1-alpha, df) * s * sqrt(1/n1 + 1/n2)."""
    from scipy.stats import t

    for mean, stdev, reference_samples, runs in [(4.83, 1.17, 6, 3), (60.0, 4.0, 18, 10), (2.5e6, 2e5, 20, 10),
                                                 (100.0, 1.0, 8, 5)]:
        statistics = Statistics(submission_runs=runs)
        n_subm = runs - 2
        closed = mean - t.ppf(0.95, reference_samples + n_subm - 2) * stdev * math.sqrt(1 / reference_samples + 1 / n_subm)
        assert min_acceptable_mean(mean, stdev, reference_samples, statistics) == pytest.approx(closed, abs=1e-4)
    assert min_acceptable_mean(7.0, 0.0, 8, Statistics(submission_runs=5)) == 7.0


@pytest.mark.parametrize("epochs, batch, outcome, code, text", [
    ([5, 6, 5], 2048, "PASS", 0, "olympic mean 5 epochs over 3 runs >= the RCP mean 4.833"),
    ([3, 4, 3], 2048, "PASS (normalized)", 0, "score scaled by 1.611 (RCP mean / submission mean)"),
    ([2, 2, 3], 2048, "FAIL", 1, "converges faster than the reference allows: olympic mean 2 epochs over 3 runs < 2.296"),
    ([6, 6, 7], 3072, "PASS", 0, "the RCP interpolated between batch 2048 and 4096"),
    ([9, 9, 9], 8192, "FAIL", 1, "no RCP at this batch size: above the largest RCP batch (2048, 4096); submit reference runs at 8192"),
    ([5, 5, 5], 1024, "PASS", 0, "the smallest RCP batch 2048 (no RCP at this smaller batch)"),
    ([2, 2, 2], 1024, "FAIL", 1, "converges faster than the RCP at the smallest batch 2048 allows: an RCP at this batch is missing"),
    ([5, None, None], 2048, "FAIL", 1, "2 of 3 runs did not converge; at most 1 may"),
    ([None, 5, 6], 2048, "PASS", 0, "(1 failed, counted as the slowest)"),
])
def test_check_verdicts_carry_the_numbers_that_decided_them(tmp_path, rcp_file, epochs, batch, outcome, code, text):
    folder = write_submission(tmp_path, epochs, batch_size=batch, first_seed=100)
    got, out, err = run_cli("rcp", "check", str(tmp_path / "Org"), "--rcp", str(rcp_file))
    assert got == code, out + err
    (line,) = out.splitlines()
    assert line.startswith(f"Org/results/sys/ncf: ncf (pytorch) at global batch {batch}: RCP {outcome}: "), line
    assert text in line, line
    # a folder of result files given directly: the same verdict
    assert run_cli("rcp", "check", str(folder), "--rcp", str(rcp_file))[1].strip().split(": ", 1)[1] == line.split(": ", 1)[1]


def test_bypass_turns_a_failure_into_needs_review(tmp_path, rcp_file):
    write_submission(tmp_path, [2, 2, 3])
    code, out, _ = run_cli("rcp", "check", str(tmp_path), "--rcp", str(rcp_file), "--rcp-bypass")
    assert code == 0 and "RCP NEEDS REVIEW: converges faster" in out and "to be reviewed by the submission committee" in out


def test_each_framework_is_checked_against_its_own_points(tmp_path, rcp_file):
    write_submission(tmp_path / "tf", [5, 5, 5], framework="TensorFlow 2.21.0")
    code, out, _ = run_cli("rcp", "check", str(tmp_path / "tf"), "--rcp", str(rcp_file))
    assert code == 0 and "ncf (tensorflow)" in out and "the RCP mean 6.5 " in out, out  # 5 < 6.5: normalized
    write_submission(tmp_path / "jax", [5, 5, 5], framework="JAX 0.4")
    code, out, _ = run_cli("rcp", "check", str(tmp_path / "jax"), "--rcp", str(rcp_file))
    assert code == 1 and "no RCP for framework jax" in out and "(it has: pytorch, tensorflow)" in out
    code, out, _ = run_cli("rcp", "check", str(tmp_path / "jax"), "--rcp", str(rcp_file), "--framework", "pytorch")
    assert code == 0 and "ncf (pytorch)" in out
    assert framework_name("NVIDIA PyTorch 24.01") == "pytorch" and framework_name("Tensor-Flow") == "tensorflow"


def test_json_output(tmp_path, rcp_file):
    write_submission(tmp_path, [3, 4, 3])
    code, out, _ = run_cli("rcp", "check", str(tmp_path), "--rcp", str(rcp_file), "--json")
    report = json.loads(out)
    (verdict,) = report["verdicts"]
    assert code == report["exit_code"] == 0
    assert verdict["outcome"] == "pass_normalized" and verdict["how"] == "found"
    assert verdict["norm_factor"] == pytest.approx(29 / 6 / 3) and verdict["reference"]["reference_samples"] == 6


def test_build_refuses_groups_with_too_few_converged_runs(tmp_path):
    write_submission(tmp_path, [3, 4, 4, 5, None, None])  # 4 converged; the smoke ruleset wants 2 x 3
    out = tmp_path / "rcps"
    code, stdout, stderr = run_cli("rcp", "build", str(tmp_path), "--out", str(out))
    assert code == 2 and not out.exists() and "Traceback" not in stdout + stderr
    assert stdout == ("rcp build: refused: ncf pytorch batch 2048: 4 converged runs of 6; an RCP needs at least 6 "
                      "(twice the 3 runs of a mlbench-1.0.0-smoke submission; --min-runs)\n")
    assert run_cli("rcp", "build", str(tmp_path), "--out", str(out), "--min-runs", "4")[0] == 0


def test_build_refuses_runs_that_disagree_on_hyperparameters_and_never_overwrites(tmp_path):
    write_submission(tmp_path / "a", [3, 4, 4, 5, 5, 6])
    write_submission(tmp_path / "b", [3, 4], overrides={"opt_base_learning_rate": 0.01}, first_seed=50)
    code, out, _ = run_cli("rcp", "build", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "rcps"))
    assert code == 2 and "one RCP point is one set of hyperparameters" in out and "opt_base_learning_rate" in out
    assert run_cli("rcp", "build", str(tmp_path / "a"), "--out", str(tmp_path / "rcps"))[0] == 0
    code, out, _ = run_cli("rcp", "build", str(tmp_path / "a"), "--out", str(tmp_path / "rcps"))
    assert code == 2 and out.endswith("ncf.json: exists; --force replaces it\n")
    assert run_cli("rcp", "build", str(tmp_path / "a"), "--out", str(tmp_path / "rcps"), "--force")[0] == 0


def test_shipped_rcps_belong_to_their_ruleset_and_name_their_runs():
    files = sorted(RULES_DIR.glob("*/rcps/*.json"))
    assert {(p.parent.parent.name, p.stem) for p in files} >= {("mlbench-1.0.0-smoke", "ncf"),
                                                               ("mlbench-1.0.0-smoke", "resnet")}
    for path in files:
        rcp = shipped_rcp(path.parent.parent.name, path.stem)
        assert rcp is not None and shipped_rcp_path(rcp.ruleset, rcp.benchmark) == path
        assert rcp.statistics.submission_runs == load_ruleset(rcp.ruleset).benchmark(rcp.benchmark).number_of_runs
        assert set(rcp.frameworks) == {"pytorch", "tensorflow"}, path
        for point in rcp.points:
            assert point.runs == 10 and len(point.provenance["seeds"]) == 10, (path, point.framework)
            assert point.provenance["tool"] == "python -m compliance rcp build"


def test_the_demo_runs_pass_the_shipped_ncf_smoke_rcp(tmp_path):
    """Seeds 1..3 of NCF smoke (what `invoke demo` trains) converge in 3 epochs on this machine (the
    calibration in the RCP's provenance); any olympic mean of 2 or more epochs passes it."""
    rcp = shipped_rcp("mlbench-1.0.0-smoke", "ncf")
    pytorch = next(point for point in rcp.points if point.framework == "pytorch")
    assert pytorch.provenance["seeds"][:3] == [1, 2, 3]
    write_submission(tmp_path, [2, 2, 2], framework="PyTorch 2.14.1", batch_size=pytorch.global_batch_size)
    code, out, _ = run_cli("rcp", "check", str(tmp_path), "--ruleset", "mlbench-1.0.0-smoke")
    assert code == 0 and "RCP PASS" in out, out


def test_parse_refuses_a_mean_that_does_not_match_its_runs(rcp_file):
    data = json.loads(rcp_file.read_text())
    data["points"][0]["mean"] = 4.0
    with pytest.raises(RcpFileError, match=r"points\[0\] \(pytorch, batch 2048\)\.mean: 4.0 is not the olympic mean"):
        parse_rcp(data, "x.json")


def test_package_runs_the_rcp_check_of_closed_division_benchmarks(tmp_path):
    """Against the shipped NCF smoke RCP: a note when it passes, an error when it fails, a warning under bypass."""
    write_submission(tmp_path / "ok", [3, 2, 3])
    code, out, _ = run_cli("package", str(tmp_path / "ok"))
    assert code == 0 and "Org: note: results/sys/ncf: ncf (pytorch) at global batch 2048: RCP PASS" in out, out
    assert out.strip().endswith("Org: package OK (3 runs checked (mlbench-1.0.0-smoke))")
    write_submission(tmp_path / "fast", [1, 1, 1])
    code, out, _ = run_cli("package", str(tmp_path / "fast"))
    assert code == 1 and "Org: error: results/sys/ncf: ncf (pytorch) at global batch 2048: RCP FAIL: converges faster" in out
    code, out, _ = run_cli("package", str(tmp_path / "fast"), "--rcp-bypass")
    assert code == 0 and "Org: warning: results/sys/ncf: ncf (pytorch) at global batch 2048: RCP NEEDS REVIEW" in out
    write_submission(tmp_path / "open", [1, 1, 1], overrides={"submission_division": "open"})
    open_system = tmp_path / "open" / "Org" / "systems" / "sys.json"
    open_system.write_text(open_system.read_text().replace('"closed"', '"open"'))
    code, out, _ = run_cli("package", str(tmp_path / "open"))
    assert "RCP" not in out, out  # as mlperf-logging: the open division has no RCP check
