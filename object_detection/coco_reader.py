"""The COCO dataset reader both detection benchmarks and both frameworks share: images, boxes, masks.

`CocoDetection(annotation_file, image_dir)` parses an `instances_*.json` of the official schema once
into plain NumPy records (one per image: file, size, boxes, labels, crowd flags, segmentations), so
the PyTorch `Dataset`s and the tf.data pipelines read the same lists. Pixels are decoded only when a
sample is asked for (PIL here; `tf.io.decode_jpeg` in the TensorFlow pipelines).

Conventions (the SSD reference's `COCODetection`, mlcommons/training v0.7 single_stage_detector/ssd/
utils.py, and pycocotools'):
- labels are contiguous: the categories in the file's order get 1..K, 0 is the background
  (`label_of_category`, and `category_of_label` back for the evaluation);
- boxes are [x1, y1, x2, y2] in pixels: COCO's [x, y, w, h] with x2 = x + w, y2 = y + h;
- `skip_empty=True` drops images without annotations (the SSD reference trains and evaluates on the
  117,266 / 4,952 annotated images; COCOeval still scores all 5,000 val images);
- `skip_crowd=False` keeps crowd regions as ordinary boxes, as the SSD reference does; Mask R-CNN's
  training drops them (torchvision's references), the evaluation ignores them either way;
- `masks(index)` rasterizes polygons and RLEs with pycocotools, for Mask R-CNN.
A file that is not an instances document, or an annotation that points nowhere, is a DatasetError
naming the file and the entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DatasetError


@dataclass(frozen=True)
class ImageRecord:
    """One image and its annotations, as the training and evaluation pipelines read them."""

    image_id: int
    path: str
    height: int
    width: int
    boxes: np.ndarray  # float32 (n, 4) [x1, y1, x2, y2] pixels
    labels: np.ndarray  # int64 (n,) contiguous 1..K
    iscrowd: np.ndarray  # bool (n,)
    segmentations: tuple  # the COCO `segmentation` of each annotation (polygons or RLE)

    def normalized_boxes(self) -> np.ndarray:
        """Boxes divided by the image's width and height: [0, 1] coordinates (the SSD reference's)."""
        scale = np.array([self.width, self.height, self.width, self.height], dtype=np.float32)
        return self.boxes / scale


def _require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise DatasetError(f"{where}: missing '{key}' (not a COCO instances file?)")
    return mapping[key]


def read_instances(annotation_file: str | os.PathLike) -> dict:
    """Parse an instances JSON; DatasetError in one line if it is missing, malformed or not COCO."""
    path = Path(annotation_file)
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; prepare the dataset with `invoke data ssd` (or --tiny)") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable JSON file ({error}); prepare the dataset again") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(_require(document, key, str(path)), list):
            raise DatasetError(f"{path}: '{key}' is not a list")
    return document


class CocoDetection:
    """The images and instance annotations of one COCO split (see the module docstring)."""

    def __init__(self, annotation_file: str | os.PathLike, image_dir: str | os.PathLike, *,
                 skip_empty: bool = True, skip_crowd: bool = False):
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        document = read_instances(self.annotation_file)
        where = str(self.annotation_file)
        self.categories = [{"id": int(_require(c, "id", where)), "name": str(_require(c, "name", where))}
                           for c in document["categories"]]
        self.label_of_category = {c["id"]: label for label, c in enumerate(self.categories, start=1)}
        # index = label; 0 (background) maps to no category
        self.category_of_label = np.array([0] + [c["id"] for c in self.categories], dtype=np.int64)
        images: dict[int, dict] = {}
        for image in document["images"]:
            image_id = int(_require(image, "id", where))
            if image_id in images:
                raise DatasetError(f"{where}: image id {image_id} appears twice")
            images[image_id] = {"file": str(_require(image, "file_name", where)),
                                "height": int(_require(image, "height", where)),
                                "width": int(_require(image, "width", where)), "annotations": []}
        for ann in document["annotations"]:
            image_id = int(_require(ann, "image_id", where))
            if image_id not in images:
                raise DatasetError(f"{where}: annotation {ann.get('id')} points at image {image_id}, which is not listed")
            category = int(_require(ann, "category_id", where))
            if category not in self.label_of_category:
                raise DatasetError(f"{where}: annotation {ann.get('id')} has category {category}, which is not listed")
            bbox = _require(ann, "bbox", where)
            if not (isinstance(bbox, list) and len(bbox) == 4) or bbox[2] < 0 or bbox[3] < 0:
                raise DatasetError(f"{where}: annotation {ann.get('id')} has bbox {bbox!r} (expected [x, y, w, h], w, h >= 0)")
            crowd = bool(ann.get("iscrowd", 0))
            if crowd and skip_crowd:
                continue
            images[image_id]["annotations"].append((bbox, self.label_of_category[category], crowd,
                                                    ann.get("segmentation")))
        self.records: list[ImageRecord] = []
        for image_id, image in images.items():  # the file's order, as the reference iterates
            annotations = image["annotations"]
            if skip_empty and not annotations:
                continue
            boxes = np.array([[x, y, x + w, y + h] for (x, y, w, h), *_ in annotations], dtype=np.float32).reshape(-1, 4)
            self.records.append(ImageRecord(
                image_id=image_id, path=str(self.image_dir / image["file"]), height=image["height"],
                width=image["width"], boxes=boxes,
                labels=np.array([a[1] for a in annotations], dtype=np.int64),
                iscrowd=np.array([a[2] for a in annotations], dtype=bool),
                segmentations=tuple(a[3] for a in annotations)))

    @property
    def num_classes(self) -> int:
        """Categories plus the background (81 for COCO)."""
        return len(self.categories) + 1

    def __len__(self) -> int:
        return len(self.records)

    def load_image(self, index: int):
        """The image as an RGB PIL image; a file that does not decode is one line naming it."""
        from PIL import Image

        path = self.records[index].path
        try:
            with open(path, "rb") as handle:
                image = Image.open(handle)
                image.load()
                return image.convert("RGB")
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing image; prepare the dataset again") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DatasetError(f"{path}: not a readable image ({error}); the file is corrupt: prepare the "
                               "dataset again") from None

    def masks(self, index: int) -> np.ndarray:
        """uint8 (n, height, width) instance masks of image `index` (polygons and RLEs via pycocotools)."""
        record = self.records[index]
        if any(segmentation is None for segmentation in record.segmentations):
            raise DatasetError(f"{self.annotation_file}: image {record.image_id} has an annotation without "
                               "a segmentation")
        return rasterize(record.segmentations, record.height, record.width)


def rasterize(segmentations, height: int, width: int, *, out_width: int | None = None, out_height: int | None = None,
              flip: bool = False) -> np.ndarray:
    """uint8 (n, out_height, out_width) masks of the COCO `segmentations` of a height x width image,
    scaled to the output size and mirrored left-right if `flip` (default: the image's own size).

    Polygons are scaled (x by out_width / width, y by out_height / height) and mirrored (x -> out_width - x)
    before pycocotools rasterizes them, as the Mask R-CNN reference resizes and flips its polygons
    (`SegmentationMask.resize`, `.transpose`) rather than the pixels; RLEs (crowds) are decoded at
    the image's size and resized nearest-neighbour.
    """
    from pycocotools import mask as mask_utils

    out_width, out_height = out_width or width, out_height or height
    scale_x, scale_y = out_width / width, out_height / height
    masks = np.zeros((len(segmentations), out_height, out_width), dtype=np.uint8)
    for i, segmentation in enumerate(segmentations):
        if isinstance(segmentation, list):  # polygons: one object in one or more pieces
            polygons = []
            for polygon in segmentation:
                points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * (scale_x, scale_y)
                if flip:
                    points[:, 0] = out_width - points[:, 0]
                polygons.append(points.ravel().tolist())
            masks[i] = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, out_height, out_width)))
            continue
        if isinstance(segmentation.get("counts"), list):  # uncompressed RLE (crowds)
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        mask = mask_utils.decode(rle)
        if (out_width, out_height) != (width, height):
            from PIL import Image

            mask = np.asarray(Image.fromarray(mask).resize((out_width, out_height), Image.Resampling.NEAREST))
        masks[i] = mask[:, ::-1] if flip else mask
    return masks
