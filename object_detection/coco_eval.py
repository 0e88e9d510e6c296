"""COCO evaluation with pycocotools' own `COCOeval`, the field's tool: box mAP (SSD, Mask R-CNN) and mask mAP.

The quality of both detection benchmarks is `COCOeval(...).stats[0]`, the average precision over
IoU 0.50:0.95, all areas, 100 detections per image (the MLPerf SSD and Mask R-CNN references).

    gt = load_ground_truth("coco/annotations/instances_val2017.json")
    rows = detection_rows(image_id, boxes_01, scores, labels, width, height, category_of_label)  # per image
    result = evaluate_bbox(gt, np.concatenate(rows))           # result.ap = stats[0]
    result = evaluate_segm(gt, [{"image_id", "category_id", "segmentation": rle, "score"}, ...])
    masks = paste_masks(probabilities_28x28, boxes_in_pixels, height, width)   # Mask R-CNN's masks, pasted
    results = segmentation_results(image_id, masks, scores, labels, category_of_label)

Detections reach pycocotools exactly as the SSD reference hands them over (`coco_eval` in its
train.py): an array of [image_id, x, y, w, h, score, category_id] rows given to `COCO.loadRes`.
pycocotools' progress prints are kept off stdout; its summary table is returned as text.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass(frozen=True)
class EvalResult:
    stats: tuple[float, ...]  # COCOeval.stats, the 12 numbers of its summary
    summary: str  # COCOeval.summarize()'s table
    detections: int

    @property
    def ap(self) -> float:
        """mAP@[0.5:0.95]: the benchmarks' quality."""
        return self.stats[0]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(STAT_NAMES, self.stats))


def load_ground_truth(annotation_file: str | os.PathLike):
    """pycocotools' `COCO` of an instances file, without its progress prints."""
    from pycocotools.coco import COCO

    from object_detection.coco_reader import read_instances

    document = read_instances(annotation_file)  # one-line errors for a bad file
    coco = COCO()
    coco.dataset = document
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def detection_rows(image_id: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, width: float,
                   height: float, category_of_label: np.ndarray) -> np.ndarray:
    """(n, 7) [image_id, x, y, w, h, score, category_id] rows from [0, 1] [x1, y1, x2, y2] boxes.

    As the SSD reference scales its detections back: x = x1 * width, w = (x2 - x1) * width, etc.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    rows = np.empty((len(boxes), 7), dtype=np.float64)
    rows[:, 0] = image_id
    rows[:, 1] = boxes[:, 0] * width
    rows[:, 2] = boxes[:, 1] * height
    rows[:, 3] = (boxes[:, 2] - boxes[:, 0]) * width
    rows[:, 4] = (boxes[:, 3] - boxes[:, 1]) * height
    rows[:, 5] = np.asarray(scores, dtype=np.float64).reshape(-1)
    rows[:, 6] = np.asarray(category_of_label)[np.asarray(labels, dtype=np.int64).reshape(-1)]
    return rows


def _run(coco_gt, coco_dt, iou_type: str, detections: int, image_ids: Sequence[int] | None) -> EvalResult:
    from pycocotools.cocoeval import COCOeval

    evaluator = COCOeval(coco_gt, coco_dt, iouType=iou_type)
    if image_ids is not None:
        evaluator.params.imgIds = sorted(image_ids)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return EvalResult(tuple(float(s) for s in evaluator.stats), output.getvalue(), detections)


def _no_detections(coco_gt) -> EvalResult:
    """What COCOeval would say of an empty result set (loadRes refuses one): nothing found, 0 everywhere."""
    return EvalResult(tuple(0.0 for _ in STAT_NAMES), "no detections", 0)


def evaluate_bbox(coco_gt, rows: np.ndarray, image_ids: Sequence[int] | None = None) -> EvalResult:
    """Box AP of `rows` ([image_id, x, y, w, h, score, category_id], `detection_rows`) against `coco_gt`."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    if len(rows) == 0:
        return _no_detections(coco_gt)
    # an untrained network can decode to infinite boxes (exp of a large regression), as the
    # reference's would: they match nothing; pycocotools only warns about their area
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(invalid="ignore", over="ignore"):
        coco_dt = coco_gt.loadRes(rows)
    return _run(coco_gt, coco_dt, "bbox", len(rows), image_ids)


def evaluate_segm(coco_gt, results: list[dict], image_ids: Sequence[int] | None = None) -> EvalResult:
    """Mask AP of `results` (dicts with image_id, category_id, score and an RLE `segmentation`)."""
    if not results:
        return _no_detections(coco_gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes adds keys to the dicts it is given
    return _run(coco_gt, coco_dt, "segm", len(results), image_ids)


def encode_masks(masks: np.ndarray) -> list[dict]:
    """Binary (n, H, W) masks as COCO RLEs (counts as str, JSON-ready) for `evaluate_segm`."""
    from pycocotools import mask as mask_utils

    rles = mask_utils.encode(np.asfortranarray(np.asarray(masks, dtype=np.uint8).transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _bilinear_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) matrix of 1-D bilinear resizing with align_corners=False (PyTorch's
    `F.interpolate(..., mode="bilinear")`): output i samples the input at (i + 0.5) size_in / size_out - 0.5,
    clamped at 0, between floor and floor + 1 (the last index repeated)."""
    source = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    fraction = source - low
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), low), 1.0 - fraction)
    np.add.at(weights, (np.arange(size_out), high), fraction)
    return weights


def paste_masks(probabilities: np.ndarray, boxes: np.ndarray, height: int, width: int, *, threshold: float = 0.5,
                padding: int = 1) -> np.ndarray:
    """Mask R-CNN's M x M mask probabilities pasted into a height x width image at their boxes: uint8 (n, H, W).

    The reference's `Masker` (maskrcnn_benchmark/modeling/roi_heads/mask_head/inference.py; the same
    as torchvision's `paste_masks_in_image`): each mask gets a `padding`-pixel zero border and its
    box grows by (M + 2 padding) / M about its centre, so the border lands just outside the box; the
    box is cut to integers (truncation), the mask resized bilinearly to the box's (x2 - x1 + 1) x
    (y2 - y1 + 1) pixels, pasted where it overlaps the image, and thresholded (> `threshold`).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    count, size = len(boxes), probabilities.shape[-1]
    padded = np.pad(probabilities.reshape(count, size, size), ((0, 0), (padding, padding), (padding, padding)))
    scale = (size + 2 * padding) / size
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale, (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    # torch's .to(int64) truncates toward zero
    grown = np.trunc(np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=1))
    grown = grown.astype(np.int64)
    masks = np.zeros((count, height, width), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(grown):
        box_w, box_h = max(int(x2 - x1 + 1), 1), max(int(y2 - y1 + 1), 1)
        resized = _bilinear_weights(size + 2 * padding, box_h) @ padded[i] @ _bilinear_weights(size + 2 * padding, box_w).T
        left, right = max(x1, 0), min(x2 + 1, width)
        top, bottom = max(y1, 0), min(y2 + 1, height)
        if right > left and bottom > top:
            masks[i, top:bottom, left:right] = resized[top - y1:bottom - y1, left - x1:right - x1] > threshold
    return masks


def segmentation_results(image_id: int, masks: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                         category_of_label: np.ndarray) -> list[dict]:
    """`evaluate_segm`'s input for one image: binary (n, H, W) masks with their scores and contiguous labels."""
    if len(masks) == 0:
        return []
    categories = np.asarray(category_of_label)[np.asarray(labels, dtype=np.int64).reshape(-1)]
    return [{"image_id": int(image_id), "category_id": int(category), "segmentation": rle, "score": float(score)}
            for rle, category, score in zip(encode_masks(masks), categories, np.asarray(scores).reshape(-1))]
