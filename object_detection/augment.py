"""Framework-neutral pieces of the detection augmentations: keyed randomness and SSD's crop sampler.

The presets (`presets_pytorch.py`, `presets_tensorflow.py`) apply the pixel operations in their own
framework; what only looks at boxes is decided here, in NumPy, so both frameworks draw the same
crops and flips for the same (seed, epoch, image) key.

`sample_ssd_crop` is SSD's "patch sampling" (Liu et al. 2016 sec. 2.2.3), exactly as the MLPerf
v0.7 reference's `SSDCropping` (single_stage_detector/ssd/utils.py) draws it: a mode among
{keep the image, min IoU 0.1, 0.3, 0.5, 0.7, 0.9, any crop}; for a crop mode up to `tries`
(`--num-cropping-iterations`, logged as max_samples) patches with sides uniform in [0.3, 1] of the
image, aspect w/h in [0.5, 2], a uniform position, accepted when every box overlaps it with IoU
above the mode's minimum and at least one box centre falls strictly inside; after `tries` failures
a new mode is drawn. Kept boxes are those with their centre inside, clipped to the patch and
re-expressed in its [0, 1] coordinates; the image is cut at int(left x width) ... as the reference
cuts its PIL image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SSD_CROP_MODES = (None, 0.1, 0.3, 0.5, 0.7, 0.9, -np.inf)  # None: keep the whole image; -inf: any crop


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation: a function of (seed, epoch, image index) only, so
    an image gets the same augmentation whatever the loader's workers, sharding or framework."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


def iou_with(boxes: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """IoU of (n, 4) [x1, y1, x2, y2] boxes with one box."""
    left_top = np.maximum(boxes[:, :2], patch[:2])
    right_bottom = np.minimum(boxes[:, 2:], patch[2:])
    wh = np.clip(right_bottom - left_top, 0, None)
    intersection = wh[:, 0] * wh[:, 1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return intersection / (area + (patch[2] - patch[0]) * (patch[3] - patch[1]) - intersection)


def sample_key(seed: int, epoch: int, index: int) -> int:
    """A 32-bit integer key of one sample's draws inside the model (Mask R-CNN's RPN and RoI sampling,
    `maskrcnn/*/model.py`), from (seed, epoch, image index) like `sample_rng`, on another stream."""
    return int(np.random.SeedSequence([seed, epoch, index, 1]).generate_state(1)[0])


@dataclass(frozen=True)
class Crop:
    """A chosen patch in [0, 1] image coordinates and the boxes it keeps."""

    left: float
    top: float
    right: float
    bottom: float
    keep: np.ndarray  # bool (n,): boxes whose centre lies inside the patch

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The reference's integer cut of a width x height image: (left, top, right, bottom)."""
        return (int(self.left * width), int(self.top * height), int(self.right * width), int(self.bottom * height))

    def boxes_in_patch(self, boxes: np.ndarray) -> np.ndarray:
        """Kept boxes, clipped to the patch, in the patch's [0, 1] coordinates (float32)."""
        kept = boxes[self.keep].astype(np.float32).copy()
        kept[:, 0] = np.maximum(kept[:, 0], self.left)
        kept[:, 1] = np.maximum(kept[:, 1], self.top)
        kept[:, 2] = np.minimum(kept[:, 2], self.right)
        kept[:, 3] = np.minimum(kept[:, 3], self.bottom)
        width, height = self.right - self.left, self.bottom - self.top
        kept[:, [0, 2]] = (kept[:, [0, 2]] - self.left) / width
        kept[:, [1, 3]] = (kept[:, [1, 3]] - self.top) / height
        return kept


def sample_ssd_crop(boxes: np.ndarray, rng: np.random.Generator, tries: int = 1, max_modes: int = 1000) -> Crop | None:
    """The reference's SSDCropping draw for [0, 1] boxes (n, 4); None means "keep the whole image".

    (The reference loops until it succeeds; `max_modes` only bounds that loop for degenerate
    inputs, e.g. no boxes at all, where no crop can keep a box: then the image is kept.)
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    for _ in range(max_modes):
        min_iou = SSD_CROP_MODES[rng.integers(len(SSD_CROP_MODES))]
        if min_iou is None:
            return None
        for _ in range(tries):
            w, h = rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)
            if w / h < 0.5 or w / h > 2:
                continue
            left, top = rng.uniform(0, 1.0 - w), rng.uniform(0, 1.0 - h)
            patch = np.array([left, top, left + w, top + h])
            if not np.all(iou_with(boxes, patch) > min_iou):
                continue
            centre_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
            centre_y = 0.5 * (boxes[:, 1] + boxes[:, 3])
            keep = (centre_x > patch[0]) & (centre_x < patch[2]) & (centre_y > patch[1]) & (centre_y < patch[3])
            if not keep.any():
                continue
            return Crop(float(patch[0]), float(patch[1]), float(patch[2]), float(patch[3]), keep)
    return None


@dataclass(frozen=True)
class SSDDraw:
    """Everything random of one SSD training sample, drawn from its key: crop, flip, color jitter."""

    crop: Crop | None
    flip: bool
    jitter_order: tuple[int, ...]  # the order of brightness, contrast, saturation, hue (ColorJitter)
    jitter_factors: tuple[float, float, float, float]


def draw_ssd(boxes: np.ndarray, rng: np.random.Generator, tries: int, jitter: tuple[float, ...]) -> SSDDraw:
    """Crop (SSDCropping), then flip with probability 0.5 (RandomHorizontalFlip), then ColorJitter's
    random order and factors: brightness, contrast, saturation in [1 - j, 1 + j], hue in [-j, j]."""
    crop = sample_ssd_crop(boxes, rng, tries)
    flip = bool(rng.random() < 0.5)
    order = tuple(int(i) for i in rng.permutation(4))
    b, c, s, h = jitter
    factors = (float(rng.uniform(max(0.0, 1 - b), 1 + b)), float(rng.uniform(max(0.0, 1 - c), 1 + c)),
               float(rng.uniform(max(0.0, 1 - s), 1 + s)), float(rng.uniform(-h, h)))
    return SSDDraw(crop, flip, order, factors)


def maskrcnn_resized_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(new width, new height) of Mask R-CNN's resize: the shorter side to `min_size` unless the longer
    would then exceed `max_size` (then the longer side to about `max_size`), aspect kept.

    Exactly the reference's `Resize.get_size` (mlcommons/training v0.7 object_detection/pytorch,
    maskrcnn_benchmark/data/transforms/transforms.py) for one configured min size: the shorter side
    becomes `size = int(round(max_size x short / long))` when `long / short x min_size > max_size`,
    else `min_size`; the longer side `int(size x long / short)` (truncated); an image whose shorter
    side already is `size` keeps its size.
    """
    size = min_size
    short, long = float(min(width, height)), float(max(width, height))
    if long / short * size > max_size:
        size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return width, height
    if width < height:
        return size, int(size * height / width)
    return int(size * width / height), size


def draw_maskrcnn_flip(rng: np.random.Generator, probability: float = 0.5) -> bool:
    """Mask R-CNN's only augmentation: a horizontal flip with `probability` (RandomHorizontalFlip(0.5)
    of the reference's build_transforms; no flip at evaluation)."""
    return bool(rng.random() < probability)


@dataclass(frozen=True)
class MaskRCNNTargets:
    """An image's training targets after Mask R-CNN's resize and flip (pixels of the resized image)."""

    boxes: np.ndarray  # float32 (n, 4) [x1, y1, x2, y2]
    labels: np.ndarray  # int64 (n,)
    masks: np.ndarray  # uint8 (n, height, width)


def maskrcnn_targets(boxes: np.ndarray, labels: np.ndarray, iscrowd: np.ndarray, segmentations, width: int,
                     height: int, out_width: int, out_height: int, flip: bool) -> MaskRCNNTargets:
    """The reference's training target of one image (COCODataset.__getitem__, then Resize and
    RandomHorizontalFlip): crowd regions dropped, boxes clipped to the image and empty ones dropped,
    boxes and polygons scaled to the resized image (x by out_width / width, y by out_height / height)
    and mirrored (x -> out_width - x), masks rasterized from the scaled polygons.

    Coordinates are continuous (a pixel c covers [c, c + 1)), as torchvision's detection models read
    them; the reference's legacy convention (x2 = x + w - 1, mirrored x -> w - x - 1) is one pixel
    off from it: README, "Differences from the reference".
    """
    from object_detection.coco_reader import rasterize

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    boxes = boxes * [out_width / width, out_height / height, out_width / width, out_height / height]
    if flip:
        boxes = np.stack([out_width - boxes[:, 2], boxes[:, 1], out_width - boxes[:, 0], boxes[:, 3]], axis=1)
    boxes = boxes.astype(np.float32).reshape(-1, 4)
    # empty boxes are dropped after the cast: torchvision's models refuse any with x2 <= x1 or y2 <= y1
    keep = ~np.asarray(iscrowd, dtype=bool) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    kept_segmentations = [s for s, k in zip(segmentations, keep) if k]
    masks = rasterize(kept_segmentations, height, width, out_width=out_width, out_height=out_height, flip=flip)
    return MaskRCNNTargets(boxes[keep], np.asarray(labels, dtype=np.int64)[keep], masks)
