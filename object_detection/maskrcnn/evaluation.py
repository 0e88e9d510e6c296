"""Mask R-CNN's evaluation, the same for both frameworks: detections to COCO results, box and mask AP.

The model returns, per image, boxes in the pixels of its (resized) input, scores, labels and 28x28
mask probabilities. As the reference's inference (maskrcnn_benchmark/engine/inference.py and
data/datasets/evaluation/coco/coco_eval.py) does, boxes are scaled back to the original image
(x by width / input width, y likewise), masks are pasted into the original image at those boxes and
thresholded at 0.5 (`coco_eval.paste_masks`, the reference's Masker), and pycocotools scores both
(`coco_eval.evaluate_bbox`, `evaluate_segm`): the quality is {"BBOX": box AP, "SEGM": mask AP}.
"""

from __future__ import annotations

import numpy as np

from object_detection import coco_eval
from object_detection.coco_reader import ImageRecord


def image_results(record: ImageRecord, input_height: int, input_width: int, boxes: np.ndarray, scores: np.ndarray,
                  labels: np.ndarray, mask_probabilities: np.ndarray, category_of_label: np.ndarray):
    """(detection rows, segmentation results) of one image's detections."""
    scale = np.array([record.width / input_width, record.height / input_height] * 2)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale
    size = np.array([record.width, record.height] * 2, dtype=np.float64)
    rows = coco_eval.detection_rows(record.image_id, boxes / size, scores, labels, record.width, record.height,
                                    category_of_label)
    masks = coco_eval.paste_masks(mask_probabilities, boxes, record.height, record.width)
    return rows, coco_eval.segmentation_results(record.image_id, masks, scores, labels, category_of_label)


def score(coco_gt, rows: list, segmentations: list) -> tuple[dict[str, float], str]:
    """({"BBOX": box AP, "SEGM": mask AP}, pycocotools' two summaries) of all images' results."""
    box = coco_eval.evaluate_bbox(coco_gt, np.concatenate(rows) if rows else np.zeros((0, 7)))
    mask = coco_eval.evaluate_segm(coco_gt, segmentations)
    return {"BBOX": box.ap, "SEGM": mask.ap}, f"bbox:\n{box.summary.rstrip()}\nsegm:\n{mask.summary.rstrip()}"
