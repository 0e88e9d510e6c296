"""ResNet-50 v1.5 on ImageNet in PyTorch, to 75.9% top-1: the benchmark's training loop, top to bottom.

    python -m image_classification.pytorch.train --config smoke            # one process
    torchrun --nproc_per_node=8 -m image_classification.pytorch.train --config reference

The shared harness does what is not this model's business: the MLLOG lifecycle and clock
(`harness.lifecycle`), seeding / device / AMP / DDP (`harness.torch_runtime`), checkpoints
(`harness.checkpoint`), dataset checksums (`harness.datasets`) and progress bars. Hyperparameters,
their log keys and the learning-rate schedule come from `image_classification/config.py`, which the
TensorFlow loop shares.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import nn

from harness import torch_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.datasets import verify_manifest
from harness.errors import ConfigError
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, track
from harness.torch_runtime import TorchRuntime
from image_classification.config import (
    Config,
    LearningRateSchedule,
    global_batch_size,
    hyperparameters,
    learning_rate_schedule,
)
from image_classification.pytorch.data import batches, build_data
from image_classification.pytorch.model import build_model as build_resnet
from image_classification.pytorch.optimizer import build_optimizer

BENCHMARK = "resnet"
FRAMEWORK = "pytorch"


def build_model(cfg: Config, rt: TorchRuntime, num_classes_in_data: int) -> nn.Module:
    if cfg.model.num_classes != num_classes_in_data:
        raise ConfigError(f"model.num_classes={cfg.model.num_classes}, but {cfg.run.data_dir} holds "
                          f"{num_classes_in_data} classes; set model.num_classes={num_classes_in_data}")
    model = build_resnet(cfg.model.num_classes, cfg.model.layers, cfg.model.width,
                         cfg.model.zero_init_residual, cfg.model.bn_eps, cfg.model.bn_momentum)
    return torch_runtime.wrap_model(model, rt, channels_last=True)


def to_device(images: torch.Tensor, labels: torch.Tensor, rt: TorchRuntime):
    memory_format = torch.channels_last if rt.device.type == "cuda" else torch.contiguous_format
    return (images.to(rt.device, non_blocking=True, memory_format=memory_format),
            labels.to(rt.device, non_blocking=True))


def train_one_epoch(model, loader, optimizer, scheduler, scaler, loss_fn, rt: TorchRuntime, cfg: Config,
                    epoch: int, steps_per_epoch: int) -> tuple[int, float]:
    """One pass over the training shard; returns (images trained on this rank, mean loss)."""
    model.train()
    loader.sampler.set_epoch(epoch)
    accumulation = cfg.data.gradient_accumulation_steps
    micro_batches = steps_per_epoch * accumulation
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    images_seen = 0
    for index, (images, labels) in enumerate(track(batches(loader), f"epoch {epoch}", total=micro_batches,
                                                   enabled=cfg.run.progress)):
        if index == micro_batches:  # a partial accumulation group at the end of the epoch is dropped
            break
        images, labels = to_device(images, labels, rt)
        ends_step = (index + 1) % accumulation == 0
        with rt.no_sync(model, accumulating=not ends_step):
            with rt.autocast():
                loss = loss_fn(model(images), labels) / accumulation
            scaler.scale(loss).backward()
        if ends_step:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        loss_sum += loss.detach()
        images_seen += images.shape[0]
    return images_seen, loss_sum.item() / max(1, steps_per_epoch)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: LearningRateSchedule) -> torch.optim.lr_scheduler.LambdaLR:
    """The shared learning-rate formula (config.LearningRateSchedule), stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / schedule.peak)


def build_loss(cfg: Config) -> nn.Module:
    """Cross-entropy with the reference's label smoothing (v0.7 `--label_smoothing=0.1`)."""
    return nn.CrossEntropyLoss(label_smoothing=cfg.optimizer.label_smoothing)


def average_batchnorm_statistics(model: nn.Module, rt: TorchRuntime) -> None:
    """Ranks update BN running statistics on their own shards; average them so every rank
    evaluates the same model (the statistic over the global batch, as one process would see)."""
    if not rt.distributed:
        return
    for module in torch_runtime.unwrap(model).modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for buffer in (module.running_mean, module.running_var):
                dist.all_reduce(buffer)
                buffer.div_(rt.world_size)


def evaluate(model: nn.Module, loader, rt: TorchRuntime) -> float:
    """Top-1 accuracy over the whole validation set (each rank a disjoint shard)."""
    average_batchnorm_statistics(model, rt)
    network = torch_runtime.unwrap(model)
    correct = torch.zeros((), dtype=torch.int64, device=rt.device)
    total = 0
    with torch_runtime.inference_mode(network):
        for images, labels in batches(loader):
            images, labels = to_device(images, labels, rt)
            with rt.autocast():
                logits = network(images)
            correct += (logits.argmax(dim=1) == labels).sum()
            total += labels.shape[0]
    correct_all, total_all = rt.all_reduce_sum([float(correct.item()), float(total)])
    return correct_all / total_all


def main(cfg: Config) -> RunResult:
    rt = torch_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=BENCHMARK, barrier=rt.barrier,
                      eval_every_epochs=cfg.schedule.eval_every_epochs)
    run.init_start()
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
    train_loader, eval_loader = build_data(cfg, rt)
    model = build_model(cfg, rt, len(train_loader.dataset.classes))

    accumulation = cfg.data.gradient_accumulation_steps
    steps_per_epoch = len(train_loader) // accumulation
    if steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} x {rt.world_size} processes x "
                          f"{accumulation} accumulation steps exceeds the {len(train_loader.dataset)} "
                          "training images")
    global_batch = global_batch_size(cfg, rt.world_size)
    schedule = learning_rate_schedule(cfg, global_batch, steps_per_epoch)
    optimizer = build_optimizer(cfg.optimizer, model, schedule.peak)
    scheduler = build_scheduler(optimizer, schedule)
    scaler = rt.grad_scaler()
    loss_fn = build_loss(cfg)
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    first_epoch, _ = resume_point(torch_runtime.resume(cfg, benchmark=BENCHMARK, **state))

    run.log_hyperparameters(hyperparameters(cfg, global_batch, steps_per_epoch),
                            global_batch_size=global_batch, train_samples=len(train_loader.dataset),
                            eval_samples=len(eval_loader.dataset), gradient_accumulation_steps=accumulation)
    run.start()
    train_seconds, images_trained = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        started = time.perf_counter()
        images, loss = train_one_epoch(model, train_loader, optimizer, scheduler, scaler, loss_fn, rt, cfg,
                                       epoch, steps_per_epoch)
        train_seconds += time.perf_counter() - started
        images_trained += images * rt.world_size
        info(f"epoch {epoch}: loss {loss:.4f}, lr {scheduler.get_last_lr()[0]:.5f}, "
             f"{images_trained / train_seconds:,.0f} images/s")
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                accuracy = evaluate(model, eval_loader, rt)
            info(f"epoch {epoch}: top-1 {accuracy:.4f}")
            if run.record_eval(accuracy, epoch):
                break
        torch_runtime.save_checkpoint_if_due(cfg, rt, benchmark=BENCHMARK, epoch=epoch, step=epoch * steps_per_epoch, **state)
    result = run.stop(throughput=images_trained / train_seconds if train_seconds else 0.0)
    torch_runtime.shutdown()
    return result


if __name__ == "__main__":
    train_entry("image_classification", FRAMEWORK)
