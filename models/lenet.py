"""Caffe LeNet (hardware-model.md section 6).

conv 5x5x20 - maxpool 2 - conv 5x5x50 - maxpool 2 - fc 800->500 - ReLU - fc 500->10.
Dense matrices (rows x cols): 25x20, 500x50, 800x500, 500x10 = 430,500 weights.
"""

import torch
from torch import nn


class LeNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)  # (B,1,28,28) -> (B,20,24,24)
        self.pool1 = nn.MaxPool2d(2, 2)  # -> (B,20,12,12)
        self.conv2 = nn.Conv2d(20, 50, 5)  # -> (B,50,8,8)
        self.pool2 = nn.MaxPool2d(2, 2)  # -> (B,50,4,4)
        side = ((image_size - 4) // 2 - 4) // 2
        self.flatten = nn.Flatten()  # -> (B,800)
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        return self.fc2(self.relu(self.fc1(self.flatten(x))))
