"""Training images/s of our ResNet-50 against `torchvision.models.resnet50`, and of the input pipeline.

Both models run the same training step (cross-entropy, SGD with momentum; channels_last and the
runtime's AMP dtype on CUDA, fp32 on CPU) on the same synthetic batch held on the device, so the
comparison measures the models, not the input pipeline. They are timed by `harness.paired_timing.
compare`, as every bench is: one untimed call each (cuDNN autotuning, allocator: warm), then rounds
alternating between the two models; the images/s are each model's median round, and the ratio is
the median over rounds of the ratio of the two timings of the same round, so load that comes and
goes on a shared machine favours neither model. The mirror of `../tensorflow/throughput.py`;
`image_classification/bench.py` calls both.
"""

from __future__ import annotations

import os
import time

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness.paired_timing import compare
from image_classification.pytorch.model import build_model, count_parameters


def _device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_step(model: nn.Module, device: torch.device, amp_dtype: torch.dtype | None):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def _time_steps(step, images, labels, steps: int, device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(images, labels)
    _synchronize(device)
    return time.perf_counter() - start


def training_flops_per_image(image_size: int = 224, num_classes: int = 1000) -> float:
    """FLOPs (2 per multiply-add) of one forward + backward pass of our ResNet-50, per image."""
    model = build_model(num_classes=num_classes)
    images = torch.randn(1, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        model(images).sum().backward()
    return float(counter.get_total_flops())


def pytorch_throughput(batch_size: int = 32, steps: int = 10, image_size: int = 224, *,
                       rounds: int = 3, num_classes: int = 1000, seed: int = 0) -> dict:
    """Training images/s of ours and of torchvision's resnet50 at the same batch; ratio >= 0.95 wanted.
    Each timed call is `steps` training steps; one untimed call per model first (warm)."""
    device = _device()
    amp_dtype = None
    if device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        torch.backends.cudnn.benchmark = True
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    torch.manual_seed(seed)
    images = torch.randn(batch_size, 3, image_size, image_size, device=device).to(memory_format=memory_format)
    labels = torch.randint(0, num_classes, (batch_size,), device=device)
    models = {"ours": build_model(num_classes=num_classes),
              "torchvision": torchvision.models.resnet50(num_classes=num_classes)}
    calls = {}
    for name, model in models.items():
        model.to(device, memory_format=memory_format).train()
        step = _train_step(model, device, amp_dtype)
        calls[name] = lambda step=step: _time_steps(step, images, labels, steps, device)  # ends synchronised
    timing = compare(calls, rounds=rounds, warmup=1, work_per_call=batch_size * steps, unit="images")
    return {
        "framework": f"pytorch {torch.__version__}, torchvision {torchvision.__version__}",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "threads": torch.get_num_threads(),
        "precision": str(amp_dtype).removeprefix("torch.") if amp_dtype else "float32",
        "channels_last": device.type == "cuda",
        "batch_size": batch_size, "image_size": image_size, "steps": steps, "rounds": rounds,
        "ours_parameters": count_parameters(models["ours"]),
        "torchvision_parameters": count_parameters(models["torchvision"]),
        "ours_images_per_s": timing.rate("ours"),
        "torchvision_images_per_s": timing.rate("torchvision"),
        "ratio": timing.ratio("ours", "torchvision"),
        "round_ratios": timing.round_ratios("ours", "torchvision"),
        "timing": timing.summary("torchvision"),
    }


def gemm_peak_gflops(size: int | None = None, dtype: torch.dtype = torch.float32, repeats: int = 10) -> dict:
    """Measured matmul throughput (GFLOP/s, 2 n^3 per product), the best of `repeats`."""
    device = _device()
    size = size or (8192 if device.type == "cuda" else 4096)
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, not TF32
    try:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        torch.matmul(a, b)
        best = float("inf")
        for _ in range(repeats):
            _synchronize(device)
            start = time.perf_counter()
            torch.matmul(a, b)
            _synchronize(device)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
    return {"dtype": str(dtype).removeprefix("torch."), "size": size, "gflops": 2 * size ** 3 / best / 1e9,
            "threads": torch.get_num_threads()}


def pipeline_throughput(data_dir: str, image_size: int = 224, eval_resize: int = 256, batch_size: int = 32,
                        workers: int = 1, images: int = 400) -> dict:
    """Images/s of the training input pipeline (PIL decode + RandomResizedCrop + flip + normalize)
    with `workers` DataLoader worker processes, per worker."""
    from harness.config import load_config
    from harness.torch_runtime import TorchRuntime
    from image_classification.config import Config
    from image_classification.pytorch.data import build_data

    cfg = load_config(Config, None, [f"run.data_dir={data_dir}", f"run.num_workers={workers}",
                                     f"data.image_size={image_size}", f"data.eval_resize={eval_resize}",
                                     f"data.batch_size={batch_size}"])
    runtime = TorchRuntime(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), amp_dtype=None)
    loader, _ = build_data(cfg, runtime)
    count, epoch = 0, 0
    iterator = None
    start = None
    while count < images:
        epoch += 1
        loader.sampler.set_epoch(epoch)
        iterator = iter(loader)
        for batch, _ in iterator:
            if start is None:  # the first batch pays for starting the workers
                start = time.perf_counter()
                continue
            count += batch.shape[0]
            if count >= images:
                break
    seconds = time.perf_counter() - start
    del iterator, loader
    return {"workers": workers, "images": count, "image_size": image_size, "batch_size": batch_size,
            "images_per_s": count / seconds, "images_per_s_per_worker": count / seconds / max(1, workers),
            "cpu_count": os.cpu_count()}
