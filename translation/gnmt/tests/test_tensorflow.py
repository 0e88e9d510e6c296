"""The TensorFlow GNMT training loop on the tiny data: a compliant log (ours and mlperf-logging's
training_0.7.0 gnmt rules, all but the target), determinism, resume."""

from __future__ import annotations

import importlib.util
import sys

# torch.optim loads triton lazily, and libtriton loaded after TensorFlow's LLVM crashes the process:
# load it first, so a session that runs PyTorch tests after these ones survives
if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401

# isort: split
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from compliance.smoke_log import errors_besides_the_target, mlperf_logging_failures
from translation.gnmt.tensorflow.train import main
from translation.gnmt.tests.test_pytorch import SMALL, config


def checkpoint_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every variable of a checkpoint: weights, Adam slots, step counter."""
    reader = tf.train.load_checkpoint(str(folder / "tf_state"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.fixture(scope="module")
def two_epoch_run(small_tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gnmt_tf")
    cfg = config(small_tiny_data, out, *SMALL, "schedule.max_epochs=2", "run.checkpoint_every_epochs=1")
    result = main(cfg)
    return result, cfg, out, checkpoint_weights(out / "checkpoints" / "epoch-0002")


def test_two_epoch_log_is_compliant_but_for_the_target(two_epoch_run, tmp_path):
    result, _, _, _ = two_epoch_run
    assert result.epochs == 2 and len(result.eval_history) == 2 and result.throughput > 0
    log = Path(result.log_file)
    assert errors_besides_the_target(log) == []
    failures = mlperf_logging_failures(log, tmp_path, "closed_gnmt.yaml")
    assert failures and all("eval_accuracy" in line or line.endswith("FAILED") for line in failures), failures


def test_two_runs_with_one_seed_are_identical(two_epoch_run, small_tiny_data, tmp_path):
    first, _, _, ours = two_epoch_run
    second = main(config(small_tiny_data, tmp_path, *SMALL, "schedule.max_epochs=2", "run.checkpoint_every_epochs=2"))
    assert first.eval_history == second.eval_history
    theirs = checkpoint_weights(tmp_path / "checkpoints" / "epoch-0002")
    assert len(ours) > 50 and ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_resume_replays_the_interrupted_epoch_exactly(two_epoch_run):
    first, cfg, out, uninterrupted = two_epoch_run
    shutil.rmtree(out / "checkpoints" / "epoch-0002")  # as if the run had died during epoch 2
    resumed = main(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, resume=True)))
    assert resumed.eval_history == first.eval_history[1:]
    replayed = checkpoint_weights(out / "checkpoints" / "epoch-0002")
    assert replayed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        np.testing.assert_array_equal(replayed[name], uninterrupted[name], err_msg=name)


@pytest.mark.slow
def test_smoke_run_reaches_the_target_with_a_compliant_log(tiny_data, tmp_path):
    result = main(config(tiny_data, tmp_path))
    assert result.status == "success" and result.quality >= result.quality_target
    assert result.time_to_train_s < 300
    assert errors_besides_the_target(Path(result.log_file)) == []
    failures = mlperf_logging_failures(Path(result.log_file), tmp_path, "closed_gnmt.yaml")
    assert all("eval_accuracy" in line or line.endswith("FAILED") for line in failures), failures
