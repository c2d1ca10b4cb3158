"""Reference networks and a registry of model factories.

    >>> import models
    >>> models.available()
    ['convnet', 'lenet', 'mobilenet_v2', 'resnet18', 'resnet20', 'resnet50', 'vgg16', 'vgg16_cifar']
    >>> net = models.get("lenet")          # a fresh nn.Module every call

Register your own network (any ``nn.Module`` whose weighted layers are
``Linear`` / ``Conv2d``) so the CLI and the pipeline can build it by name:

    >>> models.register("mlp", lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
    ...                 input_shape=(1, 8, 8), num_classes=10)
"""

from models.convnet import ConvNet, WithinChannelLRN
from models.lenet import LeNet
from models.mobilenet import MobileNetV2
from models.onnx_import import OnnxImportError, load_onnx
from models.registry import ModelInfo, available, get, identity, info, register
from models.resnet import ResNet
from models.vgg import VGG16

__all__ = [
    "ConvNet",
    "LeNet",
    "MobileNetV2",
    "ModelInfo",
    "ResNet",
    "VGG16",
    "WithinChannelLRN",
    "OnnxImportError",
    "available",
    "get",
    "identity",
    "info",
    "load_onnx",
    "register",
]
