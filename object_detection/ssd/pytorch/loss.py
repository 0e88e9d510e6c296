"""SSD's loss in PyTorch, as the reference's `Loss` (single_stage_detector/ssd/base_model.py).

Per image: Smooth L1 (beta 1) of the box regressions against the encoded matched boxes
(`box_ops_pytorch.encode`, variances 0.1 / 0.2), summed over the 4 coordinates of the positive
default boxes; plus cross-entropy over the positives and the hardest negatives, three negatives
per positive (ranked by their cross-entropy; Liu et al. 2016 sec. 2.2 "Hard negative mining");
divided by the image's number of positives (an image without positives adds 0). The batch loss
is the sum of the per-image losses divided by `normalizer` (the global batch: the reference's
mean over its batch, averaged over GPUs by DDP).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from object_detection.box_ops_pytorch import encode


def ssd_loss_per_image(locs: torch.Tensor, logits: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                       default_boxes_cxcywh: torch.Tensor, negatives_per_positive: int = 3) -> torch.Tensor:
    """(N,) per-image losses: locs (N, A, 4), logits (N, A, C), matched gt boxes (N, A, 4), labels (N, A)."""
    positive = gt_labels > 0
    positives = positive.sum(dim=1)
    targets = encode(gt_boxes, default_boxes_cxcywh[None])
    box_loss = (F.smooth_l1_loss(locs, targets, reduction="none").sum(dim=2) * positive).sum(dim=1)
    confidence = F.cross_entropy(logits.transpose(1, 2), gt_labels, reduction="none")  # (N, A)
    # rank the negatives by their loss (positives set to 0): stable sorts, as both frameworks do
    negative_loss = confidence.masked_fill(positive, 0.0)
    order = negative_loss.sort(dim=1, descending=True, stable=True).indices
    rank = order.sort(dim=1, stable=True).indices
    hard_negative = rank < torch.clamp(negatives_per_positive * positives, max=positive.shape[1])[:, None]
    class_loss = (confidence * (positive.float() + hard_negative.float())).sum(dim=1)
    has_positives = (positives > 0).float()
    return (box_loss + class_loss) * has_positives / positives.float().clamp(min=1e-6)


def ssd_loss(locs, logits, gt_boxes, gt_labels, default_boxes_cxcywh, negatives_per_positive: int,
             normalizer: int) -> torch.Tensor:
    """The summed per-image losses over `normalizer` images."""
    return ssd_loss_per_image(locs, logits, gt_boxes, gt_labels, default_boxes_cxcywh,
                              negatives_per_positive).sum() / normalizer
