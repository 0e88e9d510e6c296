"""A Transformer run killed with SIGKILL in its second epoch and started again with run.resume=true
ends where the uninterrupted run ends: the same BLEU curve and bit-identical weights (BENCHMARK_DONE
point 5), in both frameworks. Dropout is on, so the restored RNG states (torch's generators; Keras'
dropout seed generators, harness.tf_runtime.save_payload) decide the second epoch's masks.

Every run is a `python -m harness train` process with one thread (as tests/test_resume.py for NCF),
so the three runs compute alike whatever thread pools the test process already started.

Slow (75 s PyTorch, 221 s TensorFlow at load average 8-12): the default suite's fast version is
test_pytorch.py / test_tensorflow.py::test_resumed_run_reproduces_the_uninterrupted_one (resume from
the epoch-1 checkpoint in-process, the same curve and bit-identical weights).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.checkpoint import latest_checkpoint
from harness.errors import EXIT_TARGET_MISSED
from tests.conftest import REPO, results_of, run_harness

from .test_pytorch import QUICK

FRAMEWORKS = ["pytorch", "tensorflow"]
pytestmark = pytest.mark.slow


def _args(data: Path, out: Path, framework: str) -> list[str]:
    overrides = [f"run.data_dir={data}", f"run.out_dir={out}", "run.threads=1", "run.progress=false",
                 "schedule.max_epochs=2", *QUICK]
    return ["train", "transformer", "--framework", framework, "--config", "smoke", "--json",
            *[item for override in overrides for item in ("--set", override)]]


def final_weights(out: Path, framework: str) -> dict[str, np.ndarray]:
    """The model's weights in the newest checkpoint of `out` (the end of the run)."""
    folder = latest_checkpoint(out)
    if framework == "pytorch":
        import torch

        from harness.torch_runtime import PAYLOAD_FILE

        return {name: value.numpy() for name, value in torch.load(folder / PAYLOAD_FILE, weights_only=False)["model"].items()}
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(folder / "tf_state"))
    # tf_runtime.save_payload writes every Keras layer variable of the model as the list `model_variables`
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if name.startswith("model_variables/")}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sigkill_in_epoch_two_then_resume_matches_uninterrupted(small_data, tmp_path, framework):
    # two epochs on 1,200 pairs stay below the smoke target: the runs exit with EXIT_TARGET_MISSED
    reference = results_of(run_harness(*_args(small_data, tmp_path / "reference", framework)), EXIT_TARGET_MISSED)[0]

    out = tmp_path / "killed"
    environment = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "harness", *_args(small_data, out, framework)], cwd=REPO,
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first_checkpoint = out / "checkpoints" / "epoch-0001" / "state.json"
    deadline = time.monotonic() + 600
    while not first_checkpoint.exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint after 600 s"
        time.sleep(0.02)
    time.sleep(0.3)  # into epoch 2 (~30 steps)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_log = (out / "mllog.txt").read_text()
    assert '"key": "run_stop"' not in killed_log, "the run finished before it was killed"

    resumed = results_of(run_harness(*_args(small_data, out, framework), "--set", "run.resume=true"), EXIT_TARGET_MISSED)[0]
    assert resumed["eval_history"] == reference["eval_history"][1:]  # epoch 2 alone, with the reference's BLEU
    ours, theirs = final_weights(tmp_path / "reference", framework), final_weights(out, framework)
    assert ours and ours.keys() == theirs.keys() and all(np.array_equal(ours[name], theirs[name]) for name in ours)
    assert Path(str(out / "mllog.txt") + ".previous-1").read_text() == killed_log  # the killed run's log is kept
