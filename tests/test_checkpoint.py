"""The run-level checkpoint rules every train.py relies on (harness.checkpoint): `run.resume` restores the
newest complete checkpoint or starts from scratch, a checkpoint of another benchmark or framework is
refused, and only the writer process writes, only on the epochs `run.checkpoint_every_epochs` names.
Framework-free: the payload here is one text file, so what was loaded can be told from what was saved."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.checkpoint import resume_from_newest, resume_point, save_run_checkpoint
from harness.config import BaseConfig, RunOptions
from harness.errors import UserError
from tests.conftest import REPO


def config(out_dir: Path, *, resume: bool = False, every: int = 1) -> BaseConfig:
    return BaseConfig(benchmark="ncf", run=RunOptions(out_dir=str(out_dir), resume=resume, checkpoint_every_epochs=every))


def payload(text: str):
    """A framework payload that names the epoch it was written for."""
    return lambda folder: (folder / "payload.txt").write_text(text)


def save(cfg: BaseConfig, epoch: int, **options) -> Path | None:
    options = {"benchmark": "ncf", "framework": "pytorch", "step": 10 * epoch,
               "write_payload": payload(f"epoch {epoch}"), **options}
    return save_run_checkpoint(cfg, epoch=epoch, **options)


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path, capsys):
    loaded = []
    state = resume_from_newest(config(tmp_path / "out", resume=True), benchmark="ncf", framework="pytorch",
                               load_payload=loaded.append)
    assert state is None and loaded == []
    assert resume_point(state) == (1, 0)
    message = " ".join(capsys.readouterr().err.split())  # rich wraps lines at the console's width
    assert f"no checkpoint under {tmp_path / 'out'}, starting from scratch" in message


def test_without_run_resume_an_existing_checkpoint_is_left_alone(tmp_path):
    save(config(tmp_path), 1)
    loaded = []
    assert resume_from_newest(config(tmp_path), benchmark="ncf", framework="pytorch", load_payload=loaded.append) is None
    assert loaded == []


def test_resume_restores_the_newest_complete_checkpoint_and_the_rngs(tmp_path):
    cfg = config(tmp_path)
    for epoch in (1, 2, 3):
        save(cfg, epoch, extra={"eval_history": [[e, e / 10] for e in range(1, epoch + 1)]})
    # what the run draws right after its last checkpoint: a resumed run must draw the same
    expected_draws = (random.random(), np.random.random())
    random.random(), np.random.random()
    # a run killed while writing epoch 4 leaves its staging folder, and a folder without state.json is no checkpoint
    root = tmp_path / "checkpoints"
    (root / ".epoch-0004.partial").mkdir()
    (root / ".epoch-0004.partial" / "payload.txt").write_text("epoch 4")
    (root / "epoch-0004").mkdir()

    loaded = []
    state = resume_from_newest(config(tmp_path, resume=True), benchmark="ncf", framework="pytorch",
                               load_payload=loaded.append)
    assert loaded == [root / "epoch-0003"] and (loaded[0] / "payload.txt").read_text() == "epoch 3"
    assert (state["epoch"], state["step"]) == (3, 30)
    assert resume_point(state) == (4, 30)
    assert state["extra"] == {"eval_history": [[1, 0.1], [2, 0.2], [3, 0.3]]}
    assert state["config"]["run"]["out_dir"] == str(tmp_path)  # the config, as a plain dict
    assert (random.random(), np.random.random()) == expected_draws
    assert sorted(path.name for path in root.glob("epoch-*")) == ["epoch-0002", "epoch-0003", "epoch-0004"]  # the newest two kept; the killed write left alone


@pytest.mark.parametrize("benchmark, framework", [("resnet", "pytorch"), ("ncf", "tensorflow")])
def test_a_checkpoint_of_another_benchmark_or_framework_is_a_user_error(tmp_path, benchmark, framework):
    save(config(tmp_path), 1)
    loaded = []
    with pytest.raises(UserError, match=f"checkpoint of ncf/pytorch, cannot resume {benchmark}/{framework}"):
        resume_from_newest(config(tmp_path, resume=True), benchmark=benchmark, framework=framework,
                           load_payload=loaded.append)
    assert loaded == []


def test_only_the_writer_writes_and_only_on_due_epochs(tmp_path):
    def must_not_run(folder):
        raise AssertionError(f"payload written into {folder}")

    for epoch in range(1, 5):
        assert save(config(tmp_path, every=2), epoch, write_payload=must_not_run, is_writer=False) is None
        assert save(config(tmp_path, every=0), epoch, write_payload=must_not_run) is None
    assert not (tmp_path / "checkpoints").exists()

    written = [save(config(tmp_path, every=2), epoch) for epoch in range(1, 5)]
    assert written[0] is None and written[2] is None
    assert [path.name for path in written[1::2]] == ["epoch-0002", "epoch-0004"]
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == ["epoch-0002", "epoch-0004"]


def test_the_checkpoint_module_imports_no_framework():
    """harness.checkpoint serves both frameworks: importing it must not pull in torch or tensorflow."""
    code = "import sys, harness.checkpoint; print(sorted({'torch', 'tensorflow'} & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
