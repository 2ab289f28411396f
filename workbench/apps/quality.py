"""Image quality metrics and colour spaces of the demo apps: PSNR/SSIM on luma Y, sRGB <-> CIE Lab.

Convention: an image batch is a torch tensor (N, 3, H, W) of float RGB in [0, 1]; no function here
clamps or quantises its input, so round super-resolution output to 8-bit levels first if the number
is to match papers that evaluate saved PNGs.

Super-resolution papers report PSNR and SSIM on the luma channel Y of ITU-R BT.601 on MATLAB's
rgb2ycbcr scale [16, 235], with `border` pixels (usually the scale factor) cropped on each side and a
data range of 255. `psnr_y` and `ssim_y` follow that; `ssim_y` is Wang et al.'s SSIM and matches
skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255) on the same cropped Y images.

Coloring works in CIE Lab (sRGB, D65, 2° observer, the constants of skimage.color): the network sees
L / 100 (in [0, 1]) and predicts ab / 110 (in [-1, 1]).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# MATLAB rgb2ycbcr, row Y: Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1].
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
# The literature divides by 255 on the Y scale, not by the 219 levels Y actually spans.
Y_DATA_RANGE = 255.0

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# sRGB -> CIE XYZ matrix of the sRGB specification and the D65 2° white, as in skimage.color.
XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
D65_WHITE = (0.95047, 1.0, 1.08883)

# Coloring's normalisation: L in [0, 100] -> [0, 1]; sRGB's a, b lie within about [-86, 98] and
# [-108, 95], so dividing by 110 keeps ab_norm inside [-1, 1] (a tanh output can reach every colour).
L_SCALE = 100.0
AB_SCALE = 110.0


def _check_batch(x: torch.Tensor, channels: int, name: str) -> None:
    """Raise ValueError unless x is a (N, channels, H, W) floating-point tensor."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name}: expected a torch tensor (N, {channels}, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected float values in [0, 1], got dtype {x.dtype}")


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """img: (N, 3, H, W) float RGB in [0, 1] -> (N, 1, H, W) BT.601 luma Y in [16, 235] (MATLAB's)."""
    _check_batch(img, 3, "img")
    w = torch.tensor(Y_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return Y_OFFSET + (img * w).sum(1, keepdim=True)


def _cropped_y(sr: torch.Tensor, hr: torch.Tensor, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Y of sr and hr, (N, 1, H - 2 border, W - 2 border) float64, after checking they match."""
    _check_batch(sr, 3, "sr")
    _check_batch(hr, 3, "hr")
    if sr.shape != hr.shape:
        raise ValueError(f"sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape")
    h, w = hr.shape[-2:]
    if border < 0 or 2 * border >= min(h, w):
        raise ValueError(f"border {border} must be >= 0 and leave pixels of a {h}x{w} image")
    # float64 so that high PSNRs (small MSEs) and SSIM's variance terms keep their digits.
    ys, yh = rgb_to_y(sr.double()), rgb_to_y(hr.double())
    if border:
        ys, yh = ys[..., border:-border, border:-border], yh[..., border:-border, border:-border]
    return ys, yh


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB of a against b (same shape, any layout) over all elements; inf when they are equal."""
    a64 = torch.as_tensor(a, dtype=torch.float64)
    b64 = torch.as_tensor(b, dtype=torch.float64, device=a64.device)
    if a64.shape != b64.shape:
        raise ValueError(f"shapes differ: {tuple(a64.shape)} vs {tuple(b64.shape)}")
    mse = ((a64 - b64) ** 2).mean()
    return float(10.0 * torch.log10(data_range**2 / mse))


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, border: int) -> float:
    """PSNR in dB on Y (range 255) of sr vs hr, (N, 3, H, W) in [0, 1], `border` px cropped; batch mean."""
    ys, yh = _cropped_y(sr, hr, border)
    mse = ((ys - yh) ** 2).mean((1, 2, 3))                      # (N,)
    # A per-image PSNR averaged over the set, as the benchmark tables do; inf for a perfect image.
    return float((10.0 * torch.log10(Y_DATA_RANGE**2 / mse)).mean())


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(1, 1, size, size) normalised Gaussian, the separable product scipy's gaussian_filter uses."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, border: int) -> float:
    """SSIM on Y (range 255, Gaussian 11x11, sigma 1.5) of sr vs hr, (N, 3, H, W), `border` cropped."""
    ys, yh = _cropped_y(sr, hr, border)
    if min(ys.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"cropped image {tuple(ys.shape[-2:])} is smaller than the SSIM window "
                         f"{SSIM_WINDOW}")
    win = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, ys.dtype, ys.device)

    def blur(x: torch.Tensor) -> torch.Tensor:
        # "valid" filtering: skimage filters with reflection, then drops the same (window-1)/2 strip.
        return F.conv2d(x, win)

    ux, uy = blur(ys), blur(yh)
    # Population (co)variances, as in Wang et al. 2004 (use_sample_covariance=False).
    vx = blur(ys * ys) - ux * ux
    vy = blur(yh * yh) - uy * uy
    vxy = blur(ys * yh) - ux * uy
    c1 = (SSIM_K1 * Y_DATA_RANGE) ** 2
    c2 = (SSIM_K2 * Y_DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean((1, 2, 3)).mean())


def _channel_matmul(m: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """(3, 3) matrix applied to the channels of x: (N, 3, H, W) -> (N, 3, H, W)."""
    return torch.einsum("ij,njhw->nihw", torch.as_tensor(m, dtype=x.dtype, device=x.device), x)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """rgb: (N, 3, H, W) sRGB in [0, 1] -> (N, 3, H, W) CIE Lab (D65): L in [0, 100], a, b about ±110."""
    _check_batch(rgb, 3, "rgb")
    # The clamps keep the branch torch.where discards finite, so gradients do not turn into NaN.
    linear = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _channel_matmul(XYZ_FROM_RGB, linear)
    xyz = xyz / torch.tensor(D65_WHITE, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856) ** (1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """lab: (N, 3, H, W) CIE Lab (D65) -> (N, 3, H, W) sRGB clipped to [0, 1], as skimage's lab2rgb."""
    _check_batch(lab, 3, "lab")
    fy = (lab[:, 0:1] + 16) / 116
    fx = fy + lab[:, 1:2] / 500
    # skimage sets a negative fz (b too large for the lightness) to 0; do the same.
    fz = (fy - lab[:, 2:3] / 200).clamp_min(0)
    f = torch.cat([fx, fy, fz], 1)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16 / 116) / 7.787)
    xyz = xyz * torch.tensor(D65_WHITE, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    linear = _channel_matmul(RGB_FROM_XYZ, xyz)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055,
                      12.92 * linear)
    return rgb.clamp(0, 1)


def split_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb: (N, 3, H, W) in [0, 1] -> (L / 100: (N, 1, H, W) in [0, 1], ab / 110: (N, 2, H, W) in [-1, 1])."""
    lab = rgb_to_lab(rgb)
    return lab[:, :1] / L_SCALE, lab[:, 1:] / AB_SCALE


def merge_lab(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """l_norm: (N, 1, H, W) L / 100, ab_norm: (N, 2, H, W) ab / 110 -> (N, 3, H, W) sRGB in [0, 1]."""
    _check_batch(l_norm, 1, "l_norm")
    _check_batch(ab_norm, 2, "ab_norm")
    if l_norm.shape[0] != ab_norm.shape[0] or l_norm.shape[-2:] != ab_norm.shape[-2:]:
        raise ValueError(f"l_norm {tuple(l_norm.shape)} and ab_norm {tuple(ab_norm.shape)} do not match")
    return lab_to_rgb(torch.cat([l_norm * L_SCALE, ab_norm * AB_SCALE], 1))
