"""One registry for every model: build_model(name, num_classes, input_size)."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision import models as tvm

import workbench.models.cifar as cifar
from workbench.models.resnet_cifar import resnet20_cifar, resnet56_cifar
from workbench.models.small_cnn import SmallCNN

IMAGENET_SIZE = 224
CIFAR_SIZE = 32

# name -> (builder at CIFAR shape, builder at ImageNet shape); torchvision definitions, no weights.
_ZOO: dict[str, tuple[Callable[[int], nn.Module], Callable[[int], nn.Module]]] = {
    "vgg16": (cifar.vgg16_cifar, lambda n: tvm.vgg16_bn(weights=None, num_classes=n)),
    "resnet18": (cifar.resnet18_cifar, lambda n: tvm.resnet18(weights=None, num_classes=n)),
    "resnet50": (cifar.resnet50_cifar, lambda n: tvm.resnet50(weights=None, num_classes=n)),
    "mobilenet_v2": (cifar.mobilenet_v2_cifar, lambda n: tvm.mobilenet_v2(weights=None, num_classes=n)),
}
# CIFAR-shape only (He et al.'s 6n+2 ResNets have no ImageNet form).
_CIFAR_ONLY: dict[str, Callable[[int], nn.Module]] = {"resnet20": resnet20_cifar,
                                                      "resnet56": resnet56_cifar}


def model_names() -> list[str]:
    """Names build_model accepts."""
    return sorted([*_ZOO, *_CIFAR_ONLY, "small_cnn"])


def build_model(name: str, num_classes: int = 10, input_size: int = CIFAR_SIZE,
                in_channels: int = 3) -> nn.Module:
    """A freshly initialised model; input_size 32 gives the CIFAR variant, >= 64 the ImageNet one.

    small_cnn takes (in_channels, input_size, input_size) inputs with input_size divisible by 4.
    """
    if name == "small_cnn":
        return SmallCNN(num_classes, in_channels=in_channels, input_size=input_size)
    if name in _CIFAR_ONLY:
        if in_channels != 3 or input_size != CIFAR_SIZE:
            raise ValueError(f"{name} exists at CIFAR shape only (3, 32, 32), got "
                             f"in_channels={in_channels}, input_size={input_size}")
        return _CIFAR_ONLY[name](num_classes)
    if name not in _ZOO:
        raise ValueError(f"unknown model {name!r}; choose one of {model_names()}")
    if in_channels != 3:
        raise ValueError(f"{name} takes 3-channel images, got in_channels={in_channels}")
    if input_size == CIFAR_SIZE:
        return _ZOO[name][0](num_classes)
    if input_size >= 64:
        return _ZOO[name][1](num_classes)
    raise ValueError(f"{name}: input_size must be 32 (CIFAR shape) or >= 64 (ImageNet shape, "
                     f"224 usual), got {input_size}")
