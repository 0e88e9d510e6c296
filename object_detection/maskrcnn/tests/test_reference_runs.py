"""`--config reference --runs N` on tiny data (README "Running", point 8 of the checklist): the full
ResNet-50-FPN Mask R-CNN at the reference's 800 / 1333 image sizes and global batch 16, one step and one
evaluation a run, N logs that our checker and the package checker accept apart from the missed targets
(and the count of results: 2 runs keep the test short). Slow: each run is 16 images at 800 px through
the full network, minutes on a CPU."""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch  # noqa: F401

# isort: split
import pytest

from harness.reference_runs import check_reference_runs_package
from object_detection import dataset

# What tiny data forces, nothing the rules read: one epoch; random weights (no R-50.pkl download);
# 2 images a step accumulated 8 times (the reference's global batch of 16 on one process); 32 tiny
# training images, of which 18 are landscape: one whole batch of one orientation, so one step a run.
TINY_REFERENCE = ["schedule.max_epochs=1", "model.pretrained_backbone=", "data.batch_size=2",
                  "data.gradient_accumulation_steps=8", "run.threads=1", "run.num_workers=0", "run.progress=false"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_reference_config_runs_package_apart_from_the_targets(framework, tmp_path):
    data = dataset.make_tiny(tmp_path / "data", seed=0, train_images=32, val_images=2)
    check_reference_runs_package("maskrcnn", framework, data, TINY_REFERENCE, runs=2, required=5, tmp_path=tmp_path)
