import warnings

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab, rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from workbench.apps import quality
from workbench.data import load_photos


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return load_photos(None, max_side=128)


def batch(*imgs: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 arrays of one size -> (N, 3, H, W) float64 in [0, 1]."""
    return torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2).astype(np.float64) / 255.0)


def noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1)


def test_rgb_to_y_known_values_and_skimage():
    colours = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    y = quality.rgb_to_y(colours.view(1, 5, 3).permute(0, 2, 1)[..., None])[0, 0, :, 0]
    np.testing.assert_allclose(y.numpy(), [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-9)
    rgb = np.random.default_rng(0).random((7, 9, 3))
    y = quality.rgb_to_y(torch.from_numpy(rgb.transpose(2, 0, 1))[None])[0, 0]
    np.testing.assert_allclose(y.numpy(), rgb2ycbcr(rgb)[..., 0], atol=1e-9)


def test_rgb_to_y_rejects_other_layouts():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        quality.rgb_to_y(torch.zeros(8, 8, 3))
    with pytest.raises(ValueError, match="float"):
        quality.rgb_to_y(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_psnr_known_value_identical_and_skimage():
    a = torch.zeros(2, 3, 4, 4)
    assert quality.psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-6)
    assert quality.psnr(a, a) == float("inf")
    x = np.random.default_rng(1).random((5, 6, 3))
    y = np.clip(x + 0.05 * np.random.default_rng(2).standard_normal(x.shape), 0, 1)
    assert quality.psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-9)
    assert quality.psnr(x * 255, y * 255, 255) == pytest.approx(quality.psnr(x, y), abs=1e-9)
    with pytest.raises(ValueError, match="shapes differ"):
        quality.psnr(x, y[:4])


def test_psnr_y_known_value_border_and_batch_mean():
    hr = torch.full((2, 3, 16, 16), 0.5, dtype=torch.float64)
    sr = hr.clone()
    sr[:, :, :2] = 0.0                                     # damage only the 2-pixel border
    assert quality.psnr_y(sr, hr, border=2) == float("inf")
    assert np.isfinite(quality.psnr_y(sr, hr, border=1))
    # Adding d to R, G and B moves Y by d * (65.481 + 128.553 + 24.966) = 219 d.
    sr = hr + torch.tensor([0.01, 0.02], dtype=torch.float64).view(2, 1, 1, 1)
    per_image = [10 * np.log10(255**2 / (219 * d) ** 2) for d in (0.01, 0.02)]
    assert quality.psnr_y(sr, hr, border=0) == pytest.approx(np.mean(per_image), abs=1e-9)


def test_psnr_y_rejects_mismatch_and_bad_border():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="differ in shape"):
        quality.psnr_y(x, torch.zeros(1, 3, 8, 6), 0)
    with pytest.raises(ValueError, match="border"):
        quality.psnr_y(x, x, 4)
    with pytest.raises(ValueError, match="border"):
        quality.psnr_y(x, x, -1)


def test_ssim_y_matches_skimage_on_photos(photos):
    hr = batch(photos[0][:64, :80], photos[2][:64, :80])
    sr = noisy(hr, 0.05, seed=3)
    border = 3
    y_hr = quality.rgb_to_y(hr)[:, 0, border:-border, border:-border].numpy()
    y_sr = quality.rgb_to_y(sr)[:, 0, border:-border, border:-border].numpy()
    expected = np.mean([structural_similarity(s, h, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255)
                        for s, h in zip(y_sr, y_hr)])
    assert quality.ssim_y(sr, hr, border) == pytest.approx(expected, abs=1e-9)
    assert 0.3 < expected < 0.99


def test_ssim_y_identical_is_one_and_small_images_fail():
    x = noisy(torch.full((1, 3, 20, 20), 0.5, dtype=torch.float64), 0.2, seed=4)
    assert quality.ssim_y(x, x, 2) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="SSIM window"):
        quality.ssim_y(x, x, 5)


def test_lab_matches_skimage_both_ways(photos):
    rgb = np.stack([p[:48, :48] for p in photos]).astype(np.float64) / 255.0   # (N, H, W, 3)
    expected = rgb2lab(rgb)
    for dtype in (torch.float64, torch.float32):
        lab = quality.rgb_to_lab(torch.from_numpy(rgb.transpose(0, 3, 1, 2)).to(dtype))
        np.testing.assert_allclose(lab.double().numpy().transpose(0, 2, 3, 1), expected, atol=1e-3)
    # Lab values off the photos' colours, some outside the sRGB gamut, so lab2rgb's clipping counts.
    rng = np.random.default_rng(5)
    lab = np.stack([rng.uniform(0, 100, (6, 7)), rng.uniform(-110, 110, (6, 7)),
                    rng.uniform(-110, 110, (6, 7))], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # skimage warns of negative Z values
        expected_rgb = lab2rgb(lab)
    rgb_back = quality.lab_to_rgb(torch.from_numpy(lab.transpose(2, 0, 1))[None])[0]
    np.testing.assert_allclose(rgb_back.numpy().transpose(1, 2, 0), expected_rgb, atol=1e-3)


def test_lab_roundtrip_and_gradients_are_finite(photos):
    rgb = batch(photos[1][:32, :32]).float().requires_grad_(True)
    back = quality.lab_to_rgb(quality.rgb_to_lab(rgb))
    np.testing.assert_allclose(back.detach().numpy(), rgb.detach().numpy(), atol=1e-4)
    back.sum().backward()
    assert torch.isfinite(rgb.grad).all()


def test_split_and_merge_lab_ranges_and_roundtrip():
    g = torch.linspace(0, 1, 17, dtype=torch.float64)
    cube = torch.stack(torch.meshgrid(g, g, g, indexing="ij")).reshape(1, 3, 17 * 17, 17)
    l_norm, ab_norm = quality.split_lab(cube)
    assert l_norm.shape == (1, 1, 289, 17) and ab_norm.shape == (1, 2, 289, 17)
    assert l_norm.min() >= -1e-9 and l_norm.max() <= 1 + 1e-9
    assert ab_norm.abs().max() <= 1.0 and ab_norm.abs().max() > 0.9   # the scale is used, not wasted
    np.testing.assert_allclose(quality.merge_lab(l_norm, ab_norm).numpy(), cube.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        quality.merge_lab(l_norm, ab_norm[..., :5])
