"""PyTorch device, precision and distributed setup: one small record, read from torchrun's environment.

    rt = torch_runtime.setup(cfg.run)          # seeds, picks the device, joins the process group
    model = torch_runtime.wrap_model(model, rt) # to device (channels_last on CUDA), DDP when distributed
    with rt.autocast():                          # bf16/fp16 AMP on CUDA, a no-op on CPU
        loss = ...

    first_epoch, step = resume_point(torch_runtime.resume(cfg, benchmark=..., model=model, optimizer=...))
    torch_runtime.save_checkpoint_if_due(cfg, rt, benchmark=..., epoch=epoch, step=step, model=model, ...)

Multi-process and multi-node runs are launched with `torchrun` (gloo on CPU, NCCL on CUDA); there
is no launcher of our own. Gradient accumulation uses `rt.no_sync(model, accumulating)` so DDP
all-reduces once per optimizer step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from harness.checkpoint import checkpoint_due, resume_from_newest, save_run_checkpoint
from harness.config import BaseConfig, RunOptions
from harness.errors import ConfigError
from harness.seeding import seed_everything

PAYLOAD_FILE = "torch_state.pt"
FRAMEWORK = "pytorch"  # the framework named in a checkpoint's state.json


@dataclasses.dataclass(frozen=True)
class TorchRuntime:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    amp_dtype: torch.dtype | None  # None = full fp32

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 only (bf16 and fp32 need none: the scaler is then disabled)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def no_sync(self, model: torch.nn.Module, accumulating: bool) -> contextlib.AbstractContextManager:
        """Skip DDP's gradient all-reduce on micro-batches that do not end an optimizer step."""
        if accumulating and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sum numbers over ranks (eval counts); identity on one process."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"run.device={name}: CUDA is not available on this machine (use auto or cpu)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def setup(options: RunOptions) -> TorchRuntime:
    """Seed, pick the device, and join the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    device = _pick_device(options.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = not options.deterministic
        torch.backends.cuda.matmul.allow_tf32 = not options.deterministic
        torch.backends.cudnn.allow_tf32 = not options.deterministic
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=30))
    amp_dtype = None
    if options.amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # every rank draws the same initial weights; data order differs through the sampler's rank
    seed_everything(options.seed, options.deterministic)
    return TorchRuntime(rank, world_size, local_rank, device, amp_dtype)


def wrap_model(model: torch.nn.Module, rt: TorchRuntime, channels_last: bool = False) -> torch.nn.Module:
    """Move to the device (channels_last for convnets on CUDA, where tensor cores want NHWC); DDP."""
    model = model.to(rt.device)
    if channels_last and rt.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if rt.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    return model


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def save_payload(folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any = None, scaler: Any = None, extra: dict | None = None) -> None:
    """Model, optimizer, scheduler, AMP scaler and torch RNG states into `folder` (one file)."""
    payload = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "extra": extra or {},
    }
    torch.save(payload, folder / PAYLOAD_FILE)


def load_payload(folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any = None, scaler: Any = None, map_location: Any = "cpu") -> dict:
    """Restore what `save_payload` wrote; returns its `extra` dict."""
    payload = torch.load(folder / PAYLOAD_FILE, map_location=map_location, weights_only=False)
    unwrap(model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["torch_rng"])
    if payload["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return payload["extra"]


def resume(cfg: BaseConfig, *, benchmark: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: Any = None, scaler: Any = None,
           load_beside: Callable[[Path], None] | None = None) -> dict | None:
    """With `run.resume=true`, restore model, optimizer, scheduler, scaler and every RNG from the newest
    checkpoint (`harness.checkpoint.resume_from_newest`): its state, or None for a fresh start.
    `load_beside(folder)` reads what the benchmark saved beside the payload (`save_beside`)."""
    def load(folder: Path) -> None:
        # onto the CPU: torch.set_rng_state takes a CPU tensor only, and load_state_dict copies the
        # weights (the optimizer its state) onto the parameters' device
        load_payload(folder, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        if load_beside is not None:
            load_beside(folder)

    return resume_from_newest(cfg, benchmark=benchmark, framework=FRAMEWORK, load_payload=load)


def save_checkpoint_if_due(cfg: BaseConfig, rt: TorchRuntime, *, benchmark: str, epoch: int, step: int,
                           model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
                           scaler: Any = None, extra: dict | None = None,
                           save_beside: Callable[[Path], None] | None = None) -> None:
    """After an epoch: the checkpoint, when `run.checkpoint_every_epochs` makes it due, written by rank 0
    (`harness.checkpoint.save_run_checkpoint`; `extra` goes into state.json, `save_beside(folder)` adds files)."""
    def write(folder: Path) -> None:
        save_payload(folder, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        if save_beside is not None:
            save_beside(folder)

    save_run_checkpoint(cfg, benchmark=benchmark, framework=FRAMEWORK, epoch=epoch, step=step,
                        write_payload=write, extra=extra, is_writer=rt.is_main)
    if checkpoint_due(cfg, epoch):
        rt.barrier()  # no rank goes on (or exits) before rank 0's checkpoint is complete


@contextlib.contextmanager
def inference_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for an evaluation pass, restoring train mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
