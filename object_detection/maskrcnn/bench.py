"""`invoke bench maskrcnn`: Mask R-CNN training speed of both frameworks against torchvision's maskrcnn_resnet50_fpn.

The same work timed the same way on every side (`harness.paired_timing.compare`): one training step
(forward, the five losses, backward, SGD update) of the reference network (ResNet-50-FPN, frozen
batch norm, 81 classes, random weights) on the same batch of images of the same size with the same
ground truth, after one untimed warm-up step each, in alternating rounds; the ratio is the median
of the per-round ratios (ours / peer). Ours go through the product's own step functions
(PyTorch `train_one_epoch`, TensorFlow `make_train_step`); the peer is torchvision's model as it
ships (its transform's resize set to the images' own size, so it trains on the same pixels).

FLOPs of a step are counted with `torch.utils.flop_counter` on our PyTorch step and on the peer's
(convolutions and matrix products; RoIAlign and NMS are not counted), for GFLOP/s beside the
machine's measured fp32 GEMM rate; the Keras model is the same network as ours, so our count serves
it. The two designs differ in arithmetic per image (by the same counter: torchvision's model does
about 1.3x ours at 320 x 480; its trunk is ResNet v1.5, the reference's the MSRA layout), so the
images/s ratio is the end-to-end comparison and GFLOP/s the per-arithmetic one. The input pipeline
(decode, resize, flip, targets with masks) is timed on the tiny COCO at the bench's image size, in
images/s: PyTorch's in one process, tf.data with its threads. On CPU the defaults are small (batch
1 of 320 x 480; MLBENCH_MASKRCNN_BENCH_BATCH, MLBENCH_MASKRCNN_BENCH_MIN_SIZE): a smoke of the
method, not a GPU figure.
"""

from __future__ import annotations

import os
import tempfile
import time

import torch

from harness import machine
from harness.config import load_config
from harness.paired_timing import compare
from harness.speed import gemm_peak_gflops
from object_detection.maskrcnn.config import Config

PEER = "torchvision_maskrcnn_resnet50_fpn"


def bench_config(batch: int, min_size: int) -> Config:
    return load_config(Config, None, [f"data.batch_size={batch}", f"data.min_size={min_size}",
                                      f"data.max_size={min_size * 2}", "model.pretrained_backbone=''",
                                      "run.progress=false"])


def synthetic_batch(batch: int, height: int, width: int, seed: int = 0):
    """Images (BGR minus mean range) and three boxes with masks per image, labels 1..80."""
    generator = torch.Generator().manual_seed(seed)
    images = [torch.randn(3, height, width, generator=generator) * 50 for _ in range(batch)]
    targets = []
    for index in range(batch):
        boxes = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.8], [0.2, 0.5, 0.45, 0.95]]) \
            * torch.tensor([width, height, width, height])
        masks = torch.zeros(3, height, width, dtype=torch.uint8)
        for mask, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
            mask[y1:y2, x1:x2] = 1
        targets.append({"boxes": boxes, "labels": torch.tensor([3, 17, 52]), "masks": masks,
                        "sample_key": torch.tensor(1000 + index)})
    return images, targets


def pytorch_steps(cfg: Config, images: list, targets: list):
    """({name: one training step} of our model and the peer, FLOPs of our step)."""
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    from harness import torch_runtime
    from object_detection.maskrcnn.config import learning_rate_schedule
    from object_detection.maskrcnn.pytorch.model import build_model
    from object_detection.maskrcnn.pytorch.train import build_optimizer, train_one_epoch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rt = torch_runtime.TorchRuntime(0, 1, 0, device, None)
    model = build_model(cfg.model, 81).to(device)
    optimizer = build_optimizer(cfg, model)
    schedule = learning_rate_schedule(cfg, len(images))
    batch = [([i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets])]

    def ours():
        train_one_epoch(model, batch, optimizer, rt.grad_scaler(), schedule, rt, cfg, 1, 1, 1000)

    # torchvision's maskrcnn_resnet50_fpn as it builds itself with an ImageNet backbone (frozen batch
    # norm, 3 trainable stages), its own functions, without the download; its resize set to the
    # images' size, so that it trains on the same pixels
    height, width = images[0].shape[1:]
    trunk = torchvision.models.resnet50(weights=None, norm_layer=torchvision.ops.FrozenBatchNorm2d)
    backbone = torchvision.models.detection.backbone_utils._resnet_fpn_extractor(trunk, 3)
    peer = torchvision.models.detection.MaskRCNN(backbone, num_classes=81, min_size=min(height, width),
                                                 max_size=max(height, width)).to(device).train()
    peer_optimizer = torch.optim.SGD([p for p in peer.parameters() if p.requires_grad], lr=1e-3, momentum=0.9,
                                     weight_decay=1e-4)
    # the peer normalizes RGB [0, 1] itself: the same pixels, in its units
    peer_images = [(i / 255.0).to(device) for i in images]
    peer_targets = [{k: v.to(device) for k, v in t.items() if k != "sample_key"} for t in targets]

    def peer_step():
        loss = sum(peer(peer_images, peer_targets).values())
        peer_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        peer_optimizer.step()
        loss.item()

    flops = {}
    for name, step in (("pytorch", ours), (PEER, peer_step)):
        with FlopCounterMode(display=False) as counter:
            step()
        flops[name] = counter.get_total_flops()
    return {"pytorch": ours, PEER: peer_step}, flops


def tensorflow_step(cfg: Config, images: list, targets: list):
    """One training step of our Keras Mask R-CNN through its own `make_train_step`."""
    import tensorflow as tf

    from object_detection.maskrcnn.config import learning_rate_schedule
    from object_detection.maskrcnn.tensorflow.data import padded_batch
    from object_detection.maskrcnn.tensorflow.model import build_model
    from object_detection.maskrcnn.tensorflow.train import make_optimizer, make_train_step, trained_variables

    model = build_model(cfg.model, 81)
    optimizer = make_optimizer(cfg, learning_rate_schedule(cfg, len(images)).peak)
    optimizer.build(trained_variables(model))
    train_step = make_train_step(cfg, tf.distribute.get_strategy(), model, optimizer)
    batch = padded_batch([i.permute(1, 2, 0).numpy() for i in images],
                         [{k: v.numpy() for k, v in t.items()} for t in targets], cfg.data.size_divisibility)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda: float(train_step(iterator))


def input_pipeline_rates(min_size: int, images: int = 24) -> dict[str, float]:
    """Training samples/s of the Mask R-CNN pipeline on the tiny COCO at `min_size`."""
    from object_detection import augment, dataset
    from object_detection.coco_reader import CocoDetection
    from object_detection.maskrcnn.tensorflow.data import train_dataset
    from object_detection.presets_pytorch import MaskRCNNTrain

    cfg = load_config(Config, None, ["data.batch_size=2", f"data.min_size={min_size}", f"data.max_size={min_size * 2}"])
    with tempfile.TemporaryDirectory(prefix="maskrcnn-bench-") as folder:
        root = dataset.make_tiny(folder, seed=0, train_images=images, val_images=2)
        coco = CocoDetection(dataset.annotation_file(root, "train"), dataset.image_dir(root, "train"))
        transform = MaskRCNNTrain(min_size, min_size * 2)
        began = time.perf_counter()
        for index, record in enumerate(coco.records):
            transform(coco.load_image(index), record, augment.sample_rng(0, 1, index))
        rates = {"pytorch_per_process": len(coco) / (time.perf_counter() - began)}
        tf_data = train_dataset(coco, cfg, epoch=1, batch_size=2)
        iterator = iter(tf_data)
        next(iterator)  # tracing and the first batch outside the clock
        began, count = time.perf_counter(), 0
        for batch in iterator:
            count += int(batch[0].shape[0])
        rates["tensorflow_tf_data"] = count / (time.perf_counter() - began) if count else float("nan")
    return rates


def run_bench(include_tensorflow: bool = True, rounds: int = 3) -> dict:
    on_gpu = torch.cuda.is_available()
    batch = int(os.environ.get("MLBENCH_MASKRCNN_BENCH_BATCH", "2" if on_gpu else "1"))
    min_size = int(os.environ.get("MLBENCH_MASKRCNN_BENCH_MIN_SIZE", "800" if on_gpu else "320"))
    height, width = min_size, (min_size * 3 // 2 + 31) // 32 * 32
    cfg = bench_config(batch, min_size)
    result: dict = {"machine": machine.describe(), "device": "cuda" if on_gpu else "cpu",
                    "threads": torch.get_num_threads(), "torch": torch.__version__, "batch": batch,
                    "image": [height, width], "model": "ResNet-50-FPN Mask R-CNN, 81 classes, random weights"}
    gemm = [gemm_peak_gflops(2048)["gflops"]]
    images, targets = synthetic_batch(batch, height, width)
    steps, flops = pytorch_steps(cfg, images, targets)
    if include_tensorflow:
        import tensorflow as tf

        result["tensorflow"] = tf.__version__
        steps["tensorflow"] = tensorflow_step(cfg, images, targets)
    timing = compare(steps, rounds=rounds, work_per_call=batch, unit="images", warmup=1)
    gemm.append(gemm_peak_gflops(2048)["gflops"])
    result["timing"] = timing.summary(PEER)
    result["gemm_fp32_gflops"] = max(gemm)
    for name in steps:
        result[f"{name}_images_per_s"] = timing.rate(name)
        if name != PEER:
            result[f"{name}_vs_peer"] = timing.ratio(name, PEER)
    # the Keras model is the same network as ours: our PyTorch count serves it
    flops["tensorflow"] = flops["pytorch"]
    result["train_gflop_per_image"] = flops["pytorch"] / batch / 1e9
    result["peer_train_gflop_per_image"] = flops[PEER] / batch / 1e9
    for name in steps:
        result[f"{name}_gflops"] = flops[name] / timing.median_seconds(name) / 1e9
        result[f"{name}_of_gemm_peak"] = result[f"{name}_gflops"] / result["gemm_fp32_gflops"]
    result["input_pipeline_images_per_s"] = input_pipeline_rates(min_size) if include_tensorflow else {}
    model_rate = result["pytorch_images_per_s"]
    result["input_pipeline_vs_model"] = {k: v / model_rate for k, v in result["input_pipeline_images_per_s"].items()}
    result["load_average_after"] = machine.load_average()
    print_table(result, timing.round_ratios)
    return result


def print_table(result: dict, round_ratios) -> None:
    """The bench as people read it: a row per model (images/s, ratio to the peer, GFLOP/s, share of
    the GEMM peak), then how it was measured and the input pipeline's rates."""
    from rich.console import Console
    from rich.table import Table

    height, width = result["image"]
    table = Table(title=f"Mask R-CNN training step, {result['model']}: batch {result['batch']} of {height} x {width}, "
                        f"{result['device']}, {result['threads']} threads")
    for column in ("model", "images/s", "ours / peer", "GFLOP/s", "of fp32 GEMM peak"):
        table.add_column(column, justify="right")
    for name, label in (("pytorch", "ours, PyTorch"), ("tensorflow", "ours, TensorFlow"), (PEER, "torchvision (peer)")):
        if f"{name}_images_per_s" not in result:
            continue
        ratio = result.get(f"{name}_vs_peer")
        gflops = result.get(f"{name}_gflops")
        table.add_row(label, f"{result[f'{name}_images_per_s']:.3f}", f"{ratio:.3f}" if ratio else "",
                      f"{gflops:,.0f}" if gflops else "", f"{result[f'{name}_of_gemm_peak']:.0%}" if gflops else "")
    console = Console()
    console.print(table)
    for name in ("pytorch", "tensorflow"):
        if f"{name}_vs_peer" in result:
            console.print(f"  {name} / peer: median of the paired ratios "
                          f"{[round(r, 3) for r in round_ratios(name, PEER)]}")
    console.print(f"  GFLOP per training image (torch.utils.flop_counter): ours {result['train_gflop_per_image']:.1f}, "
                  f"the peer {result['peer_train_gflop_per_image']:.1f}; "
                  f"fp32 GEMM peak {result['gemm_fp32_gflops']:,.0f} GFLOP/s (measured) on "
                  f"{result['machine']['cpu']}; load average {result['machine']['load_average']} before, "
                  f"{result['load_average_after']} after")
    for name, rate in result["input_pipeline_images_per_s"].items():
        console.print(f"  input pipeline ({name}): {rate:,.1f} images/s, "
                      f"{result['input_pipeline_vs_model'][name]:,.0f}x the PyTorch model's rate")


if __name__ == "__main__":
    run_bench()

