"""`invoke bench recommendation`: how fast NCF's data, training and evaluation are.

- preprocessing: a synthetic ratings.csv shaped like ml-20m (20,000,263 rows by default; set
  MLBENCH_NCF_RATINGS for a quicker run) is preprocessed exactly as the real one (dataset.
  preprocess_ratings: parse, re-index, leave-one-out, 999 eval negatives per user, write, hash), in a
  process pinned to one CPU core, with the CSV **cold** (fsync'ed and dropped from the page cache:
  read from the disk) and **warm** (in the page cache, as right after `invoke data` extracts it),
  in alternating rounds; the acceptance bar is >= 1 million ratings/s on one core;
- training samples/s, PyTorch against TensorFlow: the same work on both sides (one epoch of the same
  host samples through each framework's own input step and `train_one_epoch`, reference NeuMF and
  Adam on ml-20m-shaped ids), the same repeats, alternating rounds, the ratio the median of the
  paired ratios (`harness.paired_timing`), warm (after one untimed epoch each); global batch 2^20
  (the reference) on a GPU, 2^14 on CPU;
- evaluation: one HR@10 pass, both frameworks alike, over all 138,493 users x 1,000 items on a GPU
  (on CPU over fewer users, scaled, and marked `extrapolated`).

Every number carries its signature: the machine (CPU, cores, load average), framework versions,
device, precision, batch, rows.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness import machine
from harness.pagecache import drop_from_page_cache, resident_fraction
from harness.paired_timing import compare

console = Console()
ML20M_RATINGS = 20_000_263
PREPROCESSING_BAR = 1_000_000  # ratings per second on one core (the benchmark's acceptance bar)


def _pin_to_one_core() -> None:
    """Pool initializer: pin the worker to one core (threads made later inherit it), import the code."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import recommendation.dataset  # noqa: F401  (the import is not what the bench times)


def _preprocess(ratings_csv: str, data_dir: str) -> dict:
    from recommendation.dataset import preprocess_ratings

    return preprocess_ratings(ratings_csv, data_dir, seed=0)


def _read_whole(path: Path) -> None:
    with open(path, "rb") as file:
        while file.read(1 << 24):
            pass


def preprocessing_speed(n_ratings: int = ML20M_RATINGS, workdir: str | os.PathLike | None = None,
                        rounds: int = 2) -> dict:
    """Write a synthetic ml-20m-shaped ratings.csv, then time its full preprocessing on one core, the
    CSV cold (dropped from the page cache) and warm (cached), in `rounds` alternating rounds."""
    from recommendation.dataset import synthetic_ratings, write_ratings_csv

    with tempfile.TemporaryDirectory(dir=workdir, prefix="ncf-bench-") as folder:
        began = time.perf_counter()
        ratings_csv = write_ratings_csv(Path(folder) / "ratings.csv", *synthetic_ratings(n_ratings, seed=0))
        generate_s = time.perf_counter() - began
        output = Path(folder) / "prepared"
        resident: dict[str, list[float]] = {"cold": [], "warm": []}

        def before_each(state: str) -> None:  # untimed: a fresh output folder, the CSV cold or warm
            shutil.rmtree(output, ignore_errors=True)
            if state == "cold":
                drop_from_page_cache(ratings_csv)
            else:
                _read_whole(ratings_csv)
            resident[state].append(resident_fraction(ratings_csv))

        with multiprocessing.get_context("spawn").Pool(1, initializer=_pin_to_one_core) as pool:
            pool.apply(os.getpid)  # the worker is up and has imported the code before any clock starts
            run = lambda: pool.apply(_preprocess, (str(ratings_csv), str(output)))  # noqa: E731
            timing = compare({"cold": run, "warm": run}, rounds=rounds, warmup=0, work_per_call=n_ratings,
                             unit="ratings", state={"cold": "cold", "warm": "warm"},
                             before_each=before_each)
        size = ratings_csv.stat().st_size
    result = {"ratings": n_ratings, "csv_megabytes": size / 1e6, "cores": 1, "rounds": rounds,
              "csv_generation_s": generate_s, "machine": machine.describe(),
              "statistic": "median of the rounds; cold and warm alternate (ABBA)"}
    for state in ("cold", "warm"):
        stats = timing.returned[state]
        median = sorted(stats, key=lambda entry: entry["total_s"])[len(stats) // 2]  # the median round's phases
        cpu_s = sorted(entry["cpu_s"] for entry in stats)[len(stats) // 2]
        result[state] = {
            "page_cache": "dropped (fsync + POSIX_FADV_DONTNEED)" if state == "cold" else "cached",
            "csv_resident_before": resident[state], "seconds": timing.median_seconds(state),
            "ratings_per_second": timing.rate(state),
            "seconds_per_million_ratings": timing.median_seconds(state) / n_ratings * 1e6,
            "read_s": median["read_s"], "split_and_negatives_s": median["split_s"],
            "write_s": median["total_s"] - median["read_s"] - median["split_s"],
            # CPU time of the pinned process: what one dedicated core needs, whatever else shares it
            "cpu_seconds": cpu_s, "ratings_per_cpu_second": n_ratings / cpu_s,
            "users": median["n_users"], "items": median["n_items"], "round_seconds": timing.seconds[state]}
    result["warm_speedup"] = timing.ratio("warm", "cold")
    return result


def _settings(on_gpu: bool) -> dict:
    if on_gpu:  # the reference batch; eval over every ml-20m user
        return {"global_batch_size": 2**20, "steps": 10, "rounds": 5, "eval_users": 138_493, "eval_rounds": 3,
                "threads": 0}
    # CPU: one intra-op thread per framework, so that both are measured alike on a shared machine
    return {"global_batch_size": 2**14, "steps": 3, "rounds": 5, "eval_users": 1_000, "eval_rounds": 3, "threads": 1}


def _load_tensorflow_side():
    """The TensorFlow throughput module, or the reason it cannot be imported. torch.optim loads triton
    lazily, and libtriton loaded after TensorFlow's LLVM crashes the process: load it first."""
    if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
        import triton  # noqa: F401
    try:
        from recommendation.tensorflow import throughput
    except ImportError as error:  # TensorFlow not installed in this environment (e.g. the PyTorch image)
        return None, str(error)
    return throughput, None


def framework_speed(cfg, settings: dict, include_tensorflow: bool = True) -> dict:
    """Training and evaluation, PyTorch against TensorFlow, timed with `harness.paired_timing.compare`."""
    from recommendation.pytorch import throughput as torch_side
    from recommendation.synthetic import ML20M_ITEMS, ML20M_USERS, synthetic_samples

    batch, users = settings["global_batch_size"], settings["eval_users"]
    samples = synthetic_samples(settings["steps"] * batch, ML20M_USERS, ML20M_ITEMS, seed=1)
    trainers, evaluations, signatures = {}, {}, {}
    trainers["pytorch"], signatures["pytorch"] = torch_side.training_epoch(cfg, global_batch_size=batch)
    evaluations["pytorch"], _ = torch_side.evaluation(cfg, users=users)
    result: dict = {}
    if include_tensorflow:
        tf_side, problem = _load_tensorflow_side()
        if tf_side is None:
            result["tensorflow_skipped"] = problem
        else:
            trainers["tensorflow"], signatures["tensorflow"] = tf_side.training_epoch(cfg, global_batch_size=batch)
            evaluations["tensorflow"], _ = tf_side.evaluation(cfg, users=users)
    console.print(f"training, {' against '.join(trainers)}: {settings['rounds']} alternating rounds of one epoch "
                  f"({settings['steps']} x {batch:,} samples) ...")
    training = compare({name: (lambda train=train: train(samples)) for name, train in trainers.items()},
                       rounds=settings["rounds"], warmup=1, work_per_call=len(samples), unit="samples")
    console.print(f"evaluation, {users:,} users x 1,000 items, {settings['eval_rounds']} alternating rounds ...")
    evaluation = compare(evaluations, rounds=settings["eval_rounds"], warmup=1, work_per_call=users * 1_000,
                         unit="scores")
    result["training"] = {**training.summary("pytorch"), "steps_per_call": settings["steps"],
                          "global_batch_size": batch, "work": "one epoch from host samples: input step + train_one_epoch"}
    result["evaluation"] = {**evaluation.summary("pytorch"), "users": users, "all_users": ML20M_USERS,
                            "extrapolated": users != ML20M_USERS,
                            "all_users_seconds": {name: evaluation.median_seconds(name) * ML20M_USERS / users
                                                  for name in evaluations}}
    result["signatures"] = signatures
    return result


def run_bench(n_ratings: int | None = None, include_tensorflow: bool = True, preprocessing_rounds: int = 2) -> dict:
    import torch

    from recommendation.config import Config

    n_ratings = n_ratings or int(os.environ.get("MLBENCH_NCF_RATINGS", ML20M_RATINGS))
    settings = _settings(torch.cuda.is_available())
    result: dict = {"machine": machine.describe(), "settings": settings}
    console.print(f"machine: {machine.one_line(result['machine'])}")

    console.print(f"preprocessing {n_ratings:,} synthetic ratings on one core, CSV cold and warm ...")
    result["preprocessing"] = preprocessing_speed(n_ratings, rounds=preprocessing_rounds)

    # the reference model, optimizer and device choice (AMP on CUDA)
    cfg = Config(run=dataclasses.replace(Config().run, threads=settings["threads"]))
    result.update(framework_speed(cfg, settings, include_tensorflow))
    result["machine_after"] = machine.describe()
    _print(result)
    return result


def _print(result: dict) -> None:
    prep = result["preprocessing"]
    table = Table(title=f"NCF preprocessing: {prep['ratings']:,} ratings ({prep['csv_megabytes']:.0f} MB CSV), "
                        f"1 core, median of {prep['rounds']} alternating rounds")
    for column in ("CSV", "ratings/s", "ratings/CPU-s", "s per 1M ratings", "total s", "read s",
                   "split+negatives s", "write+hash s"):
        table.add_column(column, justify="right")
    for state in ("cold", "warm"):
        row = prep[state]
        table.add_row(state, f"{row['ratings_per_second']:,.0f}",
                      f"{row['ratings_per_cpu_second']:,.0f}", f"{row['seconds_per_million_ratings']:.2f}",
                      f"{row['seconds']:.1f}", f"{row['read_s']:.1f}", f"{row['split_and_negatives_s']:.1f}",
                      f"{row['write_s']:.1f}")
    console.print(table)
    cold = prep["cold"]
    console.print(f"bar: >= {PREPROCESSING_BAR:,} ratings/s on one core, cold CSV: wall clock "
                  f"[bold]{'met' if cold['ratings_per_second'] >= PREPROCESSING_BAR else 'NOT met'}[/], CPU time "
                  f"[bold]{'met' if cold['ratings_per_cpu_second'] >= PREPROCESSING_BAR else 'NOT met'}[/] "
                  "(they differ when other processes share the core). cold: the CSV fsync'ed and dropped from "
                  f"the page cache (POSIX_FADV_DONTNEED; resident before each run: {cold['csv_resident_before']}); "
                  f"warm: read into the page cache first (resident: {prep['warm']['csv_resident_before']}); "
                  f"warm/cold speed: {prep['warm_speedup']:.2f}x")
    training = result["training"]
    table = Table(title=f"NCF training: reference NeuMF, ml-20m-shaped ids, one epoch of {training['work_per_call']:,} "
                        f"samples per round, {training['rounds']} alternating rounds, {training['state']}")
    for column in ("framework", "samples/s", "vs pytorch", "global batch", "device", "precision", "versions"):
        table.add_column(column)
    for name, signature in result["signatures"].items():
        row = training[name]
        table.add_row(name, f"{row['samples_per_s']:,.0f}", f"{row.get('ratio', 1.0):.2f}x",
                      f"{signature['global_batch_size']:,}", signature["device"], signature["precision"],
                      ", ".join(f"{k} {v}" for k, v in signature["versions"].items()))
    console.print(table)
    evaluation = result["evaluation"]
    scaled = f" (extrapolated from {evaluation['users']:,} users)" if evaluation["extrapolated"] else ""
    for name in result["signatures"]:
        console.print(f"evaluation, {name}: all {evaluation['all_users']:,} users x 1,000 items "
                      f"[bold]{evaluation['all_users_seconds'][name]:.1f} s[/]{scaled}, "
                      f"{evaluation[name]['scores_per_s']:,.0f} scores/s"
                      + (f", {evaluation[name]['ratio']:.2f}x pytorch's" if "ratio" in evaluation[name] else ""))
    console.print(f"ratios: median over rounds of the paired ratio (same round), rounds alternating; "
                  f"machine: {machine.one_line(result['machine'])}; after: "
                  f"load average {result['machine_after']['load_average']}")
    if "tensorflow_skipped" in result:
        console.print(f"tensorflow: skipped ({result['tensorflow_skipped']})")
