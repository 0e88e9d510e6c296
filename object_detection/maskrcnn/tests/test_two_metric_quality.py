"""The harness's run lifecycle with Mask R-CNN's two-component quality: eval_accuracy is logged as
{"BBOX": .., "SEGM": ..} (the v0.7 submissions' form), the run stops only when both components reach
their targets, and the log passes our checker and is scored by it (harness/lifecycle.py)."""

from __future__ import annotations

import json

from compliance.__main__ import main as compliance_main
from compliance.spec import benchmark_spec
from harness.config import load_config
from harness.lifecycle import TrainingRun
from object_detection.maskrcnn.config import Config, hyperparameters


def simulate(tmp_path, curve: list[dict], max_epochs: int):
    cfg = load_config(Config, "object_detection/maskrcnn/configs/smoke.yaml", [f"run.out_dir={tmp_path}"])
    run = TrainingRun(cfg, benchmark="maskrcnn")
    run.init_start()
    run.log_hyperparameters(hyperparameters(cfg, 4), global_batch_size=4, train_samples=200, eval_samples=50)
    run.start()
    values = iter(curve)
    for epoch in run.epochs(max_epochs):
        with run.evaluation(epoch):
            value = next(values)
        if run.record_eval(value, epoch):
            break
    return run.stop()


def test_both_components_must_reach_their_targets(tmp_path):
    # the smoke targets: every component at least its own (the box AP alone is not enough)
    wanted = benchmark_spec("mlbench-1.0.0-smoke", "maskrcnn").quality_targets
    low = {name: target / 2 for name, target in wanted.items()}
    box_only = {"BBOX": wanted["BBOX"] * 2, "SEGM": wanted["SEGM"] / 2}
    both = {name: target * 1.5 for name, target in wanted.items()}
    result = simulate(tmp_path, [low, box_only, both, both], max_epochs=6)
    assert result.status == "success" and result.epochs == 3 and result.quality == both
    assert result.quality_target == wanted
    assert result.describe_quality().startswith("BBOX ")
    records = [json.loads(line[len(":::MLLOG "):]) for line in (tmp_path / "mllog.txt").read_text().splitlines()]
    assert [r["value"] for r in records if r["key"] == "eval_accuracy"] == [low, box_only, both]
    assert compliance_main(["check", str(tmp_path / "mllog.txt"), "--ruleset", "mlbench-1.0.0-smoke"]) == 0


def test_a_run_with_one_component_short_is_aborted(tmp_path):
    wanted = benchmark_spec("mlbench-1.0.0-smoke", "maskrcnn").quality_targets
    short = {"BBOX": wanted["BBOX"] * 2, "SEGM": wanted["SEGM"] * 0.9}
    result = simulate(tmp_path, [short] * 3, max_epochs=3)
    assert result.status == "aborted" and result.epochs == 3
    assert compliance_main(["check", str(tmp_path / "mllog.txt"), "--ruleset", "mlbench-1.0.0-smoke"]) == 1
