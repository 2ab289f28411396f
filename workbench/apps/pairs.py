"""Training and evaluation pairs of the demo apps: super resolution (low-res, high-res) and coloring (L, ab).

Photos are (H, W, 3) uint8 arrays as `workbench.data.load_photos` returns them. Every random choice
is drawn once in the constructor, the crop windows by `workbench.data.PhotoPatches(seed)` and the
flips and rotations from `numpy.random.default_rng([seed, 1])`, so one seed always gives the same
pairs, in any DataLoader order.

The low-res image is a bicubic downscale with antialiasing (torch's `interpolate(mode='bicubic',
antialias=True)`), the same kernel as MATLAB's `imresize` that the SR benchmarks used to make their
inputs; the pixel values differ slightly because MATLAB rounds to uint8.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from workbench.apps.quality import split_lab
from workbench.data import DATA_ENV, DataError, PhotoPatches, data_dirs, find_data


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32) / 255.0)


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """hr: (N, 3, H, W) in [0, 1], H and W multiples of scale -> (N, 3, H/scale, W/scale) bicubic, [0, 1]."""
    h, w = hr.shape[-2:]
    lr = F.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True,
                       align_corners=False)
    # Bicubic overshoots at edges; clamp so the input stays a valid image.
    return lr.clamp(0, 1)


def upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """lr: (N, 3, h, w) in [0, 1] -> (N, 3, h*scale, w*scale) bicubic, clamped to [0, 1]."""
    h, w = lr.shape[-2:]
    up = F.interpolate(lr, size=(h * scale, w * scale), mode="bicubic", align_corners=False)
    return up.clamp(0, 1)


def _check_scale(scale: int) -> None:
    """DataError unless scale is an integer >= 2 (bool is not an integer here)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 2:
        raise DataError(f"scale must be an integer >= 2 (2, 3 or 4 in the benchmarks), got {scale!r}")


def _check_photos(photos: list[np.ndarray], side: int, what: str) -> None:
    """DataError unless photos is a non-empty list of (H, W, 3) uint8 arrays at least side x side."""
    if len(photos) == 0:
        raise DataError("no photos given; load some with workbench.data.load_photos()")
    for i, p in enumerate(photos):
        if p.ndim != 3 or p.shape[2] != 3 or p.dtype != np.uint8:
            raise DataError(f"photo {i} is {p.dtype} {p.shape}; expected (H, W, 3) uint8 "
                            "as workbench.data.load_photos returns")
    small = [(i, p.shape[:2]) for i, p in enumerate(photos) if min(p.shape[:2]) < side]
    if small:
        raise DataError(f"photos (index, (H, W)) smaller than the {what} {side}x{side}: {small}")


def _dihedral(x: torch.Tensor, flip: bool, rot: int) -> torch.Tensor:
    """x: (C, H, W) flipped left-right if `flip`, then rotated by rot * 90 degrees."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, rot, (-2, -1)) if rot else x


class SRPairs(Dataset):
    """`n` seeded (lr (3, patch, patch), hr (3, patch*scale, patch*scale)) float [0, 1] crops of photos.

    With `augment`, each hr crop gets one of the 8 flips/90-degree rotations before downscaling.
    `crops_` holds the draws: (photo index, top, left, flip, quarter turns) per item.
    """

    def __init__(self, photos: list[np.ndarray], scale: int = 2, patch: int = 32, n: int = 256,
                 seed: int = 0, augment: bool = True) -> None:
        _check_scale(scale)
        if patch < 1 or n < 1:
            raise DataError(f"patch and n must be >= 1, got patch={patch}, n={n}")
        hr_patch = patch * scale
        _check_photos(photos, hr_patch, f"high-res patch (patch {patch} x scale {scale})")
        self.photos = photos
        self.scale = scale
        self.patch = patch
        self.augment = augment
        # The crop windows are data.PhotoPatches' draws; the augmentation has its own stream, drawn
        # even when unused, so augment=False keeps the same windows.
        windows = PhotoPatches(photos, hr_patch, n, seed).crops
        rng = np.random.default_rng([seed, 1])
        self.crops_: list[tuple[int, int, int, bool, int]] = []
        for k, y, x in windows:
            flip, rot = bool(rng.integers(2)), int(rng.integers(4))
            self.crops_.append((k, y, x, flip and augment, rot if augment else 0))

    def __len__(self) -> int:
        return len(self.crops_)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, y, x, flip, rot = self.crops_[i]
        side = self.patch * self.scale
        hr = _dihedral(_to_tensor(self.photos[k][y : y + side, x : x + side]), flip, rot).contiguous()
        return downscale(hr[None], self.scale)[0], hr


def modcrop(photo: np.ndarray, scale: int) -> np.ndarray:
    """photo: (H, W, 3) -> its top-left (H - H % scale, W - W % scale) part, MATLAB's modcrop."""
    h, w = photo.shape[:2]
    return photo[: h - h % scale, : w - w % scale]


def sr_eval_pair(photo: np.ndarray, scale: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """photo: (H, W, 3) uint8 -> lr (1, 3, h/s, w/s), hr (1, 3, h, w), bicubic-upscaled lr (1, 3, h, w)."""
    _check_scale(scale)
    _check_photos([photo], scale, "scale factor")
    hr = _to_tensor(modcrop(photo, scale))[None]
    lr = downscale(hr, scale)
    return lr, hr, upscale(lr, scale)


class ColorPairs(Dataset):
    """`n` seeded (L / 100 (1, patch, patch), ab / 110 (2, patch, patch)) crops of photos, float32.

    With `augment`, each crop is flipped left-right with probability 1/2 (colours have an up and a
    down, skies on top, so no vertical flips or rotations). `crops_`: (photo, top, left, flip).
    """

    def __init__(self, photos: list[np.ndarray], patch: int = 64, n: int = 256, seed: int = 0,
                 augment: bool = True) -> None:
        if patch < 1 or n < 1:
            raise DataError(f"patch and n must be >= 1, got patch={patch}, n={n}")
        _check_photos(photos, patch, "patch")
        self.photos = photos
        self.patch = patch
        self.augment = augment
        windows = PhotoPatches(photos, patch, n, seed).crops
        rng = np.random.default_rng([seed, 1])
        self.crops_: list[tuple[int, int, int, bool]] = [(k, y, x, bool(rng.integers(2)) and augment)
                                                         for k, y, x in windows]

    def __len__(self) -> int:
        return len(self.crops_)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, y, x, flip = self.crops_[i]
        rgb = _dihedral(_to_tensor(self.photos[k][y : y + self.patch, x : x + self.patch]), flip, 0)
        l_norm, ab_norm = split_lab(rgb[None])
        return l_norm[0], ab_norm[0]


def image_folder(name: str) -> Path:
    """Path of the benchmark image set `name` ("CSet5", "CBSD68", ...) under <data dir>/images/."""
    found = find_data(f"images/{name}")
    if found is not None and found.is_dir():
        return found
    searched = ", ".join(str(d / "images" / name) for d in data_dirs())
    root = find_data("images")
    have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root is not None else []
    available = f" Sets found in {root}: {', '.join(have) or 'none'}." if root is not None else ""
    raise DataError(f"image set {name!r} not found; looked in {searched}.{available} Put the folder "
                    f"of PNGs under images/ in one of those, or point ${DATA_ENV} at a folder holding "
                    f"images/{name}.")
