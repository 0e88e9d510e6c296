"""`--config reference --runs N` on tiny data (README "Running", point 8 of the checklist): SSD300 on
ResNet-34 at the reference's sizes, one epoch and one evaluation a run, N logs that our checker and the
package checker accept apart from the missed target (and the count of results: 2 runs keep it short).
Slow: about a minute a run on a CPU."""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch  # noqa: F401

# isort: split
import pytest

from harness.reference_runs import check_reference_runs_package
from object_detection import dataset

# What tiny data forces: one epoch and its evaluation (the reference evaluates from epoch 40; an
# evaluation at epoch 1 breaks no rule, as the checks below show); random weights (no ResNet-34 download); batches of 32 (the
# reference's base-rate batch) of 64 tiny training images; 8 validation images.
TINY_REFERENCE = ["schedule.max_epochs=1", "schedule.eval_epochs=[1]", "model.pretrained_backbone=",
                  "data.batch_size=32", "data.eval_batch_size=8", "run.threads=1", "run.num_workers=0",
                  "run.progress=false"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_reference_config_runs_package_apart_from_the_targets(framework, tmp_path):
    data = dataset.make_tiny(tmp_path / "data", seed=0, train_images=64, val_images=8)
    check_reference_runs_package("ssd", framework, data, TINY_REFERENCE, runs=2, required=5, tmp_path=tmp_path)
