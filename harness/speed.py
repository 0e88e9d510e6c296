"""Timing helpers for the speed benches (`<benchmark>/bench.py`): paired rounds, the machine's GEMM peak.

A model is compared with its peer by timing both in alternating rounds in one process (`alternate`):
load that comes and goes on a shared machine then favours neither. `paired_summary` reports each
side's best round and, as the ratio, the median over rounds of the ratio of the two adjacent
timings. `gemm_peak_gflops` measures the fp32 matrix-product throughput the GFLOP/s of a model are
set against.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def alternate(steps: dict[str, Callable[[], object]], repeats: int, rounds: int,
              sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Seconds of `repeats` calls of each step, per round, the steps taking turns within a round."""
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            for _ in range(repeats):
                step()
            sync()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def paired_summary(seconds: dict[str, list[float]], work: float, repeats: int, ours: str, peer: str,
                   unit: str = "tokens") -> dict:
    """`<side>_<unit>_per_s` from each side's best round (`work` per call), and `ratio`: the median
    of peer time / our time over the rounds (above 1: ours is faster)."""
    paired = sorted(theirs / mine for mine, theirs in zip(seconds[ours], seconds[peer]))
    return {f"{ours}_{unit}_per_s": work * repeats / min(seconds[ours]),
            f"{peer}_{unit}_per_s": work * repeats / min(seconds[peer]),
            "ratio": statistics.median(paired), "round_ratios": paired}


def gemm_peak_gflops(size: int | None = None, repeats: int = 5, device: str | None = None) -> dict:
    """Measured fp32 matmul throughput with PyTorch (2 n^3 FLOPs per product, TF32 off), best of `repeats`,
    on `device` (default: the GPU if there is one, else the CPU with torch's current thread count)."""
    import torch

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = size or (8192 if device.type == "cuda" else 2048)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
        torch.matmul(a, b)
        best = float("inf")
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            torch.matmul(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return {"size": size, "gflops": 2 * size ** 3 / best / 1e9, "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"}
