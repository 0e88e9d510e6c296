"""`invoke bench recommendation`: how fast NCF's data, training and evaluation are.

- preprocessing: a synthetic ratings.csv shaped like ml-20m (20,000,263 rows by default; set
  MLBENCH_NCF_RATINGS for a quicker run) is preprocessed exactly as the real one (dataset.
  preprocess_ratings: parse, re-index, leave-one-out, 999 eval negatives per user, write, hash), in a
  process pinned to one CPU core; the acceptance bar is >= 1 million ratings/s;
- training samples/s per framework: the real training step on ml-20m-shaped ids, at the reference
  global batch (2^20) on a GPU, a smaller one on CPU;
- evaluation: one HR@10 pass over all 138,493 users x 1,000 items (on CPU, timed on fewer users and
  scaled, and marked `extrapolated`).

Every number carries its signature: framework versions, device, precision, batch, rows, core count.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()
ML20M_RATINGS = 20_000_263


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _preprocess_on_one_core(ratings_csv: str, data_dir: str) -> dict:
    """Runs in a child process: pin it to one core, then preprocess (threads made later inherit it)."""
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    from recommendation.dataset import preprocess_ratings

    return preprocess_ratings(ratings_csv, data_dir, seed=0)


def preprocessing_speed(n_ratings: int = ML20M_RATINGS, workdir: str | os.PathLike | None = None) -> dict:
    """Write a synthetic ml-20m-shaped ratings.csv, then time its full preprocessing on one core."""
    from recommendation.dataset import synthetic_ratings, write_ratings_csv

    with tempfile.TemporaryDirectory(dir=workdir, prefix="ncf-bench-") as folder:
        began = time.perf_counter()
        ratings_csv = write_ratings_csv(Path(folder) / "ratings.csv", *synthetic_ratings(n_ratings, seed=0))
        generate_s = time.perf_counter() - began
        size = ratings_csv.stat().st_size
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            stats = pool.apply(_preprocess_on_one_core, (str(ratings_csv), str(Path(folder) / "prepared")))
    return {"ratings": stats["ratings"], "csv_megabytes": size / 1e6, "users": stats["n_users"],
            "items": stats["n_items"], "seconds": stats["total_s"], "read_s": stats["read_s"],
            "split_and_negatives_s": stats["split_s"], "write_s": stats["total_s"] - stats["read_s"] - stats["split_s"],
            "ratings_per_second": stats["ratings"] / stats["total_s"],
            "seconds_per_million_ratings": stats["total_s"] / stats["ratings"] * 1e6,
            # CPU time of the pinned process: what one dedicated core needs, whatever else shares it
            "cpu_seconds": stats["cpu_s"], "ratings_per_cpu_second": stats["ratings"] / stats["cpu_s"],
            "cores": 1, "cpu": _cpu_name(), "csv_generation_s": generate_s}


def _settings(on_gpu: bool) -> dict:
    if on_gpu:  # the reference batch; eval over every ml-20m user
        return {"global_batch_size": 2**20, "steps": 10, "warmup_steps": 3, "eval_users": 138_493, "threads": 0}
    # CPU: one intra-op thread per framework, so that both are measured alike on a shared machine
    return {"global_batch_size": 2**14, "steps": 3, "warmup_steps": 1, "eval_users": 1_000, "threads": 1}


def run_bench(n_ratings: int | None = None, include_tensorflow: bool = True) -> dict:
    import torch

    from recommendation.config import Config
    from recommendation.pytorch.throughput import pytorch_eval_time, pytorch_throughput

    n_ratings = n_ratings or int(os.environ.get("MLBENCH_NCF_RATINGS", ML20M_RATINGS))
    settings = _settings(torch.cuda.is_available())
    result: dict = {"host_cpu": _cpu_name(), "settings": settings}

    console.print(f"preprocessing {n_ratings:,} synthetic ratings on one core ...")
    result["preprocessing"] = preprocessing_speed(n_ratings)

    # the reference model, optimizer and device choice (AMP on CUDA)
    cfg = Config(run=dataclasses.replace(Config().run, threads=settings["threads"]))
    console.print(f"PyTorch training (global batch {settings['global_batch_size']:,}) ...")
    result["pytorch"] = pytorch_throughput(cfg, steps=settings["steps"], warmup_steps=settings["warmup_steps"],
                                           global_batch_size=settings["global_batch_size"])
    console.print(f"PyTorch evaluation ({settings['eval_users']:,} users x 1,000 items) ...")
    result["eval_pytorch"] = pytorch_eval_time(cfg, users=settings["eval_users"])
    if include_tensorflow:
        try:
            from recommendation.tensorflow.throughput import tensorflow_throughput
        except ImportError as error:  # TensorFlow not installed in this environment
            result["tensorflow"] = {"skipped": str(error)}
        else:
            console.print("TensorFlow training ...")
            result["tensorflow"] = tensorflow_throughput(cfg, steps=settings["steps"],
                                                         warmup_steps=settings["warmup_steps"],
                                                         global_batch_size=settings["global_batch_size"])
    _print(result)
    return result


def _print(result: dict) -> None:
    prep = result["preprocessing"]
    table = Table(title=f"NCF preprocessing: {prep['ratings']:,} ratings, 1 core of {prep['cpu']}")
    for column in ("ratings/s", "ratings/CPU-s", "s per 1M ratings", "total s", "read s", "split+negatives s",
                   "write+hash s"):
        table.add_column(column, justify="right")
    table.add_row(f"{prep['ratings_per_second']:,.0f}", f"{prep['ratings_per_cpu_second']:,.0f}",
                  f"{prep['seconds_per_million_ratings']:.2f}",
                  f"{prep['seconds']:.1f}", f"{prep['read_s']:.1f}", f"{prep['split_and_negatives_s']:.1f}",
                  f"{prep['write_s']:.1f}")
    console.print(table)
    console.print(f"bar: >= 1,000,000 ratings/s on one core: wall clock "
                  f"[bold]{'met' if prep['ratings_per_second'] >= 1e6 else 'NOT met'}[/], CPU time "
                  f"[bold]{'met' if prep['ratings_per_cpu_second'] >= 1e6 else 'NOT met'}[/] "
                  "(they differ when other processes share the core)")
    table = Table(title="NCF training (reference NeuMF, ml-20m-shaped ids)")
    for column in ("framework", "samples/s", "global batch", "device", "precision", "versions"):
        table.add_column(column)
    for name in ("pytorch", "tensorflow"):
        row = result.get(name)
        if not row or "skipped" in row:
            continue
        table.add_row(name, f"{row['samples_per_second']:,.0f}", f"{row['global_batch_size']:,}", row["device"],
                      row["precision"], ", ".join(f"{k} {v}" for k, v in row["versions"].items()))
    console.print(table)
    evaluation = result["eval_pytorch"]
    scaled = " (extrapolated from " + f"{evaluation['users']:,} users)" if evaluation["extrapolated"] else ""
    console.print(f"evaluation, all {evaluation['all_users']:,} users x 1,000 items: "
                  f"[bold]{evaluation['all_users_seconds']:.2f} s[/]{scaled} on {evaluation['device']}, "
                  f"{evaluation['scores_per_second']:,.0f} scores/s")
