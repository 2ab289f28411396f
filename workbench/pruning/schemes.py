"""Pruning schemes as exact Euclidean projections: `project(W) -> (W * mask, mask)`.

Every scheme here keeps whole groups of a weight and zeroes the rest; the groups partition W, so
the closest feasible point keeps the groups of largest squared norm (what is kept is copied, what
is dropped costs its squared norm) and the projection is "top-k groups by norm":

    irregular      single weights                         keep a fraction of the weights
    filter         W[o]            (one output channel)   keep a fraction of the filters
    channel        W[:, i]         (one input channel)    keep a fraction of the input channels
    column         W[:, i, y, x]   (a GEMM column: the same tap of the same input channel in
                                    every filter)          keep a fraction of the columns
    connectivity   W[o, i]         (one kernel)           keep a fraction of the kernels
    block          W[o:o+r, i:i+c] (FC, or 1x1 conv: r rows by c input features)
                                                           keep a fraction of the blocks
    pattern, pattern_connectivity  see PatternSet in patterns.py (also a Scheme)

A Scheme is a frozen value: no state, no hooks, the same object serves one-shot pruning, the
ADMM Z-step and the notebooks. Weights are conv (O, I, kh, kw) or FC (O, I) tensors (FC: a
column is an input feature, a kernel is a single weight); torch in, torch out on the same
device, numpy in, numpy out. `keep` is validated when the scheme is applied.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch

from workbench.pruning.patterns import (PatternSet, Weight, _as_tensor, _back, num_kept,
                                        top_k_mask)


@runtime_checkable
class Scheme(Protocol):
    """A pruning structure: `project` is the Euclidean projection onto its constraint set."""
    name: str

    def mask(self, w: Weight) -> Weight:
        """Bool mask of W's projection (same shape as W)."""
        ...

    def project(self, w: Weight) -> tuple[Weight, Weight]:
        """(W * mask, mask): the closest point to W that satisfies the constraint, and its support."""
        ...


def _check_weight(w: torch.Tensor, name: str) -> None:
    if w.ndim not in (2, 4):
        raise ValueError(f"{name} pruning applies to conv (O, I, kh, kw) or FC (O, I) weights, "
                         f"got shape {tuple(w.shape)}")


@dataclass(frozen=True)
class _GroupScheme:
    """Keep the `keep` fraction of groups (sets of entries sharing the dims not in reduce_dims)."""
    keep: float
    name: ClassVar[str] = ""

    def reduce_dims(self, ndim: int) -> tuple[int, ...]:
        """Dimensions summed into one group score; the remaining dims index the groups."""
        raise NotImplementedError

    def mask(self, w: Weight) -> Weight:
        t, numpy = _as_tensor(w)
        _check_weight(t, self.name)
        dims = self.reduce_dims(t.ndim)
        scores = t.float().square()
        if dims:
            scores = scores.sum(dim=dims, keepdim=True)
        keep = top_k_mask(scores.flatten(), num_kept(self.keep, scores.numel()))
        return _back(keep.reshape(scores.shape).expand(t.shape).contiguous(), numpy)

    def project(self, w: Weight) -> tuple[Weight, Weight]:
        t, numpy = _as_tensor(w)
        m = self.mask(t)
        return _back(t * m, numpy), _back(m, numpy)


@dataclass(frozen=True)
class Irregular(_GroupScheme):
    """Non-structured pruning: keep the `keep` fraction of weights of largest magnitude."""
    name: ClassVar[str] = "irregular"

    def reduce_dims(self, ndim: int) -> tuple[int, ...]:
        return ()


@dataclass(frozen=True)
class Filter(_GroupScheme):
    """Filter pruning: keep the `keep` fraction of output channels W[o] of largest norm."""
    name: ClassVar[str] = "filter"

    def reduce_dims(self, ndim: int) -> tuple[int, ...]:
        return tuple(range(1, ndim))


@dataclass(frozen=True)
class Channel(_GroupScheme):
    """Channel pruning: keep the `keep` fraction of input channels W[:, i] of largest norm."""
    name: ClassVar[str] = "channel"

    def reduce_dims(self, ndim: int) -> tuple[int, ...]:
        return (0, *range(2, ndim))


@dataclass(frozen=True)
class Column(_GroupScheme):
    """Column pruning: keep the `keep` fraction of GEMM columns W[:, i, y, x] of largest norm."""
    name: ClassVar[str] = "column"

    def reduce_dims(self, ndim: int) -> tuple[int, ...]:
        return (0,)


@dataclass(frozen=True)
class Connectivity(_GroupScheme):
    """Connectivity (kernel) pruning: keep the `keep` fraction of kernels W[o, i] of largest norm."""
    name: ClassVar[str] = "connectivity"

    def reduce_dims(self, ndim: int) -> tuple[int, ...]:
        return tuple(range(2, ndim))


@dataclass(frozen=True)
class Block:
    """Block pruning of an FC weight (O, I) (or a 1x1 conv's (O, I, 1, 1)): keep the `keep`
    fraction of its rows x cols blocks of largest norm (edge blocks are partial). With rows a
    multiple of the vector width the compiler stores the kept blocks with no zeros
    (linear_storage's rowblock format) and its GEMV streams only them."""
    keep: float
    rows: int = 16
    cols: int = 1
    name: ClassVar[str] = "block"

    def mask(self, w: Weight) -> Weight:
        t, numpy = _as_tensor(w)
        if not (t.ndim == 2 or (t.ndim == 4 and tuple(t.shape[2:]) == (1, 1))):
            raise ValueError(f"block pruning applies to FC (O, I) or 1x1 conv (O, I, 1, 1) "
                             f"weights, got shape {tuple(t.shape)}")
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"block shape must be positive, got {self.rows}x{self.cols}")
        m2 = t.reshape(t.shape[0], t.shape[1]).float().square()
        o, i = m2.shape
        bo, bi = -(-o // self.rows), -(-i // self.cols)
        padded = torch.zeros(bo * self.rows, bi * self.cols, dtype=m2.dtype, device=m2.device)
        padded[:o, :i] = m2
        scores = padded.reshape(bo, self.rows, bi, self.cols).sum(dim=(1, 3))
        keep = top_k_mask(scores.flatten(), num_kept(self.keep, scores.numel())).reshape(bo, bi)
        full = keep.repeat_interleave(self.rows, 0).repeat_interleave(self.cols, 1)[:o, :i]
        return _back(full.reshape(t.shape).contiguous(), numpy)

    def project(self, w: Weight) -> tuple[Weight, Weight]:
        t, numpy = _as_tensor(w)
        m = self.mask(t)
        return _back(t * m, numpy), _back(m, numpy)


Kernel = Connectivity  # the report calls removing kernels both "kernel" and "connectivity" pruning

SCHEMES: tuple[str, ...] = ("irregular", "filter", "channel", "column", "connectivity",
                            "block", "pattern", "pattern_connectivity")
_GROUP = {"irregular": Irregular, "filter": Filter, "channel": Channel, "column": Column,
          "connectivity": Connectivity, "kernel": Connectivity, "block": Block}


def pattern_connectivity(patterns: PatternSet, keep_kernels: float) -> PatternSet:
    """Pattern + connectivity scheme: each of the kept `keep_kernels` fraction keeps its best pattern."""
    return patterns.with_keep_kernels(keep_kernels)


def make_scheme(name: str, rate: float | None = None, keep: float | None = None,
                patterns: PatternSet | None = None) -> Scheme:
    """A scheme by name, sized by `rate` (weights before / after, e.g. 8.0) or by `keep` fraction.

    For group schemes keep = 1 / rate ("block": blocks of 16 rows by 1 input feature; make
    Block(keep, rows, cols) for another shape). "pattern" keeps every kernel, so its rate is fixed by the
    pattern size (kh*kw / entries; a different rate is an error). "pattern_connectivity" keeps the
    kernel fraction that makes the layer `rate` times smaller (keep is then the kernel fraction).
    """
    if (rate is None) == (keep is None):
        raise ValueError(f"{name}: give exactly one of rate (e.g. 8.0) or keep (a fraction)")
    if rate is not None and not float(rate) >= 1.0:
        raise ValueError(f"{name}: rate must be >= 1 (weights before / after), got {rate}")
    if name in _GROUP:
        return _GROUP[name](keep=float(keep) if keep is not None else 1.0 / float(rate))
    if name not in ("pattern", "pattern_connectivity"):
        raise ValueError(f"unknown scheme {name!r}; choose one of {', '.join(SCHEMES)}")
    if patterns is None:
        raise ValueError(f"{name} needs a PatternSet (patterns=...)")
    base = patterns.with_keep_kernels(None)
    if name == "pattern":
        if rate is not None and abs(1.0 / base.density - float(rate)) > 1e-6:
            raise ValueError(f"pattern pruning with {base.entries}-entry patterns of "
                             f"{base.kernel[0]}x{base.kernel[1]} kernels gives rate "
                             f"{1.0 / base.density:.4g}, not {rate}; use patterns with "
                             f"{base.kernel[0] * base.kernel[1] / float(rate):.4g} entries")
        if keep is not None and keep != 1.0:
            raise ValueError("pattern pruning keeps every kernel; use pattern_connectivity "
                             f"to keep a fraction ({keep})")
        return base
    frac = float(keep) if keep is not None else 1.0 / (float(rate) * base.density)
    if frac > 1.0 + 1e-9:
        raise ValueError(f"rate {rate} is below the {1.0 / base.density:.4g}x that "
                         f"{base.entries}-entry patterns give alone; use 'pattern' or a higher rate")
    return pattern_connectivity(base, min(frac, 1.0))
