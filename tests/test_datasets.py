"""Dataset verification: a manifest per dataset; a bad file is named in one line before training."""

from __future__ import annotations

import hashlib

import pytest

from harness.datasets import MANIFEST_NAME, verify_file, verify_manifest, write_manifest
from harness.errors import DatasetError


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    (root / "train" / "n01").mkdir(parents=True)
    for index in range(5):
        (root / "train" / "n01" / f"{index}.bin").write_bytes(bytes(range(256)) * (index + 1))
    (root / "labels.csv").write_text("a,b\n1,2\n")
    write_manifest(root)
    return root


def test_intact_dataset_passes(dataset):
    assert verify_manifest(dataset) == 6
    assert verify_manifest(dataset, mode="size") == 6


def test_one_changed_byte_is_named(dataset):
    path = dataset / "train" / "n01" / "3.bin"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError) as error:
        verify_manifest(dataset)
    message = str(error.value)
    assert str(path) in message and "sha256 checksum mismatch" in message and "\n" not in message


def test_missing_and_truncated_files_are_named(dataset):
    (dataset / "labels.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match=r"labels.csv: size 4 bytes, manifest says 8"):
        verify_manifest(dataset, mode="size")
    (dataset / "labels.csv").unlink()
    with pytest.raises(DatasetError, match=r"labels.csv: missing from the dataset"):
        verify_manifest(dataset)


def test_missing_folder_or_manifest(tmp_path, dataset):
    with pytest.raises(DatasetError, match="dataset folder not found"):
        verify_manifest(tmp_path / "nowhere")
    (dataset / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable manifest"):
        verify_manifest(dataset)
    (dataset / MANIFEST_NAME).unlink()
    with pytest.raises(DatasetError, match="no checksum manifest"):
        verify_manifest(dataset)
    assert verify_manifest(dataset, mode="off") == 0


def test_published_checksum_of_a_download(tmp_path):
    archive = tmp_path / "ml-20m.zip"
    archive.write_bytes(b"archive bytes")
    verify_file(archive, hashlib.md5(b"archive bytes").hexdigest(), "md5")
    with pytest.raises(DatasetError, match="md5 checksum mismatch"):
        verify_file(archive, "0" * 32, "md5")
    with pytest.raises(DatasetError, match="missing"):
        verify_file(tmp_path / "absent.zip", "0" * 32)
