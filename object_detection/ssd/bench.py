"""`invoke bench ssd`: SSD300-ResNet34 training speed against torchvision's ssd300_vgg16, both frameworks.

The same work timed the same way on every side: one training step (forward, loss, backward, SGD
update) on the same batch size at 300x300, after warmup steps, in alternating rounds; the ratio is
the median of the per-round ratios (ours / peer). FLOPs of a training step are counted with
`torch.utils.flop_counter` on our PyTorch model (the Keras model is the same network), giving
GFLOP/s next to the machine's measured fp32 GEMM rate. The input pipeline (decode, SSD crop, flip,
jitter, resize, matching) is timed on the tiny COCO in images/s per core. On CPU the batch is small
(MLBENCH_SSD_BENCH_BATCH, default 2) and the numbers are a smoke of the method, not a GPU figure.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from rich.console import Console

console = Console()


def gemm_gflops(size: int = 1024, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - began) / 1e9


def _torch_steps(batch: int, device):
    """(our step, torchvision ssd300_vgg16's step) closures on random images with a few boxes."""
    import torch
    import torchvision

    from object_detection.box_ops_pytorch import ssd_match
    from object_detection.ssd import default_boxes
    from object_detection.ssd.config import Config
    from object_detection.ssd.pytorch.loss import ssd_loss
    from object_detection.ssd.pytorch.model import build_model

    cfg = Config()
    ours = build_model(cfg.model, 81).to(device).train()
    anchors = torch.from_numpy(default_boxes.from_config(cfg.model)).to(device)
    corners = torch.from_numpy(default_boxes.cxcywh_to_xyxy(default_boxes.from_config(cfg.model)))
    images = torch.randn(batch, 3, 300, 300, device=device)
    gt = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.8]])
    matched = [ssd_match(gt, torch.tensor([3, 7]), corners) for _ in range(batch)]
    boxes = torch.stack([m[0] for m in matched]).to(device)
    labels = torch.stack([m[1] for m in matched]).to(device)
    optimizer = torch.optim.SGD(ours.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def our_step():
        locs, logits = ours(images)
        loss = ssd_loss(locs, logits, boxes, labels, anchors, 3, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    peer = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=81).to(device).train()
    peer_optimizer = torch.optim.SGD(peer.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    targets = [{"boxes": gt.to(device) * 300, "labels": torch.tensor([3, 7], device=device)} for _ in range(batch)]
    peer_images = list(images)

    def peer_step():
        loss = sum(peer(peer_images, targets).values())
        peer_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        peer_optimizer.step()

    return ours, images, our_step, peer_step


def _tensorflow_step(batch: int):
    import numpy as np
    import tensorflow as tf

    from harness.tf_optimizers import TorchSGD
    from object_detection import box_ops_tensorflow as ops
    from object_detection.ssd import default_boxes
    from object_detection.ssd.config import Config
    from object_detection.ssd.tensorflow.loss import ssd_loss
    from object_detection.ssd.tensorflow.model import build_model

    cfg = Config()
    model = build_model(cfg.model, 81)
    anchors = tf.constant(default_boxes.from_config(cfg.model))
    corners = tf.constant(default_boxes.cxcywh_to_xyxy(default_boxes.from_config(cfg.model)))
    boxes, labels = ops.ssd_match(tf.constant([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.8]]), tf.constant([3, 7]), corners)
    boxes, labels = tf.stack([boxes] * batch), tf.stack([labels] * batch)
    images = tf.constant(np.random.default_rng(0).normal(size=(batch, 300, 300, 3)).astype(np.float32))
    optimizer = TorchSGD(1e-3, momentum=0.9, weight_decay=5e-4)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            locs, logits = model(images, training=True)
            loss = ssd_loss(locs, logits, boxes, labels, anchors, 3, batch)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return lambda: float(step())


def _time(step, repeats: int) -> float:
    began = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - began) / repeats


def input_pipeline_rate(images: int = 40) -> float:
    """Training samples/s of the PyTorch SSD pipeline (decode .. matching) on one core."""
    import torch

    from harness.config import load_config
    from object_detection import augment, dataset
    from object_detection.coco_reader import CocoDetection
    from object_detection.presets_pytorch import SSDTrain
    from object_detection.ssd import default_boxes
    from object_detection.ssd.config import Config

    cfg = load_config(Config, None)
    with tempfile.TemporaryDirectory(prefix="ssd-bench-") as folder:
        root = dataset.make_tiny(folder, seed=0, train_images=images, val_images=2)
        coco = CocoDetection(dataset.annotation_file(root, "train"), dataset.image_dir(root, "train"))
        transform = SSDTrain(300, torch.from_numpy(default_boxes.cxcywh_to_xyxy(default_boxes.from_config(cfg.model))))
        began = time.perf_counter()
        for index, record in enumerate(coco.records):
            transform(coco.load_image(index), record.normalized_boxes(), record.labels, augment.sample_rng(0, 1, index))
        return len(coco) / (time.perf_counter() - began)


def run_bench(include_tensorflow: bool = True, rounds: int = 3, repeats: int = 2) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = int(os.environ.get("MLBENCH_SSD_BENCH_BATCH", "32" if device.type == "cuda" else "2"))
    ours, images, our_step, peer_step = _torch_steps(batch, device)
    with FlopCounterMode(display=False) as counter:
        our_step()
    flops_per_step = counter.get_total_flops()
    tf_step = _tensorflow_step(batch) if include_tensorflow else None
    for step in filter(None, (our_step, peer_step, tf_step)):
        step()  # warm
    times: dict[str, list[float]] = {"pytorch": [], "peer": [], "tensorflow": []}
    for _ in range(rounds):  # alternating rounds: load changes hit every side alike
        times["pytorch"].append(_time(our_step, repeats))
        times["peer"].append(_time(peer_step, repeats))
        if tf_step:
            times["tensorflow"].append(_time(tf_step, repeats))
    result = {"device": str(device), "batch": batch, "image_size": 300, "rounds": rounds, "repeats": repeats,
              "gemm_gflops": gemm_gflops(), "train_gflop_per_image": flops_per_step / batch / 1e9,
              "load_average": os.getloadavg()[0]}
    for name, values in times.items():
        if values:
            result[f"{name}_images_per_s"] = batch / statistics.median(values)
    result["pytorch_vs_peer"] = statistics.median(p / o for o, p in zip(times["pytorch"], times["peer"]))
    if times["tensorflow"]:
        result["tensorflow_vs_peer"] = statistics.median(p / t for t, p in zip(times["tensorflow"], times["peer"]))
    result["pytorch_gflops"] = flops_per_step / statistics.median(times["pytorch"]) / 1e9
    result["input_pipeline_images_per_s"] = input_pipeline_rate()
    console.print(result)
    return result
