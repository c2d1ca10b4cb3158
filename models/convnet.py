"""Caffe cifar10_full ConvNet (hardware-model.md section 6).

conv 5x5x32 pad 2 - maxpool 3/2 - ReLU - LRN - conv 5x5x32 - ReLU - avgpool 3/2 - LRN -
conv 5x5x64 - ReLU - avgpool 3/2 - fc 1024->10.
Dense matrices (rows x cols): 75x32, 800x32, 800x64, 1024x10 = 89,440 weights.

Caffe pools with ceil mode (32 -> 16 -> 8 -> 4) and its LRN here is WITHIN_CHANNEL
(local_size 3, alpha 5e-5, beta 0.75), which torch.nn.LocalResponseNorm (across channels)
is not; ``WithinChannelLRN`` implements Caffe's definition.
"""

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError


class WithinChannelLRN(nn.Module):
    """Caffe LRN, norm_region WITHIN_CHANNEL: x / (1 + alpha * mean_{k x k}(x^2))^beta.

    The mean is over a ``size x size`` spatial window, zero-padded, padding counted in the
    divisor (Caffe's AVE pooling with pad). Shape preserving: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, size: int = 3, alpha: float = 5e-5, beta: float = 0.75):
        super().__init__()
        if size % 2 != 1:
            raise ConfigError(f"LRN size must be odd, got {size}")
        self.size, self.alpha, self.beta = size, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.size - 1) // 2
        mean_sq = F.avg_pool2d(x * x, self.size, stride=1, padding=pad, count_include_pad=True)
        return x * (1.0 + self.alpha * mean_sq).pow(-self.beta)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}"


class ConvNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)  # (B,3,32,32) -> (B,32,32,32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # -> (B,32,16,16)
        self.relu1 = nn.ReLU()
        self.norm1 = WithinChannelLRN()
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)  # -> (B,32,16,16)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(3, 2, ceil_mode=True)  # -> (B,32,8,8)
        self.norm2 = WithinChannelLRN()
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)  # -> (B,64,8,8)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.AvgPool2d(3, 2, ceil_mode=True)  # -> (B,64,4,4)
        side = image_size
        for _ in range(3):
            side = -(-(side - 3) // 2) + 1  # ceil-mode pooling
        self.flatten = nn.Flatten()  # -> (B,1024)
        self.fc1 = nn.Linear(64 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.relu1(self.pool1(self.conv1(x))))
        x = self.norm2(self.pool2(self.relu2(self.conv2(x))))
        x = self.pool3(self.relu3(self.conv3(x)))
        return self.fc1(self.flatten(x))
