"""MovieLens preprocessing: the reference's split on hand-made ratings, the prepared layout, errors,
the tiny data, and the resumable, checksum-verified download (file:// URLs, never the network)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from harness.datasets import verify_manifest
from harness.errors import DatasetError
from recommendation import dataset


def write_csv(path, rows):
    path.write_text(dataset.RATINGS_HEADER + "\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
    return path


def test_leave_one_out_as_the_reference(tmp_path):
    rows = []
    # user 10: 20 items at times 1..20; the latest (item 119) is held out
    rows += [(10, 100 + k, 4.0, 1 + k) for k in range(20)]
    # user 7: 20 ratings, two share the latest time: the later row (item 100) is held out;
    # item 101 is rated twice (implicit feedback keeps one positive)
    rows += [(7, 200 + k, 3.5, 50 + k) for k in range(17)] + [(7, 101, 5.0, 1), (7, 101, 1.0, 2)]
    rows += [(7, 300, 2.0, 99), (7, 100, 2.0, 99)]
    # user 3: only 19 ratings -> dropped (MIN_RATINGS = 20)
    rows += [(3, 100 + k, 1.0, k) for k in range(19)]
    table = dataset.read_ratings_csv(write_csv(tmp_path / "ratings.csv", rows))
    split = dataset.leave_one_out(table, seed=0, eval_negatives=5)
    # users re-indexed by first appearance (10 -> 0, 7 -> 1), items likewise (100 -> 0, 101 -> 1, ...)
    item_ids = pd.unique(pd.Series([i for u, i, _, _ in rows if u != 3]))
    index_of = {item: index for index, item in enumerate(item_ids)}
    assert split.n_users == 2 and split.n_items == len(item_ids)
    assert split.test.tolist() == [[0, index_of[119]], [1, index_of[100]]]
    expected_train = sorted({(0, index_of[100 + k]) for k in range(19)}
                            | {(1, index_of[i]) for u, i, _, _ in rows if u == 7 and i != 100})
    assert [tuple(pair) for pair in split.train.tolist()] == expected_train
    assert split.negatives.shape == (2, 5)
    for user in range(2):
        rated = {item for u, item in split.train.tolist() if u == user} | {split.test[user, 1]}
        assert not rated & set(split.negatives[user].tolist())


@pytest.mark.parametrize("values", [[5, 5, 9, 9, 9, 12], [9, 5, 9, 12, 5], [3], []])
def test_first_appearance_index_is_factorize(values):
    values = np.array(values, dtype=np.int64)
    codes, ids = dataset.first_appearance_index(values)
    expected_codes, expected_ids = pd.factorize(values)
    assert np.array_equal(codes, expected_codes) and np.array_equal(ids, expected_ids)


def test_prepared_layout_and_manifest(tiny_data):
    names = {path.name for path in tiny_data.iterdir()}
    assert {"train_ratings.npy", "test_ratings.npy", "test_negatives.npy", "meta.json", "MANIFEST.json"} <= names
    assert verify_manifest(tiny_data, "full") == 5  # four data files + raw/ratings.csv
    meta = json.loads((tiny_data / "meta.json").read_text())
    prepared = dataset.load_prepared(tiny_data, "full")
    assert (meta["n_users"], meta["n_items"], meta["n_train"]) == (prepared.n_users, prepared.n_items, prepared.n_train)
    assert prepared.n_users == 600 and prepared.test_negatives.shape == (600, 999)
    header = (tiny_data / "raw" / "ratings.csv").read_text().splitlines()[:2]
    assert header[0] == "userId,movieId,rating,timestamp" and len(header[1].split(",")) == 4
    # every user keeps >= 19 training positives and one held-out item it never trained on
    counts = np.diff(prepared.train.indptr)
    assert counts.min() >= dataset.MIN_RATINGS - 1
    assert not prepared.train.contains(np.arange(600, dtype=np.int32), prepared.test_items).any()


def test_tiny_data_is_deterministic(tmp_path, tiny_data):
    again = dataset.make_tiny(tmp_path / "again", seed=0)
    for name in ("train_ratings.npy", "test_ratings.npy", "test_negatives.npy", "raw/ratings.csv"):
        assert (again / name).read_bytes() == (tiny_data / name).read_bytes(), name
    other = dataset.make_tiny(tmp_path / "other", seed=1)
    assert (other / "test_negatives.npy").read_bytes() != (tiny_data / "test_negatives.npy").read_bytes()


def test_ratings_writer_round_trips(tmp_path):
    users, items, stars, times = dataset.synthetic_ratings(30_000, seed=3)
    path = dataset.write_ratings_csv(tmp_path / "ratings.csv", users, items, stars, times, chunk=7_000)
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert np.array_equal(frame["userId"], users) and np.array_equal(frame["movieId"], items)
    assert np.array_equal(frame["rating"], stars / 2) and np.array_equal(frame["timestamp"], times)
    assert np.bincount(users).max() > 5 * dataset.MIN_RATINGS and np.bincount(users)[1:].min() >= dataset.MIN_RATINGS


@pytest.mark.parametrize("text, message", [
    ("user,item,rating,time\n1,2,3,4\n", "expected 'userId,movieId,rating,timestamp'"),
    ("userId,movieId,rating,timestamp\n1,x,3.0,4\n", "malformed ratings"),
    ("userId,movieId,rating,timestamp\n", "holds no ratings"),
])
def test_bad_ratings_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        dataset.preprocess_ratings(path, tmp_path / "out")


def test_corrupt_prepared_data_is_caught(tmp_path, tiny_data):
    import shutil

    copy = shutil.copytree(tiny_data, tmp_path / "copy")
    data = bytearray((copy / "test_negatives.npy").read_bytes())
    data[-1] ^= 0xFF
    (copy / "test_negatives.npy").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="test_negatives.npy: sha256 checksum mismatch"):
        dataset.load_prepared(copy, "full")
    np.save(copy / "test_negatives.npy", np.full((600, 999), 10**6, dtype=np.int32))
    with pytest.raises(DatasetError, match="item ids outside"):
        dataset.load_prepared(copy, "off")
    with pytest.raises(DatasetError, match="prepare the dataset"):
        dataset.load_prepared(tmp_path / "missing", "off")


def fake_ml20m(tmp_path, rows):
    """A zip with ml-20m's member layout (the real archive cannot be downloaded here)."""
    buffer = io.BytesIO()
    csv = dataset.RATINGS_HEADER + "\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows)
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ml-20m/README.txt", "MovieLens 20M (fake)")
        bundle.writestr(dataset.ML20M_RATINGS_MEMBER, csv)
    path = tmp_path / "served" / "ml-20m.zip"
    path.parent.mkdir()
    path.write_bytes(buffer.getvalue())
    return path


def test_prepare_downloads_verifies_and_preprocesses(tmp_path, monkeypatch):
    rows = [(u, 1000 + (u * 7 + k) % 60, 3.0, k) for u in range(1, 31) for k in range(25)]
    served = fake_ml20m(tmp_path, rows)
    monkeypatch.setattr(dataset, "ML20M_MD5", hashlib.md5(served.read_bytes()).hexdigest())
    data_dir = tmp_path / "data" / "full"
    dataset.prepare(None, data_dir, url=served.as_uri(), progress=False)
    prepared = dataset.load_prepared(data_dir, "full")
    assert (prepared.n_users, prepared.n_items, prepared.n_train) == (30, 60, 30 * 24)
    assert (tmp_path / "data" / "downloads" / "ml-20m.zip").read_bytes() == served.read_bytes()


def test_wrong_checksum_stops_prepare(tmp_path):
    served = fake_ml20m(tmp_path, [(1, 2, 3.0, 4)])
    with pytest.raises(DatasetError, match="md5 checksum mismatch"):
        dataset.prepare(tmp_path / "downloads", tmp_path / "out", url=served.as_uri(), progress=False)

