"""Box operations in PyTorch: torchvision's own IoU and NMS, and the one box encoding of both benchmarks.

`box_ops_tensorflow.py` is the same module in TensorFlow (same names, same arguments); the tests
check one against the other.

Boxes are [x1, y1, x2, y2]; anchors (SSD's default boxes, Mask R-CNN's proposals) are given as
[cx, cy, w, h]. The encoding is Faster R-CNN's (Girshick 2015, eq. 2) with weights (wx, wy, ww, wh):

    dx = wx (cx - acx) / aw,   dy = wy (cy - acy) / ah,   dw = ww log(w / aw),   dh = wh log(h / ah)

SSD's variances 0.1 / 0.2 (the reference's `scale_xy`, `scale_wh`) are the weights (10, 10, 5, 5),
which happen to be Mask R-CNN's box-head weights too. `decode` can clamp dw, dh at
log(1000 / 16) as Mask R-CNN's box coder does (torchvision `BoxCoder.bbox_xform_clip`); SSD does not.
"""

from __future__ import annotations

import math

import torch
import torchvision

SSD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # 1 / (0.1, 0.1, 0.2, 0.2): the SSD reference's variances
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU of [x1, y1, x2, y2] boxes: torchvision.ops.box_iou."""
    return torchvision.ops.box_iou(boxes1, boxes2)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def encode(boxes: torch.Tensor, anchors: torch.Tensor, weights=SSD_WEIGHTS) -> torch.Tensor:
    """Regression targets of [x1, y1, x2, y2] `boxes` against [cx, cy, w, h] `anchors` (broadcasting)."""
    wx, wy, ww, wh = weights
    cx, cy, w, h = xyxy_to_cxcywh(boxes).unbind(-1)
    acx, acy, aw, ah = anchors.unbind(-1)
    return torch.stack([wx * (cx - acx) / aw, wy * (cy - acy) / ah, ww * torch.log(w / aw),
                        wh * torch.log(h / ah)], dim=-1)


def decode(deltas: torch.Tensor, anchors: torch.Tensor, weights=SSD_WEIGHTS, clamp: float | None = None) -> torch.Tensor:
    """[x1, y1, x2, y2] boxes from regression `deltas` against [cx, cy, w, h] `anchors`: encode's inverse."""
    wx, wy, ww, wh = weights
    dx, dy, dw, dh = deltas.unbind(-1)
    dw, dh = dw / ww, dh / wh
    if clamp is not None:
        dw, dh = dw.clamp(max=clamp), dh.clamp(max=clamp)
    acx, acy, aw, ah = anchors.unbind(-1)
    cx = dx / wx * aw + acx
    cy = dy / wy * ah + acy
    return cxcywh_to_xyxy(torch.stack([cx, cy, torch.exp(dw) * aw, torch.exp(dh) * ah], dim=-1))


def ssd_match(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, default_boxes: torch.Tensor,
              threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """SSD matching (Liu et al. 2016 sec. 2.2; the reference's `Encoder.encode`).

    Each default box ([x1, y1, x2, y2], (A, 4)) takes the ground-truth box it overlaps most and is
    positive when that IoU exceeds `threshold`; every ground-truth box is also forced onto its own
    best default box (IoU set to 2). When two ground-truth boxes force the same default box, the
    later one keeps it (the reference's in-order assignment). Returns the matched boxes (A, 4; a
    negative keeps its own default box, as the reference does) and labels (A,; 0 = background).
    """
    num_defaults = default_boxes.shape[0]
    if gt_boxes.shape[0] == 0:
        return default_boxes.clone(), torch.zeros(num_defaults, dtype=torch.int64, device=default_boxes.device)
    ious = box_iou(gt_boxes, default_boxes)  # (G, A)
    best_iou, best_gt = ious.max(dim=0)
    best_default = ious.argmax(dim=1)  # (G,)
    gt_index = torch.arange(gt_boxes.shape[0], device=ious.device)
    forced = best_default[:, None] == torch.arange(num_defaults, device=ious.device)[None, :]  # (G, A)
    forcing_gt = torch.where(forced, gt_index[:, None], -1).max(dim=0).values  # the last gt that forces it
    is_forced = forcing_gt >= 0
    best_gt = torch.where(is_forced, forcing_gt, best_gt)
    best_iou = torch.where(is_forced, torch.full_like(best_iou, 2.0), best_iou)
    positive = best_iou > threshold
    labels = torch.where(positive, gt_labels[best_gt], 0)
    boxes = torch.where(positive[:, None], gt_boxes[best_gt], default_boxes)
    return boxes, labels


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by greedy NMS, highest score first: torchvision.ops.nms."""
    return torchvision.ops.nms(boxes, scores, iou_threshold)


def per_class_nms(boxes: torch.Tensor, scores: torch.Tensor, *, score_threshold: float, iou_threshold: float,
                  candidates_per_class: int, max_detections: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The SSD reference's post-processing (`Encoder.decode_single`) of one image.

    `boxes` (A, 4), `scores` (A, C) with column 0 the background. Per class: the scores above
    `score_threshold`, their top `candidates_per_class`, greedy NMS at `iou_threshold`; then the
    `max_detections` best over all classes. Returns boxes (n, 4), labels (n,) and scores (n,),
    highest score first. (torchvision's batched_nms runs every class's NMS in one call.)
    """
    class_scores = scores[:, 1:].t()  # (C-1, A)
    k = min(candidates_per_class, class_scores.shape[1])
    top_scores, top_index = class_scores.topk(k, dim=1)  # per class, best first
    classes = torch.arange(1, scores.shape[1], device=scores.device)[:, None].expand_as(top_index)
    keep = top_scores > score_threshold
    cand_boxes, cand_scores, cand_labels = boxes[top_index[keep]], top_scores[keep], classes[keep]
    kept = torchvision.ops.batched_nms(cand_boxes, cand_scores, cand_labels, iou_threshold)[:max_detections]
    return cand_boxes[kept], cand_labels[kept], cand_scores[kept]
