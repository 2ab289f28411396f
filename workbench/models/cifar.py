"""32x32 (CIFAR-shape) variants of the torchvision models: same blocks, no early downsampling."""
from __future__ import annotations

from torch import nn
from torchvision import models as tvm


def vgg16_cifar(num_classes: int = 10) -> nn.Module:
    """VGG-16 with batch norm; five max-pools take 32x32 to 1x1, then one linear layer."""
    m = tvm.vgg16_bn(weights=None)
    m.avgpool = nn.Identity()  # the features already end at (512, 1, 1)
    m.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(512, num_classes))
    return m


def _resnet_cifar(m: nn.Module) -> nn.Module:
    """A torchvision ResNet with a 3x3 stride-1 stem and no max-pool (He et al.'s CIFAR stem)."""
    m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m


def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    """ResNet-18 (11.2 M parameters) for 32x32 inputs; final feature map 4x4."""
    return _resnet_cifar(tvm.resnet18(weights=None, num_classes=num_classes))


def resnet50_cifar(num_classes: int = 10) -> nn.Module:
    """ResNet-50 (23.5 M parameters) for 32x32 inputs; final feature map 4x4."""
    return _resnet_cifar(tvm.resnet50(weights=None, num_classes=num_classes))


def mobilenet_v2_cifar(num_classes: int = 10) -> nn.Module:
    """MobileNet-V2 for 32x32: stem stride 1 and the first stride-2 block at stride 1 (final map 4x4)."""
    m = tvm.mobilenet_v2(weights=None, num_classes=num_classes)
    m.features[0][0].stride = (1, 1)
    m.features[2].conv[1][0].stride = (1, 1)  # the depthwise conv of the first stride-2 block
    return m
