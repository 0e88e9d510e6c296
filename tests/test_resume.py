"""A run killed with SIGKILL mid-epoch and resumed reaches the same result as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, results_of, run_harness

FRAMEWORKS = ["pytorch", "tensorflow"]


def _args(data, out, framework):
    return ["train", "recommendation", "--framework", framework, "--config", "smoke", "--json",
            "--set", f"run.data_dir={data}", "--set", f"run.out_dir={out}",
            "--set", "run.checkpoint_every_epochs=1", "--set", "run.deterministic=true",
            "--set", "run.threads=1", "--set", "run.seed=11",
            # run every epoch of the budget, so there is an epoch to kill and resume mid-way; 8 epochs
            # leave 6 after the kill (the smoke budget of 30 only made the test 4x longer) and end above
            # the smoke target (HR@10 > 0.5 from epoch 3), so every complete run exits 0
            "--set", "run.stop_at_target=false", "--set", "schedule.max_epochs=8"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tiny_ncf_data, tmp_path, framework):
    reference = results_of(run_harness(*_args(tiny_ncf_data, tmp_path / "reference", framework)))[0]

    out = tmp_path / "killed"
    environment = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "harness", *_args(tiny_ncf_data, out, framework)],
                               cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first_checkpoint = out / "checkpoints" / "epoch-0001" / "state.json"
    deadline = time.monotonic() + 300
    while not first_checkpoint.exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.02)
    time.sleep(0.3)  # into epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_log = (out / "mllog.txt").read_text()
    assert '"key": "run_stop"' not in killed_log, "the run finished before it was killed"

    resumed = results_of(run_harness(*_args(tiny_ncf_data, out, framework), "--set", "run.resume=true"))[0]
    assert resumed["quality"] == reference["quality"]
    assert resumed["eval_history"][-1] == reference["eval_history"][-1]
    # the resumed run continues the reference's curve: every eval it ran equals the reference's
    reference_curve = {epoch: value for epoch, value in reference["eval_history"]}
    assert all(reference_curve[epoch] == value for epoch, value in resumed["eval_history"])
    # nothing is lost: the killed run's log is kept beside the new one
    assert Path(str(out / "mllog.txt") + ".previous-1").read_text() == killed_log
