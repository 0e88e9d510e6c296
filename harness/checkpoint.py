"""One checkpoint schema for every benchmark and both frameworks.

A checkpoint is a folder `<out_dir>/checkpoints/epoch-<N>/` holding
- `state.json`: schema version, benchmark, framework, epoch, step, the config as a plain dict,
  Python/NumPy RNG states and anything small the benchmark adds (`extra`);
- the framework payload written by `torch_runtime.save_payload` / `tf_runtime.save_payload`
  (model, optimizer, scheduler, framework RNG states).
Rank 0 writes it into a temporary folder and renames it into place, so a run killed mid-write
never leaves a half checkpoint that `--resume` would pick up.

A train.py does not call this module directly: `torch_runtime.resume` / `tf_runtime.resume` and
`torch_runtime.save_checkpoint_if_due` / `tf_runtime.save_checkpoint_if_due` add the framework
payload to `resume_from_newest` and `save_run_checkpoint` below, which hold the run-level rules
(`run.resume`, `run.out_dir`, `run.checkpoint_every_epochs`, who writes).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import BaseConfig, config_to_dict
from harness.errors import UserError
from harness.progress import info
from harness.seeding import python_rng_states, restore_python_rng_states

SCHEMA_VERSION = 1
STATE_FILE = "state.json"


def checkpoint_root(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoints"


def save_checkpoint(out_dir: str | os.PathLike, *, benchmark: str, framework: str, epoch: int,
                    step: int, config: dict, write_payload: Callable[[Path], None],
                    extra: dict | None = None, keep: int = 2) -> Path:
    """Write checkpoint `epoch` atomically; keep the newest `keep` checkpoints."""
    root = checkpoint_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{epoch:04d}"
    staging = root / f".epoch-{epoch:04d}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    write_payload(staging)
    rng = base64.b64encode(pickle.dumps(python_rng_states())).decode("ascii")
    state = {"schema": SCHEMA_VERSION, "benchmark": benchmark, "framework": framework, "epoch": epoch,
             "step": step, "config": config, "python_rng": rng, "extra": extra or {}}
    (staging / STATE_FILE).write_text(json.dumps(state, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    for old in sorted(root.glob("epoch-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    root = checkpoint_root(out_dir)
    complete = [path for path in sorted(root.glob("epoch-*")) if (path / STATE_FILE).is_file()]
    return complete[-1] if complete else None


def load_checkpoint_state(path: Path, *, benchmark: str, framework: str) -> dict[str, Any]:
    """Read and check `state.json`; restores the Python/NumPy RNGs. UserError if it does not fit."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path / STATE_FILE}: unreadable checkpoint ({error})") from None
    if state.get("schema") != SCHEMA_VERSION:
        raise UserError(f"{path}: checkpoint schema {state.get('schema')}, this code reads {SCHEMA_VERSION}")
    if (state.get("benchmark"), state.get("framework")) != (benchmark, framework):
        raise UserError(f"{path}: checkpoint of {state.get('benchmark')}/{state.get('framework')}, "
                        f"cannot resume {benchmark}/{framework} from it")
    restore_python_rng_states(pickle.loads(base64.b64decode(state["python_rng"])))  # noqa: S301 - our own file
    return state


def checkpoint_due(cfg: BaseConfig, epoch: int) -> bool:
    """`run.checkpoint_every_epochs=N`: a checkpoint after every N-th epoch; 0 = never."""
    every = cfg.run.checkpoint_every_epochs
    return bool(every) and epoch % every == 0


def save_run_checkpoint(cfg: BaseConfig, *, benchmark: str, framework: str, epoch: int, step: int,
                        write_payload: Callable[[Path], None], extra: dict | None = None,
                        is_writer: bool = True) -> Path | None:
    """The checkpoint of `epoch` under `run.out_dir`, with the config as a plain dict, when it is due
    (`checkpoint_due`) and this process is the writer (rank 0 / the chief); the folder, or None."""
    if not (is_writer and checkpoint_due(cfg, epoch)):
        return None
    return save_checkpoint(cfg.run.out_dir, benchmark=benchmark, framework=framework, epoch=epoch, step=step,
                           config=config_to_dict(cfg), write_payload=write_payload, extra=extra)


def resume_from_newest(cfg: BaseConfig, *, benchmark: str, framework: str,
                       load_payload: Callable[[Path], None]) -> dict[str, Any] | None:
    """With `run.resume=true`, restore the newest complete checkpoint under `run.out_dir`: check its
    state.json (a checkpoint of another benchmark or framework is a UserError), restore the Python/NumPy
    RNGs, then `load_payload(folder)` for the framework's part. Returns the checkpoint's state; None when
    not resuming, or when there is no checkpoint yet (a first run started with --resume starts from scratch)."""
    if not cfg.run.resume:
        return None
    path = latest_checkpoint(cfg.run.out_dir)
    if path is None:
        info(f"run.resume: no checkpoint under {cfg.run.out_dir}, starting from scratch")
        return None
    state = load_checkpoint_state(path, benchmark=benchmark, framework=framework)
    load_payload(path)
    info(f"resumed from {path} (epoch {state['epoch']})")
    return state


def resume_point(state: dict[str, Any] | None) -> tuple[int, int]:
    """(first epoch to train, global step reached) after `resume_from_newest`: (1, 0) for a fresh start."""
    return (1, 0) if state is None else (state["epoch"] + 1, state["step"])
