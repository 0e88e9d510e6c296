"""The command line: subcommands, exit codes, one-line usage errors, JSON output."""

from __future__ import annotations

import json

from compliance.synth import write_log

from .conftest import FIXTURES, run_cli


def test_check_exit_codes(tmp_path):
    good = write_log(tmp_path / "result_1.txt", "training-0.7.0", "resnet")
    bad = write_log(tmp_path / "result_2.txt", "training-0.7.0", "resnet", overrides={"sgd_opt_end_learning_rate": 1})
    assert run_cli("check", str(good))[0] == 0
    code, out, _ = run_cli("check", str(bad))
    assert code == 1
    assert out.splitlines()[0] == (f"{bad}:11: error: sgd_opt_end_learning_rate: wanted 0.0001; found 1")
    assert run_cli("check", str(good), str(bad))[0] == 1
    assert run_cli("check", str(good), str(tmp_path / "missing.txt"))[0] == 2


def test_check_a_folder(tmp_path):
    for index in range(3):
        write_log(tmp_path / "logs" / f"result_{index}.txt", "mlbench-1.0.0", "ncf", seed=index)
    (tmp_path / "logs" / "notes.md").write_text("not a log")
    code, out, _ = run_cli("check", str(tmp_path / "logs"), "--quiet")
    assert code == 0 and out.splitlines()[-1] == "3 of 3 logs compliant"
    assert [line.split(": ")[1] for line in out.splitlines()[:3]] == ["compliant (mlbench-1.0.0 ncf closed)"] * 3


def test_check_the_fixture_tree_matches_verdicts():
    code, out, _ = run_cli("check", str(FIXTURES), "--ruleset", "training-0.7.0", "--quiet")
    assert code == 1 and out.splitlines()[-1] == "185 of 200 logs compliant"


def test_json_report(tmp_path):
    good = write_log(tmp_path / "result_1.txt", "mlbench-1.0.0-smoke", "resnet")
    code, out, _ = run_cli("check", "--json", str(good))
    report = json.loads(out)
    assert code == 0 and report["exit_code"] == 0
    result = report["results"][0]
    assert (result["compliant"], result["ruleset"], result["benchmark"], result["division"]) == (
        True, "mlbench-1.0.0-smoke", "resnet", "closed")
    assert result["ruleset_reason"] == "from the log's submission_ruleset"
    assert result["time_to_train_minutes"] > 0 and result["findings"] == []


def test_usage_errors_are_one_line(tmp_path):
    for argv in ([], ["check"], ["frobnicate"], ["check", "x", "--ruleset", "training-9"], ["check", "--bogus", "x"],
                 ["summarize", str(tmp_path), "--confidence", "2"], ["rules", "nope"]):
        code, out, err = run_cli(*argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (argv, err)
        assert "Traceback" not in err


def test_help_is_exit_code_zero():
    code, out, _ = run_cli("--help")
    assert code == 0 and "check" in out and "summarize" in out and "package" in out


def test_rules_validate():
    code, out, _ = run_cli("rules", "--validate")
    assert code == 0 and out.splitlines() == [
        "mlbench-1.0.0: valid (8 benchmarks, rule files in mlbench-1.0.0/)",
        "mlbench-1.0.0-smoke: valid (8 benchmarks, rule files in mlbench-1.0.0-smoke/)",
        "training-0.7.0: valid (8 benchmarks, rule files in training-0.7.0/)"]


def test_rules_subcommand_prints_markdown():
    code, out, _ = run_cli("rules", "mlbench-1.0.0")
    assert code == 0 and out.startswith("### `mlbench-1.0.0`")
    assert "| deepspeech2 | wer | 0.23 | lower | 10 |" in out


def test_two_run_stop_events(tmp_path):
    """Exactly one run_stop: an error for a log of this suite (it names its ruleset, as the harness
    writes it); a warning in training-0.7.0, as mlperf-logging 4.1.68 says (the same null value twice)."""
    from . import handwritten as hw

    log = hw.lines("resnet")
    stop = hw.index(log, "run_stop")
    path = hw.write(tmp_path / "result_0.txt", log[:stop + 1] + [log[stop]] + log[stop + 1:])
    code, out, _ = run_cli("check", str(path))
    assert code == 1 and "error: run_stop: wanted exactly one occurrence; found 2, all with value null" in out
    code, out, _ = run_cli("check", str(path), "--ruleset", "training-0.7.0")
    assert code == 0 and "warning: run_stop: wanted exactly one occurrence; found 2" in out
