"""MobileNetV2 of Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
(CVPR 2018), width 1.0, ImageNet shape (3, 224, 224); the layer table (Table 2) and the init as
torchvision's ``mobilenet_v2``: 3,504,872 parameters.

stem conv 3x3/2 32 - BN - ReLU6 - 17 inverted residuals (t, c, n, s below) - conv 1x1 1280 - BN -
ReLU6 - global avgpool - dropout 0.2 - fc 1000. An inverted residual: ``expand`` 1x1 (absent when
t = 1) - BN - ReLU6 - ``dw`` 3x3 depthwise (groups = channels) - BN - ReLU6 - ``project`` 1x1 - BN
(linear bottleneck), plus ``out + x`` when stride 1 and in = out channels. Convs have no bias.

The crossbar mapper maps each depthwise conv as one 9 x 1 matrix per channel (``blocks.i.dw.g<c>``,
7,136 in all); the group Lasso and dead-signal deletion treat each as its own matrix.
"""

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), Table 2
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))


def _plan():
    """(in channels, out channels, stride, expansion) of the 17 inverted residuals."""
    c = 32
    for t, out, n, s in SETTINGS:
        for i in range(n):
            yield c, out, s if i == 0 else 1, t
            c = out


def factorizable_layers() -> tuple[str, ...]:
    """Every conv with groups = 1 (not the depthwise ``dw``, which low-rank layers refuse) and not
    the classifier ``fc``, without building the network."""
    names = ["conv1"]
    for i, (_, _, _, t) in enumerate(_plan()):
        names += [f"blocks.{i}.expand"] * (t != 1) + [f"blocks.{i}.project"]
    return (*names, "conv2")


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expansion: int):
        super().__init__()
        hidden = inp * expansion
        self.residual = stride == 1 and inp == oup
        if expansion != 1:
            self.expand = nn.Conv2d(inp, hidden, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(hidden)
            self.relu1 = nn.ReLU6()
        else:
            self.expand = None
        self.dw = nn.Conv2d(hidden, hidden, 3, stride, padding=1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.relu2 = nn.ReLU6()
        self.project = nn.Conv2d(hidden, oup, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(oup)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.relu1(self.bn1(self.expand(x)))
        out = self.relu2(self.bn2(self.dw(out)))
        out = self.bn3(self.project(out))
        return out + x if self.residual else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2):
        super().__init__()
        c = 32
        self.conv1 = nn.Conv2d(in_channels, c, 3, 2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu1 = nn.ReLU6()
        self.blocks = nn.Sequential(*(InvertedResidual(*args) for args in _plan()))  # blocks.0 .. 16
        self.conv2 = nn.Conv2d(SETTINGS[-1][1], 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.relu2 = nn.ReLU6()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(self.blocks(x))))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
