"""SSD300 with a ResNet-34 backbone in PyTorch: the network and its initialization, nothing else.

Liu et al., "SSD: Single Shot MultiBox Detector" (ECCV 2016), as the MLPerf v0.7 reference builds it
(mlcommons/training single_stage_detector/ssd, ssd300.py and base_model.py):
- backbone: torchvision's ResNet-34 up to layer3 (conv1, bn1, relu, maxpool, layer1..layer3), with
  the first block of layer3 at stride 1 (its conv1 and its 1x1 downsample), so layer3 keeps the
  38x38 map of a 300x300 input; 256 channels;
- five extra blocks (1x1 conv + ReLU, 3x3 conv + ReLU) to 512, 512, 256, 256, 256 channels: the
  first three 3x3 convs stride 2 with padding 1 (19, 10, 5), the last two stride 1 without padding
  (3, 1); a config with fewer maps keeps that rule (all but the last two strided);
- on each of the six maps a 3x3 `loc` head (4 numbers per default box) and a 3x3 `conf` head (one
  score per class and default box), [4, 6, 6, 6, 4, 4] default boxes per position: 8732 in all;
- Xavier-uniform weights for the extras and heads (their biases keep PyTorch's default init);
  the backbone from ImageNet weights (`pretrained.py`) or torchvision's ResNet init.

Outputs are (N, 8732, 4) box regressions and (N, 8732, classes) logits, in the default boxes'
order (`default_boxes.py`): map, box shape, row, column. The reference reshapes each head output
as (N, 4, boxes, H, W) (channel = coordinate x boxes + box), and so does this model.

Module names follow torchvision for the backbone (`backbone.layer1.0.conv1`), so its ResNet-34
state dict loads unchanged, and the Keras twin uses the same names (`../tensorflow/model.py`).
The smoke config shrinks `width`, the extras and the input (REDUCED, same code).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from object_detection.ssd.default_boxes import boxes_per_position


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: 3x3 (stride) -> 3x3, plus the (projected) shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """ResNet-34 to layer3, layer3 at stride 1 (the reference's `ResNet34` of base_model.py)."""

    def __init__(self, width: int = 64, layers: Sequence[int] = (3, 4, 6)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = width
        for index, blocks in enumerate(layers):
            channels = width * 2 ** index
            stride = 2 if index == 1 else 1  # layer2 halves the map; layer3's stride 2 becomes 1 (the reference)
            stage = nn.Sequential(*[BasicBlock(in_channels if b == 0 else channels, channels, stride if b == 0 else 1)
                                    for b in range(blocks)])
            self.add_module(f"layer{index + 1}", stage)
            in_channels = channels
        self.out_channels = in_channels
        for module in self.modules():  # torchvision's ResNet init
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer3(self.layer2(self.layer1(x)))


class SSD300(nn.Module):
    """SSD on the ResNet backbone; the defaults are the reference's SSD300 for COCO (81 classes)."""

    def __init__(self, num_classes: int = 81, width: int = 64, layers: Sequence[int] = (3, 4, 6),
                 extra_mid_channels: Sequence[int] = (256, 256, 128, 128, 128),
                 extra_channels: Sequence[int] = (512, 512, 256, 256, 256),
                 aspect_ratios: Sequence[Sequence[int]] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = ResNetBackbone(width, layers)
        channels = [self.backbone.out_channels, *extra_channels]
        blocks = []
        for index, (mid, out) in enumerate(zip(extra_mid_channels, extra_channels)):
            strided = index < len(extra_channels) - 2  # all but the last two stride 2; those unpadded
            blocks.append(nn.Sequential(
                nn.Conv2d(channels[index], mid, 1), nn.ReLU(inplace=True),
                nn.Conv2d(mid, out, 3, stride=2 if strided else 1, padding=1 if strided else 0),
                nn.ReLU(inplace=True)))
        self.additional_blocks = nn.ModuleList(blocks)
        self.num_defaults = boxes_per_position(aspect_ratios)
        self.loc = nn.ModuleList([nn.Conv2d(c, n * 4, 3, padding=1) for c, n in zip(channels, self.num_defaults)])
        self.conf = nn.ModuleList([nn.Conv2d(c, n * num_classes, 3, padding=1)
                                   for c, n in zip(channels, self.num_defaults)])
        for layer in [*self.additional_blocks, *self.loc, *self.conf]:  # the reference's _init_weights
            for parameter in layer.parameters():
                if parameter.dim() > 1:
                    nn.init.xavier_uniform_(parameter)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps = [self.backbone(images)]
        for block in self.additional_blocks:
            maps.append(block(maps[-1]))
        return maps

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) normalized images -> box regressions (N, A, 4), class logits (N, A, classes)."""
        locs, confs = [], []
        for features, loc, conf, boxes in zip(self.feature_maps(images), self.loc, self.conf, self.num_defaults):
            n, _, h, w = features.shape
            # (N, 4 x boxes, H, W) -> (N, 4, boxes x H x W) as the reference views it -> (N, boxes x H x W, 4)
            locs.append(loc(features).view(n, 4, boxes * h * w).transpose(1, 2))
            confs.append(conf(features).view(n, self.num_classes, boxes * h * w).transpose(1, 2))
        return torch.cat(locs, 1), torch.cat(confs, 1)


def build_model(cfg_model, num_classes: int) -> SSD300:
    return SSD300(num_classes, cfg_model.width, cfg_model.layers, cfg_model.extra_mid_channels,
                  cfg_model.extra_channels, cfg_model.aspect_ratios)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
