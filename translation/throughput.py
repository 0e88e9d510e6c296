"""What both translation benches (`gnmt/bench.py`, `transformer/bench.py`) measure the same way.

- `pytorch_pair` / `tensorflow_pair`: our model's training step against the peer's, one warm-up
  step each, then alternating rounds in one process, the ratio the median over rounds of the ratio
  of adjacent timings (harness/speed.py), so load that comes and goes on a shared machine favours
  neither model; target tokens/s from each side's best round;
- `pipeline_throughput`: target tokens/s of epochs of a model's batching and padding (what each
  training step reads) on its tiny data;
- `run_bench`: the bench itself: the size for the device (labelled), the fp32 GEMM peak measured
  before and after (the better kept), both frameworks, the PyTorch step's share of the GEMM peak,
  the input pipeline against the PyTorch model.

Each bench keeps its own models, peers, step functions, FLOP count and printed summary.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

from rich.console import Console

from harness.machine import cpu_name
from harness.speed import alternate, gemm_peak_gflops, paired_summary

console = Console(stderr=True)
CPU_LABEL = "REDUCED bench size (CPU)"


def pytorch_pair(ours, peer, peer_name: str, step_of: Callable, size: dict, repeats: int, rounds: int, device, amp,
                 gflop_per_step: Callable[[], float]) -> dict:
    """Time `step_of(model)()` of both models; `gflop_per_step()` (called after the timing) is our step's GFLOP."""
    import torch

    steps = {"ours": step_of(ours.train()), peer_name: step_of(peer.train())}
    for step in steps.values():
        step()  # warm-up: allocator, kernels
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    seconds = alternate(steps, repeats, rounds, sync)
    tokens = size["batch"] * size["length"]
    result = {"framework": f"pytorch {torch.__version__}", "device": torch.cuda.get_device_name(device)
              if device.type == "cuda" else "CPU", "threads": torch.get_num_threads(),
              "precision": "bfloat16" if amp else "float32",
              **paired_summary(seconds, tokens, repeats, "ours", peer_name),
              "ours_parameters": sum(p.numel() for p in ours.parameters()),
              "peer_parameters": sum(p.numel() for p in peer.parameters()),
              "training_gflop_per_step": gflop_per_step()}
    result["ours_gflops"] = result["training_gflop_per_step"] * result["ours_tokens_per_s"] / tokens
    return result


def tensorflow_pair(ours, peer, peer_name: str, steps: dict[str, Callable], size: dict, repeats: int, rounds: int) -> dict:
    """Time the two compiled steps `steps` ({"ours": ..., peer_name: ...}, each returning its loss)."""
    import keras
    import tensorflow as tf

    for step in steps.values():
        step()  # trace and warm up
    seconds = alternate({name: (lambda s=s: s().numpy()) for name, s in steps.items()}, repeats, rounds)
    return {"framework": f"tensorflow {tf.__version__}, keras {keras.__version__}",
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
            **paired_summary(seconds, size["batch"] * size["length"], repeats, "ours", peer_name),
            "ours_parameters": sum(int(v.shape.num_elements()) for v in ours.trainable_variables),
            "peer_parameters": sum(int(v.shape.num_elements()) for v in peer.trainable_variables)}


def pipeline_throughput(dataset, config_class, target_tokens: Callable, seconds: float = 3.0) -> dict:
    """Target tokens/s of `dataset`'s epoch batches on its tiny data: each batch's source padded and
    `target_tokens(train_target, indices)` (which pads the target and counts its tokens)."""
    from harness.config import load_config

    with tempfile.TemporaryDirectory() as folder:
        prepared = dataset.load_prepared(dataset.make_tiny(folder, seed=0))
        cfg = load_config(config_class, None, [f"run.data_dir={folder}"])
        tokens, start, epoch = 0, time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            epoch += 1
            for indices in dataset.epoch_batches(prepared, cfg, epoch):
                prepared.train_source.pad(indices)
                tokens += target_tokens(prepared.train_target, indices)
        return {"tokens_per_s": tokens / (time.perf_counter() - start), "epochs": epoch}


def run_bench(gpu_size: dict, gpu_label: str, cpu_size: dict, pytorch_throughput: Callable, tensorflow_throughput: Callable,
              pipeline: Callable[[], dict], rate_line: Callable[[str, dict, int], str], include_tensorflow: bool = True) -> dict:
    """The bench's result: `gpu_size` on a GPU, the labelled REDUCED `cpu_size` on a CPU; `*_throughput(size,
    repeats, rounds)` per framework, `pipeline()` for the input; `rate_line(framework, its result, rounds)`
    printed for each framework measured."""
    import torch

    on_gpu = torch.cuda.is_available()
    size = gpu_size if on_gpu else cpu_size
    repeats, rounds = (10, 3) if on_gpu else (2, 5)
    result: dict = {"host_cpu": cpu_name(), "size": {**size, "label": gpu_label if on_gpu else CPU_LABEL},
                    "repeats": repeats, "rounds": rounds}
    gemm_before = gemm_peak_gflops()
    console.print(f"measuring PyTorch ({result['size']['label']}) ...")
    result["pytorch"] = pytorch_throughput(size, repeats, rounds)
    if include_tensorflow:
        console.print("measuring TensorFlow ...")
        result["tensorflow"] = tensorflow_throughput(size, repeats, rounds)
    result["gemm_fp32"] = max(gemm_before, gemm_peak_gflops(), key=lambda gemm: gemm["gflops"])
    result["pytorch"]["fraction_of_gemm_peak"] = result["pytorch"]["ours_gflops"] / result["gemm_fp32"]["gflops"]
    result["pipeline"] = pipeline()
    result["pipeline"]["vs_pytorch_model"] = result["pipeline"]["tokens_per_s"] / result["pytorch"]["ours_tokens_per_s"]
    for framework in ("pytorch", "tensorflow"):
        if framework in result:
            console.print(rate_line(framework, result[framework], rounds))
    return result
