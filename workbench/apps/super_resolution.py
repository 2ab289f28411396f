"""Super resolution: train WDSR on bicubic (low-res, high-res) crops with L1, evaluate against bicubic.

    train_sr     fit a WDSR on SRPairs of the photos (L1 loss, as EDSR/WDSR train)
    evaluate_sr  PSNR and SSIM on Y, border = scale cropped, of the model and of bicubic
                 upsampling on whole evaluation photos (CSet5/CSet14 when present, else the
                 held-out bundled photo), outputs rounded to 8-bit levels as saved PNGs are
    upscale      a photo or batch -> scale times larger

The defaults are the quick demo's: Adam at 1e-3 with a cosine schedule, no weight decay, in
float32 (bf16 costs tenths of a dB here).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.apps.images import eval_photos, from_batch, quantize, to_batch
from workbench.apps.pairs import SRPairs, sr_eval_pair
from workbench.apps.quality import psnr_y, ssim_y
from workbench.apps.training import Pairs, fit, predict
from workbench.models.image_to_image import WDSR
from workbench.train import TrainConfig

SR_TRAIN = TrainConfig(epochs=20, batch_size=16, lr=1e-3, weight_decay=0.0, optimizer="adam",
                       schedule="cosine", amp=False)


def sr_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of sr against hr, (N, 3, H, W) in [0, 1]: the L1 loss WDSR trains with."""
    return (sr - hr).abs().mean()


def _scale_of(model: nn.Module) -> int:
    """The upscaling factor of a WDSR (its `scale` attribute)."""
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int):
        raise ValueError(f"{type(model).__name__} has no integer `scale`; expected a WDSR")
    return scale


def sr_data(photos: list[np.ndarray], scale: int, patch: int = 32, n: int = 512,
            seed: int = 0) -> SRPairs:
    """Seeded, augmented (lr (3, patch, patch), hr (3, s*patch, s*patch)) training crops of photos."""
    return SRPairs(photos, scale=scale, patch=patch, n=n, seed=seed, augment=True)


def train_sr(model: WDSR, data: Pairs, cfg: TrainConfig = SR_TRAIN,
             checkpoint: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Train model in place on (lr, hr) pairs (sr_data) with the L1 loss; returns fit's history."""
    return fit(model, data, sr_loss, cfg, checkpoint=checkpoint, progress=progress, desc="wdsr")


def evaluate_sr(model: WDSR, photos: list[np.ndarray] | None = None,
                device: str | torch.device = "auto") -> dict[str, float | str | int]:
    """Mean PSNR (dB) and SSIM on Y of model and bicubic over photos (default eval_photos()).

    Each photo is cropped to a multiple of the scale, downscaled bicubically, upscaled by both;
    `border` = scale pixels are cropped on each side before measuring.
    """
    scale = _scale_of(model)
    name = "given"
    if photos is None:
        name, photos = eval_photos()
    rows = []
    for photo in photos:
        lr, hr, bicubic = sr_eval_pair(photo, scale)
        sr = quantize(predict(model, lr, device))
        bicubic = quantize(bicubic)
        rows.append((psnr_y(sr, hr, scale), ssim_y(sr, hr, scale),
                     psnr_y(bicubic, hr, scale), ssim_y(bicubic, hr, scale)))
    mean = np.mean(rows, axis=0)
    return {"set": name, "images": len(rows), "psnr": float(mean[0]), "ssim": float(mean[1]),
            "bicubic_psnr": float(mean[2]), "bicubic_ssim": float(mean[3])}


def upscale(model: WDSR, image: np.ndarray | torch.Tensor,
            device: str | torch.device = "auto") -> np.ndarray | torch.Tensor:
    """(H, W, 3) uint8 -> (s*H, s*W, 3) uint8, or (N, 3, H, W) in [0, 1] -> (N, 3, s*H, s*W) in [0, 1]."""
    x, photo = to_batch(image)
    return from_batch(predict(model, x, device), photo)
