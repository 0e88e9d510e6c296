"""NCF training in PyTorch: NeuMF, Adam, binary cross-entropy, HR@10 over all users every epoch.

Reads top to bottom as the benchmark (MLPerf NCF reference, mlcommons/training recommendation/
pytorch/ncf.py): load the prepared MovieLens, build NeuMF and Adam, then per epoch draw fresh
negatives (4 per positive), train on the shuffled samples in global batches, and rank each user's
held-out item among its 999 negatives; stop at the HR@10 target. Everything that is not this
model's business (log, clock, seeding, device, DDP, checkpoints) is the harness's.

    python -m harness train recommendation --framework pytorch --config smoke
    torchrun --nproc_per_node 8 -m recommendation.pytorch.train --config reference
"""

from __future__ import annotations

import concurrent.futures
import math
import time

import torch
import torch.nn.functional as F

from harness import torch_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.errors import ConfigError
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar
from recommendation.config import Config, hyperparameters
from recommendation.dataset import Prepared, load_for_training
from recommendation.pytorch.data import (
    EpochTensors,
    EvalTensors,
    build_eval,
    shard_epoch,
)
from recommendation.pytorch.model import build_model
from recommendation.sampling import epoch_samples

FRAMEWORK = "pytorch"


def build_data(cfg: Config, rt: torch_runtime.TorchRuntime) -> tuple[Prepared, EvalTensors]:
    prepared = load_for_training(cfg, rt.world_size)
    return prepared, build_eval(prepared, rt)


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer.name != "adam":
        raise ConfigError(f"optimizer.name={cfg.optimizer.name}: NCF trains with adam")
    # fused: one kernel per step over all parameters; the 31.7M embedding weights of ml-20m make
    # the per-tensor Adam the larger part of a step on CPU (2.8x slower there). Same update rule.
    device = next(model.parameters()).device
    return torch.optim.Adam(model.parameters(), lr=cfg.optimizer.base_lr,
                            betas=(cfg.optimizer.beta1, cfg.optimizer.beta2), eps=cfg.optimizer.epsilon,
                            fused=device.type in ("cpu", "cuda"))


def train_one_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    data: EpochTensors, rt: torch_runtime.TorchRuntime, epoch: int,
                    progress: bool) -> float:
    """One pass over the epoch's samples; returns the mean training loss (this rank's samples)."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    with progress_bar(progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=len(data.batches), status="") if bar else None
        for start, stop, global_count in data.batches:
            with rt.autocast():
                logits = model(data.users[start:stop], data.items[start:stop])
            # autocast's 16-bit logits go to float32; a float64 model (the parity tests) stays float64
            logits = logits if logits.dtype == torch.float64 else logits.float()
            # Sum over this rank's samples, scaled so that DDP's gradient average is the mean over
            # the whole global batch, whatever the split (the last batch may be uneven).
            batch_loss = F.binary_cross_entropy_with_logits(logits, data.labels[start:stop].to(logits.dtype),
                                                            reduction="sum")
            loss = batch_loss * (rt.world_size / global_count)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += batch_loss.detach()
            if bar:
                bar.advance(task)
    return float(loss_sum) / max(1, len(data.users))


def evaluate(model: torch.nn.Module, data: EvalTensors, k: int, batch_size: int,
             rt: torch_runtime.TorchRuntime) -> tuple[float, float]:
    """HR@k and NDCG@k over all users (metrics.py's definition), vectorised on the device.

    Scores are fp32 logits: under bf16 autocast many of a user's 1000 scores would tie, and ties
    count against the positive (the reference's stable top-k with the positive last).
    """
    width = data.items.shape[1]
    users_per_batch = max(1, batch_size // width)
    hits = torch.zeros((), dtype=torch.float64, device=rt.device)
    gains = torch.zeros((), dtype=torch.float64, device=rt.device)
    with torch_runtime.inference_mode(model):
        for first in range(0, len(data.users), users_per_batch):
            items = data.items[first:first + users_per_batch]
            users = data.users[first:first + users_per_batch, None].expand_as(items)
            scores = model(users.reshape(-1), items.reshape(-1))
            scores = (scores if scores.dtype == torch.float64 else scores.float()).view(items.shape)
            beaten_by = (scores[:, :-1] >= scores[:, -1:]) & data.valid[first:first + users_per_batch]
            rank = beaten_by.sum(dim=1)
            hit = rank < k
            hits += hit.sum()
            gains += torch.where(hit, math.log(2.0) / torch.log(rank.double() + 2.0), 0.0).sum()
    total_hits, total_gains = rt.all_reduce_sum([float(hits), float(gains)])
    return total_hits / data.total_users, total_gains / data.total_users


def main(cfg: Config) -> RunResult:
    rt = torch_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=cfg.benchmark, barrier=rt.barrier,
                      eval_every_epochs=cfg.schedule.eval_every_epochs)
    try:
        run.init_start()
        prepared, eval_data = build_data(cfg, rt)
        model = build_model(prepared.n_users, prepared.n_items, cfg.model.factors, cfg.model.mlp_layer_sizes,
                            seed=cfg.run.seed)
        model = torch_runtime.wrap_model(model, rt)
        optimizer = build_optimizer(cfg, model)
        scaler = rt.grad_scaler()
        state = {"model": model, "optimizer": optimizer, "scaler": scaler}
        first_epoch, step = resume_point(torch_runtime.resume(cfg, benchmark=cfg.benchmark, **state))
        samples_per_epoch = prepared.n_train * (1 + cfg.data.train_negatives_per_positive)
        run.log_hyperparameters(hyperparameters(cfg), global_batch_size=cfg.schedule.global_batch_size,
                                train_samples=samples_per_epoch,
                                eval_samples=prepared.n_users * (1 + cfg.data.eval_negatives_per_user))

        def draw(epoch: int):
            return epoch_samples(prepared.train, cfg.data.train_negatives_per_positive, cfg.run.seed, epoch)

        run.start()
        # Drawing negatives is part of the timed run (the reference draws them in its training loop);
        # the next epoch's are drawn on a CPU thread while the device trains this one.
        prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        upcoming = prefetch.submit(draw, first_epoch)
        train_seconds, trained_samples = 0.0, 0
        for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
            samples = upcoming.result()
            if epoch < cfg.schedule.max_epochs:
                upcoming = prefetch.submit(draw, epoch + 1)
            data = shard_epoch(samples, cfg.schedule.global_batch_size, rt)
            began = time.perf_counter()
            loss = train_one_epoch(model, optimizer, scaler, data, rt, epoch, cfg.run.progress)
            if rt.device.type == "cuda":
                torch.cuda.synchronize(rt.device)
            train_seconds += time.perf_counter() - began
            trained_samples += data.global_samples
            step += len(data.batches)
            if run.eval_due(epoch):
                with run.evaluation(epoch):
                    hit_rate, ndcg = evaluate(model, eval_data, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size, rt)
                info(f"epoch {epoch}: loss {loss:.4f}, HR@{cfg.data.eval_hr_k} {hit_rate:.4f}, "
                     f"NDCG@{cfg.data.eval_hr_k} {ndcg:.4f}")
                reached = run.record_eval(hit_rate, epoch)
            else:
                reached = False
            torch_runtime.save_checkpoint_if_due(cfg, rt, benchmark=cfg.benchmark, epoch=epoch, step=step,
                                                 extra={"eval_history": run.eval_history}, **state)
            if reached:
                break
        prefetch.shutdown(wait=False, cancel_futures=True)
        return run.stop(throughput=trained_samples / train_seconds if train_seconds else 0.0)
    finally:
        torch_runtime.shutdown()


if __name__ == "__main__":
    train_entry("recommendation", FRAMEWORK)
