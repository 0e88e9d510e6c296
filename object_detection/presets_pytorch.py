"""The detection augmentations in PyTorch, named per benchmark, in one place (as torchvision's
references/detection/presets.py): what each reference does to an image and its boxes.

SSD (the MLPerf v0.7 reference's `SSDTransformer`, single_stage_detector/ssd/utils.py):
- train: SSD random crop (`augment.sample_ssd_crop`) -> horizontal flip (p 0.5) -> resize to
  image_size x image_size (PIL bilinear, torchvision `Resize`) -> ColorJitter(0.125, 0.5, 0.5, 0.05)
  -> to tensor -> ImageNet mean/std -> SSD matching to the default boxes (`box_ops_pytorch.ssd_match`);
- eval: resize -> to tensor -> mean/std.
The random draws come from `augment.draw_ssd` with the sample's keyed generator (the reference
draws from Python's and torch's global generators; the distributions are the same, and the key
makes a sample's augmentation independent of workers, ranks and resumption, and equal to the
TensorFlow pipeline's).

A preset takes a PIL RGB image and its [0, 1] boxes and labels, and returns tensors.

Mask R-CNN (the MLPerf v0.7 reference's build_transforms, maskrcnn_benchmark/data/transforms/):
- train: resize (shorter side `min_size`, longer at most `max_size`: `augment.maskrcnn_resized_size`,
  PIL bilinear) -> horizontal flip (p 0.5, `augment.draw_maskrcnn_flip`) -> BGR in 0-255 minus the
  pixel mean (`to_bgr255`: the MSRA weights' Caffe input); targets from `augment.maskrcnn_targets`
  (boxes, labels, masks of the resized, flipped image);
- eval: resize -> BGR 0-255 minus the mean. Batches are padded to a multiple of 32 by the model
  (torchvision's GeneralizedRCNNTransform.batch_images, as the reference's to_image_list).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image

from object_detection import augment
from object_detection.box_ops_pytorch import ssd_match


def color_jitter(image: Image.Image, order: Sequence[int], factors: Sequence[float]) -> Image.Image:
    """torchvision's ColorJitter with its random order and factors given (augment.draw_ssd)."""
    brightness, contrast, saturation, hue = factors
    for op in order:
        if op == 0:
            image = F.adjust_brightness(image, brightness)
        elif op == 1:
            image = F.adjust_contrast(image, contrast)
        elif op == 2:
            image = F.adjust_saturation(image, saturation)
        else:
            image = F.adjust_hue(image, hue)
    return image


def to_normalized_tensor(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    return F.normalize(F.to_tensor(image), list(mean), list(std))


class SSDTrain:
    """The SSD reference's training transform (see the module docstring)."""

    def __init__(self, image_size: int, default_boxes_xyxy: torch.Tensor, *, match_iou: float = 0.5,
                 crop_tries: int = 1, jitter: Sequence[float] = (0.125, 0.5, 0.5, 0.05),
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
        self.image_size = image_size
        self.default_boxes = default_boxes_xyxy
        self.match_iou = match_iou
        self.crop_tries = crop_tries
        self.jitter = tuple(jitter)
        self.mean, self.std = mean, std

    def __call__(self, image: Image.Image, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
        """-> image (3, S, S), matched boxes (A, 4) [x1, y1, x2, y2] in [0, 1], labels (A,)."""
        draw = augment.draw_ssd(boxes, rng, self.crop_tries, self.jitter)
        boxes = np.asarray(boxes, dtype=np.float32)
        if draw.crop is not None:
            image = image.crop(draw.crop.pixels(*image.size))
            boxes, labels = draw.crop.boxes_in_patch(boxes), labels[draw.crop.keep]
        if draw.flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            boxes = np.stack([1.0 - boxes[:, 2], boxes[:, 1], 1.0 - boxes[:, 0], boxes[:, 3]], axis=1)
        image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        image = color_jitter(image, draw.jitter_order, draw.jitter_factors)
        matched_boxes, matched_labels = ssd_match(torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
                                                  torch.as_tensor(labels, dtype=torch.int64), self.default_boxes,
                                                  self.match_iou)
        return to_normalized_tensor(image, self.mean, self.std), matched_boxes, matched_labels


class SSDEval:
    """The SSD reference's evaluation transform: resize, to tensor, mean/std."""

    def __init__(self, image_size: int, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225)):
        self.image_size = image_size
        self.mean, self.std = mean, std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return to_normalized_tensor(image, self.mean, self.std)


def to_bgr255(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(3, H, W) float32: the image's BGR channels in 0-255, minus `mean`, over `std` (the reference's
    Normalize(to_bgr255=True); mean and std are BGR)."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)[:, :, ::-1].copy()).permute(2, 0, 1)
    return F.normalize(pixels, list(mean), list(std))


class MaskRCNNTrain:
    """The Mask R-CNN reference's training transform (see the module docstring)."""

    def __init__(self, min_size: int = 800, max_size: int = 1333, *, flip_probability: float = 0.5,
                 mean: Sequence[float] = (102.9801, 115.9465, 122.7717), std: Sequence[float] = (1.0, 1.0, 1.0)):
        self.min_size, self.max_size = min_size, max_size
        self.flip_probability = flip_probability
        self.mean, self.std = mean, std

    def __call__(self, image: Image.Image, record, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        """-> image (3, h, w), target {boxes (n, 4) pixels, labels (n,), masks (n, h, w) uint8}."""
        width, height = image.size
        out_width, out_height = augment.maskrcnn_resized_size(width, height, self.min_size, self.max_size)
        flip = augment.draw_maskrcnn_flip(rng, self.flip_probability)
        image = image.resize((out_width, out_height), Image.Resampling.BILINEAR)
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        targets = augment.maskrcnn_targets(record.boxes, record.labels, record.iscrowd, record.segmentations, width,
                                           height, out_width, out_height, flip)
        return to_bgr255(image, self.mean, self.std), {"boxes": torch.from_numpy(targets.boxes),
                                                       "labels": torch.from_numpy(targets.labels),
                                                       "masks": torch.from_numpy(targets.masks)}


class MaskRCNNEval:
    """The Mask R-CNN reference's evaluation transform: resize, BGR 0-255 minus the mean."""

    def __init__(self, min_size: int = 800, max_size: int = 1333, *,
                 mean: Sequence[float] = (102.9801, 115.9465, 122.7717), std: Sequence[float] = (1.0, 1.0, 1.0)):
        self.min_size, self.max_size = min_size, max_size
        self.mean, self.std = mean, std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        size = augment.maskrcnn_resized_size(*image.size, self.min_size, self.max_size)
        return to_bgr255(image.resize(size, Image.Resampling.BILINEAR), self.mean, self.std)
