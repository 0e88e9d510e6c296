"""Our evaluation of a fixed set of detections equals pycocotools' own, run the documented way
(results JSON file -> COCO.loadRes -> COCOeval)."""

from __future__ import annotations

import json

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from object_detection import coco_eval, dataset


def fixed_detections(gt, seed: int = 0) -> np.ndarray:
    """Ground truth jittered, some dropped, false positives added, random scores: a mediocre detector."""
    rng = np.random.default_rng(seed)
    rows = []
    for ann in gt.dataset["annotations"]:
        if rng.random() < 0.2:
            continue
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
        rows.append([ann["image_id"], x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3], rng.random(),
                     ann["category_id"]])
    for image in gt.dataset["images"]:
        rows.append([image["id"], rng.uniform(0, 100), rng.uniform(0, 100), 40, 40, rng.random() * 0.5,
                     gt.dataset["categories"][rng.integers(5)]["id"]])
    return np.array(rows)


def test_bbox_equals_pycocotools_own(tiny_coco, tmp_path):
    annotations = dataset.annotation_file(tiny_coco, "val")
    ours = coco_eval.evaluate_bbox(coco_eval.load_ground_truth(annotations), fixed_detections(COCO(annotations)))
    results = tmp_path / "detections.json"
    results.write_text(json.dumps([{"image_id": int(r[0]), "bbox": [float(v) for v in r[1:5]], "score": float(r[5]),
                                    "category_id": int(r[6])} for r in fixed_detections(COCO(annotations))]))
    gt = COCO(annotations)
    theirs = COCOeval(gt, gt.loadRes(str(results)), "bbox")
    theirs.evaluate()
    theirs.accumulate()
    theirs.summarize()
    assert 0.2 < ours.ap < 0.95  # a real, non-trivial score
    np.testing.assert_allclose(ours.stats, theirs.stats, rtol=0, atol=1e-12)


def test_segm_equals_pycocotools_own(tiny_coco, tmp_path):
    annotations = dataset.annotation_file(tiny_coco, "val")
    gt = COCO(annotations)
    rng = np.random.default_rng(1)
    results = []
    for ann in gt.dataset["annotations"]:
        mask = gt.annToMask(ann)
        mask = np.roll(mask, int(rng.integers(-3, 4)), axis=1)  # a slightly wrong mask
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "score": float(rng.random()),
                        "segmentation": coco_eval.encode_masks(mask[None])[0]})
    ours = coco_eval.evaluate_segm(coco_eval.load_ground_truth(annotations), results)
    path = tmp_path / "segm.json"
    path.write_text(json.dumps(results))
    theirs = COCOeval(gt, gt.loadRes(str(path)), "segm")
    theirs.evaluate()
    theirs.accumulate()
    theirs.summarize()
    assert 0.2 < ours.ap < 1.0
    np.testing.assert_allclose(ours.stats, theirs.stats, rtol=0, atol=1e-12)


def test_detection_rows_scale_normalized_boxes_back_to_pixels():
    rows = coco_eval.detection_rows(7, np.array([[0.1, 0.2, 0.5, 0.6]]), np.array([0.9]), np.array([2]),
                                    width=200, height=100, category_of_label=np.array([0, 1, 3]))
    np.testing.assert_allclose(rows, [[7, 20, 20, 80, 40, 0.9, 3]])
