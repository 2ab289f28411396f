"""Images in and out of the apps: uint8 photos <-> float batches, padding to a size multiple, photo sets.

The apps' functions (`upscale`, `colorize`, `stylize`) take either a photo, an (H, W, 3) uint8
numpy array as `workbench.data.load_photos` returns it, or a float batch (N, 3, H, W) in [0, 1],
and give back the same kind. Photo sets: the benchmark folders under ../shared/data/images when
present, else the photos bundled with scikit-image, one of them held out of training so that
the demo and CI run with no data folder at all.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from workbench.apps.pairs import image_folder
from workbench.data import SKIMAGE_PHOTOS, DataError, load_photos

# The bundled photo kept out of training (a natural photo with texture and colour: a cat).
HELD_OUT = ("chelsea",)


def to_batch(image: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(H, W, 3) uint8 -> ((1, 3, H, W) float32 in [0, 1], True); a (N, 3, H, W) float -> (it, False)."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 photo, got {image.dtype} {image.shape}")
        t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
        return t[None], True
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or not image.is_floating_point():
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"expected an (H, W, 3) uint8 array or a float (N, C, H, W) tensor, got {shape}")
    return image, False


def from_batch(x: torch.Tensor, photo: bool) -> np.ndarray | torch.Tensor:
    """Undo to_batch: (1, 3, H, W) in [0, 1] -> (H, W, 3) uint8 if photo, else x clamped to [0, 1]."""
    x = x.clamp(0, 1)
    if not photo:
        return x
    return (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).cpu().numpy()


def quantize(x: torch.Tensor) -> torch.Tensor:
    """x: float in [0, 1] -> clamped and rounded to the 256 levels of an 8-bit image (as saved PNGs)."""
    return (x.clamp(0, 1) * 255).round() / 255


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """x: (N, C, H, W) -> (N, C, H', W') with H', W' the next multiples, edge pixels replicated."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    # Replicated edges rather than zeros: a black band would change instance-norm statistics
    # and the colours a global branch sees.
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def crop_to_multiple(photo: np.ndarray, multiple: int) -> np.ndarray:
    """photo: (H, W, 3) -> its top-left part with H and W multiples of `multiple`."""
    h, w = photo.shape[:2]
    if h < multiple or w < multiple:
        raise DataError(f"photo {h}x{w} is smaller than {multiple}x{multiple}")
    return photo[: h - h % multiple, : w - w % multiple]


def bundled_split(held_out: tuple[str, ...] = HELD_OUT,
                  max_side: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """skimage's bundled photos split into (train, held out): held_out names the held-out ones."""
    unknown = [n for n in held_out if n not in SKIMAGE_PHOTOS]
    if unknown:
        raise ValueError(f"no bundled photo {unknown}; have {SKIMAGE_PHOTOS}")
    photos = load_photos(None, max_side=max_side)
    train = [p for n, p in zip(SKIMAGE_PHOTOS, photos) if n not in held_out]
    held = [p for n, p in zip(SKIMAGE_PHOTOS, photos) if n in held_out]
    return train, held


def eval_photos(sets: tuple[str, ...] = ("CSet5", "CSet14"),
                max_side: int | None = None) -> tuple[str, list[np.ndarray]]:
    """(name, photos) of the first benchmark set found, else ("bundled:<held out>", held-out photos)."""
    for name in sets:
        try:
            return name, load_photos(image_folder(name), max_side=max_side)
        except DataError:
            continue
    return "bundled:" + ",".join(HELD_OUT), bundled_split(max_side=max_side)[1]
