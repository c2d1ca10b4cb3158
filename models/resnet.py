"""ResNets of He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016).

``ResNet.resnet18()`` / ``ResNet.resnet50()``: torchvision's architecture (ImageNet, (3, 224, 224)):
conv 7x7/2 64 - BN - ReLU - maxpool 3/2 - four stages of BasicBlocks [2, 2, 2, 2] or Bottlenecks
[3, 4, 6, 3] (64/128/256/512 planes, stride 2 from stage 2 on, in the Bottleneck on its 3x3 conv as
torchvision's "v1.5") - adaptive avgpool - fc 1000. Convs have no bias; a block whose shape changes
has a 1x1 conv + BN projection shortcut (``downsample``). 11,689,512 / 25,557,032 parameters, as
torchvision; module names (``layer2.0.downsample.0`` ...) are torchvision's as well.

``ResNet.resnet20()``: the CIFAR-10 network of section 4.2 (n = 3, (3, 32, 32)): conv 3x3 16 -
three stages of 3 BasicBlocks with 16/32/64 channels - global avgpool - fc 10. The paper's CIFAR
nets use option A (identity shortcuts, zero-padded channels: 269,722 parameters); here the two
shortcuts that change shape use option B, a 1x1 conv + BN projection, because a zero-padding
shortcut is no weight matrix a crossbar can hold: 272,474 parameters.

Residual adds are written ``out + identity``; no in-place ops, so ``torch.fx.symbolic_trace`` works.
The crossbar mapper today maps chains only (each layer fed by one producer): it rejects the adds
with a ``DataflowError``, so these nets train, clip and prune but do not ``map``/``route`` yet.
"""

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.downsample = _projection(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU()
        self.downsample = _projection(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


def _projection(inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
    """Option B shortcut (1x1 conv + BN) where the shape changes, else None (identity)."""
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes))


def _plan(block, blocks, widths):
    """(stage, index, in channels, planes, stride) of every block, stage and index from 1 and 0."""
    c = widths[0]
    for s, (n, planes) in enumerate(zip(blocks, widths, strict=True), 1):
        for b in range(n):
            yield s, b, c, planes, 2 if s > 1 and b == 0 else 1
            c = planes * block.expansion


def factorizable_layers(block: type[BasicBlock | Bottleneck], blocks: tuple[int, ...],
                        widths: tuple[int, ...] = (64, 128, 256, 512)) -> tuple[str, ...]:
    """Every conv (projections included) but not the classifier ``fc``, without building the network."""
    names = ["conv1"]
    convs = 3 if block is Bottleneck else 2
    for s, b, c, planes, stride in _plan(block, blocks, widths):
        names += [f"layer{s}.{b}.conv{k}" for k in range(1, convs + 1)]
        if stride != 1 or c != planes * block.expansion:
            names.append(f"layer{s}.{b}.downsample.0")
    return tuple(names)


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock | Bottleneck], blocks: tuple[int, ...],
                 widths: tuple[int, ...] = (64, 128, 256, 512), num_classes: int = 1000,
                 in_channels: int = 3, imagenet_stem: bool = True):
        super().__init__()
        c = widths[0]
        if imagenet_stem:
            self.conv1 = nn.Conv2d(in_channels, c, 7, 2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, padding=1) if imagenet_stem else None
        self.stages = len(blocks)
        layers: list[list[nn.Module]] = [[] for _ in blocks]
        for s, _, inplanes, planes, stride in _plan(block, blocks, widths):
            layers[s - 1].append(block(inplanes, planes, stride))
        for s, stage in enumerate(layers, 1):
            setattr(self, f"layer{s}", nn.Sequential(*stage))
        c = widths[-1] * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @classmethod
    def resnet18(cls, num_classes: int = 1000) -> "ResNet":
        return cls(BasicBlock, (2, 2, 2, 2), num_classes=num_classes)

    @classmethod
    def resnet50(cls, num_classes: int = 1000) -> "ResNet":
        return cls(Bottleneck, (3, 4, 6, 3), num_classes=num_classes)

    @classmethod
    def resnet20(cls, num_classes: int = 10) -> "ResNet":
        return cls(BasicBlock, (3, 3, 3), (16, 32, 64), num_classes, imagenet_stem=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for s in range(1, self.stages + 1):
            x = getattr(self, f"layer{s}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))
