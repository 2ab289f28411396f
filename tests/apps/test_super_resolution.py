import numpy as np
import pytest
import torch
from torch import nn

from workbench.apps import pairs
from workbench.apps.super_resolution import evaluate_sr, sr_data, sr_loss, train_sr, upscale
from workbench.data import load_photos
from workbench.models.image_to_image import WDSR
from workbench.train import TrainConfig


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [p[:48, :48] for p in load_photos(None)[:3]]


def _wdsr() -> WDSR:
    torch.manual_seed(0)
    return WDSR(scale=2, channels=8, blocks=1)


class Bicubic(nn.Module):
    """A 'model' that is the bicubic baseline itself."""

    scale = 2

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return pairs.upscale(lr, self.scale)


def test_upscale_gives_the_scaled_size_and_kind():
    model = _wdsr()
    photo = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    out = upscale(model, photo, device="cpu")
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    batch = torch.rand(2, 3, 5, 7)
    up = upscale(model, batch, device="cpu")
    assert up.shape == (2, 3, 10, 14) and 0 <= up.min() and up.max() <= 1
    with pytest.raises(ValueError, match="uint8"):
        upscale(model, photo.astype(np.float32), device="cpu")


def test_training_lowers_the_l1_loss(photos):
    ds = sr_data(photos, scale=2, patch=8, n=16, seed=0)
    cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, optimizer="adam", weight_decay=0.0,
                      schedule="constant", device="cpu", amp=False)
    model = _wdsr()
    lr, hr = (torch.stack(t) for t in zip(*[ds[i] for i in range(len(ds))]))
    with torch.no_grad():
        before = float(sr_loss(model(lr), hr))
    train_sr(model, ds, cfg, progress=False)
    with torch.no_grad():
        after = float(sr_loss(model(lr), hr))
    assert after < 0.8 * before
    assert sr_loss(hr, hr) == 0


def test_evaluate_sr_of_bicubic_is_the_bicubic_baseline(photos):
    got = evaluate_sr(Bicubic(), photos, device="cpu")
    assert got["images"] == 3 and got["set"] == "given"
    assert got["psnr"] == pytest.approx(got["bicubic_psnr"])
    assert got["ssim"] == pytest.approx(got["bicubic_ssim"])
    assert 15 < got["psnr"] < 60 and 0 < got["ssim"] < 1
    net = evaluate_sr(_wdsr(), photos, device="cpu")
    assert np.isfinite(net["psnr"]) and net["bicubic_psnr"] == got["bicubic_psnr"]
