"""Name -> model factory registry. ``get(name)`` always builds a fresh module.

Built in: ``lenet`` (MNIST), ``convnet``, ``vgg16_cifar``, ``resnet20`` (CIFAR-10) and the
ImageNet-shaped ``vgg16``, ``resnet18``, ``resnet50``, ``mobilenet_v2`` ((3, 224, 224), 1000 classes,
no default data set: there is no ImageNet loader here). A name ending in ``.onnx`` is a file: the
network it holds (models/onnx_import.py), so every command that takes ``--model`` takes one.

``low_rank_layers`` of the built-in models: every ``Linear`` and ``Conv2d`` except the last
classifier (which stays dense, as in the paper), ResNet projection shortcuts included, MobileNetV2's
depthwise convs excluded (a low-rank pair needs groups = 1). The lists are spelled out, not left
empty, because callers read an empty tuple differently (``compress`` as "every layer", the pipeline
as "none"), and computed from each family's layer plan so that registering builds no network.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from common.errors import ConfigError, UserError
from models import mobilenet, onnx_import, resnet, vgg
from models.convnet import ConvNet
from models.lenet import LeNet
from models.mobilenet import MobileNetV2
from models.resnet import BasicBlock, Bottleneck, ResNet
from models.vgg import VGG16


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a registered model."""

    name: str
    factory: Callable[[], nn.Module]
    """Called with no arguments; returns a new, randomly initialised module."""
    input_shape: tuple[int, ...]
    """One sample's shape without the batch, (C, H, W) for images."""
    num_classes: int
    default_dataset: str | None = None
    """Data set the model was designed for ('mnist', 'cifar10'), if any."""
    low_rank_layers: tuple[str, ...] = ()
    """Layers that rank clipping factorizes by default (the last classifier stays dense)."""


_REGISTRY: dict[str, ModelInfo] = {}


class UnknownModelError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register(
    name: str,
    factory: Callable[[], nn.Module],
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    default_dataset: str | None = None,
    low_rank_layers: tuple[str, ...] = (),
    overwrite: bool = False,
) -> None:
    """Register ``factory`` under ``name`` (lower case) so ``get(name)`` builds it."""
    key = name.lower()
    if key in _REGISTRY and not overwrite:
        raise ConfigError(f"model {name!r} is already registered; pass overwrite=True to replace it")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable, got {type(factory).__name__}")
    _REGISTRY[key] = ModelInfo(key, factory, tuple(input_shape), num_classes, default_dataset,
                               tuple(low_rank_layers))


def available() -> list[str]:
    """Sorted names of the registered models."""
    return sorted(_REGISTRY)


def info(name: str) -> ModelInfo:
    """The registered model ``name``, or the model an ONNX file holds (a name ending in .onnx:
    models/onnx_import.py; its data set guessed from the input shape)."""
    if onnx_import.is_onnx(name):
        return _onnx_info(name)
    key = name.lower()
    if key not in _REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}; available: {', '.join(available())}. "
            "Register your own with models.register(name, factory, input_shape=..., num_classes=...)."
        )
    return _REGISTRY[key]


def _onnx_info(path: str) -> ModelInfo:
    net = onnx_import.cached(path)
    return ModelInfo(str(path), lambda: copy.deepcopy(onnx_import.cached(path).module),
                     net.input_shape, net.num_classes,
                     onnx_import.guess_dataset(net.input_shape, net.num_classes),
                     onnx_import.factorizable(net))


def identity(name: str) -> str:
    """What a run's fingerprint records of the model: its name, or the sha256 of an ONNX file
    and of its external data files (so an edited file re-runs the stages that used it)."""
    if not onnx_import.is_onnx(name):
        return name
    import hashlib

    net = onnx_import.cached(name)  # a missing or unreadable file: the readable error
    h = hashlib.sha256()
    for f in (name, *net.externals):
        with open(f, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return "onnx:" + h.hexdigest()


def get(name: str) -> nn.Module:
    """A fresh instance of the model registered as ``name``."""
    return info(name).factory()


register("lenet", LeNet, input_shape=(1, 28, 28), num_classes=10, default_dataset="mnist",
         low_rank_layers=("conv1", "conv2", "fc1"))
register("convnet", ConvNet, input_shape=(3, 32, 32), num_classes=10, default_dataset="cifar10",
         low_rank_layers=("conv1", "conv2", "conv3"))
register("vgg16", VGG16, input_shape=(3, 224, 224), num_classes=1000,
         low_rank_layers=vgg.factorizable_layers())
register("vgg16_cifar", VGG16.cifar, input_shape=(3, 32, 32), num_classes=10, default_dataset="cifar10",
         low_rank_layers=vgg.factorizable_layers(hidden=()))
register("resnet20", ResNet.resnet20, input_shape=(3, 32, 32), num_classes=10, default_dataset="cifar10",
         low_rank_layers=resnet.factorizable_layers(BasicBlock, (3, 3, 3), (16, 32, 64)))
register("resnet18", ResNet.resnet18, input_shape=(3, 224, 224), num_classes=1000,
         low_rank_layers=resnet.factorizable_layers(BasicBlock, (2, 2, 2, 2)))
register("resnet50", ResNet.resnet50, input_shape=(3, 224, 224), num_classes=1000,
         low_rank_layers=resnet.factorizable_layers(Bottleneck, (3, 4, 6, 3)))
register("mobilenet_v2", MobileNetV2, input_shape=(3, 224, 224), num_classes=1000,
         low_rank_layers=mobilenet.factorizable_layers())
