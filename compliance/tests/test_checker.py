"""The checker: agreement with mlperf-logging on real v0.7 logs, and each rule it enforces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compliance.checker import check_log
from compliance.ruleset import available_rulesets, load_ruleset
from compliance.synth import breaking_override, drop_keys, write_log

from .conftest import FIXTURES, verdicts


def test_agreement_with_mlperf_logging_on_every_fixture_log():
    """`check --ruleset training-0.7.0` gives the verdict mlperf-logging 4.1.68 gave (verdicts.txt)."""
    disagreements = []
    for code, path in verdicts():
        result = check_log(str(FIXTURES / path), "training-0.7.0")
        if result.compliant != (code == 0):
            disagreements.append((path, code, [f.format(path) for f in result.errors[:3]]))
    assert disagreements == []
    assert len(verdicts()) == 200


def test_alibaba_logs_get_a_clear_reason():
    result = check_log(str(FIXTURES / "Alibaba/results/v100-256/result_1.txt"), "training-0.7.0")
    assert not result.compliant
    assert result.errors[0].format("x") == (
        "x:1: error: cache_clear: wanted a field time_ms: milliseconds since the epoch, a number >= 0; "
        "found time_s instead of time_ms")


def test_a_stitched_init_phase_is_a_warning_not_a_violation():
    """Intel's TF logs: init written by another script 4 days later; the timed region is fine."""
    result = check_log(str(FIXTURES / "Intel/results/1-node-8s-cpx-1-tensorflow/resnet/result_1.txt"))
    assert result.compliant and result.ruleset == "training-0.7.0"
    assert [f.key for f in result.warnings] == ["cache_clear"]
    assert "time never goes backwards" in result.warnings[0].wanted


def test_time_to_train_is_run_stop_minus_run_start():
    result = check_log(str(FIXTURES / "Inspur/results/nf5488_pytorch/dlrm/result_1.txt"))
    assert result.compliant and result.status == "success"
    assert result.time_to_train_minutes == pytest.approx((result.run_stop_ms - result.run_start_ms) / 60000)


@pytest.mark.parametrize("ruleset", available_rulesets())
def test_synthetic_logs_pass_and_broken_ones_fail_on_the_broken_key(tmp_path, ruleset):
    for name in load_ruleset(ruleset).benchmark_names:
        for division in ("closed", "open"):
            good = check_log(str(write_log(tmp_path / f"{name}-{division}.txt", ruleset, name, division)), ruleset)
            assert good.compliant and not good.findings, (name, division, good.findings[:3])
        overrides, key = breaking_override(ruleset, name)
        bad = check_log(str(write_log(tmp_path / f"{name}-bad.txt", ruleset, name, overrides=overrides)), ruleset)
        assert not bad.compliant and any(f.key.split()[0] == key for f in bad.errors), (name, bad.errors[:3])


@pytest.mark.parametrize("ruleset", available_rulesets())
def test_examples_beside_the_rule_files(ruleset):
    folder = Path(load_ruleset(ruleset).folder) / "examples"
    for path in sorted(folder.glob("*.pass.txt")):
        result = check_log(str(path))
        assert result.compliant and result.ruleset == ruleset, (path.name, result.findings[:3])
    for path in sorted(folder.glob("*.fail.txt")):
        expected = path.read_text().splitlines()[0].split("expect: ")[1].split()[0]
        result = check_log(str(path))
        assert not result.compliant and expected in {f.key.split()[0] for f in result.errors}, path.name
    assert len(list(folder.glob("*.txt"))) == 2 * len(load_ruleset(ruleset).benchmark_names)


def _events(path: Path) -> list[dict]:
    return [json.loads(line.split(":::MLLOG ", 1)[1]) for line in path.read_text().splitlines() if ":::MLLOG " in line]


def _write_events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(":::MLLOG " + json.dumps(e) + "\n" for e in events))
    return path


def _edited(tmp_path: Path, edit, ruleset="training-0.7.0", benchmark="resnet", **kwargs) -> Path:
    source = write_log(tmp_path / "source.txt", ruleset, benchmark, **kwargs)
    events = _events(source)
    edited = edit(events)
    return _write_events(tmp_path / "edited.txt", edited if edited is not None else events)


def _index(events, key, nth=0):
    return [i for i, e in enumerate(events) if e["key"] == key][nth]


def _errors(path, ruleset="training-0.7.0"):
    return [(f.key, f.wanted, f.found) for f in check_log(str(path), ruleset).errors]


def _warnings(path, ruleset="training-0.7.0"):
    return [(f.key, f.wanted, f.found) for f in check_log(str(path), ruleset).warnings]


def test_run_stop_status_must_be_valid(tmp_path):
    """An error in this suite's rulesets; mlperf-logging only asks that a status is there."""
    def edit(events):
        events[_index(events, "run_stop")]["metadata"]["status"] = "done"
    finding = ("run_stop metadata.status", "one of 'success', 'aborted'", "'done'")
    assert finding in _errors(_edited(tmp_path, edit, "mlbench-1.0.0", "ncf"), "mlbench-1.0.0")
    assert finding in _warnings(_edited(tmp_path, edit))


def test_an_aborted_run_is_a_valid_log_that_did_not_reach_the_target(tmp_path):
    result = check_log(str(write_log(tmp_path / "a.txt", "mlbench-1.0.0", "ncf", reach_target=False)))
    assert result.status == "aborted" and not result.target_reached
    assert [f.key for f in result.errors] == ["eval_accuracy"]


def _late_target(events):  # the target is only reached in an eval written after run_stop
    stop = _index(events, "run_stop")
    late = dict(events[_index(events, "eval_accuracy", -1)], time_ms=events[stop]["time_ms"])
    events[_index(events, "eval_accuracy", -1)]["value"] = 0.5
    events.insert(stop + 1, late)


def test_nothing_after_run_stop_counts_in_this_suites_rulesets(tmp_path):
    result = check_log(str(_edited(tmp_path, _late_target, "mlbench-1.0.0", "resnet")), "mlbench-1.0.0")
    assert not result.compliant
    assert ("eval_accuracy", "no event after run_stop", "one (ignored)") in [
        (f.key, f.wanted, f.found) for f in result.warnings]
    assert any(f.key == "eval_accuracy" and "before run_stop" in f.wanted for f in result.errors)


def test_training_070_reads_the_whole_log_as_mlperf_logging_does(tmp_path):
    """mlperf-logging counts every line of the file: so does training-0.7.0, and says so."""
    result = check_log(str(_edited(tmp_path, _late_target)), "training-0.7.0")
    assert result.compliant and result.target_reached
    assert ("eval_accuracy", "no event after run_stop", "one (counted, as mlperf-logging reads the whole log)") in [
        (f.key, f.wanted, f.found) for f in result.warnings]
    assert any(f.key == "eval_accuracy" and "reached only by evaluations written or timed after run_stop" in f.found
               for f in result.warnings)


def test_run_stop_is_the_last_timed_event(tmp_path):
    def edit(events):
        events.append(dict(events[_index(events, "cache_clear")], time_ms=events[-1]["time_ms"] + 5))
    assert any("no event timed after run_stop" in wanted for _, wanted, _ in _errors(
        _edited(tmp_path, edit, "mlbench-1.0.0", "ncf"), "mlbench-1.0.0"))
    assert any("no event timed after run_stop" in wanted for _, wanted, _ in _warnings(_edited(tmp_path, edit)))


def test_closing_open_intervals_after_run_stop_is_bookkeeping(tmp_path):
    def edit(events):  # as the v0.7 DLRM logs do: stop the clock inside the epoch, then close it
        stop = events.pop(_index(events, "run_stop"))
        last_block_stop, last_epoch_stop = _index(events, "block_stop", -1), _index(events, "epoch_stop", -1)
        closing = [events[last_epoch_stop], events[last_block_stop]]
        for index in sorted((last_epoch_stop, last_block_stop), reverse=True):
            del events[index]
        events.append(stop)
        events.extend(dict(e, time_ms=stop["time_ms"] + 1) for e in closing)
    assert check_log(str(_edited(tmp_path, edit)), "training-0.7.0").compliant


def test_time_going_backwards(tmp_path):
    def edit(events):
        events[_index(events, "epoch_stop", 1)]["time_ms"] = events[_index(events, "run_start")]["time_ms"] - 10
    errors = _errors(_edited(tmp_path, edit, "mlbench-1.0.0", "ncf"), "mlbench-1.0.0")
    assert any(key == "epoch_stop" and "time never goes backwards" in wanted for key, wanted, _ in errors)
    # File order is not time order in MLPerf's rules: what counts is run_stop - run_start.
    v07 = check_log(str(_edited(tmp_path, edit)), "training-0.7.0")
    assert v07.compliant and any("time never goes backwards" in f.wanted for f in v07.warnings)

    def init_edit(events):  # before run_start: a warning in training-0.7.0, an error in mlbench-1.0.0
        events[_index(events, "seed")]["time_ms"] -= 100
    v07 = check_log(str(_edited(tmp_path, init_edit)), "training-0.7.0")
    assert v07.compliant and v07.warnings[0].key == "seed"
    assert not check_log(str(_edited(tmp_path, init_edit, "mlbench-1.0.0", "ncf")), "mlbench-1.0.0").compliant


def test_intervals_pair_up(tmp_path):
    def stop_without_start(events):
        del events[_index(events, "epoch_start", 2)]
    finding = ("epoch_stop", "a epoch_start before it", "no open epoch interval")
    assert finding in _errors(_edited(tmp_path, stop_without_start, "mlbench-1.0.0", "ncf"), "mlbench-1.0.0")
    assert finding in _warnings(_edited(tmp_path, stop_without_start))

    def nested(events):
        start = _index(events, "eval_start")
        events.insert(start + 1, events[start])
    assert ("eval_start", "eval_stop before the next eval_start", "a eval interval still open") in _errors(
        _edited(tmp_path, nested, "mlbench-1.0.0", "ncf"), "mlbench-1.0.0")


def test_event_type_must_be_valid_and_match_the_key(tmp_path):
    def invalid(events):
        events[_index(events, "seed")]["event_type"] = "POINT"
    finding = ("seed", "event_type INTERVAL_START, INTERVAL_END or POINT_IN_TIME", "event_type 'POINT'")
    assert finding in _errors(_edited(tmp_path, invalid, "mlbench-1.0.0", "ncf"), "mlbench-1.0.0")
    assert finding in _warnings(_edited(tmp_path, invalid))  # mlperf-logging never reads event_type

    def mismatch(events):
        events[_index(events, "epoch_start")]["event_type"] = "POINT_IN_TIME"
    v07 = check_log(str(_edited(tmp_path, mismatch)), "training-0.7.0")
    assert v07.compliant and v07.warnings[0].wanted == "event_type INTERVAL_START"  # as Fujitsu's logs do
    assert not check_log(str(_edited(tmp_path, mismatch, "mlbench-1.0.0", "ncf")), "mlbench-1.0.0").compliant


def test_order_and_the_20_minute_init_rule(tmp_path):
    def late_init_start(events):
        events.insert(_index(events, "run_start") + 1, dict(events[_index(events, "init_start")]))
        events[_index(events, "init_start", 1)]["time_ms"] = events[_index(events, "run_start")]["time_ms"]
    errors = _errors(_edited(tmp_path, late_init_start))
    assert any(key == "init_start" and wanted == "before init_stop" and found.startswith("after it (init_stop at line")
               for key, wanted, found in errors)

    def slow_init(events):
        for event in events[_index(events, "init_stop"):]:
            event["time_ms"] += 21 * 60_000
    assert any(key == "init_stop" and "less than 20 minutes" in wanted for key, wanted, _ in _errors(
        _edited(tmp_path, slow_init)))


def test_exactly_one_same_value_is_a_warning_different_values_an_error(tmp_path):
    def same(events):
        events.insert(_index(events, "train_samples"), dict(events[_index(events, "train_samples")]))
    result = check_log(str(_edited(tmp_path, same)), "training-0.7.0")
    assert result.compliant and result.warnings[0].found == "2, all with value 1281167"

    def different(events):
        events.insert(_index(events, "train_samples"), dict(events[_index(events, "train_samples")], value=5))
    assert ("train_samples", "exactly one occurrence", "2 with different values (5, 1281167)") in _errors(
        _edited(tmp_path, different))


def test_the_optimizer_picks_the_variant(tmp_path):
    lars = write_log(tmp_path / "lars.txt", "training-0.7.0", "resnet", variant="lars")
    assert check_log(str(lars), "training-0.7.0").compliant
    wrong = write_log(tmp_path / "wrong.txt", "training-0.7.0", "resnet", variant="lars",
                      overrides={"opt_name": "sgd"})  # lars keys logged, sgd chosen
    keys = {key for key, _, _ in _errors(wrong)}
    assert {"sgd_opt_base_learning_rate", "model_bn_span"} <= keys and not any(k.startswith("lars") for k in keys)


def test_closed_hyperparameters_and_open_freedom(tmp_path):
    bad = {"sgd_opt_end_learning_rate": 0.001, "sgd_opt_weight_decay": 0.0003}
    closed = write_log(tmp_path / "c.txt", "training-0.7.0", "resnet", overrides=bad)
    assert {(k, w) for k, w, _ in _errors(closed)} == {
        ("sgd_opt_end_learning_rate", "0.0001"), ("sgd_opt_weight_decay", "0.0001 * 2^N for an integer N")}
    assert check_log(str(write_log(tmp_path / "o.txt", "training-0.7.0", "resnet", "open", overrides=bad))).compliant


def test_missing_key_and_missing_metadata(tmp_path):
    errors = _errors(write_log(tmp_path / "m.txt", "training-0.7.0", "ssd", overrides=drop_keys("max_samples")))
    assert errors == [("max_samples", "exactly one occurrence", "none")]

    def no_epoch_num(events):
        del events[_index(events, "eval_accuracy")]["metadata"]["epoch_num"]
    assert ("eval_accuracy metadata.epoch_num", "a metadata field epoch_num", "none") in _errors(
        _edited(tmp_path, no_epoch_num))


def test_maskrcnn_quality_is_an_object(tmp_path):
    def flat(events):
        for event in events:
            if event["key"] == "eval_accuracy":
                event["value"] = 0.5
    errors = _errors(_edited(tmp_path, flat, benchmark="maskrcnn"))
    assert ("eval_accuracy", "an object with BBOX, SEGM", "0.5") in errors


def test_wer_target_is_lower_is_better(tmp_path):
    good = write_log(tmp_path / "ds2.txt", "mlbench-1.0.0", "deepspeech2")
    assert check_log(str(good)).compliant
    values = [e["value"] for e in _events(good) if e["key"] == "eval_accuracy"]
    assert values == sorted(values, reverse=True) and values[-1] == 0.23


def test_eval_schedule(tmp_path):
    def sparse(events):  # drop every other evaluation: a gap of 8 epochs
        for index in reversed([i for i, e in enumerate(events) if e["key"] == "eval_accuracy"][1:-1:2]):
            del events[index]
    v07 = check_log(str(_edited(tmp_path, sparse, epochs=16)), "training-0.7.0")
    assert v07.compliant and any("at least every 4 epochs" in f.wanted for f in v07.warnings)
    ml = check_log(str(_edited(tmp_path, sparse, "mlbench-1.0.0", "resnet", epochs=16)), "mlbench-1.0.0")
    assert any("at least every 4 epochs" in f.wanted for f in ml.errors)


def test_ruleset_comes_from_the_log_or_the_benchmark(tmp_path):
    smoke = check_log(str(write_log(tmp_path / "s.txt", "mlbench-1.0.0-smoke", "resnet")))
    assert smoke.ruleset == "mlbench-1.0.0-smoke" and smoke.compliant
    assert "submission_ruleset" in smoke.ruleset_reason
    full = check_log(str(tmp_path / "s.txt"), "mlbench-1.0.0")  # the smoke quality is not the full target
    assert not full.compliant and {f.key for f in full.errors} == {"eval_accuracy"}
    assert [f.key for f in full.warnings] == ["submission_ruleset"]

    def unnamed(events):
        return [e for e in events if e["key"] != "submission_ruleset"]
    ncf = check_log(str(_edited(tmp_path, unnamed, "mlbench-1.0.0", "ncf")))
    assert ncf.ruleset == "mlbench-1.0.0" and "only in mlbench-1.0.0" in ncf.ruleset_reason and ncf.compliant


def test_unknown_benchmark(tmp_path):
    def edit(events):
        events[_index(events, "submission_benchmark")]["value"] = "rnnt"
    errors = _errors(_edited(tmp_path, edit))
    assert errors[0][0] == "submission_benchmark" and "one of resnet, ssd" in errors[0][1]


def test_findings_are_capped_but_counted(tmp_path):
    path = tmp_path / "junk.txt"
    path.write_text(":::MLLOG {not json}\n" * 500)
    result = check_log(str(path))
    assert sum(f.key == "(line)" for f in result.findings) == 20  # MAX_FINDINGS_PER_KIND
    assert result.suppressed[("error", "(line)")] == 480 and result.error_count > 500


def test_the_fast_decoder_changes_no_finding(tmp_path, monkeypatch):
    """msgspec's typed decoder is a shortcut: with orjson alone (msgspec not installed) every
    fixture log, hand-written log and hostile edit gets the same findings."""
    from compliance import checker

    from . import handwritten as hw
    from .test_policies import CASES as POLICY_CASES

    paths = [FIXTURES / path for _, path in verdicts()] + sorted(hw.HANDWRITTEN.glob("*.txt"))
    for name, (edit, _, _) in POLICY_CASES.items():
        paths.append(hw.write(tmp_path / f"{name}.txt", edit(hw.lines("resnet"))))

    def findings():
        return [(str(path), ruleset, [f.format("log") for f in check_log(str(path), ruleset).findings])
                for path in paths for ruleset in ("training-0.7.0", "mlbench-1.0.0")
                if ruleset == "training-0.7.0" or FIXTURES not in path.parents]

    with_msgspec = findings()
    monkeypatch.setattr(checker, "_TYPED", checker._typed_by_orjson)
    monkeypatch.setattr(checker, "_TYPED_FIELDS", tuple)
    assert findings() == with_msgspec


def test_a_run_that_says_aborted_is_not_scored_even_when_it_reached_the_target(tmp_path):
    """README, deliberate differences: mlperf-logging's summarizer would score this run."""
    from . import handwritten as hw

    path = hw.write(tmp_path / "result_0.txt", hw.set_meta("run_stop", "status", "aborted")(hw.lines("resnet")))
    for ruleset in ("mlbench-1.0.0", "training-0.7.0"):
        result = check_log(str(path), ruleset)
        assert result.compliant and result.target_reached and not result.successful
        assert any("status success once the target is reached" in f.wanted for f in result.warnings)
