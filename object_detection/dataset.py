"""COCO 2017 for both detection benchmarks (SSD, Mask R-CNN): download, verify, extract, tiny data.

The MLPerf references train on the official files as they are (mlcommons/training v0.7
single_stage_detector/download_dataset.sh; object_detection/download_dataset.sh): no preprocessing
beyond unpacking, and the readers parse `instances_*.json` at start-up. The prepared layout, the
same for the full and the tiny data:

    <data_dir>/annotations/instances_train2017.json   (+ the other files of the annotations archive)
    <data_dir>/annotations/instances_val2017.json
    <data_dir>/train2017/*.jpg                        118,287 images (117,266 with annotations)
    <data_dir>/val2017/*.jpg                          5,000 images (4,952 with annotations)
    <data_dir>/MANIFEST.json                          size and SHA-256 of every file (harness.datasets)

`prepare(source_dir, data_dir)` fetches the three archives from images.cocodataset.org into
`source_dir` (resuming partial downloads), checks each against the MD5 the references' scripts
publish, and unpacks them (an archive already unpacked into `data_dir`, marked by `<archive>.unpacked` beside it, is
skipped, so an interrupted preparation resumes). `make_tiny(data_dir, seed)` writes the tiny look-alike
(`tiny_coco.py`) in the same layout.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from harness.datasets import verify_file, write_manifest
from harness.download import download
from harness.errors import DatasetError
from harness.progress import info, progress_bar

# The official archives and their MD5s, as the MLPerf references check them (mlcommons/training
# single_stage_detector/scripts/download_coco2017.sh, `md5sum -c`; maskrcnn's download_dataset.sh).
ARCHIVES = {
    "train2017.zip": ("http://images.cocodataset.org/zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2"),
    "val2017.zip": ("http://images.cocodataset.org/zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"),
    "annotations_trainval2017.zip": ("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
                                     "f4bbac642086de4f52a3fdda2de5fa2c"),
}
TRAIN_IMAGES = "train2017"
VAL_IMAGES = "val2017"
ANNOTATIONS = "annotations"
TINY_TRAIN_IMAGES = 200
TINY_VAL_IMAGES = 50


def annotation_file(data_dir: str | os.PathLike, split: str) -> Path:
    """`<data_dir>/annotations/instances_<split>2017.json` (split: train | val)."""
    return Path(data_dir) / ANNOTATIONS / f"instances_{split}2017.json"


def image_dir(data_dir: str | os.PathLike, split: str) -> Path:
    return Path(data_dir) / f"{split}2017"


def fetch(source_dir: str | os.PathLike, *, base_url: str | None = None, progress: bool = True) -> dict[str, Path]:
    """The three archives in `source_dir`, downloaded where absent, each verified against its MD5.

    `base_url` replaces images.cocodataset.org (a mirror, or a file:// folder in tests).
    """
    source_dir = Path(source_dir)
    archives = {}
    for name, (url, md5) in ARCHIVES.items():
        archive = source_dir / name
        if not archive.is_file():
            url = f"{base_url.rstrip('/')}/{name}" if base_url else url
            info(f"downloading {url} to {archive}")
            download(url, archive, progress=progress)
        verify_file(archive, md5, "md5")
        archives[name] = archive
    return archives


def unpack(archive: Path, data_dir: Path, *, progress: bool = True) -> None:
    """Extract `archive` into `data_dir` (its members carry their folder: train2017/..., annotations/...)."""
    marker = archive.with_name(archive.name + ".unpacked")  # beside the archive: not part of the dataset
    if marker.is_file() and marker.read_text().strip() == str(data_dir.resolve()):
        return
    try:
        with zipfile.ZipFile(archive) as bundle, progress_bar(progress) as bar:
            members = bundle.infolist()
            task = bar.add_task(f"unpack {archive.name}", total=len(members), status="") if bar else None
            root = data_dir.resolve()
            for member in members:
                target = (data_dir / member.filename).resolve()
                if root not in target.parents and target != root:
                    raise DatasetError(f"{archive}: member '{member.filename}' would land outside {data_dir}")
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with bundle.open(member) as source, open(target, "wb") as handle:
                        shutil.copyfileobj(source, handle, 1 << 20)
                if bar:
                    bar.advance(task)
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{archive}: not a zip archive ({error}); delete it and download it again") from None
    marker.write_text(f"{data_dir.resolve()}\n")


def check_layout(data_dir: str | os.PathLike) -> None:
    """The prepared folder has both splits' instances files and image folders; DatasetError otherwise."""
    for split in ("train", "val"):
        if not annotation_file(data_dir, split).is_file():
            raise DatasetError(f"{annotation_file(data_dir, split)}: missing; prepare the dataset with "
                               "`invoke data ssd` (or --tiny)")
        if not image_dir(data_dir, split).is_dir():
            raise DatasetError(f"{image_dir(data_dir, split)}: missing image folder; prepare the dataset again")


def prepare(source_dir: str | os.PathLike | None, data_dir: str | os.PathLike, seed: int = 0, *,
            base_url: str | None = None, progress: bool = True) -> Path:
    """The full COCO 2017 in `data_dir` from the official archives (in `source_dir`, default
    `<data_dir>/../downloads`), verified, unpacked, with a manifest."""
    data_dir = Path(data_dir)
    source = Path(source_dir) if source_dir else data_dir.parent / "downloads"
    archives = fetch(source, base_url=base_url, progress=progress)
    data_dir.mkdir(parents=True, exist_ok=True)
    for archive in archives.values():
        unpack(archive, data_dir, progress=progress)
    check_layout(data_dir)
    info(f"hashing {data_dir} for MANIFEST.json")
    write_manifest(data_dir)
    return data_dir


def make_tiny(data_dir: str | os.PathLike, seed: int = 0, *, train_images: int = TINY_TRAIN_IMAGES,
              val_images: int = TINY_VAL_IMAGES) -> Path:
    """The tiny COCO look-alike (tiny_coco.py) in the prepared layout, with a manifest."""
    from object_detection import tiny_coco

    data_dir = Path(data_dir)
    try:
        tiny_coco.Material()
    except ImportError as error:
        raise DatasetError(f"the tiny COCO needs scikit-image, scipy and pycocotools ({error}): "
                           "pip install -e '.[object_detection,dev]'") from None
    if data_dir.exists():
        for stale in (ANNOTATIONS, TRAIN_IMAGES, VAL_IMAGES):
            shutil.rmtree(data_dir / stale, ignore_errors=True)
    tiny_coco.generate(data_dir, seed, train_images=train_images, val_images=val_images)
    write_manifest(data_dir)
    return data_dir
