"""Coloring: train ColorNet to predict ab from L, evaluate PSNR on ab, colorize a grey image.

    train_coloring     fit a ColorNet on ColorPairs (L / 100 -> ab / 110), L1 or MSE on ab
    evaluate_coloring  PSNR on ab (data range 220: ab in [-110, 110]) and on the merged RGB, of
                       the model and of the grey baseline (ab = 0), over held-out photos (CSet14)
    colorize           RGB in, RGB out: L kept, ab predicted, merged back

L1 gives less washed-out colours than MSE (MSE averages plausible colours towards grey, Zhang
et al. 2016), so it is the default. The model needs H and W multiples of 8: photos are cropped
for evaluation and padded (edges replicated) by colorize.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from workbench.apps.images import (crop_to_multiple, eval_photos, from_batch, pad_to_multiple,
                                   to_batch)
from workbench.apps.pairs import ColorPairs
from workbench.apps.quality import AB_SCALE, merge_lab, psnr, split_lab
from workbench.apps.training import LossFn, Pairs, fit, predict
from workbench.models.image_to_image import SIZE_MULTIPLE, ColorNet
from workbench.train import TrainConfig

COLOR_TRAIN = TrainConfig(epochs=20, batch_size=16, lr=1e-3, weight_decay=0.0, optimizer="adam",
                          schedule="cosine", amp=False)
MULTIPLE = SIZE_MULTIPLE["colornet"]
COLOR_LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


def color_loss(name: str = "l1") -> LossFn:
    """The loss on ab / 110, (N, 2, H, W): 'l1' (mean absolute error) or 'mse'."""
    if name not in COLOR_LOSSES:
        raise ValueError(f"unknown coloring loss {name!r}; choose one of {sorted(COLOR_LOSSES)}")
    return COLOR_LOSSES[name]


def color_data(photos: list[np.ndarray], patch: int = 64, n: int = 512, seed: int = 0) -> ColorPairs:
    """Seeded, flipped (L / 100 (1, patch, patch), ab / 110 (2, patch, patch)) crops of photos."""
    if patch % MULTIPLE:
        raise ValueError(f"ColorNet needs patches that are multiples of {MULTIPLE}, got {patch}")
    return ColorPairs(photos, patch=patch, n=n, seed=seed, augment=True)


def train_coloring(model: ColorNet, data: Pairs, cfg: TrainConfig = COLOR_TRAIN, loss: str = "l1",
                   checkpoint: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Train model in place on (L, ab) pairs (color_data) with color_loss(loss); fit's history."""
    return fit(model, data, color_loss(loss), cfg, checkpoint=checkpoint, progress=progress,
               desc="colornet")


def predict_ab(model: ColorNet, l_norm: torch.Tensor, device: str | torch.device = "auto") -> torch.Tensor:
    """L / 100 (N, 1, H, W), any H x W -> ab / 110 (N, 2, H, W) (padded to multiples of 8 inside)."""
    h, w = l_norm.shape[-2:]
    return predict(model, pad_to_multiple(l_norm, MULTIPLE), device)[..., :h, :w]


def evaluate_coloring(model: ColorNet, photos: list[np.ndarray] | None = None,
                      device: str | torch.device = "auto") -> dict[str, float | int]:
    """Mean PSNR (dB) on ab and on RGB over photos (default CSet14, else the held-out bundled
    photo), and grey's."""
    if photos is None:
        # CSet14 when present (never trained on), else the held-out bundled photo
        photos = eval_photos(("CSet14",))[1]
    rows = []
    for photo in photos:
        rgb, _ = to_batch(crop_to_multiple(photo, MULTIPLE))
        l_norm, ab = split_lab(rgb)
        pred = predict_ab(model, l_norm, device)
        grey = torch.zeros_like(ab)
        # ab is compared in Lab units over its full range [-110, 110]; RGB after the merge,
        # which is what a viewer sees (out-of-gamut ab is clipped there).
        rows.append((psnr(pred * AB_SCALE, ab * AB_SCALE, 2 * AB_SCALE),
                     psnr(merge_lab(l_norm, pred), rgb),
                     psnr(grey, ab * AB_SCALE, 2 * AB_SCALE), psnr(merge_lab(l_norm, grey), rgb)))
    mean = np.mean(rows, axis=0)
    return {"images": len(rows), "psnr_ab": float(mean[0]), "psnr_rgb": float(mean[1]),
            "grey_psnr_ab": float(mean[2]), "grey_psnr_rgb": float(mean[3])}


def colorize(model: ColorNet, rgb: np.ndarray | torch.Tensor,
             device: str | torch.device = "auto") -> np.ndarray | torch.Tensor:
    """(H, W, 3) uint8 or (N, 3, H, W) in [0, 1] -> the same kind: its L with predicted ab."""
    x, photo = to_batch(rgb)
    l_norm, _ = split_lab(x)
    return from_batch(merge_lab(l_norm, predict_ab(model, l_norm, device)), photo)

