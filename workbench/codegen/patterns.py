"""Read kept kernels and their patterns off the zeros of a convolution weight.

The compiler never imports the pruning code: a kernel whose weights are all zero is removed
(connectivity pruning) and the set of non-zero taps of a kept kernel is its pattern.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KernelPatterns:
    """Pattern table and per-kernel pattern ids of one conv weight.

    patterns: (P, kh*kw) bool, row p = taps kept by pattern p, sorted by (tap count, bits).
    kernel_pattern: (O, Cg) int32, the pattern id of kernel (o, c), or -1 if it was removed.
    """
    patterns: np.ndarray
    kernel_pattern: np.ndarray
    kernel_shape: tuple[int, int]

    @property
    def num_patterns(self) -> int:
        """Number of distinct patterns among kept kernels."""
        return int(self.patterns.shape[0])

    @property
    def kept_kernels(self) -> int:
        """Number of kernels with at least one non-zero weight."""
        return int((self.kernel_pattern >= 0).sum())

    @property
    def total_kernels(self) -> int:
        """O * Cg: kernels of the unpruned layer."""
        return int(self.kernel_pattern.size)

    def taps(self, p: int) -> list[tuple[int, int]]:
        """The (dy, dx) offsets kept by pattern p, row-major."""
        kw = self.kernel_shape[1]
        return [(int(i) // kw, int(i) % kw) for i in np.flatnonzero(self.patterns[p])]

    @property
    def kept_weights(self) -> int:
        """Number of weights the patterns keep (multiplications per output pixel)."""
        counts = self.patterns.sum(axis=1)
        kp = self.kernel_pattern[self.kernel_pattern >= 0]
        return int(counts[kp].sum()) if kp.size else 0

    def columns(self) -> np.ndarray:
        """(Cg, kh*kw) bool: tap t of input channel c is kept by at least one filter (a
        column of the im2col GEMM, which column pruning keeps or removes for all filters)."""
        cg = self.kernel_pattern.shape[1]
        out = np.zeros((cg, self.patterns.shape[1]), bool)
        for p in range(self.num_patterns):
            out |= (self.kernel_pattern == p).any(axis=0)[:, None] & self.patterns[p][None, :]
        return out

    def kept_columns(self) -> list[tuple[int, int, int]]:
        """The kept GEMM columns as (input channel, dy, dx), channel-major then row-major."""
        kw = self.kernel_shape[1]
        return [(int(c), int(t) // kw, int(t) % kw) for c, t in zip(*np.nonzero(self.columns()))]

    @property
    def column_density(self) -> float:
        """Kept weights over O x kept columns: 1.0 when every filter keeps every kept column
        (column pruning, or a dense layer), lower when filters keep different taps."""
        o = self.kernel_pattern.shape[0]
        return self.kept_weights / max(1, o * int(self.columns().sum()))


def analyse(weight: np.ndarray) -> KernelPatterns:
    """Patterns of W: (O, Cg, kh, kw); a tap is kept where any weight is non-zero."""
    w = np.asarray(weight)
    if w.ndim != 4:
        raise ValueError(f"conv weight must be 4-D (O, Cg, kh, kw), got shape {w.shape}")
    o, cg, kh, kw = w.shape
    nz = (w != 0).reshape(o * cg, kh * kw)
    kept = nz.any(axis=1)
    kp = np.full(o * cg, -1, dtype=np.int32)
    if kept.any():
        rows = nz[kept]
        if kh * kw <= 62:
            # One integer per kernel (bit t = tap t): np.unique on ints, not on rows (100x faster).
            codes = rows.astype(np.int64) @ (np.int64(1) << np.arange(kh * kw, dtype=np.int64))
            ucodes, inv = np.unique(codes, return_inverse=True)
            uniq = ((ucodes[:, None] >> np.arange(kh * kw)) & 1).astype(bool)
        else:
            uniq, inv = np.unique(rows, axis=0, return_inverse=True)
        # Order patterns by tap count then bit pattern, so ids do not depend on first appearance.
        keys = [(int(u.sum()), tuple(int(b) for b in u)) for u in uniq]
        order = sorted(range(len(uniq)), key=lambda i: keys[i])
        rank = np.empty(len(uniq), dtype=np.int32)
        rank[order] = np.arange(len(uniq), dtype=np.int32)
        kp[kept] = rank[np.asarray(inv).reshape(-1)]
        patterns = uniq[order].astype(bool)
    else:
        patterns = np.zeros((0, kh * kw), dtype=bool)
    return KernelPatterns(patterns, kp.reshape(o, cg), (kh, kw))
