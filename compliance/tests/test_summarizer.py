"""summarize: the scores of mlperf-logging's summarizer, variance, the plots, a full DellEMC table."""

from __future__ import annotations

import csv
import json
import math

import pytest

from compliance.summarizer import coefficient_of_variation, olympic_score, runs_needed

from .conftest import FIXTURES, run_cli


def test_olympic_score():
    assert olympic_score([5, 1, 3, 4, 2], failed=0) == 3.0  # drop 1 and 5
    assert olympic_score([1, 2, 3, 4], failed=1) == 3.0  # the failure is the dropped slowest: drop 1 only
    assert olympic_score([1, 2, 3], failed=2) is None  # more than one failure fails the benchmark
    assert olympic_score([], failed=0) is None
    assert olympic_score([2, 4], failed=0) is None  # nothing left between fastest and slowest


def test_variance_and_runs_needed():
    assert coefficient_of_variation([10.0]) is None
    assert coefficient_of_variation([9.0, 10.0, 11.0]) == pytest.approx(0.1)
    # z(0.95) = 1.96: (1.96 * 0.1 / 0.05)^2 = 15.4 -> 16 runs
    assert runs_needed(0.1, 0.95, 0.05) == 16
    assert runs_needed(0.001) == 1 and runs_needed(None) is None


def _expected(org: str) -> dict[tuple[str, str], float]:
    """{(system json name, benchmark): score} from mlperf-logging's summarizer CSV."""
    scores = {}
    with open(FIXTURES / "expected_scores" / f"{org}.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            system = row["details_url"].rsplit("/", 1)[1].removesuffix(".json")
            for benchmark in ("bert", "dlrm", "gnmt", "maskrcnn", "minigo", "resnet", "ssd", "transformer"):
                if row[benchmark]:
                    scores[(system, benchmark)] = float(row[benchmark])
    return scores


@pytest.mark.parametrize("org", ["Fujitsu", "Inspur", "Intel"])
def test_scores_match_mlperf_loggings_summarizer(tmp_path, org):
    out_dir = tmp_path / "summary"
    code, out, err = run_cli("summarize", str(FIXTURES / org), "--ruleset", "training-0.7.0", "--out", str(out_dir))
    assert code == 0, out + err
    document = json.loads((out_dir / "summary.json").read_text())
    ours = {(s["system_folder"], b["benchmark"]): b["score_minutes"] for s in document["systems"] for b in s["benchmarks"]}
    expected = _expected(org)
    assert set(ours) == set(expected)
    for key, score in expected.items():
        # The same arithmetic on the same integers ((run_stop - run_start) / 60000, a mean of 3 to
        # 8 of them): the two differ only in float rounding, ~1e-15 relative. 1e-12 allows the
        # summation order and the division's order, nothing else.
        assert ours[key] == pytest.approx(score, rel=1e-12), key
    plots = sorted(p.name for p in (out_dir / "plots").iterdir())
    assert len(plots) == len(expected) and all(name.endswith(".png") for name in plots)
    assert all((out_dir / "plots" / name).stat().st_size > 10_000 for name in plots)
    assert document["signature"].startswith("mlbench compliance summarize") and "training-0.7.0" in document["signature"]
    for system in document["systems"]:
        for bench in system["benchmarks"]:
            assert bench["coefficient_of_variation"] is not None and bench["runs_needed"] >= 1


def test_dellemc_gets_a_full_table(tmp_path):
    """mlperf-logging's summarizer crashes on DellEMC ('number of nodes'): we read it and say so."""
    out_dir = tmp_path / "summary"
    code, out, _ = run_cli("summarize", str(FIXTURES / "DellEMC"), "--ruleset", "training-0.7.0", "--out", str(out_dir),
                           "--no-plots")
    assert code == 0
    with open(out_dir / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    for row in rows:
        for column in ("division", "availability", "submitter", "system", "number_of_nodes",
                       "host_processor_model_name", "host_processors_count", "accelerator_model_name",
                       "accelerators_count", "framework"):
            assert row[column] not in ("", None), (row["system_folder"], column)
        assert "'number_of_nodes' read from 'number of nodes'" in row["notes"]
    scores = {(row["system_folder"], b): float(row[b]) for row in rows for b in ("resnet", "ssd", "maskrcnn", "transformer")
              if row[b]}
    # Derived here from the logs' run_start and run_stop lines, independently of the checker:
    # mlperf-logging accepts every DellEMC log (verdicts.txt), so each folder's score is the mean
    # of its times to train without the fastest and the slowest.
    by_hand = {}
    for folder in sorted((FIXTURES / "DellEMC" / "results").glob("*/*")):
        minutes = sorted(_minutes_by_hand(path) for path in folder.glob("result_*.txt"))
        by_hand[(folder.parent.name, folder.name)] = math.fsum(minutes[1:-1]) / len(minutes[1:-1])
    assert set(scores) == set(by_hand) and len(by_hand) == 10
    for key, score in by_hand.items():
        assert scores[key] == pytest.approx(score, rel=1e-12), key  # float rounding only (see above)
    assert "DellEMC" in out and f"{by_hand[('C4140', 'resnet')]:.2f}" in out


def _minutes_by_hand(path) -> float:
    """(run_stop - run_start) / 60000 from the log's lines, read with json alone."""
    times = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if ":::MLLOG " in line:
            event = json.loads(line.rsplit(":::MLLOG ", 1)[1])
            if event["key"] in ("run_start", "run_stop") and event["key"] not in times:
                times[event["key"]] = event["time_ms"]
    return (times["run_stop"] - times["run_start"]) / 60000


def test_misplaced_and_unscorable_trees_say_why(tmp_path):
    code, out, _ = run_cli("summarize", str(FIXTURES / "Alibaba"), "--ruleset", "training-0.7.0",
                           "--out", str(tmp_path / "s"), "--no-plots")
    assert code == 1
    assert "result file outside results/<system>/<benchmark>/, not scored" in out
    assert "nothing to score" in out
