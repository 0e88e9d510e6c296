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
        assert ours[key] == pytest.approx(score, abs=0.01), key
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
    scores = {(row["system_folder"], b): row[b] for row in rows for b in ("resnet", "ssd", "maskrcnn", "transformer")}
    assert sum(1 for value in scores.values() if value) == 10  # every benchmark folder scored
    assert all(math.isfinite(float(v)) for v in scores.values() if v)
    assert "DellEMC" in out and "154.04" in out  # C4140 resnet


def test_misplaced_and_unscorable_trees_say_why(tmp_path):
    code, out, _ = run_cli("summarize", str(FIXTURES / "Alibaba"), "--ruleset", "training-0.7.0",
                           "--out", str(tmp_path / "s"), "--no-plots")
    assert code == 1
    assert "result file outside results/<system>/<benchmark>/, not scored" in out
    assert "nothing to score" in out
