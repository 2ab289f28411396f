"""Style transfer: train a TransformerNet on one style image with a random-feature style + content loss.

Johnson et al. (2016) measure style and content with a pretrained VGG-16. No pretrained network
can be downloaded here, so the loss network is a documented substitute: `RandomFeatures`, a
fixed, seeded, randomly initialised shallow conv net (3x3 then 5x5 conv + ReLU, He-initialised)
applied at three scales (full, 1/2, 1/4 resolution). Random shallow networks already carry the
texture statistics that style is made of: Ustyuzhaninov et al. 2017, "What does it take to
generate natural textures?" (ICLR), synthesise natural textures from Gram matrices of a single
layer of random multi-scale filters, and He, Wang and Hopcroft 2016, "A powerful generative model
using random weights for the deep image representation" (NeurIPS), do style transfer with
random-weight VGGs. It captures colour and local texture well and semantic style (brush strokes
that follow objects) less well than VGG would, which is enough for the demo's purpose: a
network with the real architecture, trained for real, to prune and compile.

    style loss    mean over the 6 feature maps (2 layers x 3 scales) of the relative squared
                  error ||G(f(y)) - G(f(s))||^2 / ||G(f(s))||^2 of Gram matrices
                  G = f f^T / (C H W), against the style image s
    content loss  ||f(y) - f(x)||^2 / ||f(x)||^2 of the last full-resolution features against
                  the content image x
    StyleLoss     content_weight * content + style_weight * style: fit's loss_fn(output, content)

Both terms are relative errors (1.0 = as large as the target), so the weights do not depend on the
feature net's widths or the image size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from workbench.apps.images import from_batch, pad_to_multiple, to_batch
from workbench.apps.training import Pairs, evaluate, fit, predict
from workbench.data import PhotoPatches
from workbench.models.image_to_image import SIZE_MULTIPLE, TransformerNet
from workbench.train import TrainConfig

STYLE_TRAIN = TrainConfig(epochs=10, batch_size=8, lr=1e-3, weight_decay=0.0, optimizer="adam",
                          schedule="cosine", amp=False)
MULTIPLE = SIZE_MULTIPLE["transformer_net"]
# The bundled photo used as the style by default: coffee (strong colours, fine texture).
STYLE_PHOTO = "coffee"


class RandomFeatures(nn.Module):
    """Fixed random conv + ReLU stack at several scales: (N, 3, H, W) in [0, 1] -> feature maps.

    Layer l has widths[l] filters of size kernels[l]; its weights are drawn from N(0, 2 / fan_in)
    by a generator seeded with `seed` and stored as buffers (never trained). Scale s sees the
    input average-pooled 2**s times. forward returns the maps scale-major: [s0 l0, s0 l1, s1 l0, ...].
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64), kernels: tuple[int, ...] = (3, 5),
                 scales: int = 3, seed: int = 0) -> None:
        super().__init__()
        if len(widths) != len(kernels) or not widths or scales < 1:
            raise ValueError(f"need as many widths as kernels (>= 1) and scales >= 1, got "
                             f"widths={widths}, kernels={kernels}, scales={scales}")
        self.kernels = tuple(kernels)
        self.scales = scales
        gen = torch.Generator().manual_seed(seed)
        cin = 3
        for i, (w, k) in enumerate(zip(widths, kernels)):
            std = (2.0 / (cin * k * k)) ** 0.5     # He: keeps activations O(1) through ReLUs
            self.register_buffer(f"weight{i}", torch.randn(w, cin, k, k, generator=gen) * std)
            cin = w

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (N, 3, H, W) -> len(widths) * scales maps, (N, widths[l], H / 2**s, W / 2**s)."""
        # Centred, so that the random filters respond to contrast rather than to brightness.
        x = x - 0.5
        out = []
        for s in range(self.scales):
            h = F.avg_pool2d(x, 2**s) if s else x
            for i, k in enumerate(self.kernels):
                h = F.relu(F.conv2d(h, getattr(self, f"weight{i}"), padding=k // 2))
                out.append(h)
        return out


def gram(f: torch.Tensor) -> torch.Tensor:
    """f: (N, C, H, W) -> (N, C, C) Gram matrices f f^T / (C H W)."""
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def _relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ||a - b||^2 / ||b||^2 averaged over the batch (b broadcast over a's batch)."""
    b = b.expand_as(a)
    num = (a - b).square().flatten(1).sum(1)
    return (num / b.square().flatten(1).sum(1).clamp_min(1e-12)).mean()


def gram_loss(a: torch.Tensor, b: torch.Tensor, features: RandomFeatures) -> torch.Tensor:
    """Style distance of a from b, (N, 3, H, W) each (b may have N = 1): mean relative Gram error."""
    ga = [gram(f) for f in features(a)]
    gb = [gram(f) for f in features(b)]
    return torch.stack([_relative(x, y) for x, y in zip(ga, gb)]).mean()


class StyleLoss(nn.Module):
    """content_weight * content + style_weight * style loss against one style image; fit's loss_fn.

    style: (1, 3, H, W) in [0, 1] or an (H, W, 3) uint8 photo; its Gram matrices are computed once.
    forward(output, content): both (N, 3, H, W) in [0, 1] -> scalar.
    """

    def __init__(self, style: np.ndarray | torch.Tensor, features: RandomFeatures | None = None,
                 style_weight: float = 5.0, content_weight: float = 1.0) -> None:
        super().__init__()
        self.features = features if features is not None else RandomFeatures()
        self.style_weight = style_weight
        self.content_weight = content_weight
        s, _ = to_batch(style)
        with torch.no_grad():
            for i, g in enumerate(gram(f) for f in self.features(s.float())):
                self.register_buffer(f"style_gram{i}", g)

    def _grams(self) -> list[torch.Tensor]:
        """The style image's Gram matrices, one per feature map, (1, C, C)."""
        n = len(self.features.kernels) * self.features.scales
        return [getattr(self, f"style_gram{i}") for i in range(n)]

    def style_loss(self, output: torch.Tensor) -> torch.Tensor:
        """Mean relative Gram error of output (N, 3, H, W) against the style image."""
        feats = self.features(output)
        return torch.stack([_relative(gram(f), g) for f, g in zip(feats, self._grams())]).mean()

    def content_loss(self, output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Relative squared error of the last full-resolution features of output vs content."""
        layer = len(self.features.kernels) - 1
        with torch.no_grad():
            target = self.features(content)[layer]
        return _relative(self.features(output)[layer], target)

    def forward(self, output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the content and style losses (a scalar with gradient)."""
        return (self.content_weight * self.content_loss(output, content)
                + self.style_weight * self.style_loss(output))


class ContentPairs(Dataset):
    """`n` seeded (crop, crop) pairs of (3, patch, patch) in [0, 1]: style transfer's (input, target)."""

    def __init__(self, photos: list[np.ndarray], patch: int = 64, n: int = 512, seed: int = 0) -> None:
        if patch % MULTIPLE:
            raise ValueError(f"TransformerNet needs patches that are multiples of {MULTIPLE}, got {patch}")
        self.patches = PhotoPatches(photos, patch, n, seed)

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.patches[i]
        return x, x


def style_image(name: str = STYLE_PHOTO, side: int = 256) -> np.ndarray:
    """A bundled skimage photo (see workbench.data.SKIMAGE_PHOTOS), longest side `side`, (H, W, 3) uint8."""
    from workbench.data import SKIMAGE_PHOTOS, load_photos

    if name not in SKIMAGE_PHOTOS:
        raise ValueError(f"no bundled photo {name!r}; have {SKIMAGE_PHOTOS}")
    return load_photos(None, max_side=side)[SKIMAGE_PHOTOS.index(name)]


def train_style(model: TransformerNet, data: Pairs, loss: StyleLoss, cfg: TrainConfig = STYLE_TRAIN,
                checkpoint: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Train model in place on content crops (ContentPairs) with the style loss; fit's history."""
    return fit(model, data, loss, cfg, checkpoint=checkpoint, progress=progress, desc="style")


def evaluate_style(model: TransformerNet, data: Pairs, loss: StyleLoss,
                   device: str | torch.device = "auto") -> dict[str, float]:
    """Mean total, style and content loss of model over (content, content) pairs."""
    return evaluate(model, data, {"loss": loss, "style": lambda out, _: loss.style_loss(out),
                                  "content": loss.content_loss}, device)


def stylize(model: TransformerNet, image: np.ndarray | torch.Tensor,
            device: str | torch.device = "auto") -> np.ndarray | torch.Tensor:
    """(H, W, 3) uint8 or (N, 3, H, W) in [0, 1] -> the stylised image, same kind and size."""
    x, photo = to_batch(image)
    h, w = x.shape[-2:]
    return from_batch(predict(model, pad_to_multiple(x, MULTIPLE), device)[..., :h, :w], photo)
