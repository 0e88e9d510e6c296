"""ResNet-50 v1.5 in PyTorch: the network and its initialization, nothing else.

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), with the v1.5 change the
MLPerf reference uses (mlcommons/training image_classification; torchvision; NVIDIA
DeepLearningExamples "ResNet50 v1.5"): a downsampling bottleneck puts its stride 2 on the 3x3
convolution instead of the first 1x1, which costs a little speed and gains ~0.5% top-1.
25,557,032 parameters for 1000 classes.

Modules are named and ordered exactly as `torchvision.models.resnet50` (`conv1`, `bn1`,
`layer{i}.{j}.conv1|bn1|conv2|bn2|conv3|bn3|downsample.0|downsample.1`, `fc`), so a state dict
loads into torchvision's model unchanged, and the Keras twin (`../tensorflow/model.py`) uses the
same names, which lets `../tensorflow/convert.py` map weights one to one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

EXPANSION = 4  # a bottleneck's output has 4x the channels of its 3x3 conv


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels), plus the shortcut (projected when shapes change)."""

    def __init__(self, in_channels: int, width: int, stride: int, bn_eps: float, bn_momentum: float):
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=bn_eps, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)  # v1.5: stride here
        self.bn2 = nn.BatchNorm2d(width, eps=bn_eps, momentum=bn_momentum)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            # projection shortcut, option B of He et al. sec. 3.3
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet v1.5 with bottleneck blocks; the defaults are ResNet-50 for ImageNet-1k.

    `width` is the channel count of the stem and of the first stage's 3x3 convs (64 in the paper),
    each later stage doubles it; `layers` counts the blocks per stage. The smoke config shrinks both.
    """

    def __init__(self, num_classes: int = 1000, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                 zero_init_residual: bool = True, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = width
        self.stage_names = tuple(f"layer{index + 1}" for index in range(len(layers)))
        for index, (stage_name, blocks) in enumerate(zip(self.stage_names, layers)):
            stage_width = width * 2 ** index
            stage = nn.Sequential(*[
                Bottleneck(in_channels if block == 0 else stage_width * EXPANSION, stage_width,
                           2 if index > 0 and block == 0 else 1, bn_eps, bn_momentum)
                for block in range(blocks)])
            self.add_module(stage_name, stage)  # self.layer1 ... self.layer4
            in_channels = stage_width * EXPANSION
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.reset_parameters(zero_init_residual)

    def reset_parameters(self, zero_init_residual: bool) -> None:
        """torchvision's ResNet init: He-normal (fan_out) convs, BN at identity, default Linear.

        With `zero_init_residual`, each block's last BN starts with gamma = 0 so the block begins as
        the identity (Goyal et al. 2017, "Accurate, Large Minibatch SGD", sec. 5.1).
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        for stage_name in self.stage_names:
            x = getattr(self, stage_name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_model(num_classes: int = 1000, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                zero_init_residual: bool = True, bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> ResNet:
    return ResNet(num_classes, layers, width, zero_init_residual, bn_eps, bn_momentum)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BN running statistics are buffers, not counted): 25,557,032 for ResNet-50."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
