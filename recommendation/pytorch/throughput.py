"""The PyTorch NCF's training and evaluation as timed work, for `invoke bench recommendation`.

The mirror of tensorflow/throughput.py: both frameworks get the same unit of work, so that
`recommendation/bench.py` can time them against each other with `harness.paired_timing.compare`:

- training: one epoch from the host's NumPy samples (what `sampling.epoch_samples` hands the training
  loop) to trained weights: this framework's input step (`shard_epoch`: slice and move to the device)
  and `train_one_epoch` (the real step, fused Adam, AMP on CUDA), returning when the device is done;
- evaluation: one `evaluate` over the given users (1 positive + `negatives` items each), from the
  host's arrays, returning the host's numbers.

Data shaped like ml-20m (138,493 users, 26,744 items; uniform random ids: the speed does not depend on
which ids are drawn); the device and precision are cfg.run's, as in a training run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from harness import torch_runtime
from harness.paired_timing import compare
from recommendation.config import Config
from recommendation.pytorch.data import EvalTensors, shard_epoch
from recommendation.pytorch.model import build_model
from recommendation.pytorch.train import build_optimizer, evaluate, train_one_epoch
from recommendation.sampling import EpochSamples
from recommendation.synthetic import ML20M_ITEMS, ML20M_USERS, synthetic_eval, synthetic_samples


def signature(rt: torch_runtime.TorchRuntime, cfg: Config, n_users: int, n_items: int) -> dict:
    return {"framework": "pytorch", "device": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda"
            else f"cpu ({torch.get_num_threads()} threads)",
            "precision": str(rt.amp_dtype).replace("torch.", "") if rt.amp_dtype else "float32",
            "model": {"n_users": n_users, "n_items": n_items, **dataclasses.asdict(cfg.model)},
            "versions": {"torch": torch.__version__}}


def training_epoch(cfg: Config, *, global_batch_size: int, n_users: int = ML20M_USERS,
                   n_items: int = ML20M_ITEMS) -> tuple[Callable[[EpochSamples], float], dict]:
    """(train, signature): `train(samples)` trains the reference model and optimizer of `cfg` on one
    epoch of host samples in global batches of `global_batch_size` and returns the mean loss."""
    rt = torch_runtime.setup(cfg.run)
    model = torch_runtime.wrap_model(build_model(n_users, n_items, cfg.model.factors, cfg.model.mlp_layer_sizes,
                                                 seed=cfg.run.seed), rt)
    optimizer = build_optimizer(cfg, model)
    scaler = rt.grad_scaler()

    def train(samples: EpochSamples) -> float:
        data = shard_epoch(samples, global_batch_size, rt)
        return train_one_epoch(model, optimizer, scaler, data, rt, epoch=1, progress=False)  # float(): synced

    return train, {**signature(rt, cfg, n_users, n_items), "global_batch_size": global_batch_size,
                   "replicas": rt.world_size}


def evaluation(cfg: Config, *, users: int, n_users: int = ML20M_USERS, n_items: int = ML20M_ITEMS,
               negatives: int = 999) -> tuple[Callable[[], tuple[float, float]], dict]:
    """(run, signature): `run()` is one `evaluate` of `users` host rows (moved to the device inside,
    as the TensorFlow side's tf.data does) and returns (HR, NDCG)."""
    rt = torch_runtime.setup(cfg.run)
    model = torch_runtime.wrap_model(build_model(n_users, n_items, cfg.model.factors, cfg.model.mlp_layer_sizes,
                                                 seed=cfg.run.seed), rt)
    host_users, host_items, host_valid = synthetic_eval(users, n_items, negatives)

    def run() -> tuple[float, float]:
        data = EvalTensors(torch.from_numpy(host_users).to(rt.device), torch.from_numpy(host_items).to(rt.device),
                           torch.from_numpy(host_valid).to(rt.device), users)
        return evaluate(model, data, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size, rt)  # host floats: synced

    return run, {**signature(rt, cfg, n_users, n_items), "eval_batch_size": cfg.schedule.eval_batch_size}


def pytorch_throughput(cfg: Config | None = None, *, steps: int = 10, warmup_steps: int = 2,
                       global_batch_size: int | None = None, n_users: int = ML20M_USERS,
                       n_items: int = ML20M_ITEMS, rounds: int = 1) -> dict:
    """PyTorch alone: training samples/s over epochs of `steps` global batches, after one warm-up
    epoch of `warmup_steps` batches (none: a cold measurement, and it says so). The bench times
    both frameworks against each other with the same pieces (recommendation/bench.py)."""
    cfg = cfg or Config()
    batch = global_batch_size or cfg.schedule.global_batch_size
    train, info = training_epoch(cfg, global_batch_size=batch, n_users=n_users, n_items=n_items)
    if warmup_steps:
        train(synthetic_samples(warmup_steps * batch, n_users, n_items, 0))
    timed = synthetic_samples(steps * batch, n_users, n_items, 1)
    timing = compare({"pytorch": lambda: train(timed)}, rounds=rounds, warmup=0, work_per_call=len(timed),
                     unit="samples", state="warm" if warmup_steps else "cold")
    return {"samples_per_second": timing.rate("pytorch"), "seconds": timing.median_seconds("pytorch"),
            "steps": steps, "warmup_steps": warmup_steps, "state": timing.state, "rounds": rounds, **info}


def pytorch_eval_time(cfg: Config | None = None, *, users: int = ML20M_USERS, n_users: int = ML20M_USERS,
                      n_items: int = ML20M_ITEMS, negatives: int = 999, rounds: int = 1) -> dict:
    """PyTorch alone: seconds of one `evaluate` over `users` users (after a warm-up one), and the time
    for all `n_users` users it implies (measured, not extrapolated, when users == n_users)."""
    cfg = cfg or Config()
    run, info = evaluation(cfg, users=users, n_users=n_users, n_items=n_items, negatives=negatives)
    timing = compare({"pytorch": run}, rounds=rounds, warmup=1, work_per_call=users * (negatives + 1), unit="scores")
    seconds = timing.median_seconds("pytorch")
    return {"users": users, "seconds": seconds, "all_users": n_users, "all_users_seconds": seconds * n_users / users,
            "extrapolated": users != n_users, "scores_per_second": timing.rate("pytorch"), "state": timing.state,
            "rounds": rounds, **info}
