"""MovieLens-20M for NCF: download, verify, preprocess, tiny data; one module for both frameworks.

Preprocessing follows the MLPerf NCF reference (mlcommons/training recommendation/pytorch,
convert.py and its v0.6 successor):
1. ratings become implicit feedback: every rated (user, item) pair is a positive, whatever the
   rating; users with fewer than 20 ratings are dropped (MIN_RATINGS = 20; none in ml-20m);
2. users and items are re-indexed 0..n-1 in order of first appearance (`pd.factorize`);
3. leave-one-out split: each user's rating with the latest timestamp is held out for evaluation
   (ties: the one appearing last in the file), all its other distinct items are training positives;
4. 999 evaluation negatives per user are drawn once, under the dataset seed (sampling.py).
Training negatives (4 per positive) are drawn per epoch at training time (sampling.epoch_samples).

Every step is vectorised NumPy/pandas (no Python loop per rating or per user): one core
preprocesses well over a million ratings per second (README.md, "Preprocessing speed").

Prepared layout (`data_dir/`), identical for the full and the tiny data:

    train_ratings.npy    int32 (n_train, 2)  [user, item] training positives, sorted by (user, item)
    test_ratings.npy     int32 (n_users, 2)  [user, item] the held-out positive of every user
    test_negatives.npy   int32 (n_users, 999) evaluation negatives, row u for user u
    meta.json            counts, seed, source
    MANIFEST.json        sizes and SHA-256 of the files above (harness.datasets)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from harness.datasets import verify_file, verify_manifest, write_manifest
from harness.download import download
from harness.errors import ConfigError, DatasetError
from harness.progress import info
from recommendation.sampling import Positives, pair_keys, sample_eval_negatives

# GroupLens' archive and the MD5 it publishes next to it (ml-20m.zip.md5); the MLPerf reference's
# verify_dataset.sh checks the same value.
ML20M_URL = "https://files.grouplens.org/datasets/movielens/ml-20m.zip"
ML20M_MD5 = "cd245b17a1ae2cc31bb14903e1204af3"
ML20M_ZIP = "ml-20m.zip"
ML20M_RATINGS_MEMBER = "ml-20m/ratings.csv"

RATINGS_HEADER = "userId,movieId,rating,timestamp"  # ml-20m/ratings.csv (GroupLens README)
MIN_RATINGS = 20  # reference convert.py: users with fewer ratings are dropped
EVAL_NEGATIVES = 999  # reference --valid-negative 999
FORMAT_VERSION = 1

TRAIN_FILE = "train_ratings.npy"
TEST_FILE = "test_ratings.npy"
NEGATIVES_FILE = "test_negatives.npy"
META_FILE = "meta.json"


def fetch_ml20m(source_dir: str | os.PathLike, *, url: str = ML20M_URL, progress: bool = True) -> Path:
    """`source_dir/ml-20m.zip`, downloaded if absent, verified against the published MD5."""
    archive = Path(source_dir) / ML20M_ZIP
    if not archive.is_file():
        info(f"downloading {url} to {archive}")
        download(url, archive, progress=progress)
    verify_file(archive, ML20M_MD5, "md5")
    return archive


def extract_ratings(archive: str | os.PathLike, destination_dir: str | os.PathLike) -> Path:
    """Extract `ml-20m/ratings.csv` from the archive; returns its path."""
    destination = Path(destination_dir) / "ratings.csv"
    try:
        with zipfile.ZipFile(archive) as bundle, bundle.open(ML20M_RATINGS_MEMBER) as source:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with open(destination, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 22)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DatasetError(f"{archive}: not the ml-20m archive ({error}); download it again") from None
    return destination


# -- preprocessing ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RatingsTable:
    """The columns of a MovieLens ratings.csv that NCF uses (rating values are ignored: implicit)."""

    users: np.ndarray  # original ids
    items: np.ndarray
    timestamps: np.ndarray


def read_ratings_csv(path: str | os.PathLike) -> RatingsTable:
    """Read a ratings.csv in the ml-20m layout (`userId,movieId,rating,timestamp`) with pandas' C parser."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().strip()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such ratings file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read ({error})") from None
    if header != RATINGS_HEADER:
        raise DatasetError(f"{path}: header is '{header[:80]}', expected '{RATINGS_HEADER}' (ml-20m ratings.csv)")
    try:
        frame = pd.read_csv(path, usecols=["userId", "movieId", "timestamp"], engine="c",
                            dtype={"userId": np.int64, "movieId": np.int64, "timestamp": np.int64})
    except (ValueError, pd.errors.ParserError) as error:
        raise DatasetError(f"{path}: malformed ratings ({str(error).splitlines()[0]})") from None
    return RatingsTable(frame["userId"].to_numpy(), frame["movieId"].to_numpy(), frame["timestamp"].to_numpy())


@dataclasses.dataclass(frozen=True)
class Split:
    """The preprocessed dataset in memory (the arrays the .npy files hold)."""

    train: np.ndarray  # int32 (n_train, 2)
    test: np.ndarray  # int32 (n_users, 2)
    negatives: np.ndarray  # int32 (n_users, eval_negatives)
    n_users: int
    n_items: int


def first_appearance_index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each value's id, ids) with ids numbered in order of first appearance (pd.factorize);
    in O(n) without hashing when the values are already grouped in ascending order (ml-20m's users)."""
    if values.size > 1 and bool(np.all(values[1:] >= values[:-1])):
        starts = np.empty(values.size, dtype=bool)
        starts[0] = True
        np.not_equal(values[1:], values[:-1], out=starts[1:])
        return np.cumsum(starts, dtype=np.int64) - 1, values[starts]
    codes, ids = pd.factorize(values)
    return codes, np.asarray(ids)


def leave_one_out(table: RatingsTable, *, seed: int, eval_negatives: int = EVAL_NEGATIVES,
                  min_ratings: int = MIN_RATINGS) -> Split:
    """Implicit feedback, re-indexing, leave-one-out split and evaluation negatives (see module doc)."""
    users, items, timestamps = table.users, table.items, table.timestamps
    if users.size == 0:
        raise DatasetError("ratings: the file holds no ratings")
    # re-index in order of first appearance (pd.factorize, as the reference), after dropping users
    # with too few ratings (none in ml-20m, so the second factorize rarely runs)
    user_index, user_ids = first_appearance_index(users)
    counts = np.bincount(user_index)
    if counts.min() < min_ratings:
        keep = counts[user_index] >= min_ratings
        users, items, timestamps = users[keep], items[keep], timestamps[keep]
        if users.size == 0:
            raise DatasetError(f"ratings: no user has {min_ratings} or more ratings")
        user_index, user_ids = first_appearance_index(users)
    item_index, item_ids = first_appearance_index(items)
    user_index = user_index.astype(np.int32)
    item_index = item_index.astype(np.int32)
    n_users, n_items = len(user_ids), len(item_ids)
    if eval_negatives and n_items < 2:
        raise DatasetError("ratings: fewer than 2 items, nothing to rank")

    # held-out rating: latest timestamp per user; among equal timestamps, the last row in the file
    latest = np.full(n_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, user_index, timestamps)
    candidates = np.flatnonzero(timestamps == latest[user_index])
    test_row = np.full(n_users, -1, dtype=np.int64)
    np.maximum.at(test_row, user_index[candidates], candidates)
    test_items = item_index[test_row]

    # all interactions (distinct pairs), then the training positives are those minus the held-out one
    keys = pair_keys(user_index, item_index, n_items)
    everything = Positives.from_keys(keys, n_users, n_items)
    held_out = np.searchsorted(keys, np.arange(n_users, dtype=np.int64) * n_items + test_items)
    train = np.empty((keys.size - n_users, 2), dtype=np.int32)
    train[:, 0] = np.delete(everything.users, held_out)
    train[:, 1] = np.delete(everything.items, held_out)
    test = np.stack([np.arange(n_users, dtype=np.int32), test_items.astype(np.int32)], axis=1)
    if eval_negatives:
        if np.any(np.diff(everything.indptr) >= n_items):
            raise DatasetError("ratings: a user rated every item, no evaluation negative exists for it")
        negatives = sample_eval_negatives(everything, eval_negatives, seed)
    else:
        negatives = np.zeros((n_users, 0), dtype=np.int32)
    return Split(train, test, negatives, n_users, n_items)


def write_split(split: Split, data_dir: str | os.PathLike, *, seed: int, source: str) -> Path:
    """Write the prepared files (replacing earlier ones) and the manifest of everything in `data_dir`."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    np.save(data_dir / TRAIN_FILE, split.train)
    np.save(data_dir / TEST_FILE, split.test)
    np.save(data_dir / NEGATIVES_FILE, split.negatives)
    meta = {"format": FORMAT_VERSION, "n_users": split.n_users, "n_items": split.n_items,
            "n_train": len(split.train), "eval_negatives": int(split.negatives.shape[1]),
            "min_ratings": MIN_RATINGS, "seed": seed, "source": source}
    (data_dir / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    write_manifest(data_dir)
    return data_dir


def preprocess_ratings(ratings_csv: str | os.PathLike, data_dir: str | os.PathLike, *, seed: int = 0,
                       eval_negatives: int = EVAL_NEGATIVES) -> dict:
    """ratings.csv (ml-20m layout) -> the prepared layout in `data_dir`; returns counts and timings
    (wall seconds per phase, and the CPU seconds of the whole: on a shared machine they differ)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    table = read_ratings_csv(ratings_csv)
    read_s = time.perf_counter() - start
    split = leave_one_out(table, seed=seed, eval_negatives=eval_negatives)
    split_s = time.perf_counter() - start - read_s
    write_split(split, data_dir, seed=seed, source=Path(ratings_csv).name)
    total_s = time.perf_counter() - start
    return {"ratings": int(table.users.size), "n_users": split.n_users, "n_items": split.n_items,
            "n_train": len(split.train), "read_s": read_s, "split_s": split_s, "total_s": total_s,
            "cpu_s": time.process_time() - start_cpu}


def prepare(source_dir: str | os.PathLike | None, data_dir: str | os.PathLike, seed: int = 0,
            *, url: str = ML20M_URL, progress: bool = True) -> Path:
    """The full dataset: fetch and verify ml-20m.zip (in `source_dir`, default `<data_dir>/../downloads`),
    extract ratings.csv next to it, preprocess into `data_dir`."""
    data_dir = Path(data_dir)
    source = Path(source_dir) if source_dir else data_dir.parent / "downloads"
    archive = fetch_ml20m(source, url=url, progress=progress)
    ratings = extract_ratings(archive, source / "ml-20m")
    info(f"preprocessing {ratings}")
    stats = preprocess_ratings(ratings, data_dir, seed=seed)
    info(f"{stats['ratings']:,} ratings -> {stats['n_users']:,} users, {stats['n_items']:,} items, "
         f"{stats['n_train']:,} training positives in {stats['total_s']:.1f} s; wrote {data_dir}")
    return data_dir


# -- ratings.csv writer (tiny data, benchmark input) --------------------------------------------
def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8 ASCII digits of non-negative ints < 2^32, right-aligned, 0 bytes as left padding
    (numpy divides by a constant with libdivide: one pass per digit)."""
    remaining = values.astype(np.uint32)
    digits = np.empty((values.size, width), dtype=np.uint8)
    for column in range(width - 1, -1, -1):
        quotient = remaining // np.uint32(10)
        digits[:, column] = remaining - quotient * np.uint32(10)
        remaining = quotient
    digits += ord("0")
    length = np.ones(values.size, dtype=np.int8)
    for power in range(1, width):
        length += values >= 10**power
    digits[np.arange(width)[None, :] < (width - length)[:, None]] = 0
    return digits


def write_ratings_csv(path: str | os.PathLike, users: np.ndarray, items: np.ndarray,
                      half_stars: np.ndarray, timestamps: np.ndarray, *, chunk: int = 1 << 20) -> Path:
    """Write ratings in the ml-20m layout (`1,2,3.5,1112486027`), vectorised (~20M rows in ~10 s).

    `half_stars` is the rating times two (1..10), as MovieLens ratings go 0.5..5.0 in half stars.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [np.asarray(users, np.int64), np.asarray(items, np.int64), np.asarray(timestamps, np.int64)]
    if any(column.size and (column.min() < 0 or column.max() >= 2**32) for column in columns):
        raise ValueError("ids and timestamps must be in 0..2^32-1")
    widths = [max(1, len(str(int(column.max())))) if column.size else 1 for column in columns]
    half_stars = np.asarray(half_stars, np.int64)
    with open(path, "wb") as handle:
        handle.write((RATINGS_HEADER + "\n").encode())
        for begin in range(0, len(columns[0]), chunk):
            rows = slice(begin, begin + chunk)
            n = len(columns[0][rows])
            stars = half_stars[rows]
            rating = np.empty((n, 3), np.uint8)
            rating[:, 0] = stars // 2 + ord("0")
            rating[:, 1] = ord(".")
            rating[:, 2] = np.where(stars % 2 == 1, ord("5"), ord("0"))
            comma = np.full((n, 1), ord(","), np.uint8)
            newline = np.full((n, 1), ord("\n"), np.uint8)
            line = np.concatenate([_digits(columns[0][rows], widths[0]), comma, _digits(columns[1][rows], widths[1]),
                                   comma, rating, comma, _digits(columns[2][rows], widths[2]), newline], axis=1)
            flat = line.ravel()
            handle.write(flat[flat != 0].tobytes())
    return path


def synthetic_ratings(n_ratings: int, *, n_items: int = 26_744, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ratings shaped like ml-20m, for the preprocessing benchmark: ~144 ratings per user (at least
    20, long-tailed), 26,744 movies with sparse ids up to 131,262, ml-20m's time span, rows by user."""
    rng = np.random.default_rng(seed)
    n_users = max(1, round(n_ratings / 144.4))  # ml-20m: 20,000,263 ratings of 138,493 users
    if n_ratings < n_users * MIN_RATINGS:
        raise ValueError(f"n_ratings={n_ratings} is too small (at least {MIN_RATINGS} per user)")
    weights = rng.lognormal(0.0, 1.2, n_users)
    per_user = MIN_RATINGS + np.floor(weights / weights.sum() * (n_ratings - n_users * MIN_RATINGS)).astype(np.int64)
    per_user[rng.permutation(n_users)[: n_ratings - per_user.sum()]] += 1
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), per_user)
    movie_ids = np.sort(rng.choice(np.arange(1, 131_263), size=n_items, replace=False))
    items = movie_ids[rng.integers(0, n_items, size=n_ratings)]
    half_stars = rng.integers(1, 11, size=n_ratings)
    timestamps = rng.integers(789_652_009, 1_427_784_002, size=n_ratings)
    return users, items, half_stars, timestamps


# -- tiny data ----------------------------------------------------------------------------------
TINY_USERS = 600
TINY_ITEMS = 1500
TINY_GROUPS = 12
TINY_GROUP_ITEMS = 40


def tiny_ratings(seed: int = 0, *, n_users: int = TINY_USERS, n_items: int = TINY_ITEMS,
                 groups: int = TINY_GROUPS, group_items: int = TINY_GROUP_ITEMS):
    """Small ratings with structure a model must learn (HR@10 of a random ranking: 0.01).

    Users belong to `groups` taste groups; each group owns `group_items` items, with Zipf
    popularity inside the group. A user rates 20-59 items, ~80% from its group's items and
    ~20% from all items by global popularity, at increasing timestamps; the last one is held
    out. Ranking a user's unseen group items first gives a high HR@10, while popularity alone
    cannot tell the groups apart.
    """
    rng = np.random.default_rng(seed)
    owned = groups * group_items
    if owned >= n_items:
        raise ValueError("the groups need fewer items than n_items")
    user_group = rng.integers(0, groups, n_users)
    per_user = rng.integers(20, 60, n_users)
    rows_users, rows_items = [], []
    group_weight = 1.0 / np.arange(1, group_items + 1) ** 0.8
    global_weight = 1.0 / np.arange(1, n_items + 1) ** 1.1
    global_weight /= global_weight.sum()
    item_of_rank = rng.permutation(n_items)  # which item has global popularity rank r
    # Vectorised per user: random keys with Gumbel noise give a weighted sample without replacement.
    for group in range(groups):
        members = np.flatnonzero(user_group == group)
        if members.size == 0:
            continue
        own = np.arange(group * group_items, (group + 1) * group_items)
        gumbel_own = np.log(group_weight)[None, :] - np.log(-np.log(rng.random((members.size, group_items))))
        gumbel_all = np.log(global_weight)[None, :] - np.log(-np.log(rng.random((members.size, n_items))))
        own_order = own[np.argsort(-gumbel_own, axis=1)]
        all_order = item_of_rank[np.argsort(-gumbel_all, axis=1)]
        for row, user in enumerate(members):
            from_group = min(round(per_user[user] * 0.8), group_items - 5)
            chosen = own_order[row, :from_group]
            others = all_order[row][~np.isin(all_order[row], chosen)][:per_user[user] - from_group]
            rows_users.append(np.full(per_user[user], user))
            rows_items.append(rng.permutation(np.concatenate([chosen, others])))
    users = np.concatenate(rows_users)
    items = np.concatenate(rows_items)
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    # increasing timestamps per user (ml-20m's time span); MovieLens ids start at 1
    start = rng.integers(900_000_000, 1_300_000_000, n_users)[users]
    position = np.arange(users.size) - np.searchsorted(users, users)
    timestamps = start + position * 3_600 + rng.integers(0, 3_000, users.size)
    half_stars = rng.integers(1, 11, users.size)
    movie_ids = rng.permutation(np.arange(1, 3 * n_items))[:n_items]  # sparse ids as in MovieLens
    return users + 1, movie_ids[items], half_stars, timestamps


def make_tiny(data_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny data in the prepared layout: a structured ratings.csv (kept in `data_dir/raw/`), preprocessed."""
    data_dir = Path(data_dir)
    ratings = write_ratings_csv(data_dir / "raw" / "ratings.csv", *tiny_ratings(seed))
    preprocess_ratings(ratings, data_dir, seed=seed)
    return data_dir


# -- loading ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Prepared:
    """A prepared dataset loaded for training (the same arrays in both frameworks)."""

    train: Positives  # training positives per user
    test_items: np.ndarray  # int32 (n_users,)
    test_negatives: np.ndarray  # int32 (n_users, eval_negatives)
    n_users: int
    n_items: int

    @property
    def n_train(self) -> int:
        return len(self.train.items)


def _load_array(path: Path, ndim: int) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; prepare the dataset with `invoke data recommendation`") from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: unreadable ({error}); prepare the dataset again") from None
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{path}: expected a {ndim}-d integer array, found {array.ndim}-d {array.dtype}")
    return array


def load_prepared(data_dir: str | os.PathLike, verify: str = "off") -> Prepared:
    """Load (optionally verify against MANIFEST.json first) the prepared dataset; DatasetError if bad."""
    data_dir = Path(data_dir)
    verify_manifest(data_dir, verify)
    try:
        meta = json.loads((data_dir / META_FILE).read_text())
        n_users, n_items = int(meta["n_users"]), int(meta["n_items"])
    except FileNotFoundError:
        raise DatasetError(f"{data_dir / META_FILE}: missing; prepare the dataset with "
                           "`invoke data recommendation` (or --tiny)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{data_dir / META_FILE}: unreadable ({error})") from None
    train = _load_array(data_dir / TRAIN_FILE, 2)
    test = _load_array(data_dir / TEST_FILE, 2)
    negatives = _load_array(data_dir / NEGATIVES_FILE, 2)
    if train.shape[1] != 2 or test.shape != (n_users, 2) or negatives.shape[0] != n_users:
        raise DatasetError(f"{data_dir}: array shapes {train.shape}, {test.shape}, {negatives.shape} do not "
                           f"match {META_FILE} ({n_users} users)")
    for name, array in ((TRAIN_FILE, train[:, 1]), (TEST_FILE, test[:, 1]), (NEGATIVES_FILE, negatives)):
        if array.size and (array.min() < 0 or array.max() >= n_items):
            raise DatasetError(f"{data_dir / name}: item ids outside 0..{n_items - 1}")
    if train.size and (train[:, 0].min() < 0 or train[:, 0].max() >= n_users
                       or np.any(np.diff(train[:, 0].astype(np.int64) * n_items + train[:, 1]) <= 0)):
        raise DatasetError(f"{data_dir / TRAIN_FILE}: not sorted by (user, item) or users out of range")
    positives = Positives.from_sorted(train[:, 0], train[:, 1], n_users, n_items)
    return Prepared(positives, np.ascontiguousarray(test[:, 1], dtype=np.int32),
                    np.ascontiguousarray(negatives, dtype=np.int32), n_users, n_items)


def load_for_training(cfg, replicas: int) -> Prepared:
    """The prepared dataset of `cfg.run.data_dir`, verified once (a corrupt file stops the run here, in
    one line) and checked against the config: the eval negatives it was prepared with, and a global
    batch that splits evenly over `replicas` (processes or tf.distribute replicas). Both frameworks call it."""
    prepared = load_prepared(cfg.run.data_dir, cfg.run.verify_data)
    width = prepared.test_negatives.shape[1]
    if width != cfg.data.eval_negatives_per_user:
        raise ConfigError(f"data.eval_negatives_per_user={cfg.data.eval_negatives_per_user}, but "
                          f"{cfg.run.data_dir} was prepared with {width} negatives per user")
    if cfg.schedule.global_batch_size % replicas:
        raise ConfigError(f"schedule.global_batch_size={cfg.schedule.global_batch_size} is not divisible "
                          f"by the {replicas} replicas")
    return prepared
