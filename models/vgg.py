"""VGG-16, configuration D of Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition" (ICLR 2015), Table 1.

13 conv 3x3 (pad 1, stride 1) in five stages 64-64 / 128-128 / 256x3 / 512x3 / 512x3, each stage
followed by maxpool 2/2, then the classifier. Module names are those of the authors' Caffe release:
``conv1_1`` .. ``conv5_3``, ``pool1`` .. ``pool5``, ``fc6``, ``fc7``, ``fc8``.

``VGG16()`` is the ImageNet network as published (no BatchNorm): (3, 224, 224) -> 7x7x512 = 25088
-> fc6 4096 -> fc7 4096 -> fc8 1000, ReLU and dropout 0.5 after fc6 and fc7; 138,357,544 parameters
(torchvision's ``vgg16``). Initialisation follows torchvision (Kaiming-normal convs, N(0, 0.01) linears).

``VGG16.cifar()`` is the common CIFAR-10 variant of kuangliu/pytorch-cifar (``models/vgg.py``,
``VGG('VGG16')``): the same 13 convs, each followed by BatchNorm and ReLU (conv biases kept, as
there), five maxpools 32 -> 1, and one classifier layer ``fc6`` 512 -> 10; 14,728,266 parameters.
"""

import torch
from torch import nn

STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def factorizable_layers(hidden: tuple[int, ...] = (4096, 4096)) -> tuple[str, ...]:
    """Every conv and linear but the last classifier, without building the network."""
    convs = [f"conv{s}_{i}" for s, stage in enumerate(STAGES, 1) for i in range(1, len(stage) + 1)]
    return (*convs, *(f"fc{k}" for k in range(6, 6 + len(hidden))))


class VGG16(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, image_size: int = 224,
                 batch_norm: bool = False, hidden: tuple[int, ...] = (4096, 4096), dropout: float = 0.5):
        super().__init__()
        self.batch_norm, self.hidden = batch_norm, tuple(hidden)
        c = in_channels
        for s, stage in enumerate(STAGES, 1):
            for i, width in enumerate(stage, 1):
                setattr(self, f"conv{s}_{i}", nn.Conv2d(c, width, 3, padding=1))
                if batch_norm:
                    setattr(self, f"bn{s}_{i}", nn.BatchNorm2d(width))
                setattr(self, f"relu{s}_{i}", nn.ReLU())
                c = width
            setattr(self, f"pool{s}", nn.MaxPool2d(2, 2))
        features = c * (image_size // 2 ** len(STAGES)) ** 2  # 512 * 7 * 7 = 25088 at 224
        for k, width in enumerate(self.hidden, 6):
            setattr(self, f"fc{k}", nn.Linear(features, width))
            setattr(self, f"relu{k}", nn.ReLU())
            setattr(self, f"drop{k}", nn.Dropout(dropout))
            features = width
        setattr(self, f"fc{6 + len(self.hidden)}", nn.Linear(features, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    @classmethod
    def cifar(cls, num_classes: int = 10) -> "VGG16":
        return cls(num_classes, image_size=32, batch_norm=True, hidden=())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for s, stage in enumerate(STAGES, 1):
            for i in range(1, len(stage) + 1):
                x = getattr(self, f"conv{s}_{i}")(x)
                if self.batch_norm:
                    x = getattr(self, f"bn{s}_{i}")(x)
                x = getattr(self, f"relu{s}_{i}")(x)
            x = getattr(self, f"pool{s}")(x)
        x = torch.flatten(x, 1)
        for k in range(6, 6 + len(self.hidden)):
            x = getattr(self, f"drop{k}")(getattr(self, f"relu{k}")(getattr(self, f"fc{k}")(x)))
        return getattr(self, f"fc{6 + len(self.hidden)}")(x)
