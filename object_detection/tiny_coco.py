"""A tiny COCO 2017 look-alike made from real photographs: the same files, schema and tools as the real one.

No small COCO ships with a package, so this module writes one (`dataset.make_tiny` calls it):

    <data_dir>/annotations/instances_train2017.json   the official instances schema (info, licenses,
    <data_dir>/annotations/instances_val2017.json     images, annotations, categories)
    <data_dir>/train2017/000000000001.jpg ...         JPEG, 12-digit ids as COCO names them
    <data_dir>/val2017/000000100001.jpg ...

Backgrounds are crops of the real photographs bundled with scikit-image (`skimage.data`: astronaut,
chelsea, coffee, rocket, hubble_deep_field, brick, grass, gravel, ...) and scikit-learn
(`load_sample_images`: china, flower). On them objects of five categories are pasted at random
scales, positions and overlaps:
- `coin`: the real coins of `skimage.data.coins()`, cut out of the photograph by an Otsu threshold;
- `horse`: the real horse silhouette of `skimage.data.horse()`, filled with a photograph's texture;
- `disk`, `square` (rotated), `triangle`: rendered shapes with shaded colors.
Category ids are sparse (1, 3, 5, 8, 11), as COCO's 80 categories use ids up to 90.

Annotations are exact: an object's segmentation is the outline of its visible pixels (after later
objects occlude it) traced along pixel edges, its `bbox` the outline's extent ([x, y, w, h] in
pixels), its `area` the pixel count of the outline as pycocotools rasterizes it. Placements that
would hide more than 40% of an earlier object, split it or punch a hole in it are redrawn, so every
object is one polygon. Some images hold a crowd (`iscrowd: 1`, a cluster of coins with an RLE mask,
as COCO marks crowds) and a few hold nothing (COCO has unannotated images; the SSD reference skips
them for training). Everything follows from the seed.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = (
    {"supercategory": "object", "id": 1, "name": "coin"},
    {"supercategory": "animal", "id": 3, "name": "horse"},
    {"supercategory": "shape", "id": 5, "name": "disk"},
    {"supercategory": "shape", "id": 8, "name": "square"},
    {"supercategory": "shape", "id": 11, "name": "triangle"},
)
BACKGROUNDS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "brick", "grass", "gravel",
               "camera", "moon", "retina")
TEXTURES = ("chelsea", "coffee", "brick", "gravel", "grass", "astronaut")
IMAGE_SIZES = ((320, 240), (240, 320), (288, 288), (320, 256), (256, 320), (300, 225))  # (width, height)
MAX_OBJECTS = 4
MIN_VISIBLE = 0.6  # an object stays at least 60% visible
CROWD_EVERY = 12  # about one image in 12 holds a crowd of coins
EMPTY_EVERY = 25  # and one in 25 holds no object at all
VAL_FIRST_ID = 100_001


@dataclass(frozen=True)
class Sprite:
    """An object ready to paste: RGB pixels and the mask of the pixels that belong to it."""

    rgb: np.ndarray  # uint8 (h, w, 3)
    mask: np.ndarray  # bool (h, w)


class Material:
    """The real pictures the generator draws from, loaded once."""

    def __init__(self):
        from scipy import ndimage
        from skimage import data, filters, measure, morphology

        photos = {name: getattr(data, name)() for name in BACKGROUNDS}
        try:
            from sklearn.datasets import load_sample_images

            for name, image in zip(("china", "flower"), load_sample_images().images):
                photos[name] = image
        except ImportError:  # scikit-learn is optional: scikit-image's photos suffice
            pass
        self.photos = {name: _rgb(image) for name, image in photos.items()}
        coins = data.coins()
        foreground = ndimage.binary_fill_holes(morphology.closing(coins > filters.threshold_otsu(coins),
                                                                  morphology.disk(2)))
        labels = measure.label(foreground)
        self.coins = []
        for region in measure.regionprops(labels):
            # single round coins (the threshold merges some touching ones into an elongated blob)
            if 800 <= region.area <= 4000 and region.eccentricity < 0.6:
                top, left, bottom, right = region.bbox
                mask = labels[top:bottom, left:right] == region.label
                self.coins.append(Sprite(_rgb(coins[top:bottom, left:right]), mask))
        horse = ~data.horse()  # the silhouette is False in skimage's picture
        rows, cols = np.nonzero(horse)
        self.horse = horse[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8) if image.dtype.kind == "f" else image.astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def _resize(array: np.ndarray, width: int, height: int, nearest: bool = False) -> np.ndarray:
    mode = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    if array.dtype == bool:
        return np.asarray(Image.fromarray(array.astype(np.uint8) * 255).resize((width, height), mode)) > 127
    return np.array(Image.fromarray(array).resize((width, height), mode))


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """A saturated color (HSV with high saturation and value), as RGB floats 0..255."""
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))) * 255


def _shaded(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A color with a linear light gradient and a little grain over the mask's box."""
    h, w = mask.shape
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = ((xx - w / 2) * math.cos(angle) + (yy - h / 2) * math.sin(angle)) / max(h, w)
    light = 1.0 + 0.35 * ramp[..., None] + rng.normal(0, 0.04, (h, w, 1))
    return np.clip(_random_color(rng)[None, None, :] * light, 0, 255).astype(np.uint8)


def _polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    from skimage.draw import polygon

    mask = np.zeros((size, size), dtype=bool)
    rows, cols = polygon(points[:, 1], points[:, 0], (size, size))
    mask[rows, cols] = True
    return mask


def make_sprite(category: str, size: int, material: Material, rng: np.random.Generator) -> Sprite:
    """One object of `category` whose longer side is about `size` pixels."""
    if category == "coin":
        coin = material.coins[rng.integers(len(material.coins))]
        h, w = coin.mask.shape
        scale = size / max(h, w)
        width, height = max(4, round(w * scale)), max(4, round(h * scale))
        tint = rng.uniform(0.75, 1.15, 3)  # copper, brass or silver light
        rgb = np.clip(_resize(coin.rgb, width, height) * tint, 0, 255).astype(np.uint8)
        return Sprite(rgb, _resize(coin.mask, width, height, nearest=True))
    if category == "horse":
        h, w = material.horse.shape
        scale = size / max(h, w)
        width, height = max(4, round(w * scale)), max(4, round(h * scale))
        mask = _resize(material.horse, width, height, nearest=True)
        if rng.random() < 0.5:
            mask = mask[:, ::-1]
        texture = material.photos[TEXTURES[rng.integers(len(TEXTURES))]]
        top = rng.integers(0, texture.shape[0] - height) if texture.shape[0] > height else 0
        left = rng.integers(0, texture.shape[1] - width) if texture.shape[1] > width else 0
        patch = _resize(texture[top:top + height, left:left + width], width, height)
        tint = _random_color(rng) / 255.0
        rgb = np.clip(patch * (0.5 + 0.5 * tint[None, None, :]), 0, 255).astype(np.uint8)
        return Sprite(np.ascontiguousarray(rgb), np.ascontiguousarray(mask))
    if category == "disk":
        yy, xx = np.mgrid[0:size, 0:size]
        mask = (xx + 0.5 - size / 2) ** 2 + (yy + 0.5 - size / 2) ** 2 <= (size / 2) ** 2
    elif category in ("square", "triangle"):
        corners = 4 if category == "square" else 3
        angle = rng.uniform(0, 2 * math.pi)
        radius = size / 2
        angles = angle + 2 * math.pi * np.arange(corners) / corners
        points = np.stack([size / 2 + radius * np.cos(angles), size / 2 + radius * np.sin(angles)], axis=1)
        mask = _polygon_mask(points, size)
    else:
        raise ValueError(f"unknown category {category!r}")
    rows, cols = np.nonzero(mask)
    mask = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return Sprite(_shaded(mask, rng), mask)


def background(width: int, height: int, material: Material, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a random photograph (at a random zoom), resized to width x height."""
    names = sorted(material.photos)
    photo = material.photos[names[rng.integers(len(names))]]
    ph, pw = photo.shape[:2]
    zoom = rng.uniform(0.5, 1.0)
    crop_w = min(pw, max(32, round(min(pw, ph * width / height) * zoom)))
    crop_h = min(ph, max(32, round(crop_w * height / width)))
    top = rng.integers(0, ph - crop_h + 1)
    left = rng.integers(0, pw - crop_w + 1)
    image = _resize(np.ascontiguousarray(photo[top:top + crop_h, left:left + crop_w]), width, height)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def outline(mask: np.ndarray) -> list[float]:
    """The outline of a one-piece mask along pixel edges, as a COCO polygon [x1, y1, x2, y2, ...].

    Pixel (row r, column c) covers [c, c+1) x [r, r+1) in COCO's coordinates. The 0.5-level contour
    of the zero-padded mask runs half-way between pixel centres, i.e. on the pixel edges between an
    object pixel and a background one (cutting corners diagonally), so the polygon's extent is the
    pixels' extent exactly.
    """
    from skimage.measure import find_contours

    padded = np.pad(mask.astype(np.float32), 1)
    contours = find_contours(padded, 0.5)
    contour = max(contours, key=len)
    # padded index -> mask index: -1; pixel index -> COCO coordinate of its centre: +0.5
    xs = contour[:, 1] - 0.5
    ys = contour[:, 0] - 0.5
    points = np.stack([xs, ys], axis=1)[:-1]  # find_contours closes the loop with a repeated point
    return [round(float(v), 2) for v in points.ravel()]


def _one_piece(mask: np.ndarray) -> bool:
    from scipy import ndimage

    _, count = ndimage.label(mask)
    return count == 1 and bool(np.array_equal(ndimage.binary_fill_holes(mask), mask))


def compose(width: int, height: int, material: Material, rng: np.random.Generator, *, empty: bool = False,
            crowd: bool = False):
    """One image and its objects: (RGB array, [(category name, visible mask, iscrowd)])."""
    image = background(width, height, material, rng)
    objects: list[list] = []  # [category, full mask, visible mask]
    names = [c["name"] for c in CATEGORIES]
    count = 0 if empty else int(rng.integers(1, MAX_OBJECTS + 1))
    for _ in range(count):
        category = names[rng.integers(len(names))]
        size = int(round(rng.uniform(0.15, 0.55) * min(width, height)))
        sprite = make_sprite(category, size, material, rng)
        h, w = sprite.mask.shape
        for _attempt in range(30):
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            placed = np.zeros((height, width), dtype=bool)
            placed[top:top + h, left:left + w] = sprite.mask
            visible = [obj[2] & ~placed for obj in objects]
            if all(v.sum() >= MIN_VISIBLE * obj[1].sum() and _one_piece(v) for v, obj in zip(visible, objects)):
                for obj, v in zip(objects, visible):
                    obj[2] = v
                region = image[top:top + h, left:left + w]
                region[sprite.mask] = sprite.rgb[sprite.mask]
                objects.append([category, placed, placed.copy()])
                break
    annotated = [(category, visible, False) for category, _, visible in objects]
    if crowd:
        cluster = _crowd_of_coins(width, height, material, rng, objects)
        if cluster is not None:
            mask, pixels = cluster
            image[mask] = pixels[mask]
            annotated.append(("coin", mask, True))
    return image, annotated


def _crowd_of_coins(width, height, material, rng, objects):
    """3-5 small touching coins in a free spot: one crowd region (no object may be hidden)."""
    size = int(round(rng.uniform(0.08, 0.12) * min(width, height)))
    occupied = np.zeros((height, width), dtype=bool)
    for obj in objects:
        occupied |= obj[2]
    for _attempt in range(20):
        cy = int(rng.integers(size * 2, height - size * 2))
        cx = int(rng.integers(size * 2, width - size * 2))
        mask = np.zeros((height, width), dtype=bool)
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(3, 6))):
            coin = make_sprite("coin", size, material, rng)
            h, w = coin.mask.shape
            top = int(np.clip(cy + rng.integers(-size, size) - h // 2, 0, height - h))
            left = int(np.clip(cx + rng.integers(-size, size) - w // 2, 0, width - w))
            region = pixels[top:top + h, left:left + w]
            region[coin.mask] = coin.rgb[coin.mask]
            mask[top:top + h, left:left + w] |= coin.mask
        if not (mask & occupied).any():
            return mask, pixels
    return None


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd segmentation: run lengths of the column-major mask, starting with a background run."""
    flat = mask.ravel(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def annotation(category_id: int, mask: np.ndarray, iscrowd: bool, image_id: int, annotation_id: int) -> dict:
    """A COCO instance annotation of a visible mask (see the module docstring for the conventions)."""
    from pycocotools import mask as mask_utils

    height, width = mask.shape
    if iscrowd:
        segmentation = uncompressed_rle(mask)
        rle = mask_utils.frPyObjects(segmentation, height, width)
        rows, cols = np.nonzero(mask)
        bbox = [float(cols.min()), float(rows.min()), float(cols.max() + 1 - cols.min()),
                float(rows.max() + 1 - rows.min())]
    else:
        polygon = outline(mask)
        segmentation = [polygon]
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        xs, ys = polygon[0::2], polygon[1::2]
        bbox = [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]
    return {"segmentation": segmentation, "area": float(mask_utils.area(rle)), "iscrowd": int(iscrowd),
            "image_id": image_id, "bbox": bbox, "category_id": category_id, "id": annotation_id}


def write_split(root: Path, split: str, count: int, first_image_id: int, first_annotation_id: int,
                material: Material, rng: np.random.Generator) -> dict:
    """Write `<root>/<split>2017/*.jpg` and return the split's instances document."""
    folder = root / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    category_id = {c["name"]: c["id"] for c in CATEGORIES}
    images, annotations = [], []
    annotation_id = first_annotation_id
    captured = datetime.datetime(2013, 11, 14, 11, 18, 45)
    for index in range(count):
        image_id = first_image_id + index
        width, height = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))]
        pixels, objects = compose(width, height, material, rng, empty=index % EMPTY_EVERY == EMPTY_EVERY - 1,
                                  crowd=index % CROWD_EVERY == CROWD_EVERY // 2)
        file_name = f"{image_id:012d}.jpg"
        Image.fromarray(pixels).save(folder / file_name, format="JPEG", quality=90)
        images.append({"license": 1, "file_name": file_name, "coco_url": "", "height": height, "width": width,
                       "date_captured": (captured + datetime.timedelta(minutes=index)).isoformat(sep=" "),
                       "flickr_url": "", "id": image_id})
        for name, mask, iscrowd in objects:
            annotations.append(annotation(category_id[name], mask, iscrowd, image_id, annotation_id))
            annotation_id += 1
    return {
        "info": {"description": "mlbench tiny COCO (generated from scikit-image / scikit-learn photographs)",
                 "url": "", "version": "1.0", "year": 2017, "contributor": "mlbench", "date_created": "2017/09/01"},
        "licenses": [{"url": "https://creativecommons.org/publicdomain/zero/1.0/", "id": 1, "name": "CC0 1.0"}],
        "images": images,
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }


def generate(data_dir: str | os.PathLike, seed: int = 0, *, train_images: int = 200, val_images: int = 50) -> Path:
    """Write the tiny COCO (images and `annotations/instances_{train,val}2017.json`) under `data_dir`."""
    root = Path(data_dir)
    material = Material()
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
    train = write_split(root, "train", train_images, 1, 1, material, rngs[0])
    val = write_split(root, "val", val_images, VAL_FIRST_ID, 900_001, material, rngs[1])
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, document in (("train", train), ("val", val)):
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(document))
    return root
