"""The run lifecycle writes a complete, ordered, compliant log and keeps the run's clock."""

from __future__ import annotations

import dataclasses
import json

import pytest

from compliance.__main__ import main as compliance_main
from harness.config import load_config
from harness.errors import ConfigError
from harness.lifecycle import TrainingRun
from recommendation.config import Config, hyperparameters


def _config(tmp_path, *overrides):
    return load_config(Config, None, [f"run.out_dir={tmp_path}", "ruleset=mlbench-1.0.0-smoke",
                                      "model.factors=8", "model.mlp_layer_sizes=[16, 8]", *overrides])


def _simulate(cfg, accuracies, max_epochs, eval_every_epochs=2):
    run = TrainingRun(cfg, benchmark="ncf", eval_every_epochs=eval_every_epochs)
    run.init_start()
    run.log_hyperparameters(hyperparameters(cfg), global_batch_size=256, train_samples=1000, eval_samples=100)
    run.start()
    curve = iter(accuracies)
    for epoch in run.epochs(max_epochs):
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                value = next(curve)
            if run.record_eval(value, epoch):
                break
    return run.stop()


def _keys(path):
    return [json.loads(line[len(":::MLLOG "):])["key"] for line in path.read_text().splitlines()]


def test_a_run_that_reaches_the_target(tmp_path):
    cfg = _config(tmp_path)
    result = _simulate(cfg, [0.2, 0.45, 0.7, 0.9], max_epochs=10)
    assert result.status == "success" and result.epochs == 6 and result.quality == 0.7
    assert result.eval_history == ((2, 0.2), (4, 0.45), (6, 0.7))
    keys = _keys(tmp_path / "mllog.txt")
    assert keys[:4] == ["cache_clear", "init_start", "submission_benchmark", "submission_org"]
    assert keys.index("seed") < keys.index("opt_name") < keys.index("global_batch_size") \
        < keys.index("init_stop") < keys.index("run_start") < keys.index("block_start")
    assert keys[-1] == "run_stop" and keys.count("block_start") == keys.count("block_stop") == 3
    assert keys.count("epoch_start") == keys.count("epoch_stop") == 6
    records = [json.loads(line[9:]) for line in (tmp_path / "mllog.txt").read_text().splitlines()]
    start = next(r for r in records if r["key"] == "run_start")["time_ms"]
    stop = next(r for r in records if r["key"] == "run_stop")
    assert result.time_to_train_s == (stop["time_ms"] - start) / 1000
    assert stop["metadata"]["status"] == "success"
    blocks = [r["metadata"] for r in records if r["key"] == "block_start"]
    assert blocks == [{"file": blocks[0]["file"], "lineno": blocks[0]["lineno"], "first_epoch_num": n,
                       "epoch_count": 2} for n in (1, 3, 5)]


def test_the_log_passes_the_checker(tmp_path, capsys):
    result = _simulate(_config(tmp_path), [0.2, 0.45, 0.7], max_epochs=10, eval_every_epochs=1)
    assert result.status == "success" and result.epochs == 3
    assert compliance_main(["check", str(tmp_path / "mllog.txt"), "--ruleset", "mlbench-1.0.0-smoke"]) == 0
    # the ncf rules evaluate every epoch: a log with an eval every 2 epochs is refused
    _simulate(_config(tmp_path / "sparse"), [0.2, 0.7], max_epochs=10, eval_every_epochs=2)
    assert compliance_main(["check", str(tmp_path / "sparse" / "mllog.txt"), "--ruleset", "mlbench-1.0.0-smoke"]) == 1
    assert "wanted an evaluation at least every 1 epochs" in capsys.readouterr().out


def test_a_run_that_runs_out_of_epochs_is_aborted(tmp_path):
    result = _simulate(_config(tmp_path), [0.1, 0.2, 0.3], max_epochs=5)
    assert result.status == "aborted" and result.epochs == 5
    text = (tmp_path / "mllog.txt").read_text()
    assert '"status": "aborted"' in text and text.count('"key": "block_start"') == 3


def test_closed_division_refuses_a_value_the_rules_forbid(tmp_path):
    cfg = load_config(Config, None, [f"run.out_dir={tmp_path}", "optimizer.name=sgd"])
    run = TrainingRun(cfg, benchmark="ncf")
    run.init_start()
    with pytest.raises(ConfigError, match="opt_name"):
        run.log_hyperparameters(hyperparameters(cfg), global_batch_size=2**20, train_samples=1, eval_samples=1)
    open_division = dataclasses.replace(cfg, submission=dataclasses.replace(cfg.submission, division="open"))
    run = TrainingRun(open_division, benchmark="ncf")
    run.init_start()
    run.log_hyperparameters(hyperparameters(open_division), global_batch_size=2**20, train_samples=1, eval_samples=1)


def test_an_existing_log_is_kept_not_overwritten(tmp_path):
    (tmp_path / "mllog.txt").write_text("a user's earlier log\n")
    _simulate(_config(tmp_path), [0.9], max_epochs=2)
    assert (tmp_path / "mllog.txt.previous-1").read_text() == "a user's earlier log\n"
    assert _keys(tmp_path / "mllog.txt")[-1] == "run_stop"


def test_an_explicit_eval_schedule_shapes_the_blocks(tmp_path):
    """SSD evaluates at listed epochs (40, 50, 55, ...): blocks end at each evaluation."""
    cfg = _config(tmp_path, "run.stop_at_target=false")
    run = TrainingRun(cfg, benchmark="ncf", eval_due=lambda epoch: epoch in (3, 5, 6))
    run.init_start()
    run.log_hyperparameters(hyperparameters(cfg), global_batch_size=256, train_samples=1000, eval_samples=100)
    run.start()
    evaluated = []
    for epoch in run.epochs(8):
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                evaluated.append(epoch)
            run.record_eval(0.1, epoch)
    run.stop()
    assert evaluated == [3, 5, 6]
    records = [json.loads(line[9:]) for line in (tmp_path / "mllog.txt").read_text().splitlines()]
    blocks = [(r["metadata"]["first_epoch_num"], r["metadata"]["epoch_count"]) for r in records if r["key"] == "block_start"]
    assert blocks == [(1, 3), (4, 2), (6, 1), (7, 2)]


def test_a_benchmarks_own_event_names_the_callers_line(tmp_path):
    """TrainingRun.event: a point event the benchmark logs itself (minigo's games per generation),
    with the file and line of the call, not of the lifecycle."""
    cfg = _config(tmp_path)
    run = TrainingRun(cfg, benchmark="ncf")
    run.init_start()
    run.log_hyperparameters(hyperparameters(cfg), global_batch_size=256, train_samples=1000, eval_samples=100)
    run.start()
    for epoch in run.epochs(1):
        run.event("actual_selfplay_games_per_generation", 64, {"epoch_num": epoch})  # the line checked below
        line = __import__("inspect").currentframe().f_lineno - 1
    run.stop()
    records = [json.loads(text[9:]) for text in (tmp_path / "mllog.txt").read_text().splitlines()]
    event = next(r for r in records if r["key"] == "actual_selfplay_games_per_generation")
    assert event["value"] == 64 and event["event_type"] == "POINT_IN_TIME"
    assert event["metadata"]["epoch_num"] == 1 and event["metadata"]["lineno"] == line
    assert event["metadata"]["file"].endswith("test_lifecycle.py")
