"""The tiny COCO is real COCO: pycocotools loads and scores it, annotations are exact, a perfect
detector scores 1.0 (box and mask), and it follows from the seed."""

from __future__ import annotations

import json

import numpy as np
from pycocotools import mask as mask_utils

from object_detection import coco_eval, dataset, tiny_coco
from object_detection.coco_reader import CocoDetection

INSTANCE_KEYS = {"segmentation", "area", "iscrowd", "image_id", "bbox", "category_id", "id"}
IMAGE_KEYS = {"license", "file_name", "coco_url", "height", "width", "date_captured", "flickr_url", "id"}


def test_the_official_schema_and_layout(tiny_coco):
    for split, count in (("train", 40), ("val", 16)):
        document = json.loads(dataset.annotation_file(tiny_coco, split).read_text())
        assert set(document) == {"info", "licenses", "images", "annotations", "categories"}
        assert len(document["images"]) == count
        assert all(set(image) == IMAGE_KEYS for image in document["images"])
        assert all(set(ann) == INSTANCE_KEYS for ann in document["annotations"])
        assert [c["id"] for c in document["categories"]] == [1, 3, 5, 8, 11]  # sparse, as COCO's
        for image in document["images"]:
            path = dataset.image_dir(tiny_coco, split) / image["file_name"]
            assert path.read_bytes()[:2] == b"\xff\xd8"  # JPEG
            assert image["file_name"] == f"{image['id']:012d}.jpg"
    assert (tiny_coco / "MANIFEST.json").is_file()


def test_boxes_and_areas_are_those_of_the_segmentation(tiny_coco):
    """bbox is the extent of the object's pixels (the polygon rasterized by pycocotools, within the
    polygon's diagonal corner cuts: 1 px), area its pixel count; crowds are RLE with iscrowd 1."""
    document = json.loads(dataset.annotation_file(tiny_coco, "train").read_text())
    sizes = {image["id"]: (image["height"], image["width"]) for image in document["images"]}
    crowds = 0
    for ann in document["annotations"]:
        height, width = sizes[ann["image_id"]]
        if ann["iscrowd"]:
            crowds += 1
            assert isinstance(ann["segmentation"]["counts"], list)
            rle = mask_utils.frPyObjects(ann["segmentation"], height, width)
        else:
            assert len(ann["segmentation"]) == 1 and len(ann["segmentation"][0]) >= 6
            rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], height, width))
        mask = mask_utils.decode(rle)
        rows, cols = np.nonzero(mask)
        x, y, w, h = ann["bbox"]
        assert np.allclose([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], [x, y, x + w, y + h], atol=1.0)
        assert ann["area"] == mask.sum()
    assert crowds >= 1


def test_a_perfect_detector_scores_one(tiny_coco):
    """Ground truth as detections (score 1, crowds left out: COCOeval ignores them) -> AP 1.0."""
    gt = coco_eval.load_ground_truth(dataset.annotation_file(tiny_coco, "val"))
    anns = [a for a in gt.dataset["annotations"] if not a["iscrowd"]]
    rows = np.array([[a["image_id"], *a["bbox"], 1.0, a["category_id"]] for a in anns])
    assert coco_eval.evaluate_bbox(gt, rows).ap == 1.0
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
                "segmentation": coco_eval.encode_masks(gt.annToMask(a)[None])[0]} for a in anns]
    assert coco_eval.evaluate_segm(gt, results).ap == 1.0


def test_an_empty_detector_scores_zero(tiny_coco):
    gt = coco_eval.load_ground_truth(dataset.annotation_file(tiny_coco, "val"))
    assert coco_eval.evaluate_bbox(gt, np.zeros((0, 7))).ap == 0.0


def test_the_same_seed_writes_the_same_dataset(tmp_path):
    first = tiny_coco.generate(tmp_path / "a", seed=3, train_images=6, val_images=2)
    second = tiny_coco.generate(tmp_path / "b", seed=3, train_images=6, val_images=2)
    other = tiny_coco.generate(tmp_path / "c", seed=4, train_images=6, val_images=2)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files and all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert (first / "annotations/instances_train2017.json").read_bytes() != \
        (other / "annotations/instances_train2017.json").read_bytes()


def test_the_reader_skips_empty_images_and_maps_labels(tiny_coco):
    coco = CocoDetection(dataset.annotation_file(tiny_coco, "train"), dataset.image_dir(tiny_coco, "train"))
    everything = CocoDetection(dataset.annotation_file(tiny_coco, "train"), dataset.image_dir(tiny_coco, "train"),
                               skip_empty=False)
    assert len(everything) == 40 and len(coco) == 40 - 40 // tiny_coco_empty_every()
    assert coco.num_classes == 6 and list(coco.category_of_label) == [0, 1, 3, 5, 8, 11]
    record = coco.records[0]
    assert record.boxes.shape == (len(record.labels), 4) and record.labels.min() >= 1
    assert np.all(record.boxes[:, 2:] > record.boxes[:, :2])
    masks = coco.masks(0)
    assert masks.shape == (len(record.labels), record.height, record.width) and masks.any(axis=(1, 2)).all()
    assert coco.load_image(0).size == (record.width, record.height)
    no_crowd = CocoDetection(dataset.annotation_file(tiny_coco, "train"), dataset.image_dir(tiny_coco, "train"),
                             skip_crowd=True)
    assert sum(len(r.labels) for r in no_crowd.records) < sum(len(r.labels) for r in coco.records)


def tiny_coco_empty_every() -> int:
    return tiny_coco.EMPTY_EVERY
