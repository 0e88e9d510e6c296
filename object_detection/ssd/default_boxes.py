"""SSD's default boxes, computed once in NumPy for both frameworks (the reference's `DefaultBoxes`).

For feature map k of size f_k with step s_k and scales S_k, S_k+1 (pixels of a `image_size` input):
boxes of side S_k and sqrt(S_k S_k+1), and for every extra aspect ratio a, S_k sqrt(a) x S_k / sqrt(a)
and its transpose, centred on ((j + 0.5) s_k, (i + 0.5) s_k) / image_size for every position (i, j)
(Liu et al. 2016 sec. 2.2, with the scales and the caffe-style centres of the reference). Order:
map, then box shape, then row, then column, which is the order the heads' outputs are flattened in
(`model.py` of either framework). Centres and sizes are clamped to [0, 1] before the corners are
derived, as the reference does, in float32.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np


def boxes_per_position(aspect_ratios: Sequence[Sequence[int]]) -> list[int]:
    """Default boxes per position of each map: 2 squares + 2 per extra aspect ratio ([4, 6, 6, 6, 4, 4])."""
    return [2 + 2 * len(ratios) for ratios in aspect_ratios]


def default_boxes_cxcywh(image_size: int, feature_sizes: Sequence[int], steps: Sequence[int], scales: Sequence[int],
                         aspect_ratios: Sequence[Sequence[int]]) -> np.ndarray:
    """float32 (A, 4) [cx, cy, w, h] in [0, 1]; A = 8732 for SSD300."""
    boxes = []
    for index, size in enumerate(feature_sizes):
        cells = image_size / steps[index]
        small, large = scales[index] / image_size, scales[index + 1] / image_size
        shapes = [(small, small), (math.sqrt(small * large),) * 2]
        for ratio in aspect_ratios[index]:
            w, h = small * math.sqrt(ratio), small / math.sqrt(ratio)
            shapes += [(w, h), (h, w)]
        for w, h in shapes:
            for i, j in itertools.product(range(size), repeat=2):
                boxes.append(((j + 0.5) / cells, (i + 0.5) / cells, w, h))
    return np.clip(np.array(boxes, dtype=np.float32), 0.0, 1.0)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """[x1, y1, x2, y2] from [cx, cy, w, h], in the boxes' dtype (the reference's `dboxes_ltrb`)."""
    half = boxes[:, 2:] * boxes.dtype.type(0.5)
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def from_config(model) -> np.ndarray:
    """The default boxes of a `config.Model`."""
    return default_boxes_cxcywh(model.image_size, model.feature_sizes, model.steps, model.scales, model.aspect_ratios)
