"""Mask R-CNN with a ResNet-50-FPN backbone in PyTorch: torchvision's detection modules set to the reference.

He et al., "Mask R-CNN" (ICCV 2017), as the MLPerf v0.7 reference trains it (maskrcnn-benchmark's
e2e_mask_rcnn_R_50_FPN_1x, see ../config.py). torchvision implements the same design and is the
field's maintained version of it, so the network is `torchvision.models.detection.MaskRCNN` with
the reference's values, not a copy:
- trunk: ResNet-50 of torchvision `Bottleneck`s in the MSRA layout: the stride of a stage sits in
  its first 1x1 convolution (RESNETS.STRIDE_IN_1X1; torchvision's ResNet-50 puts it in the 3x3),
  frozen batch norm without epsilon (the reference's FrozenBatchNorm2d: x * weight + bias after
  the MSRA weights' folded statistics), the stem and res2 frozen (FREEZE_CONV_BODY_AT=2);
- `BackboneWithFPN`: FPN P2-P5 of 256 channels plus P6 by max-pooling P5 (LastLevelMaxPool);
- RPN: `AnchorGenerator` (32..512 on strides 4..64, ratios 0.5/1/2), `RPNHead`, fg/bg IoU 0.7/0.3,
  256 anchors per image at 50% positives, pre-NMS top 2000/1000 per level, NMS 0.7, post-NMS
  1000/1000 per image (config.py: the reference's 2000 per 2-image batch);
- RoI heads: `MultiScaleRoIAlign` 7x7 (box) and 14x14 (mask), sampling ratio 2; `TwoMLPHead`
  1024 + `FastRCNNPredictor`; `MaskRCNNHeads` four 3x3 convs of 256 + `MaskRCNNPredictor` (2x2
  deconvolution, 28x28 logits); 512 RoIs per image at 25% positives, IoU 0.5, box weights
  (10, 10, 5, 5); test: score > 0.05, NMS 0.5, 100 detections;
- initialization as the reference's heads: box classifier N(0, 0.01), box regressor N(0, 0.001),
  FC layers Kaiming-uniform (a=1), biases 0 (torchvision's own for the RPN, FPN and mask head).

What this module changes around torchvision, and why:
- `PresetTransform`: the data pipeline resizes and normalizes (presets_pytorch.MaskRCNNTrain/Eval,
  the reference's transforms), so the model's transform only pads the batch to a multiple of 32,
  and returns raw detections (boxes in the network input's pixels, 28x28 mask probabilities):
  both frameworks paste masks with the same code (coco_eval.paste_masks);
- `KeyedSampler`: the RPN's and RoI heads' positive/negative sampling draws from a key per image
  (seed, epoch, image), with an integer hash both frameworks compute identically (`sample_priority`),
  instead of torch's global generator: the same sample gets the same anchors and RoIs in PyTorch
  and TensorFlow, on any number of workers or ranks, and a resumed run replays the same draws.
Module names are torchvision's (`backbone.body.layer1.0.conv1`, `rpn.head.cls_logits`,
`roi_heads.box_head.fc6`, ...); the Keras twin uses the same names (`../tensorflow/model.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.models.resnet import Bottleneck
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

HASH_MASK = 0xFFFFFFFF
HASH_MULTIPLIER = 0x45D9F3B  # < 2^27: products of 32-bit values stay inside int64 in every framework
RPN_STAGE, ROI_STAGE = 1, 2


# -- the trunk -------------------------------------------------------------------------------------
def norm_layer(kind: str):
    """The reference's FrozenBatchNorm2d has no epsilon: (x - mean) * weight / sqrt(var) + bias."""
    if kind == "frozen":
        return functools.partial(FrozenBatchNorm2d, eps=0.0)
    return nn.BatchNorm2d


class ResNetTrunk(nn.Module):
    """ResNet of torchvision Bottlenecks with torchvision's module names, in the MSRA layout (see the
    module docstring); `widths` and `blocks` per stage (ResNet-50: 64..512, 3/4/6/3)."""

    def __init__(self, stem_width: int = 64, widths: Sequence[int] = (64, 128, 256, 512),
                 blocks: Sequence[int] = (3, 4, 6, 3), norm: str = "frozen"):
        super().__init__()
        norm = norm_layer(norm)
        self.conv1 = nn.Conv2d(3, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = stem_width
        self.out_channels = []
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            out = width * Bottleneck.expansion
            layers = []
            for b in range(count):
                downsample = None
                if b == 0:
                    downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), norm(out))
                block = Bottleneck(in_channels if b == 0 else out, width, stride if b == 0 else 1, downsample,
                                   norm_layer=norm)
                if b == 0 and stride != 1:  # MSRA: the stride in the 1x1 reduction, the 3x3 at stride 1
                    block.conv1.stride, block.conv2.stride = (stride, stride), (1, 1)
                layers.append(block)
            self.add_module(f"layer{index + 1}", nn.Sequential(*layers))
            self.out_channels.append(out)
            in_channels = out
        for module in self.modules():  # torchvision's ResNet init (the smoke model's random weights)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # IntermediateLayerGetter calls the children instead
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def freeze(trunk: ResNetTrunk, stages: int) -> None:
    """FREEZE_CONV_BODY_AT: stage 1 is the stem, 2..5 are res2..res5."""
    modules = [[trunk.conv1, trunk.bn1], trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4][:stages]
    for module in modules:
        for part in module if isinstance(module, list) else [module]:
            for parameter in part.parameters():
                parameter.requires_grad_(False)


def build_backbone(cfg_model) -> BackboneWithFPN:
    trunk = ResNetTrunk(cfg_model.stem_width, cfg_model.widths, cfg_model.blocks, cfg_model.norm)
    freeze(trunk, cfg_model.frozen_stages)
    return BackboneWithFPN(trunk, {f"layer{i}": str(i - 1) for i in range(1, 5)}, trunk.out_channels,
                           cfg_model.fpn_channels, extra_blocks=LastLevelMaxPool())


# -- keyed sampling ------------------------------------------------------------------------------
def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply, two rounds) in int64 arithmetic: exact in any framework."""
    x = ((x >> 16) ^ x) * HASH_MULTIPLIER & HASH_MASK
    x = ((x >> 16) ^ x) * HASH_MULTIPLIER & HASH_MASK
    return (x >> 16) ^ x


def sample_priority(key: int, stage: int, count: int, device=None) -> torch.Tensor:
    """int64 (count,) pseudo-random priorities in [0, 2^32) of the elements of one image's sampling
    `stage` (RPN anchors or RoIs), from the image's key; the TensorFlow model computes the same."""
    base = _mix(torch.tensor((int(key) * 4 + stage) & HASH_MASK, dtype=torch.int64, device=device))
    return _mix((torch.arange(count, dtype=torch.int64, device=device) + base) & HASH_MASK)


class KeyedSampler(BalancedPositiveNegativeSampler):
    """torchvision's balanced sampler (at most `batch_size_per_image` x `positive_fraction` positives,
    negatives for the rest), choosing uniformly at random through the keyed priorities: the positives
    (negatives) with the smallest priorities are taken, ties by index."""

    def __init__(self, batch_size_per_image: int, positive_fraction: float, stage: int):
        super().__init__(batch_size_per_image, positive_fraction)
        self.stage = stage
        self.keys: Sequence[int] = ()

    def _pick(self, candidates: torch.Tensor, priority: torch.Tensor, count: int) -> torch.Tensor:
        order = torch.argsort(priority[candidates], stable=True)
        return candidates[order[:count]]

    def __call__(self, matched_idxs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(self.keys) != len(matched_idxs):
            raise RuntimeError(f"KeyedSampler: {len(matched_idxs)} images but {len(self.keys)} sample keys; "
                               "targets need a 'sample_key'")
        pos_masks, neg_masks = [], []
        for labels, key in zip(matched_idxs, self.keys):
            positive = torch.where(labels >= 1)[0]
            negative = torch.where(labels == 0)[0]
            num_pos = min(positive.numel(), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(negative.numel(), self.batch_size_per_image - num_pos)
            priority = sample_priority(key, self.stage, labels.numel(), labels.device)
            pos_mask = torch.zeros_like(labels, dtype=torch.uint8)
            neg_mask = torch.zeros_like(labels, dtype=torch.uint8)
            pos_mask[self._pick(positive, priority, num_pos)] = 1
            neg_mask[self._pick(negative, priority, num_neg)] = 1
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks


# -- the detector ----------------------------------------------------------------------------------
class PresetTransform(GeneralizedRCNNTransform):
    """Only `batch_images` (zero padding to a multiple of `size_divisible`): resizing and normalizing
    happen in the data pipeline, and detections come back as the heads make them."""

    def __init__(self, size_divisible: int):
        super().__init__(min_size=1, max_size=1, image_mean=[0.0], image_std=[1.0], size_divisible=size_divisible)

    def normalize(self, image):
        return image

    def resize(self, image, target=None):
        return image, target

    def postprocess(self, result, image_shapes, original_image_sizes):
        return result


class MaskRCNNModel(MaskRCNN):
    """torchvision's MaskRCNN whose samplers take each image's `sample_key` from its target."""

    def forward(self, images, targets=None):
        if self.training and targets is not None:
            keys = [int(t["sample_key"]) for t in targets]
            self.rpn.fg_bg_sampler.keys = keys
            self.roi_heads.fg_bg_sampler.keys = keys
        return super().forward(images, targets)


def init_box_head(box_head: TwoMLPHead, predictor: FastRCNNPredictor) -> None:
    """The reference's init: FC layers Kaiming-uniform with a=1 (make_fc), biases 0; the classifier
    N(0, 0.01), the regressor N(0, 0.001) (FPNPredictor)."""
    for fc in (box_head.fc6, box_head.fc7):
        nn.init.kaiming_uniform_(fc.weight, a=1)
        nn.init.zeros_(fc.bias)
    nn.init.normal_(predictor.cls_score.weight, std=0.01)
    nn.init.normal_(predictor.bbox_pred.weight, std=0.001)
    for layer in (predictor.cls_score, predictor.bbox_pred):
        nn.init.zeros_(layer.bias)


def build_model(cfg_model, num_classes: int, size_divisible: int = 32) -> MaskRCNNModel:
    """Mask R-CNN as configured (random weights; `pretrained.py` loads the trunk's)."""
    m = cfg_model
    backbone = build_backbone(m)
    channels = m.fpn_channels
    anchors = AnchorGenerator(tuple((size,) for size in m.anchor_sizes), (tuple(m.anchor_ratios),) * len(m.anchor_sizes))
    box_head = TwoMLPHead(channels * m.box_pool_size ** 2, m.box_head_dim)
    box_predictor = FastRCNNPredictor(m.box_head_dim, num_classes)
    init_box_head(box_head, box_predictor)
    model = MaskRCNNModel(
        backbone, num_classes=None,
        rpn_anchor_generator=anchors, rpn_head=RPNHead(channels, len(m.anchor_ratios)),
        rpn_pre_nms_top_n_train=m.rpn_pre_nms_top_n_train, rpn_pre_nms_top_n_test=m.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=m.rpn_post_nms_top_n_train, rpn_post_nms_top_n_test=m.rpn_post_nms_top_n_test,
        rpn_nms_thresh=m.rpn_nms_iou, rpn_fg_iou_thresh=m.rpn_fg_iou, rpn_bg_iou_thresh=m.rpn_bg_iou,
        rpn_batch_size_per_image=m.rpn_batch_size_per_image, rpn_positive_fraction=m.rpn_positive_fraction,
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], m.box_pool_size, m.sampling_ratio),
        box_head=box_head, box_predictor=box_predictor,
        box_score_thresh=m.score_threshold, box_nms_thresh=m.nms_iou, box_detections_per_img=m.detections_per_image,
        box_fg_iou_thresh=m.roi_fg_iou, box_bg_iou_thresh=m.roi_bg_iou,
        box_batch_size_per_image=m.roi_batch_size_per_image, box_positive_fraction=m.roi_positive_fraction,
        bbox_reg_weights=tuple(m.box_reg_weights),
        mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], m.mask_pool_size, m.sampling_ratio),
        mask_head=MaskRCNNHeads(channels, list(m.mask_head_channels), 1),
        mask_predictor=MaskRCNNPredictor(m.mask_head_channels[-1], m.mask_predictor_channels, num_classes))
    model.transform = PresetTransform(size_divisible)
    model.rpn.fg_bg_sampler = KeyedSampler(m.rpn_batch_size_per_image, m.rpn_positive_fraction, RPN_STAGE)
    model.roi_heads.fg_bg_sampler = KeyedSampler(m.roi_batch_size_per_image, m.roi_positive_fraction, ROI_STAGE)
    return model


def count_parameters(model: nn.Module) -> int:
    """Every parameter, trained or frozen (FrozenBatchNorm's buffers are not parameters)."""
    return sum(p.numel() for p in model.parameters())

