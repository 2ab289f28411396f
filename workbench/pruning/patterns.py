"""Kernel patterns: candidates, the frozen PatternSet scheme, selection by best-fit frequency, coverage.

A pattern is the set of taps a kernel keeps (e.g. 4 of the 9 taps of a 3x3 kernel, centre kept).
`PatternSet` is the pattern scheme of PCONV (CoCoPIE report, section 2.1): every kernel keeps the
taps of its best-fitting pattern and, with `keep_kernels`, only that fraction of a layer's kernels
survives (connectivity pruning). Its `project` is the exact Euclidean projection onto that set:

    the distance of kernel w to pattern p is ||w||^2 - e_p(w),  e_p(w) = sum_{t in p} w_t^2,

so each kernel takes the pattern of largest kept energy e*(w) = max_p e_p(w), and removing a kernel
costs e*(w) more than keeping it; the closest point with at most k kernels therefore keeps the k
kernels of largest e*(w). Everything runs in torch on the weight's device (GPU stays GPU); numpy
inputs give numpy outputs.

Kernels: a conv weight (O, I, kh, kw) whose (kh, kw) equals the set's `kernel` is O*I kernels; a
fully connected weight (O, I) is cut into (kh, kw) blocks (O and I must be multiples), each block
treated as a kernel, which is the report's generalisation to FC layers.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

Weight = torch.Tensor | np.ndarray
_CHUNK = 1 << 16  # kernels per block in best-fit search: caps the (N, P) energy matrix


class PatternFitError(ValueError):
    """A pattern set does not fit a weight tensor (wrong kernel size, FC dims not multiples)."""


def _as_tensor(w: Weight) -> tuple[torch.Tensor, bool]:
    """(tensor view of w, whether w was numpy); numpy arrays become CPU tensors without a copy."""
    if isinstance(w, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(w)), True
    if isinstance(w, torch.Tensor):
        return w.detach(), False
    raise TypeError(f"expected a torch.Tensor or numpy array, got {type(w).__name__}")


def _back(t: torch.Tensor, numpy: bool) -> Weight:
    return t.cpu().numpy() if numpy else t


def to_kernels(w: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """W (O, I, kh, kw) or FC (O, I) -> (N, kh*kw) kernels (FC: row-major (kh, kw) blocks)."""
    kh, kw = kernel
    if w.ndim == 4:
        if tuple(w.shape[2:]) != (kh, kw):
            raise PatternFitError(f"a pattern set for {kh}x{kw} kernels does not fit a conv weight "
                                  f"of shape {tuple(w.shape)} ({w.shape[2]}x{w.shape[3]} kernels)")
        return w.reshape(-1, kh * kw)
    if w.ndim == 2:
        o, i = w.shape
        if o % kh or i % kw:
            raise PatternFitError(f"a pattern set for {kh}x{kw} blocks does not fit a fully "
                                  f"connected weight of shape {(o, i)}: {o} must be a multiple of "
                                  f"{kh} and {i} a multiple of {kw}")
        return w.reshape(o // kh, kh, i // kw, kw).permute(0, 2, 1, 3).reshape(-1, kh * kw)
    raise PatternFitError(f"pattern sets apply to conv (O, I, kh, kw) or FC (O, I) weights, "
                          f"got shape {tuple(w.shape)}")


def from_kernels(k: torch.Tensor, shape: Sequence[int], kernel: tuple[int, int]) -> torch.Tensor:
    """Inverse of to_kernels: (N, kh*kw) -> a tensor of `shape`."""
    kh, kw = kernel
    if len(shape) == 4:
        return k.reshape(tuple(shape))
    o, i = shape
    return k.reshape(o // kh, i // kw, kh, kw).permute(0, 2, 1, 3).reshape(o, i)


def candidate_patterns(kernel: tuple[int, int] = (3, 3), k: int = 4,
                       keep_centre: bool = True) -> np.ndarray:
    """All k-tap patterns of a kh x kw kernel as (P, kh, kw) bool, in lexicographic tap order.

    With keep_centre (odd kernels only) every pattern holds the centre tap: C(kh*kw - 1, k - 1)
    candidates, e.g. 56 for 4 of 9.
    """
    kh, kw = (int(kernel[0]), int(kernel[1]))
    taps = kh * kw
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel must be positive, got {kernel}")
    if not 1 <= k <= taps:
        raise ValueError(f"k must be in 1..{taps} for a {kh}x{kw} kernel, got {k}")
    if keep_centre:
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"a {kh}x{kw} kernel has no centre tap; pass keep_centre=False")
        centre = (kh // 2) * kw + kw // 2
        others = [t for t in range(taps) if t != centre]
        combos = [tuple(sorted((centre, *c))) for c in itertools.combinations(others, k - 1)]
    else:
        combos = list(itertools.combinations(range(taps), k))
    out = np.zeros((len(combos), taps), dtype=bool)
    for p, c in enumerate(combos):
        out[p, list(c)] = True
    return out.reshape(-1, kh, kw)


def _normalise_patterns(patterns: object, kernel: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
    """Bool masks (P, kh, kw) / (P, kh*kw) or tap-index sequences -> tuple of sorted tap tuples."""
    taps = kernel[0] * kernel[1]
    if isinstance(patterns, torch.Tensor):
        patterns = patterns.cpu().numpy()
    elif isinstance(patterns, (list, tuple)) and patterns and all(
            isinstance(p, np.ndarray) and p.dtype == bool for p in patterns):
        patterns = np.stack(patterns)
    if isinstance(patterns, np.ndarray) and patterns.dtype == bool:
        if patterns.ndim < 2 or patterns[0:1].size not in (0, taps):
            raise PatternFitError(f"pattern masks of shape {patterns.shape} do not fit a "
                                  f"{kernel[0]}x{kernel[1]} kernel")
        rows = [tuple(int(t) for t in np.flatnonzero(m)) for m in patterns.reshape(len(patterns), -1)]
    else:
        rows = [tuple(sorted(int(t) for t in p)) for p in patterns]  # type: ignore[union-attr]
    for r in rows:
        if not r:
            raise ValueError("a pattern must keep at least one tap")
        if r[0] < 0 or r[-1] >= taps or len(set(r)) != len(r):
            raise ValueError(f"pattern {r} is not a set of taps of a {kernel[0]}x{kernel[1]} kernel")
    if len(set(rows)) != len(rows):
        raise ValueError("a pattern set must not repeat a pattern")
    return tuple(rows)


def _best_fit(energy: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """energy (N, T) squared weights, masks (P, T) float -> (best pattern id (N,), its energy (N,))."""
    ids, kept = [], []
    for start in range(0, energy.shape[0], _CHUNK):
        e = energy[start : start + _CHUNK] @ masks.T          # (n, P) kept energy per pattern
        best = e.max(dim=1)                                   # ties go to the lower pattern id
        ids.append(best.indices)
        kept.append(best.values)
    if not ids:
        return (torch.zeros(0, dtype=torch.long, device=energy.device),
                torch.zeros(0, dtype=energy.dtype, device=energy.device))
    return torch.cat(ids), torch.cat(kept)


def num_kept(keep: float, n: int) -> int:
    """How many of n structures a keep fraction in (0, 1] keeps: round(keep * n), at least 1."""
    if not 0.0 < float(keep) <= 1.0:
        raise ValueError(f"keep fraction must be in (0, 1], got {keep}")
    return min(n, max(1, int(round(float(keep) * n))))


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k largest entries of 1-D scores (any tie order is equally optimal)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k >= scores.numel():
        return mask.fill_(True)
    mask[torch.topk(scores, k, sorted=False).indices] = True
    return mask


@dataclass(frozen=True)
class PatternSet:
    """Allowed patterns of (kh, kw) kernels; keep_kernels (in (0, 1]) adds connectivity pruning.

    patterns: bool masks (P, kh, kw) or tap-index sequences (row-major taps); stored as a tuple of
    sorted tap tuples so the value is hashable and compares by content. Pattern ids follow the
    given order (select_patterns orders by frequency).
    """
    kernel: tuple[int, int] = (3, 3)
    patterns: tuple[tuple[int, ...], ...] = ()
    keep_kernels: float | None = None

    def __post_init__(self) -> None:
        # Canonical form only (a frozen value must hash by content); fitting a layer is checked
        # when it is applied, with the layer's shape in the message.
        kernel = (int(self.kernel[0]), int(self.kernel[1]))
        object.__setattr__(self, "kernel", kernel)
        object.__setattr__(self, "patterns", _normalise_patterns(self.patterns, kernel))
        if not self.patterns:
            raise ValueError("a PatternSet needs at least one pattern")

    @classmethod
    def from_masks(cls, masks: np.ndarray, keep_kernels: float | None = None) -> "PatternSet":
        """A set from bool masks (P, kh, kw)."""
        masks = np.asarray(masks, dtype=bool)
        return cls(kernel=tuple(masks.shape[1:]), patterns=masks, keep_kernels=keep_kernels)

    @property
    def name(self) -> str:
        return "pattern" if self.keep_kernels is None else "pattern_connectivity"

    @property
    def num_patterns(self) -> int:
        return len(self.patterns)

    @property
    def masks(self) -> np.ndarray:
        """(P, kh, kw) bool: pattern p keeps masks[p]."""
        out = np.zeros((self.num_patterns, self.kernel[0] * self.kernel[1]), dtype=bool)
        for p, taps in enumerate(self.patterns):
            out[p, list(taps)] = True
        return out.reshape(-1, *self.kernel)

    @property
    def entries(self) -> int:
        """Taps per pattern (the largest, if sizes differ)."""
        return max(len(p) for p in self.patterns)

    @property
    def density(self) -> float:
        """Fraction of a fitting layer's weights kept: entries / (kh*kw) * keep_kernels."""
        keep = 1.0 if self.keep_kernels is None else float(self.keep_kernels)
        return self.entries / (self.kernel[0] * self.kernel[1]) * keep

    def with_keep_kernels(self, keep_kernels: float | None) -> "PatternSet":
        """The same patterns with another connectivity fraction (None: keep every kernel)."""
        return replace(self, keep_kernels=keep_kernels)

    def assign(self, w: Weight) -> tuple[Weight, Weight]:
        """Best pattern id per kernel and its kept energy: W -> ((N,) int64, (N,) float)."""
        t, numpy = _as_tensor(w)
        kernels = to_kernels(t, self.kernel).float()
        masks = torch.from_numpy(self.masks.reshape(self.num_patterns, -1)).to(kernels)
        ids, kept = _best_fit(kernels.square(), masks)
        return _back(ids, numpy), _back(kept, numpy)

    def mask(self, w: Weight) -> Weight:
        """Bool mask of W's projection: each kept kernel's best pattern, other kernels all False."""
        t, numpy = _as_tensor(w)
        kernels = to_kernels(t, self.kernel).float()
        masks = torch.from_numpy(self.masks.reshape(self.num_patterns, -1)).to(kernels.device)
        ids, kept = _best_fit(kernels.square(), masks.float())
        m = masks[ids]                                        # (N, kh*kw) bool
        if self.keep_kernels is not None:
            m &= top_k_mask(kept, num_kept(self.keep_kernels, len(kept))).unsqueeze(1)
        return _back(from_kernels(m, t.shape, self.kernel), numpy)

    def project(self, w: Weight) -> tuple[Weight, Weight]:
        """Euclidean projection of W onto the set: (W * mask, mask), same type/device as W."""
        t, numpy = _as_tensor(w)
        m = self.mask(t)
        return _back(t * m, numpy), _back(m, numpy)


def _kernel_energies(weights: Iterable[Weight], kernel: tuple[int, int]) -> torch.Tensor:
    """Squared entries of every non-zero kernel of every weight: (N, kh*kw) float32 on CPU."""
    if isinstance(weights, (torch.Tensor, np.ndarray)):
        weights = [weights]
    parts = []
    for w in weights:
        t, _ = _as_tensor(w)
        e = to_kernels(t, kernel).float().square()
        parts.append(e[e.sum(1) > 0].cpu())  # all-zero kernels fit every pattern equally
    if not parts:
        raise ValueError("no weights given")
    return torch.cat(parts)


def pattern_frequency(weights: Iterable[Weight], candidates: np.ndarray) -> np.ndarray:
    """How often each candidate (P, kh, kw) is the best fit over all non-zero kernels: (P,) int64."""
    candidates = np.asarray(candidates, dtype=bool)
    energy = _kernel_energies(weights, tuple(candidates.shape[1:]))
    masks = torch.from_numpy(candidates.reshape(len(candidates), -1)).float()
    ids, _ = _best_fit(energy, masks)
    return np.bincount(ids.numpy(), minlength=len(candidates)).astype(np.int64)


def select_patterns(weights: Iterable[Weight], num_patterns: int,
                    candidates: np.ndarray | None = None,
                    keep_kernels: float | None = None) -> PatternSet:
    """Pattern distillation: the num_patterns candidates that are most often the best fit.

    weights: conv (O, I, kh, kw) and/or FC (O, I) tensors; candidates default to
    candidate_patterns((3, 3), 4, keep_centre=True). Ties in frequency go to the lower index.
    """
    if candidates is None:
        candidates = candidate_patterns()
    candidates = np.asarray(candidates, dtype=bool)
    if not 1 <= num_patterns <= len(candidates):
        raise ValueError(f"num_patterns must be in 1..{len(candidates)} (the candidates), "
                         f"got {num_patterns}")
    freq = pattern_frequency(weights, candidates)
    order = np.lexsort((np.arange(len(freq)), -freq))[:num_patterns]
    return PatternSet(kernel=tuple(candidates.shape[1:]), patterns=candidates[order],
                      keep_kernels=keep_kernels)


def coverage(weights: Iterable[Weight], patterns: PatternSet, k: int | None = None) -> float:
    """Share of squared weight magnitude the set keeps vs. each kernel's free best k taps, in [0, 1].

    k defaults to the set's pattern size; keep_kernels is ignored (this measures the patterns).
    Squared magnitude is what the projection maximises, so coverage 1 means no loss to patterns.
    """
    k = patterns.entries if k is None else int(k)
    # in float64: float32 sums of the same taps in another order put a kernel whose best k
    # taps form a pattern a rounding above 1 (a share of 1.000000017 was seen)
    energy = _kernel_energies(weights, patterns.kernel).double()
    masks = torch.from_numpy(patterns.masks.reshape(patterns.num_patterns, -1)).double()
    _, kept = _best_fit(energy, masks)
    free = energy.topk(min(k, energy.shape[1]), dim=1).values.sum(1)
    total = float(free.sum())
    return min(1.0, float(kept.sum()) / total) if total > 0 else 1.0
