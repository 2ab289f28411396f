"""He et al.'s CIFAR ResNets (6n+2 layers: ResNet-20, -56): three stages of 16/32/64 channels.

Each stage holds n basic blocks (conv-BN-ReLU-conv-BN plus shortcut, then ReLU). Where a block
changes shape, the shortcut is a 1x1 stride-2 convolution with batch norm (option B), so the
network traces cleanly with torch.fx and every block is a module CoCo-Tune can prune.
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """x (N, C_in, H, W) -> (N, C_out, H/stride, W/stride): two 3x3 convs plus the shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """x (N, in_channels, H, W) -> logits (N, num_classes); depth = 6n + 2."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3,
                 widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2 (8, 14, 20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages = []
        c = widths[0]
        for s, w in enumerate(widths):
            blocks = [BasicBlock(c if i == 0 else w, w, 2 if (s > 0 and i == 0) else 1)
                      for i in range(n)]
            stages.append(nn.Sequential(*blocks))
            c = w
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def block_names(self) -> list[str]:
        """Qualified names of the basic blocks ('layer1.0', ...): the prunable modules, in order."""
        return [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(len(getattr(self, f"layer{s}")))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet20_cifar(num_classes: int = 10) -> ResNetCifar:
    """ResNet-20 (0.27 M parameters with 1x1 shortcuts) for 32x32 inputs."""
    return ResNetCifar(20, num_classes)


def resnet56_cifar(num_classes: int = 10) -> ResNetCifar:
    """ResNet-56 (0.86 M parameters with 1x1 shortcuts) for 32x32 inputs."""
    return ResNetCifar(56, num_classes)
