"""Training throughput and evaluation time of the PyTorch NCF, for `invoke bench recommendation`.

Both time the real code of train.py (`train_one_epoch`, `evaluate`) on data shaped like ml-20m
(138,493 users, 26,744 items; uniform random ids: the speed does not depend on which are drawn),
after warm-up steps; the device and precision are cfg.run's (AMP on CUDA), as in a training run.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from harness import torch_runtime
from recommendation.config import Config
from recommendation.pytorch.data import EvalTensors, shard_epoch
from recommendation.pytorch.model import build_model
from recommendation.pytorch.train import build_optimizer, evaluate, train_one_epoch
from recommendation.sampling import EpochSamples

ML20M_USERS = 138_493  # ml-20m after preprocessing (every user has >= 20 ratings)
ML20M_ITEMS = 26_744


def synthetic_samples(count: int, n_users: int, n_items: int, seed: int) -> EpochSamples:
    rng = np.random.default_rng(seed)
    return EpochSamples(rng.integers(0, n_users, count, dtype=np.int32), rng.integers(0, n_items, count, dtype=np.int32),
                        (rng.random(count) < 0.2).astype(np.float32))  # 1 positive in 5, as with 4 negatives


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _signature(rt: torch_runtime.TorchRuntime, cfg: Config, n_users: int, n_items: int) -> dict:
    return {"framework": "pytorch", "device": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda"
            else f"cpu ({torch.get_num_threads()} threads)",
            "precision": str(rt.amp_dtype).replace("torch.", "") if rt.amp_dtype else "float32",
            "model": {"n_users": n_users, "n_items": n_items, **dataclasses.asdict(cfg.model)},
            "versions": {"torch": torch.__version__}}


def pytorch_throughput(cfg: Config | None = None, *, steps: int = 10, warmup_steps: int = 2,
                       global_batch_size: int | None = None, n_users: int = ML20M_USERS,
                       n_items: int = ML20M_ITEMS) -> dict:
    """Training samples per second over `steps` optimizer steps of `global_batch_size` (default: the
    config's), with the model and optimizer of `cfg` (default: the reference config)."""
    cfg = cfg or Config()
    batch = global_batch_size or cfg.schedule.global_batch_size
    rt = torch_runtime.setup(cfg.run)
    model = torch_runtime.wrap_model(build_model(n_users, n_items, cfg.model.factors, cfg.model.mlp_layer_sizes,
                                                 seed=cfg.run.seed), rt)
    optimizer = build_optimizer(cfg, model)
    scaler = rt.grad_scaler()
    warmup = shard_epoch(synthetic_samples(warmup_steps * batch, n_users, n_items, 0), batch, rt)
    timed = shard_epoch(synthetic_samples(steps * batch, n_users, n_items, 1), batch, rt)
    train_one_epoch(model, optimizer, scaler, warmup, rt, epoch=0, progress=False)
    _synchronize(rt.device)
    began = time.perf_counter()
    train_one_epoch(model, optimizer, scaler, timed, rt, epoch=1, progress=False)
    _synchronize(rt.device)
    seconds = time.perf_counter() - began
    return {"samples_per_second": steps * batch / seconds, "seconds": seconds, "steps": steps,
            "warmup_steps": warmup_steps, "global_batch_size": batch, "replicas": rt.world_size,
            **_signature(rt, cfg, n_users, n_items)}


def pytorch_eval_time(cfg: Config | None = None, *, users: int = ML20M_USERS, n_users: int = ML20M_USERS,
                      n_items: int = ML20M_ITEMS, negatives: int = 999) -> dict:
    """Seconds of one `evaluate` over `users` users (each: 1 positive + `negatives` items), and the
    time for all `n_users` users it implies (measured, not extrapolated, when users == n_users)."""
    cfg = cfg or Config()
    rt = torch_runtime.setup(cfg.run)
    model = torch_runtime.wrap_model(build_model(n_users, n_items, cfg.model.factors, cfg.model.mlp_layer_sizes,
                                                 seed=cfg.run.seed), rt)
    rng = np.random.default_rng(0)
    items = rng.integers(0, n_items, (users, negatives + 1), dtype=np.int32)
    data = EvalTensors(torch.arange(users, dtype=torch.int32, device=rt.device),
                       torch.from_numpy(items).to(rt.device),
                       torch.ones((users, negatives), dtype=torch.bool, device=rt.device), users)
    warmup = EvalTensors(data.users[:64], data.items[:64], data.valid[:64], 64)
    evaluate(model, warmup, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size, rt)
    _synchronize(rt.device)
    began = time.perf_counter()
    evaluate(model, data, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size, rt)
    _synchronize(rt.device)
    seconds = time.perf_counter() - began
    return {"users": users, "seconds": seconds, "all_users": n_users,
            "all_users_seconds": seconds * n_users / users, "extrapolated": users != n_users,
            "scores_per_second": users * (negatives + 1) / seconds, "eval_batch_size": cfg.schedule.eval_batch_size,
            **_signature(rt, cfg, n_users, n_items)}
