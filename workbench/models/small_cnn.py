"""A small CNN for sklearn digits: three 3x3 convolutions and a linear head."""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """x (N, C, 8, 8) -> logits (N, num_classes); conv-BN-ReLU x3 with two 2x2 max-pools.

    Wide enough (32-64 channels) that its 3x3 layers have hundreds of kernels to prune, small
    enough to train on digits in seconds on two cores.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32,
                 input_size: int = 8) -> None:
        super().__init__()
        if input_size % 4:
            raise ValueError(f"SmallCNN needs an input size divisible by 4, got {input_size}")
        w1, w2 = width, 2 * width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w1, 3, padding=1, bias=False), nn.BatchNorm2d(w1), nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 3, padding=1, bias=False), nn.BatchNorm2d(w2), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(w2, w2, 3, padding=1, bias=False), nn.BatchNorm2d(w2), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(w2 * (input_size // 4) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
