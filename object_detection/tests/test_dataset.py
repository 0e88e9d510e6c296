"""The real-data path on small archives in the official layout: download (resumable), MD5 checks,
unpacking, manifest; a missing, truncated or corrupt archive is one line and exit code 2."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.errors import DatasetError
from object_detection import dataset

ROOT = Path(__file__).resolve().parents[2]


def official_archives(tiny: Path, folder: Path) -> dict[str, tuple[str, str]]:
    """train2017.zip, val2017.zip, annotations_trainval2017.zip as cocodataset.org lays them out
    (members under train2017/, val2017/, annotations/), from the tiny data; {name: (url, md5)}."""
    folder.mkdir(parents=True, exist_ok=True)
    members = {"train2017.zip": ["train2017"], "val2017.zip": ["val2017"], "annotations_trainval2017.zip": ["annotations"]}
    table = {}
    for name, roots in members.items():
        with zipfile.ZipFile(folder / name, "w") as bundle:
            for root in roots:
                for path in sorted((tiny / root).rglob("*")):
                    bundle.write(path, path.relative_to(tiny).as_posix())
        table[name] = (f"unused://{name}", hashlib.md5((folder / name).read_bytes()).hexdigest())
    return table


def test_the_published_checksums_are_the_references():
    assert {name: md5 for name, (_, md5) in dataset.ARCHIVES.items()} == {
        "train2017.zip": "cced6f7f71b7629ddf16f17bbcfab6b2", "val2017.zip": "442b8da7639aecaf257c1dceb8ba8c80",
        "annotations_trainval2017.zip": "f4bbac642086de4f52a3fdda2de5fa2c"}


def test_prepare_downloads_verifies_and_unpacks(tiny_coco, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    monkeypatch.setattr(dataset, "ARCHIVES", official_archives(tiny_coco, mirror))
    downloads, prepared = tmp_path / "downloads", tmp_path / "full"
    dataset.prepare(downloads, prepared, base_url=mirror.as_uri(), progress=False)
    for split in ("train", "val"):
        assert dataset.annotation_file(prepared, split).read_bytes() == dataset.annotation_file(tiny_coco, split).read_bytes()
        assert len(list(dataset.image_dir(prepared, split).iterdir())) == len(list(dataset.image_dir(tiny_coco, split).iterdir()))
    from harness.datasets import verify_manifest

    assert verify_manifest(prepared) > 50
    # again: nothing downloaded or unpacked twice (the markers), the same result
    (mirror / "train2017.zip").unlink()
    dataset.prepare(downloads, prepared, base_url=mirror.as_uri(), progress=False)


def test_a_corrupt_or_truncated_archive_is_one_line(tiny_coco, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    monkeypatch.setattr(dataset, "ARCHIVES", official_archives(tiny_coco, mirror))
    downloads = tmp_path / "downloads"
    shutil.copytree(mirror, downloads)
    data = (downloads / "val2017.zip").read_bytes()
    (downloads / "val2017.zip").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DatasetError, match=r"val2017.zip: md5 checksum mismatch"):
        dataset.prepare(downloads, tmp_path / "full", progress=False)
    (downloads / "val2017.zip").unlink()
    with pytest.raises(DatasetError, match=r"val2017.zip: download failed"):
        dataset.prepare(downloads, tmp_path / "full", base_url=(tmp_path / "nowhere").as_uri(), progress=False)


def test_the_command_line_reports_a_bad_archive_in_one_line_with_exit_2(tmp_path):
    (tmp_path / "train2017.zip").write_bytes(b"not the archive")
    completed = subprocess.run([sys.executable, "-m", "harness", "data", "ssd", "--source", str(tmp_path),
                                "--data-dir", str(tmp_path / "full")], cwd=ROOT, capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "train2017.zip: md5 checksum mismatch" in lines[-1], completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_malformed_annotation_file_is_one_line(tmp_path):
    from object_detection.coco_reader import CocoDetection

    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"a.json: not a readable JSON file"):
        CocoDetection(tmp_path / "a.json", tmp_path)
    (tmp_path / "b.json").write_text('{"images": [], "annotations": []}')
    with pytest.raises(DatasetError, match=r"b.json: missing 'categories'"):
        CocoDetection(tmp_path / "b.json", tmp_path)
    (tmp_path / "c.json").write_text('{"images": [{"id": 1, "file_name": "x.jpg", "height": 2, "width": 2}], '
                                     '"annotations": [{"id": 5, "image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]}], '
                                     '"categories": [{"id": 1, "name": "coin"}]}')
    with pytest.raises(DatasetError, match=r"annotation 5 has category 9, which is not listed"):
        CocoDetection(tmp_path / "c.json", tmp_path)
