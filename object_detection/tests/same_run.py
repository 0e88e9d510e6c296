"""The determinism and resume check that SSD's and Mask R-CNN's training tests share (one copy)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path


def check_same_first_epoch_and_resume(main: Callable, config: Callable, data: Path, first, first_out: str | Path,
                                      tmp_path: Path) -> None:
    """`first` is a two-epoch run (`run.deterministic=true`, a checkpoint every epoch) written to
    `first_out`; `config(data, out, *overrides)` builds the same config for another folder. The same
    seed gives the same first epoch, and a run resumed from the epoch-1 checkpoint gives the same
    second epoch."""
    again = main(config(data, tmp_path / "again", "run.deterministic=true", "schedule.max_epochs=1"))
    assert again.eval_history == first.eval_history[:1]
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(Path(first_out) / "checkpoints", resumed_dir / "checkpoints")
    shutil.rmtree(sorted((resumed_dir / "checkpoints").glob("epoch-*"))[-1])  # keep epoch 1 only
    resumed = main(config(data, resumed_dir, "run.deterministic=true", "run.resume=true"))
    assert resumed.eval_history == first.eval_history[1:]
