"""ImageNet preparation on tiny archives in the official format; the tiny dataset; corrupt files."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.datasets import file_digest, verify_manifest
from harness.errors import DatasetError
from image_classification import dataset

CLASSES = dataset.synsets()[:3]


def _jpeg(seed: int, mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _val_names_of(wnid: str, count: int) -> list[str]:
    return sorted(name for name, label in dataset.val_labels().items() if label == wnid)[:count]


def make_official_tars(folder: Path, inner_tars: dict[str, bytes] | None = None,
                       val_files: dict[str, bytes] | None = None) -> dict[str, str]:
    """ILSVRC2012_img_train.tar (a tar of per-class tars) and ILSVRC2012_img_val.tar (flat JPEGs),
    3 classes; one image a PNG and one a CMYK JPEG, as in the real train set. Returns their MD5s."""
    if inner_tars is None:
        inner_tars = {}
        for index, wnid in enumerate(CLASSES):
            files = {f"{wnid}_{n}.JPEG": _jpeg(100 * index + n) for n in range(4)}
            inner_tars[f"{wnid}.tar"] = _tar(files)
        inner_tars[f"{CLASSES[1]}.tar"] = _tar({f"{CLASSES[1]}_0.JPEG": _jpeg(7, fmt="PNG"),
                                                 f"{CLASSES[1]}_1.JPEG": _jpeg(8, mode="CMYK"),
                                                 f"{CLASSES[1]}_2.JPEG": _jpeg(9)})
    if val_files is None:
        val_files = {name: _jpeg(1000 + n) for n, name in
                     enumerate(name for wnid in CLASSES for name in _val_names_of(wnid, 2))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / dataset.TRAIN_TAR).write_bytes(_tar(inner_tars))
    (folder / dataset.VAL_TAR).write_bytes(_tar(val_files))
    return {name: file_digest(folder / name, "md5") for name in (dataset.TRAIN_TAR, dataset.VAL_TAR)}


def test_label_space_is_the_ilsvrc2012_one():
    wnids = dataset.synsets()
    assert len(wnids) == 1000 and wnids[0] == "n01440764" and wnids[-1] == "n15075141"
    labels = dataset.val_labels()
    assert len(labels) == 50_000
    # devkit ground truth: the first validation image is a sea snake, label 65 in sorted order
    assert labels["ILSVRC2012_val_00000001.JPEG"] == "n01751748" == wnids[65]
    assert sorted(np.unique(list(labels.values()), return_counts=True)[1]) == [50] * 1000


def test_prepare_extracts_checks_and_reencodes(tmp_path):
    checksums = make_official_tars(tmp_path / "source")
    root = dataset.prepare(tmp_path / "source", tmp_path / "imagenet", checksums=checksums, workers=2)
    assert dataset.class_names(root) == list(CLASSES)
    assert sorted(p.name for p in (root / "train" / CLASSES[0]).iterdir()) == \
           [f"{CLASSES[0]}_{n}.JPEG" for n in range(4)]
    for wnid in CLASSES:
        assert sorted(p.name for p in (root / "val" / wnid).iterdir()) == _val_names_of(wnid, 2)
    for name in ("_0.JPEG", "_1.JPEG"):  # the PNG and the CMYK JPEG became RGB JPEGs
        with Image.open(root / "train" / CLASSES[1] / f"{CLASSES[1]}{name}") as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")
    assert verify_manifest(root) == 3 * 4 - 1 + 3 * 2
    assert not (root / ".prepare").exists()
    assert not list(root.glob("**/*.partial"))


def test_prepare_resumes_class_by_class_and_verifies_checksums_once(tmp_path, monkeypatch):
    checksums = make_official_tars(tmp_path / "source")
    root = tmp_path / "imagenet"
    verified = []
    real_verify = dataset.verify_file
    monkeypatch.setattr(dataset, "verify_file", lambda *args: (verified.append(args[0].name), real_verify(*args)))
    dataset.prepare(tmp_path / "source", root, checksums=checksums, workers=1)
    assert verified == [dataset.TRAIN_TAR, dataset.VAL_TAR]
    # as if interrupted while extracting the third class: its half-written staging folder remains
    (root / "MANIFEST.json").unlink()
    kept = root / "train" / CLASSES[0] / f"{CLASSES[0]}_0.JPEG"
    kept_mtime = kept.stat().st_mtime_ns
    (root / "train" / CLASSES[2]).rename(root / "train" / f".{CLASSES[2]}.partial")
    (root / "train" / f".{CLASSES[2]}.partial" / f"{CLASSES[2]}_0.JPEG").write_bytes(b"half")
    (root / ".prepare").mkdir()
    for name in (dataset.TRAIN_TAR, dataset.VAL_TAR):  # the markers the first run had left
        stat = (tmp_path / "source" / name).stat()
        (root / ".prepare" / f"{name}.verified").write_text(f"{checksums[name]} {stat.st_size} {stat.st_mtime_ns}")
    dataset.prepare(tmp_path / "source", root, checksums=checksums, workers=1)
    assert verified == [dataset.TRAIN_TAR, dataset.VAL_TAR]  # not hashed again
    assert kept.stat().st_mtime_ns == kept_mtime  # a finished class is not extracted again
    assert verify_manifest(root) == 3 * 4 - 1 + 3 * 2
    assert not list(root.glob("train/.*"))


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_corrupt_tar_is_named_by_its_checksum(tmp_path):
    checksums = make_official_tars(tmp_path / "source")
    path = tmp_path / "source" / dataset.TRAIN_TAR
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError) as error:
        dataset.prepare(tmp_path / "source", tmp_path / "imagenet", checksums=checksums)
    assert str(path) in _one_line(error) and "md5 checksum mismatch" in str(error.value)


def test_truncated_inner_tar_is_named(tmp_path):
    inner = _tar({f"{CLASSES[0]}_{n}.JPEG": _jpeg(n) for n in range(3)})
    checksums = make_official_tars(tmp_path / "source", inner_tars={f"{CLASSES[0]}.tar": inner[:1500]})
    with pytest.raises(DatasetError) as error:
        dataset.prepare(tmp_path / "source", tmp_path / "imagenet", checksums=checksums, workers=1)
    assert f"{dataset.TRAIN_TAR}:{CLASSES[0]}.tar: corrupt or truncated tar archive" in _one_line(error)


def test_corrupt_jpeg_in_an_archive_is_named(tmp_path):
    good = _jpeg(1)
    inner = _tar({f"{CLASSES[0]}_0.JPEG": good, f"{CLASSES[0]}_1.JPEG": good[: len(good) // 2]})
    checksums = make_official_tars(tmp_path / "source", inner_tars={f"{CLASSES[0]}.tar": inner})
    with pytest.raises(DatasetError) as error:
        dataset.prepare(tmp_path / "source", tmp_path / "imagenet", checksums=checksums, workers=1)
    message = _one_line(error)
    assert f"{dataset.TRAIN_TAR}:{CLASSES[0]}.tar/{CLASSES[0]}_1.JPEG: not a readable image" in message
    assert "truncated" in message.lower() and "download it again" in message


def test_a_file_that_is_not_a_validation_image_is_named(tmp_path):
    checksums = make_official_tars(tmp_path / "source", val_files={"holiday.JPEG": _jpeg(3)})
    with pytest.raises(DatasetError) as error:
        dataset.prepare(tmp_path / "source", tmp_path / "imagenet", checksums=checksums, workers=1)
    assert "'holiday.JPEG' is not an ILSVRC2012 validation image" in _one_line(error)


def test_missing_archives_say_where_to_get_them(tmp_path):
    with pytest.raises(DatasetError, match="image-net.org"):
        dataset.prepare(None, tmp_path / "imagenet")
    with pytest.raises(DatasetError, match=f"{dataset.TRAIN_TAR}: missing"):
        dataset.prepare(tmp_path, tmp_path / "imagenet")


def test_tiny_dataset_has_the_real_layout(tiny_imagenet):
    classes = dataset.class_names(tiny_imagenet)
    assert classes == list(dataset.synsets()[:10])
    for wnid in classes:
        train = sorted((tiny_imagenet / "train" / wnid).iterdir())
        val = sorted((tiny_imagenet / "val" / wnid).iterdir())
        assert len(train) == 40 and len(val) == 10
        assert all(p.suffix == ".JPEG" and p.name.startswith(wnid) for p in train)
        assert all(p.name.startswith("ILSVRC2012_val_") for p in val)
        for path in train[:2] + val[:2]:
            dataset.check_image(path)
            with Image.open(path) as image:
                assert image.format == "JPEG" and image.mode == "RGB" and min(image.size) >= 72
    assert verify_manifest(tiny_imagenet) == 10 * 50 + 1
    sources = json.loads((tiny_imagenet / "tiny_sources.json").read_text())["classes"]
    assert list(sources.values()) == list(dataset.TINY_PHOTOS)


def test_tiny_validation_views_come_from_a_quarter_no_training_view_covers(tiny_imagenet):
    """Every view's box lies in (val) or outside (train) the bottom-right quarter of its photo, so no
    validation pixel was seen in training; and the boxes are the views' true sources: each image looks
    like its box of the photo (after the recorded flip), and a validation image less like the box
    mirrored through the photo's centre (in the training part)."""
    views = json.loads((tiny_imagenet / "tiny_sources.json").read_text())["views"]
    assert len(views) == 10 * 50 and {name.split("/")[0] for name in views} == {"train", "val"}
    photos = {name: Image.fromarray(dataset._photo(name)) for name in dataset.TINY_PHOTOS}
    for name, view in views.items():
        width, height = photos[view["photo"]].size
        left, top, right, bottom = view["box"]
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, name
        inside = left >= width // 2 and top >= height // 2
        overlaps = right > width // 2 and bottom > height // 2
        assert inside if name.startswith("val/") else not overlaps, (name, view)

    def gray(image: Image.Image) -> np.ndarray:
        pixels = np.asarray(image.convert("L").resize((24, 24), Image.BILINEAR), dtype=np.float64).ravel()
        return (pixels - pixels.mean()) / (pixels.std() + 1e-9)

    def correlation(image: np.ndarray, photo: Image.Image, box, flipped: bool) -> float:
        crop = photo.crop(box)
        return float(image @ gray(crop.transpose(Image.FLIP_LEFT_RIGHT) if flipped else crop)) / image.size

    checked = [name for index, name in enumerate(views) if index % 50 in (0, 17, 41, 48)]  # 2 train + 2 val a photo
    assert sum(name.startswith("val/") for name in checked) == 20
    for name in checked:
        view = views[name]
        photo, (left, top, right, bottom) = photos[view["photo"]], view["box"]
        image = gray(Image.open(tiny_imagenet / name))
        match = correlation(image, photo, (left, top, right, bottom), view["flipped"])
        assert match > 0.8, (name, match)
        if name.startswith("val/"):
            width, height = photo.size
            mirrored = correlation(image, photo, (width - right, height - bottom, width - left, height - top),
                                   view["flipped"])
            assert match > mirrored + 0.1, (name, match, mirrored)


def test_tiny_dataset_is_reproducible(tmp_path):
    first = dataset.make_tiny(tmp_path / "a", seed=3, num_classes=2, train_per_class=3, val_per_class=1)
    second = dataset.make_tiny(tmp_path / "b", seed=3, num_classes=2, train_per_class=3, val_per_class=1)
    assert (first / "MANIFEST.json").read_text() == (second / "MANIFEST.json").read_text()


def test_corrupt_jpeg_in_a_prepared_folder_is_named(tiny_imagenet, tmp_path):
    """After preparation: the manifest check names the file, and so does the decode check
    (with run.verify_data=off the loaders name it: test_pytorch.py, test_tensorflow*.py)."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_imagenet, root)
    wnid = dataset.synsets()[3]
    victim = root / "train" / wnid / f"{wnid}_7.JPEG"
    data = victim.read_bytes()
    victim.write_bytes(data[:200] + bytes(len(data) - 200))  # same size, pixels gone
    with pytest.raises(DatasetError) as error:
        verify_manifest(root)
    assert str(victim) in _one_line(error)
    victim.write_bytes(data[:200])
    with pytest.raises(DatasetError) as error:
        dataset.check_image(victim)
    assert f"{victim}: not a readable image" in _one_line(error)
