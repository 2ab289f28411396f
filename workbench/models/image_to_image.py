"""The demo applications' networks (IJCAI demo paper, report Figure 6): image in, image out.

    WDSR         super resolution: wide-activation residual blocks (1x1 expand, low-rank 1x1,
                 3x3), pixel shuffle, a 5x5 skip branch; (N, 3, h, w) -> (N, 3, s*h, s*w)
    ColorNet     coloring (Iizuka et al. 2016): low-level features, a mid-level branch and a
                 global-feature branch fused, then upsampling; L (N, 1, H, W) -> ab (N, 2, H, W)
    TransformerNet  style transfer (Johnson et al. 2016): 9x9 in, two stride-2 convs, residual
                 blocks with instance norm, two nearest upsamplings, 9x9 out; (N, 3, H, W) -> same

Every network takes any H x W (ColorNet and TransformerNet: multiples of 8 and 4), so the
compiler sees the realistic sizes of the apps' Table 1. Two departures from the papers, both for
the compiler and pruning: zero padding where Johnson uses reflection padding, and no weight
normalisation in WDSR (its effect is on training speed; it folds into the weights at inference
anyway). ColorNet's global branch ends in an adaptive average pool, where Iizuka resizes the
input to 224 x 224, so one network serves every input size.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# Mean RGB of the DIV2K training set, the value WDSR subtracts (inputs in [0, 1]).
WDSR_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class WDSRBlock(nn.Module):
    """WDSR-B residual block: 1x1 expand (wide ReLU), low-rank 1x1, 3x3; (N, C, H, W) -> same."""

    def __init__(self, channels: int, expansion: int = 6, low_rank: float = 0.8) -> None:
        super().__init__()
        wide, narrow = channels * expansion, max(1, round(channels * low_rank))
        self.body = nn.Sequential(nn.Conv2d(channels, wide, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(wide, narrow, 1),
                                  nn.Conv2d(narrow, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + body(x)."""
        return x + self.body(x)


class WDSR(nn.Module):
    """WDSR-B super resolution by `scale` (2, 3 or 4): (N, 3, h, w) in [0, 1] -> (N, 3, s*h, s*w)."""

    def __init__(self, scale: int = 2, channels: int = 32, blocks: int = 8, expansion: int = 6,
                 low_rank: float = 0.8) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"WDSR scale must be 2, 3 or 4, got {scale}")
        self.scale = scale
        out = 3 * scale * scale
        self.register_buffer("mean", torch.tensor(WDSR_RGB_MEAN).view(1, 3, 1, 1))
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*[WDSRBlock(channels, expansion, low_rank) for _ in range(blocks)])
        self.tail = nn.Sequential(nn.Conv2d(channels, out, 3, padding=1), nn.PixelShuffle(scale))
        # The skip branch carries the low frequencies, so the body learns only the residual.
        self.skip = nn.Sequential(nn.Conv2d(3, out, 5, padding=2), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) -> (N, 3, scale*h, scale*w), both in [0, 1] (not clamped)."""
        x = x - self.mean
        return self.tail(self.body(self.head(x))) + self.skip(x) + self.mean


def _conv_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class ColorNet(nn.Module):
    """Iizuka-style coloring, `width` base channels: L (N, 1, H, W) -> ab (N, 2, H, W) in [-1, 1].

    H and W must be multiples of 8 (three stride-2 convs, undone by three upsamplings;
    `check_input_size` says so: a check inside forward would stop torch.fx from tracing it).
    """

    def __init__(self, width: int = 32, global_dim: int = 128) -> None:
        super().__init__()
        w = width
        # Shared low-level features at 1/8 resolution.
        self.low = nn.Sequential(*_conv_relu(1, w, 2), *_conv_relu(w, 2 * w),
                                 *_conv_relu(2 * w, 2 * w, 2), *_conv_relu(2 * w, 4 * w),
                                 *_conv_relu(4 * w, 4 * w, 2), *_conv_relu(4 * w, 8 * w))
        self.mid = nn.Sequential(*_conv_relu(8 * w, 8 * w), *_conv_relu(8 * w, 4 * w))
        # The global branch sees the whole image: scene context decides colours (sky, grass).
        self.global_conv = nn.Sequential(*_conv_relu(8 * w, 8 * w, 2), *_conv_relu(8 * w, 8 * w, 2),
                                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.global_fc = nn.Sequential(nn.Linear(8 * w, 2 * global_dim), nn.ReLU(inplace=True),
                                       nn.Linear(2 * global_dim, global_dim), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Conv2d(4 * w + global_dim, 4 * w, 1), nn.ReLU(inplace=True))
        up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
        self.color = nn.Sequential(*_conv_relu(4 * w, 2 * w), up(), *_conv_relu(2 * w, w),
                                   *_conv_relu(w, w), up(), *_conv_relu(w, w // 2),
                                   nn.Conv2d(w // 2, 2, 3, padding=1), nn.Tanh(), up())

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        """L normalised to [0, 1], (N, 1, H, W) -> ab / 110, (N, 2, H, W)."""
        low = self.low(lum)
        mid = self.mid(low)
        g = self.global_fc(self.global_conv(low))
        g = g[:, :, None, None].expand(-1, -1, mid.shape[2], mid.shape[3])
        return self.color(self.fuse(torch.cat([mid, g], dim=1)))


class ResidualIN(nn.Module):
    """Johnson's residual block: conv 3x3, IN, ReLU, conv 3x3, IN, plus x; (N, C, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.InstanceNorm2d(channels, affine=True), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + body(x)."""
        return x + self.body(x)


def _conv_in_relu(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2),
            nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]


class TransformerNet(nn.Module):
    """Feed-forward style transfer, `width` base channels: (N, 3, H, W) in [0, 1] -> same.

    H and W must be multiples of 4 (two stride-2 convs, undone by two upsamplings).
    """

    def __init__(self, width: int = 32, blocks: int = 5) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(*_conv_in_relu(3, w, 9), *_conv_in_relu(w, 2 * w, 3, 2),
                                     *_conv_in_relu(2 * w, 4 * w, 3, 2))
        self.residuals = nn.Sequential(*[ResidualIN(4 * w) for _ in range(blocks)])
        # Nearest upsampling + conv instead of transposed convs: no checkerboard artefacts.
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                     *_conv_in_relu(4 * w, 2 * w, 3),
                                     nn.Upsample(scale_factor=2, mode="nearest"),
                                     *_conv_in_relu(2 * w, w, 3),
                                     nn.Conv2d(w, 3, 9, padding=4), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> stylised (N, 3, H, W), both in [0, 1]."""
        return self.decoder(self.residuals(self.encoder(x)))


# name -> class; its defaults are the sizes the apps experiment trains and times.
APP_MODELS: dict[str, Callable[..., nn.Module]] = {"wdsr": WDSR, "colornet": ColorNet,
                                                    "transformer_net": TransformerNet}


# The factor H and W must be multiples of (stride-2 convs undone by upsamplings).
SIZE_MULTIPLE = {"wdsr": 1, "colornet": 8, "transformer_net": 4}


def check_input_size(name: str, height: int, width: int) -> None:
    """ValueError unless app model `name` maps an H x W input back to its own size (x scale)."""
    m = SIZE_MULTIPLE[name]
    if height <= 0 or width <= 0 or height % m or width % m:
        raise ValueError(f"{name} needs H and W positive multiples of {m}, got {height} x {width}")


def build_app_model(name: str, **kwargs: object) -> nn.Module:
    """A freshly initialised app network by name (keyword arguments go to its class)."""
    if name not in APP_MODELS:
        raise ValueError(f"unknown app model {name!r}; choose one of {sorted(APP_MODELS)}")
    return APP_MODELS[name](**kwargs)
