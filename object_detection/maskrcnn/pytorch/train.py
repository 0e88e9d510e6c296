"""Mask R-CNN (ResNet-50 FPN) on COCO 2017 in PyTorch, to box AP 0.377 and mask AP 0.339: the loop, top to bottom.

    python -m harness train maskrcnn --framework pytorch --config smoke
    torchrun --nproc_per_node=8 -m object_detection.maskrcnn.pytorch.train --config reference

The MLPerf v0.7 reference's loop (maskrcnn_benchmark/engine/trainer.py, tools/train_mlperf.py):
SGD with momentum, biases at twice the rate without weight decay, the learning rate set before
every update (linear warmup, then steps), the sum of the five Mask R-CNN losses; after every epoch
COCO box and mask AP of the whole val set, and the run stops when both reach the target. The
harness does the rest: MLLOG lifecycle and clock, seeding / device / AMP / DDP, checkpoints,
dataset checks.
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
from object_detection import coco_eval
from object_detection.coco_reader import CocoDetection
from object_detection.dataset import annotation_file
from object_detection.loading_pytorch import batches
from object_detection.maskrcnn import evaluation, pretrained
from object_detection.maskrcnn.batching import epoch_steps, steps_before
from object_detection.maskrcnn.config import (
    Config,
    LearningRateSchedule,
    check,
    global_batch_size,
    hyperparameters,
    learning_rate_schedule,
)
from object_detection.maskrcnn.pytorch.data import build_data, landscape, read_splits
from object_detection.maskrcnn.pytorch.model import build_model as build_maskrcnn

BENCHMARK = "maskrcnn"
FRAMEWORK = "pytorch"


def build_model(cfg: Config, rt: TorchRuntime, num_classes: int) -> nn.Module:
    """Mask R-CNN with the MSRA trunk weights (if configured), on the device, wrapped for DDP."""
    model = build_maskrcnn(cfg.model, num_classes, cfg.data.size_divisibility)
    weights = pretrained.trunk_state_dict(cfg.model.pretrained_backbone, cfg.model)
    if weights is not None:
        model.backbone.body.load_state_dict({key: torch.from_numpy(value) for key, value in weights.items()})
    return torch_runtime.wrap_model(model, rt)


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.SGD:
    """The reference's make_optimizer: every trained parameter in its own group, biases at
    `bias_lr_factor` x the rate with `bias_weight_decay` (the group's "factor" scales the schedule)."""
    opt = cfg.optimizer
    groups = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        bias = name.endswith("bias")
        groups.append({"params": [parameter], "factor": opt.bias_lr_factor if bias else 1.0,
                       "weight_decay": opt.bias_weight_decay if bias else opt.weight_decay})
    return torch.optim.SGD(groups, lr=opt.base_lr, momentum=opt.momentum)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group["factor"]


def to_device(images: list, targets: list, device: torch.device) -> tuple[list, list]:
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [{key: value.to(device, non_blocking=True) for key, value in target.items()} for target in targets]
    return images, targets


def train_one_epoch(model, loader, optimizer, scaler, schedule: LearningRateSchedule, rt: TorchRuntime, cfg: Config,
                    epoch: int, steps_per_epoch: int, first_step: int) -> tuple[int, float]:
    """One pass over this rank's batches of the epoch (`loader`: its batch sampler set to the epoch);
    returns (images trained on this rank, mean loss). `first_step`: updates before this epoch."""
    model.train()
    accumulation = cfg.data.gradient_accumulation_steps
    micro_batches = steps_per_epoch * accumulation
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)  # the epoch mean, not rounded to float32
    images_seen = 0
    for index, (images, targets) in enumerate(track(batches(loader), f"epoch {epoch}", total=micro_batches,
                                                    enabled=cfg.run.progress)):
        if index == micro_batches:  # a partial accumulation group at the end of the epoch is dropped
            break
        images, targets = to_device(images, targets, rt.device)
        ends_step = (index + 1) % accumulation == 0
        with rt.no_sync(model, accumulating=not ends_step):
            with rt.autocast():
                losses = model(images, targets)
            # the sum of the five losses, each a mean over this rank's batch; DDP averages the ranks
            loss = sum(losses.values()) / accumulation
            scaler.scale(loss).backward()
        if ends_step:
            # maskrcnn-benchmark steps its scheduler before the update: update k (1-based) uses lr(k)
            set_learning_rate(optimizer, schedule(first_step + index // accumulation + 1))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach() * accumulation
        images_seen += len(images)
    return images_seen, loss_sum.item() / max(1, micro_batches)


def predict(model: nn.Module, loader, val: CocoDetection, rt: TorchRuntime) -> tuple[list, list]:
    """This rank's detection rows and segmentation results (original image pixels)."""
    network = torch_runtime.unwrap(model)
    rows, segmentations = [], []
    with torch_runtime.inference_mode(network):
        for images, indices in batches(loader):
            with rt.autocast():
                detections = network([image.to(rt.device, non_blocking=True) for image in images])
            for image, index, detection in zip(images, indices, detections):
                image_rows, image_segmentations = evaluation.image_results(
                    val.records[int(index)], image.shape[1], image.shape[2], detection["boxes"].float().cpu().numpy(),
                    detection["scores"].float().cpu().numpy(), detection["labels"].cpu().numpy(),
                    detection["masks"][:, 0].float().cpu().numpy(), val.category_of_label)
                rows.append(image_rows)
                segmentations += image_segmentations
    return rows, segmentations


def evaluate(model: nn.Module, loader, val: CocoDetection, coco_gt, rt: TorchRuntime) -> dict[str, float]:
    """{"BBOX": box AP, "SEGM": mask AP} of the whole val set: ranks predict their shards, rank 0 scores."""
    rows, segmentations = predict(model, loader, val, rt)
    if rt.distributed:
        gathered = [None] * rt.world_size
        dist.all_gather_object(gathered, (rows, segmentations))
        rows = [row for part in gathered for row in part[0]]
        segmentations = [result for part in gathered for result in part[1]]
    quality = [0.0, 0.0]
    if rt.is_main:
        scores, summary = evaluation.score(coco_gt, rows, segmentations)
        quality = [scores["BBOX"], scores["SEGM"]]
        info(summary)
    bbox, segm = rt.all_reduce_sum(quality)  # rank 0's values on every rank
    return {"BBOX": bbox, "SEGM": segm}


def main(cfg: Config) -> RunResult:
    check(cfg)
    rt = torch_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=BENCHMARK, barrier=rt.barrier, eval_every_epochs=cfg.schedule.eval_every_epochs)
    run.init_start()
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
    train, val = read_splits(cfg)
    coco_gt = coco_eval.load_ground_truth(annotation_file(cfg.run.data_dir, "val"))
    model = build_model(cfg, rt, train.num_classes)
    train_loader, eval_loader = build_data(cfg, rt, train, val)

    global_batch = global_batch_size(cfg, rt.world_size)
    # the epoch's steps and the schedule's position, the same on every rank and in TensorFlow (batching.py)
    orientation, accumulation = landscape(train), cfg.data.gradient_accumulation_steps

    def steps_of(epoch: int) -> tuple[int, int]:
        arguments = (orientation, cfg.run.seed, epoch, cfg.data.batch_size, rt.world_size, accumulation)
        return epoch_steps(*arguments), steps_before(*arguments)

    if steps_of(1)[0] == 0:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} x {rt.world_size} processes x "
                          f"{cfg.data.gradient_accumulation_steps} accumulation steps exceeds the {len(train)} "
                          "training images (in batches of one orientation)")
    schedule = learning_rate_schedule(cfg, global_batch)
    optimizer = build_optimizer(cfg, model)
    scaler = rt.grad_scaler()
    state = {"model": model, "optimizer": optimizer, "scaler": scaler}
    first_epoch, _ = resume_point(torch_runtime.resume(cfg, benchmark=BENCHMARK, **state))

    run.log_hyperparameters(hyperparameters(cfg, global_batch), global_batch_size=global_batch,
                            train_samples=len(train), eval_samples=len(val),
                            gradient_accumulation_steps=cfg.data.gradient_accumulation_steps)
    run.start()
    train_seconds, images_trained = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        started = time.perf_counter()
        train_loader.batch_sampler.set_epoch(epoch)  # this epoch's batches and augmentation keys
        steps, first_step = steps_of(epoch)
        images, loss = train_one_epoch(model, train_loader, optimizer, scaler, schedule, rt, cfg, epoch, steps,
                                       first_step)
        train_seconds += time.perf_counter() - started
        images_trained += images * rt.world_size
        info(f"epoch {epoch}: loss {loss:.4f}, lr {optimizer.param_groups[0]['lr']:.5f}, "
             f"{images_trained / train_seconds:,.1f} images/s")
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                quality = evaluate(model, eval_loader, val, coco_gt, rt)
            info(f"epoch {epoch}: box AP {quality['BBOX']:.4f}, mask AP {quality['SEGM']:.4f}")
            if run.record_eval(quality, epoch):
                break
        torch_runtime.save_checkpoint_if_due(cfg, rt, benchmark=BENCHMARK, epoch=epoch, step=first_step + steps, **state)
    result = run.stop(throughput=images_trained / train_seconds if train_seconds else 0.0)
    torch_runtime.shutdown()
    return result


if __name__ == "__main__":
    train_entry("object_detection/maskrcnn", FRAMEWORK)
