"""SSD (ResNet-34) on COCO 2017 in PyTorch, to 0.23 box mAP: the benchmark's training loop, top to bottom.

    python -m harness train ssd --framework pytorch --config smoke
    torchrun --nproc_per_node=8 -m object_detection.ssd.pytorch.train --config reference

The MLPerf v0.7 reference's loop (single_stage_detector/ssd/train.py): SGD with momentum on the
SSD loss, the learning rate warmed up per step and decayed at epoch boundaries, BN statistics
averaged over ranks before an evaluation, COCO box mAP at the epochs of the rules. The harness does
the rest: MLLOG lifecycle and clock, seeding / device / AMP / DDP, checkpoints, dataset checks.
"""

from __future__ import annotations

import time

import numpy as np
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
from object_detection.box_ops_pytorch import decode, per_class_nms
from object_detection.coco_reader import CocoDetection
from object_detection.dataset import annotation_file
from object_detection.ssd import default_boxes, pretrained
from object_detection.ssd.config import (
    Config,
    check,
    eval_due,
    global_batch_size,
    hyperparameters,
    learning_rate_schedule,
)
from object_detection.ssd.pytorch.data import batches, build_data, image_sizes, read_splits
from object_detection.ssd.pytorch.loss import ssd_loss
from object_detection.ssd.pytorch.model import build_model as build_ssd

BENCHMARK = "ssd"
FRAMEWORK = "pytorch"


def build_model(cfg: Config, rt: TorchRuntime, num_classes: int) -> nn.Module:
    """SSD with the pretrained backbone (if configured), checked against the default boxes, wrapped."""
    model = build_ssd(cfg.model, num_classes)
    weights = pretrained.backbone_state_dict(cfg.model.pretrained_backbone, cfg.model.width, cfg.model.layers)
    if weights is not None:
        model.backbone.load_state_dict({key: torch.from_numpy(value) for key, value in weights.items()})
    check_feature_sizes(cfg, model)
    return torch_runtime.wrap_model(model, rt, channels_last=True)


def check_feature_sizes(cfg: Config, model: nn.Module) -> None:
    """The default boxes must sit on the maps the network makes for this input size."""
    with torch.no_grad():
        probe = torch.zeros(1, 3, cfg.model.image_size, cfg.model.image_size)
        sizes = [f.shape[-1] for f in model.feature_maps(probe)]
    if tuple(sizes) != tuple(cfg.model.feature_sizes):
        raise ConfigError(f"model.feature_sizes={list(cfg.model.feature_sizes)}, but a {cfg.model.image_size}x"
                          f"{cfg.model.image_size} input gives maps of {sizes}")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_one_epoch(model, loader, optimizer, scaler, schedule, anchors, rt: TorchRuntime, cfg: Config, epoch: int,
                    steps_per_epoch: int, global_batch: int) -> tuple[int, float]:
    """One pass over this rank's batches of the epoch (`loader`: its sampler set to the epoch);
    returns (images trained on this rank, mean loss)."""
    model.train()
    accumulation = cfg.data.gradient_accumulation_steps
    micro_batches = steps_per_epoch * accumulation
    first_step = (epoch - 1) * steps_per_epoch
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)  # the epoch mean, not rounded to float32
    images_seen = 0
    for index, (images, gt_boxes, gt_labels) in enumerate(track(batches(loader), f"epoch {epoch}",
                                                                 total=micro_batches, enabled=cfg.run.progress)):
        if index == micro_batches:  # a partial accumulation group at the end of the epoch is dropped
            break
        memory_format = torch.channels_last if rt.device.type == "cuda" else torch.contiguous_format
        images = images.to(rt.device, non_blocking=True, memory_format=memory_format)
        gt_boxes, gt_labels = gt_boxes.to(rt.device, non_blocking=True), gt_labels.to(rt.device, non_blocking=True)
        ends_step = (index + 1) % accumulation == 0
        with rt.no_sync(model, accumulating=not ends_step):
            with rt.autocast():
                locs, logits = model(images)
            # the loss of this micro-batch over the images of one rank's step; DDP averages the ranks.
            # In float32 under AMP (as the reference's fp16 run), else in the model's own precision.
            loss_dtype = torch.promote_types(locs.dtype, torch.float32)
            loss = ssd_loss(locs.to(loss_dtype), logits.to(loss_dtype), gt_boxes, gt_labels, anchors,
                            cfg.loss.negatives_per_positive, normalizer=global_batch // rt.world_size)
            scaler.scale(loss).backward()
        if ends_step:
            set_learning_rate(optimizer, schedule(first_step + index // accumulation, epoch))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach()
        images_seen += images.shape[0]
    return images_seen, loss_sum.item() / max(1, steps_per_epoch)


def average_batchnorm_statistics(model: nn.Module, rt: TorchRuntime) -> None:
    """The reference all-reduces BN running statistics before evaluating: every rank the same model."""
    if not rt.distributed:
        return
    for module in torch_runtime.unwrap(model).modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for buffer in (module.running_mean, module.running_var):
                dist.all_reduce(buffer)
                buffer.div_(rt.world_size)


def predict(model: nn.Module, loader, anchors: torch.Tensor, val: CocoDetection, cfg: Config,
            rt: TorchRuntime) -> np.ndarray:
    """This rank's detections as [image_id, x, y, w, h, score, category_id] rows (pixels)."""
    network = torch_runtime.unwrap(model)
    post = cfg.postprocess
    rows = []
    with torch_runtime.inference_mode(network):
        for images, indices in batches(loader):
            with rt.autocast():
                locs, logits = network(images.to(rt.device, non_blocking=True))
            boxes = decode(locs.float(), anchors[None])
            scores = torch.softmax(logits.float(), dim=-1)
            image_ids, widths, heights = image_sizes(val, indices.numpy())
            for i in range(len(images)):
                kept_boxes, labels, kept_scores = per_class_nms(
                    boxes[i], scores[i], score_threshold=post.score_threshold, iou_threshold=post.nms_iou,
                    candidates_per_class=post.candidates_per_class, max_detections=post.max_detections)
                rows.append(coco_eval.detection_rows(image_ids[i], kept_boxes.cpu().numpy(), kept_scores.cpu().numpy(),
                                                     labels.cpu().numpy(), widths[i], heights[i], val.category_of_label))
    return np.concatenate(rows) if rows else np.zeros((0, 7))


def evaluate(model: nn.Module, loader, anchors: torch.Tensor, val: CocoDetection, coco_gt, cfg: Config,
             rt: TorchRuntime) -> float:
    """Box mAP@[0.5:0.95] of the whole val set: ranks predict their shards, rank 0 scores them."""
    average_batchnorm_statistics(model, rt)
    rows = predict(model, loader, anchors, val, cfg, rt)
    if rt.distributed:
        gathered = [None] * rt.world_size
        dist.all_gather_object(gathered, rows)
        rows = np.concatenate(gathered)
    ap = 0.0
    if rt.is_main:
        result = coco_eval.evaluate_bbox(coco_gt, rows)
        ap = result.ap
        info(result.summary.rstrip())
    return rt.all_reduce_sum([ap])[0]  # rank 0's value on every rank


def main(cfg: Config) -> RunResult:
    check(cfg)
    rt = torch_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=BENCHMARK, barrier=rt.barrier, eval_due=lambda epoch: eval_due(cfg, epoch))
    run.init_start()
    verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
    train, val = read_splits(cfg)
    coco_gt = coco_eval.load_ground_truth(annotation_file(cfg.run.data_dir, "val"))
    anchors_cxcywh = default_boxes.from_config(cfg.model)
    anchors_xyxy = torch.from_numpy(default_boxes.cxcywh_to_xyxy(anchors_cxcywh))
    model = build_model(cfg, rt, train.num_classes)
    anchors = torch.from_numpy(anchors_cxcywh).to(rt.device)
    train_loader, eval_loader = build_data(cfg, rt, train, val, anchors_xyxy)

    global_batch = global_batch_size(cfg, rt.world_size)
    steps_per_epoch = len(train_loader) // cfg.data.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} x {rt.world_size} processes x "
                          f"{cfg.data.gradient_accumulation_steps} accumulation steps exceeds the {len(train)} "
                          "training images")
    schedule = learning_rate_schedule(cfg, len(train), global_batch, steps_per_epoch)
    optimizer = torch.optim.SGD(model.parameters(), lr=schedule.peak, momentum=cfg.optimizer.momentum,
                                weight_decay=cfg.optimizer.weight_decay)
    scaler = rt.grad_scaler()
    state = {"model": model, "optimizer": optimizer, "scaler": scaler}
    first_epoch, _ = resume_point(torch_runtime.resume(cfg, benchmark=BENCHMARK, **state))

    run.log_hyperparameters(hyperparameters(cfg, len(train), global_batch), global_batch_size=global_batch,
                            train_samples=len(train), eval_samples=len(val),
                            gradient_accumulation_steps=cfg.data.gradient_accumulation_steps)
    run.start()
    train_seconds, images_trained = 0.0, 0
    for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
        started = time.perf_counter()
        train_loader.sampler.set_epoch(epoch)  # this epoch's permutation and augmentation keys
        images, loss = train_one_epoch(model, train_loader, optimizer, scaler, schedule, anchors, rt, cfg, epoch,
                                       steps_per_epoch, global_batch)
        train_seconds += time.perf_counter() - started
        images_trained += images * rt.world_size
        info(f"epoch {epoch}: loss {loss:.4f}, lr {optimizer.param_groups[0]['lr']:.5f}, "
             f"{images_trained / train_seconds:,.1f} images/s")
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                ap = evaluate(model, eval_loader, anchors, val, coco_gt, cfg, rt)
            info(f"epoch {epoch}: box mAP {ap:.4f}")
            if run.record_eval(ap, epoch):
                break
        torch_runtime.save_checkpoint_if_due(cfg, rt, benchmark=BENCHMARK, epoch=epoch, step=epoch * steps_per_epoch, **state)
    result = run.stop(throughput=images_trained / train_seconds if train_seconds else 0.0)
    torch_runtime.shutdown()
    return result


if __name__ == "__main__":
    train_entry("object_detection/ssd", FRAMEWORK)
