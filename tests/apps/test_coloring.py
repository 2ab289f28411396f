import numpy as np
import pytest
import torch
from torch import nn

from workbench.apps.coloring import (color_data, color_loss, colorize, evaluate_coloring,
                                     train_coloring)
from workbench.apps.quality import split_lab
from workbench.data import load_photos
from workbench.models.image_to_image import ColorNet
from workbench.train import TrainConfig


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [p[:40, :40] for p in load_photos(None)[:3]]


def _colornet() -> ColorNet:
    torch.manual_seed(0)
    return ColorNet(width=8, global_dim=16)


class Oracle(nn.Module):
    """Predicts a fixed ab batch whatever L it sees."""

    def __init__(self, ab: torch.Tensor) -> None:
        super().__init__()
        self.ab = ab

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        return self.ab[..., : lum.shape[-2], : lum.shape[-1]]


def test_colorize_keeps_l_and_the_size():
    model = _colornet()
    rgb = torch.rand(1, 3, 20, 28)                   # not multiples of 8: padded inside
    out = colorize(model, rgb, device="cpu")
    assert out.shape == rgb.shape
    l_in, _ = split_lab(rgb)
    l_out, ab_out = split_lab(out)
    # Colours outside the sRGB gamut are clipped by the merge; an untrained net's small ab
    # stays inside it for almost every pixel.
    assert (l_out - l_in).abs().median() < 1e-3
    assert ab_out.abs().max() > 0
    photo = (rgb[0].permute(1, 2, 0) * 255).round().byte().numpy()
    assert colorize(model, photo, device="cpu").shape == photo.shape


def test_evaluate_coloring_perfect_and_grey_predictions(photos):
    rgb = torch.from_numpy(photos[0].transpose(2, 0, 1) / 255.0).float()[None]
    _, ab = split_lab(rgb)
    perfect = evaluate_coloring(Oracle(ab), photos[:1], device="cpu")
    assert perfect["psnr_ab"] > 100 and perfect["psnr_rgb"] > 40
    grey = evaluate_coloring(Oracle(torch.zeros_like(ab)), photos[:1], device="cpu")
    assert grey["psnr_ab"] == pytest.approx(grey["grey_psnr_ab"])
    assert grey["psnr_rgb"] == pytest.approx(grey["grey_psnr_rgb"])
    assert perfect["grey_psnr_ab"] == pytest.approx(grey["grey_psnr_ab"])


def test_training_lowers_the_ab_loss(photos):
    ds = color_data(photos, patch=16, n=16, seed=0)
    cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, optimizer="adam", weight_decay=0.0,
                      schedule="constant", device="cpu", amp=False)
    hist = train_coloring(_colornet(), ds, cfg, loss="l1", progress=False)
    assert hist[-1]["train_loss"] < 0.7 * hist[0]["train_loss"]
    with pytest.raises(ValueError, match="multiples of 8"):
        color_data(photos, patch=12)
    with pytest.raises(ValueError, match="unknown coloring loss"):
        color_loss("huber")
