"""Cross-checks with mlperf-logging 4.1.68 itself (skipped where it is not installed).

- On synthetic training-0.7.0 logs and single mutations of them, both checkers agree; each test
  names what mlperf-logging does (a verdict, or a crash, which is no verdict: then this checker
  rejects the log and the test says that mlperf-logging crashes);
- where this checker is stricter on purpose, the test says so (README: "Deliberate differences");
- logs of this suite (synth and the harness lifecycle) pass mlperf-logging's checker too, apart
  from the quality target of smoke runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compliance.checker import check_log
from compliance.ruleset import load_ruleset
from compliance.synth import breaking_override, drop_keys, write_log

from .conftest import mlperf_logging_outcome, mlperf_logging_verdict

pytest.importorskip("mlperf_logging")

BENCHMARKS = load_ruleset("training-0.7.0").benchmark_names
# mutation -> (overrides, what mlperf-logging does with the log)
GENERIC_MUTATIONS = {
    "no run_start": (drop_keys("run_start"), "fail"),
    "no init_stop": (drop_keys("init_stop"), "fail"),
    "no cache_clear": (drop_keys("cache_clear"), "fail"),
    "no submission_org": (drop_keys("submission_org"), "fail"),
    "empty submission_org": ({"submission_org": ""}, "fail"),
    # it enqueues training_0.7.0/semi_common.yaml, which does not exist, and opens it anyway
    "unknown division": ({"submission_division": "semi"}, "crash: FileNotFoundError"),
    "unknown status": ({"submission_status": "soon"}, "fail"),
    "no train_samples": (drop_keys("train_samples"), "fail"),
    "no eval_accuracy": (drop_keys("eval_accuracy"), "fail"),
}
# The broken log breaking_override writes per benchmark: its closed-division rule file's first
# value rule, or for BERT (no value rules) its first key dropped: global_batch_size, which
# closed_bert.yaml's target check reads (`s['global_batch_size']`): mlperf-logging crashes.
BROKEN_OUTCOME = {name: "fail" for name in BENCHMARKS} | {"bert": "crash: KeyError"}


def _both(path: Path, ruleset="training-0.7.0") -> tuple[bool, bool]:
    return check_log(str(path), ruleset).compliant, mlperf_logging_verdict(path)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_agreement_on_synthetic_logs(tmp_path, name):
    for division in ("closed", "open"):
        assert _both(write_log(tmp_path / f"{division}.txt", "training-0.7.0", name, division)) == (True, True)
    overrides, key = breaking_override("training-0.7.0", name)
    broken = write_log(tmp_path / "broken.txt", "training-0.7.0", name, overrides=overrides)
    assert not check_log(str(broken), "training-0.7.0").compliant, key
    assert mlperf_logging_outcome(broken) == BROKEN_OUTCOME[name], key
    assert _both(write_log(tmp_path / "short.txt", "training-0.7.0", name, reach_target=False)) == (False, False)


@pytest.mark.parametrize("mutation", sorted(GENERIC_MUTATIONS))
def test_agreement_on_mutations(tmp_path, mutation):
    overrides, theirs = GENERIC_MUTATIONS[mutation]
    path = write_log(tmp_path / "m.txt", "training-0.7.0", "resnet", overrides=overrides)
    assert not check_log(str(path), "training-0.7.0").compliant
    assert mlperf_logging_outcome(path) == theirs


def _rewrite(path: Path, change) -> Path:
    lines = path.read_text().splitlines(keepends=True)
    events = [json.loads(line.split(":::MLLOG ", 1)[1]) for line in lines]
    change(events)
    path.write_text("".join(":::MLLOG " + json.dumps(e) + "\n" for e in events))
    return path


def test_stricter_on_purpose(tmp_path):
    """Where training-0.7.0 still rejects what mlperf-logging accepts (README: "Deliberate differences")."""
    def item_zero(events):  # closed_ssd.yaml's first CHECK is shadowed by its duplicate key
        next(e for e in events if e["key"] == "opt_learning_rate_decay_boundary_epochs")["value"] = [43, 55]
    ssd = _rewrite(write_log(tmp_path / "ssd.txt", "training-0.7.0", "ssd"), item_zero)
    assert _both(ssd) == (False, True)

    def negative_time_to_train(events):
        stop = next(e for e in events if e["key"] == "run_stop")
        stop["time_ms"] = next(e for e in events if e["key"] == "run_start")["time_ms"] - 1
    assert _both(_rewrite(write_log(tmp_path / "n.txt", "training-0.7.0", "resnet"), negative_time_to_train)) == (False, True)


def test_what_mlperf_logging_accepts_is_a_warning_in_training_070(tmp_path):
    """Checks beyond mlperf-logging's bite as errors only in this suite's rulesets (test_policies.py has one each)."""
    def bad_status(events):
        next(e for e in events if e["key"] == "run_stop")["metadata"]["status"] = "finished"

    def backwards(events):
        next(e for e in events if e["key"] == "epoch_stop")["time_ms"] -= 10**6

    def late_target(events):  # the target is reached only after run_stop
        evals = [e for e in events if e["key"] == "eval_accuracy"]
        reached = dict(evals[-1])
        evals[-1]["value"] = 0.5
        events.append(dict(reached, time_ms=events[-1]["time_ms"]))

    for name, change in (("status", bad_status), ("backwards", backwards), ("late", late_target)):
        path = _rewrite(write_log(tmp_path / f"{name}.txt", "training-0.7.0", "resnet"), change)
        result = check_log(str(path), "training-0.7.0")
        assert result.compliant and result.warnings, name
        assert mlperf_logging_verdict(path) is True, name


def test_suite_logs_pass_mlperf_logging_too(tmp_path):
    full = write_log(tmp_path / "full.txt", "mlbench-1.0.0", "resnet")
    assert _both(full, "mlbench-1.0.0") == (True, True)
    lars = write_log(tmp_path / "lars.txt", "mlbench-1.0.0", "resnet", variant="lars")
    assert _both(lars, "mlbench-1.0.0") == (True, True)


def test_smoke_logs_fail_mlperf_logging_only_on_the_target(tmp_path):
    smoke = write_log(tmp_path / "smoke.txt", "mlbench-1.0.0-smoke", "resnet")
    assert _both(smoke, "mlbench-1.0.0-smoke") == (True, False)
    # The same log with the full target reached passes both: nothing else differs.
    lifted = _rewrite(smoke, lambda events: [e.update(value=0.759) for e in events if e["key"] == "eval_accuracy"][:0])
    assert _both(lifted, "mlbench-1.0.0-smoke") == (True, True)


def test_a_harness_lifecycle_log_passes_both(tmp_path):
    """The harness writes the log; the spec gives its keys; both checkers accept it."""
    lifecycle = pytest.importorskip("harness.lifecycle")
    from compliance.spec import benchmark_spec
    from harness.config import BaseConfig, RunOptions

    for ruleset, target in (("mlbench-1.0.0-smoke", 0.5), ("mlbench-1.0.0", 0.759)):
        log_file = tmp_path / ruleset / "result_0.txt"
        config = BaseConfig(benchmark="resnet", ruleset=ruleset, run=RunOptions(out_dir=str(tmp_path), log_file=str(log_file)))
        spec = benchmark_spec(ruleset, "resnet", "closed")
        values = {rule_key: value for rule_key, value in {
            "opt_name": "sgd", "sgd_opt_base_learning_rate": 0.256, "sgd_opt_end_learning_rate": 0.0001,
            "sgd_opt_learning_rate_decay_poly_power": 2, "sgd_opt_learning_rate_decay_steps": 8,
            "sgd_opt_weight_decay": 0.00005, "sgd_opt_momentum": 0.9, "model_bn_span": 32,
            "opt_learning_rate_warmup_epochs": 1}.items()}
        assert set(values) == set(spec.hyperparameter_keys)
        run = lifecycle.TrainingRun(config, benchmark="resnet", eval_every_epochs=2)
        run.init_start()
        run.log_hyperparameters(values, global_batch_size=32, train_samples=320, eval_samples=64)
        run.start()
        qualities = iter([0.2, target])
        for epoch in run.epochs(4):
            if run.eval_due(epoch):
                with run.evaluation(epoch):
                    quality = next(qualities)
                if run.record_eval(quality, epoch):
                    break
        result = run.stop()
        assert result.status == "success"
        ours = check_log(str(log_file))  # the harness logs submission_ruleset: the checker finds it
        assert ours.ruleset == ruleset
        theirs = mlperf_logging_verdict(log_file)
        assert ours.compliant, [f.format("log") for f in ours.findings]
        assert theirs == (ruleset == "mlbench-1.0.0"), ruleset  # smoke: only the 0.759 target fails
