"""The command-line edge: user errors are one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from harness.errors import EXIT_TARGET_MISSED
from tests.conftest import REPO, run_harness


def _one_line_error(completed, *fragments):
    assert completed.returncode == 2, completed.stderr[-2000:]
    # stderr may hold progress lines before it; the error is one line, the last one
    lines = completed.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], completed.stderr
    assert "Traceback" not in completed.stderr
    for fragment in fragments:
        assert fragment in errors[0]
    return errors[0]


@pytest.mark.parametrize("args, fragments", [
    (["train", "nosuch"], ["unknown benchmark 'nosuch'"]),
    (["train", "object_detection"], ["'object_detection' holds 2 benchmarks", "ssd (object_detection/ssd)",
                                     "maskrcnn (object_detection/maskrcnn)"]),
    (["train", "recommendation", "--config", "missing.yaml"], ["missing.yaml", "no such config file"]),
    (["train", "recommendation", "--set", "optimizer.base_lr=fast"], ["optimizer.base_lr", "expected float"]),
    (["train", "recommendation", "--set", "nosection.x=1"], ["unknown key 'nosection'"]),
    (["train", "recommendation", "--set", "run.data_dir=/nonexistent/ncf"], ["/nonexistent/ncf", "not found"]),
])
def test_user_errors_are_one_line(args, fragments):
    _one_line_error(run_harness(*args), *fragments)


def test_one_changed_byte_in_the_dataset_is_refused_before_training(tiny_ncf_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_ncf_data, data)
    victim = sorted(path for path in data.rglob("*") if path.is_file() and path.name != "MANIFEST.json")[0]
    content = bytearray(victim.read_bytes())
    content[len(content) // 2] ^= 0x01
    victim.write_bytes(bytes(content))
    line = _one_line_error(run_harness("train", "recommendation", "--framework", "pytorch",
                                       "--set", f"run.data_dir={data}", "--set", f"run.out_dir={tmp_path / 'out'}"),
                           str(victim), "checksum mismatch")
    log = (tmp_path / "out" / "mllog.txt")
    assert not log.exists() or '"key": "run_start"' not in log.read_text(), line


def test_a_benchmark_is_named_by_key_path_or_its_only_folder(monkeypatch):
    import dataclasses

    from harness import benchmarks
    from harness.errors import UserError

    assert benchmarks.get_benchmark("ncf") is benchmarks.get_benchmark("recommendation") is benchmarks.BENCHMARKS["ncf"]
    assert benchmarks.get_benchmark("recommendation/").key == "ncf"
    unbuilt = dataclasses.replace(benchmarks.BENCHMARKS["ncf"], key="unbuilt", folder="nowhere", built=False)
    monkeypatch.setitem(benchmarks.BENCHMARKS, "unbuilt", unbuilt)
    with pytest.raises(UserError, match="benchmark 'unbuilt' is not built yet"):
        benchmarks.get_benchmark("unbuilt")


def test_a_run_that_misses_its_target_exits_3(tiny_ncf_data, tmp_path):
    """Trained to the end of its budget below the target: `invoke train` (through `python -m harness
    train`) exits EXIT_TARGET_MISSED (3), which a caller can tell from a crash (1) and a user error (2);
    the log is complete, its run_stop says "aborted", and the checker finds nothing wrong with it but
    the missed target."""
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "invoke", "train", "recommendation", "--framework", "pytorch", "--set", f"run.data_dir={tiny_ncf_data}",
         "--set", f"run.out_dir={out}", "--set", "run.threads=1", "--set", "schedule.max_epochs=1"],
        cwd=REPO, env={**os.environ, "MLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=600, check=False)
    assert EXIT_TARGET_MISSED == 3 and completed.returncode == EXIT_TARGET_MISSED, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr
    stop = [json.loads(line.split(":::MLLOG ", 1)[1]) for line in (out / "mllog.txt").read_text().splitlines()
            if '"key": "run_stop"' in line]
    assert len(stop) == 1 and stop[0]["metadata"]["status"] == "aborted"
    from compliance.checker import check_log

    result = check_log(str(out / "mllog.txt"), "mlbench-1.0.0-smoke")
    assert result.unusable is None and len(result.errors) == 1
    assert result.errors[0].wanted.startswith("an evaluation reaching"), result.errors[0].format("log")
