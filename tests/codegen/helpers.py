"""Shared helpers for codegen tests: pattern-pruned weights and the reference convolution."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Eight 4-of-9 patterns with the centre kept (tap index = 3 * row + column).
PATTERNS8 = ((1, 3, 4, 5), (1, 4, 5, 7), (3, 4, 5, 7), (1, 3, 4, 7),
             (0, 1, 3, 4), (1, 2, 4, 5), (3, 4, 6, 7), (4, 5, 7, 8))


def pattern_pruned(rng: np.random.Generator, o: int, cg: int, keep: float = 0.3,
                   patterns: tuple[tuple[int, ...], ...] = PATTERNS8) -> np.ndarray:
    """Random W: (o, cg, 3, 3) float32 keeping a fraction `keep` of kernels, each one pattern."""
    w = rng.standard_normal((o, cg, 9)).astype(np.float32)
    mask = np.zeros_like(w)
    kept = rng.random((o, cg)) < keep
    pid = rng.integers(0, len(patterns), (o, cg))
    for a, b in zip(*np.nonzero(kept)):
        mask[a, b, list(patterns[pid[a, b]])] = 1.0
    return (w * mask).reshape(o, cg, 3, 3)


def conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1,
             padding: int = 0, groups: int = 1, dilation: int = 1) -> np.ndarray:
    """F.conv2d in float64, as float32: the reference every kernel is checked against."""
    y = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                 None if b is None else torch.from_numpy(b).double(), stride, padding,
                 dilation, groups)
    return y.float().numpy()


def rel_err(y: np.ndarray, ref: np.ndarray) -> float:
    """max |y - ref| / max |ref| (0 if ref is all zero and y equals it)."""
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    diff = float(np.abs(y - ref).max()) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


def column_pruned(rng: np.random.Generator, o: int, c: int, k: int, keep: float,
                  empty_channel: bool = False) -> np.ndarray:
    """Random W: (o, c, k, k) float32 with whole im2col columns removed, as column pruning
    does: tap (ci, y, x) is kept (non-zero) in every filter or in none, a fraction `keep` of
    them (1.0 keeps every column); empty_channel: channel 0 keeps none."""
    w = rng.standard_normal((o, c, k, k)).astype(np.float32)
    cols = rng.random((c, k, k)) < keep
    if empty_channel:
        cols[0] = False
    w[:, ~cols] = 0.0
    w[w == 0] = 0.5   # no kept weight is exactly zero (it would be a pattern, not a column)
    w[:, ~cols] = 0.0
    return w
