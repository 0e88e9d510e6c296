"""Two processes on CPU: torchrun with gloo, and TF MultiWorkerMirrored on localhost.

Both train the NCF smoke config together and write exactly one log (rank 0's) that passes the checker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from compliance.__main__ import main as compliance_main
from tests.conftest import REPO

pytestmark = pytest.mark.multiprocess


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_args(data, out, framework):
    """Arguments after `python -m harness`."""
    return ["train", "recommendation", "--framework", framework, "--config", "smoke",
            "--set", f"run.data_dir={data}", "--set", f"run.out_dir={out}", "--set", "run.threads=1"]


def _assert_one_compliant_log(out):
    logs = sorted(path.name for path in out.iterdir() if path.name.startswith("mllog"))
    assert logs == ["mllog.txt"]
    text = (out / "mllog.txt").read_text()
    assert text.count('"key": "run_start"') == 1 and text.count('"key": "run_stop"') == 1
    assert compliance_main(["check", str(out / "mllog.txt"), "--ruleset", "mlbench-1.0.0-smoke"]) == 0


def test_torchrun_two_processes_gloo(tiny_ncf_data, tmp_path):
    out = tmp_path / "torchrun"
    environment = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
         str(_free_port()), "--module", "harness", *_train_args(tiny_ncf_data, out, "pytorch")],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]
    _assert_one_compliant_log(out)
    assert '"global_batch_size"' in (out / "mllog.txt").read_text()


def test_tf_multiworker_mirrored_two_workers(tiny_ncf_data, tmp_path):
    out = tmp_path / "multiworker"
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index in range(2):
        environment = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1",
                       "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen([sys.executable, "-m", "harness", *_train_args(tiny_ncf_data, out, "tensorflow")],
                                          cwd=REPO, env=environment, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=900) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-4000:]
    _assert_one_compliant_log(out)
