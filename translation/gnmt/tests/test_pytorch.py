"""The PyTorch GNMT training loop on the tiny data: a compliant log (ours and mlperf-logging's
training_0.7.0 gnmt rules, all but the target), determinism, resume, BLEU through the whole path."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compliance.checker import check_log
from compliance.mllog import constants
from harness.checkpoint import latest_checkpoint
from harness.runner import load_benchmark_config
from harness.torch_runtime import PAYLOAD_FILE
from translation.gnmt.pytorch import train

# A small model and a short decoding limit keep these runs to seconds; the smoke config's own run
# to its target is the slow test at the end.
SMALL = ("model.hidden_size=16", "data.batch_size_per_replica=128", "eval.max_length=12", "eval.sentences_per_batch=500",
         "run.threads=1", "run.stop_at_target=false")


def config(data: Path, out: Path, *overrides: str):
    return load_benchmark_config("gnmt", "smoke", [f"run.data_dir={data}", f"run.out_dir={out}", "run.progress=false",
                                                   *overrides])


def target_only_errors(log: Path, ruleset: str = "mlbench-1.0.0-smoke") -> list[str]:
    """Errors of our checker on `log` other than 'the target was not reached'."""
    result = check_log(str(log), ruleset)
    assert result.unusable is None, result.unusable
    return [f.format(str(log)) for f in result.errors
            if not (f.key == constants.EVAL_ACCURACY and f.wanted.startswith("an evaluation reaching"))]


def mlperf_failures(log: Path, cwd: Path) -> list[str]:
    """The failed checks of mlperf-logging's own checker (ruleset 0.7.0, closed_gnmt.yaml) on `log`."""
    completed = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
                                "--ruleset", "0.7.0", str(log)], cwd=cwd, capture_output=True, text=True, check=False)
    output = completed.stdout + completed.stderr
    assert "training_0.7.0/closed_gnmt.yaml" in output, output
    return [line for line in output.splitlines() if "Failed" in line or "ERROR" in line]


def model_weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(latest_checkpoint(out_dir) / PAYLOAD_FILE, weights_only=False)["model"]


@pytest.fixture(scope="module")
def two_epoch_run(small_tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gnmt_pt")
    cfg = config(small_tiny_data, out, *SMALL, "schedule.max_epochs=2", "run.checkpoint_every_epochs=1")
    return cfg, train.main(cfg)


def test_two_epoch_log_is_compliant_but_for_the_target(two_epoch_run, tmp_path):
    _, result = two_epoch_run
    assert result.epochs == 2 and len(result.eval_history) == 2 and result.throughput > 0
    log = Path(result.log_file)
    assert target_only_errors(log) == []
    failures = mlperf_failures(log, tmp_path)
    assert failures and all("eval_accuracy" in line or line.endswith("FAILED") for line in failures), failures
    text = log.read_text()
    assert '"key": "opt_learning_rate_remain_steps"' in text and '"method": "discard"' in text
    assert '"key": "eval_metric_signature", "value": "nrefs:1|case:lc|eff:no|tok:intl' in text


def test_same_seed_same_run(two_epoch_run, small_tiny_data, tmp_path):
    cfg, first = two_epoch_run
    second = train.main(config(small_tiny_data, tmp_path, *SMALL, "schedule.max_epochs=2", "run.checkpoint_every_epochs=2"))
    assert second.eval_history == first.eval_history
    ours, theirs = model_weights(Path(cfg.run.out_dir)), model_weights(tmp_path)
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_resumed_run_reproduces_the_uninterrupted_one(two_epoch_run, tmp_path):
    cfg, uninterrupted = two_epoch_run
    out = Path(shutil.copytree(cfg.run.out_dir, tmp_path / "run"))
    shutil.rmtree(out / "checkpoints" / "epoch-0002")  # as if the run had died during epoch 2
    resumed = train.main(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, out_dir=str(out), resume=True)))
    assert resumed.eval_history == uninterrupted.eval_history[1:]
    ours, theirs = model_weights(Path(cfg.run.out_dir)), model_weights(out)
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)
    assert Path(str(resumed.log_file) + ".previous-1").is_file()  # the first log is kept


@pytest.mark.slow
def test_smoke_run_reaches_the_target_with_a_compliant_log(tiny_data, tmp_path):
    result = train.main(config(tiny_data, tmp_path))
    assert result.status == "success" and result.quality >= result.quality_target
    assert result.time_to_train_s < 300
    assert target_only_errors(Path(result.log_file)) == []
    failures = mlperf_failures(Path(result.log_file), tmp_path)
    assert all("eval_accuracy" in line or line.endswith("FAILED") for line in failures), failures
