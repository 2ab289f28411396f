"""Compact weight storage for pattern + connectivity pruned convolutions (the report's FKW).

Filters are stored in execution order (the reorder pass); inside a filter, kernels of one
pattern are contiguous, so a kernel needs only its input channel index: the pattern is known
from its group and the weights of a group are the group's kernels' taps back to back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.codegen.patterns import KernelPatterns


@dataclass(frozen=True)
class FKW:
    """Packed weights of one conv layer.

    order: (O,) int32, filter id at execution slot i (the reorder array).
    kptr: (O, P+1) int32, kernels of slot i with pattern p are kptr[i, p]:kptr[i, p+1].
    cidx: (K + 1,) int32, input channel (within the group) of each kept kernel (the index
    array), plus a spare 0 so code may look one kernel ahead.
    wptr: (O, P+1) int32, weights of group (i, p) start at wptr[i, p] in wts.
    wts: (sum of kept taps,) float32, each kernel's kept taps in row-major tap order.
    taps: (P,) int32, taps per pattern.
    """
    order: np.ndarray
    kptr: np.ndarray
    cidx: np.ndarray
    wptr: np.ndarray
    wts: np.ndarray
    taps: np.ndarray

    @property
    def num_kernels(self) -> int:
        """Kept kernels K (cidx holds one spare entry after them)."""
        return int(self.cidx.shape[0]) - 1

    def nbytes(self, index_bytes: int = 2) -> int:
        """Bytes of the stored format: per-filter offsets and pattern strides, channel indices
        of index_bytes each, pattern ids per group implied, fp32 weights, reorder array."""
        o, p1 = self.kptr.shape
        offsets = (o + 1) * 4            # start of each filter's kernels
        strides = o * (p1 - 1) * index_bytes  # kernels per pattern in each filter
        reorder = o * index_bytes
        return offsets + strides + reorder + self.num_kernels * index_bytes + self.wts.nbytes


def pack(weight: np.ndarray, kp: KernelPatterns, order: np.ndarray | None = None) -> FKW:
    """Pack W: (O, Cg, kh, kw) float32 by kp's patterns, filters in `order` (identity if None)."""
    o, cg = kp.kernel_pattern.shape
    npat = kp.num_patterns
    order = np.arange(o, dtype=np.int32) if order is None else np.asarray(order, dtype=np.int32)
    if sorted(order.tolist()) != list(range(o)):
        raise ValueError(f"filter order must be a permutation of range({o})")
    taps = kp.patterns.sum(axis=1).astype(np.int32)
    flat = np.asarray(weight, dtype=np.float32).reshape(o, cg, -1)
    kptr = np.zeros((o, npat + 1), dtype=np.int32)
    wptr = np.zeros((o, npat + 1), dtype=np.int32)
    cidx: list[np.ndarray] = []
    wts: list[np.ndarray] = []
    k = w = 0
    for i, f in enumerate(order):
        row = kp.kernel_pattern[f]
        for p in range(npat):
            kptr[i, p], wptr[i, p] = k, w
            chans = np.flatnonzero(row == p).astype(np.int32)
            if chans.size:
                cidx.append(chans)
                wts.append(flat[f, chans][:, kp.patterns[p]].reshape(-1))
                k += chans.size
                w += chans.size * int(taps[p])
        kptr[i, npat], wptr[i, npat] = k, w
    # One spare channel index (0) after the last kernel: kernels may read cidx[k + 1] to
    # prefetch the next kernel's input without a bounds test.
    cidx.append(np.zeros(1, np.int32))
    return FKW(order, kptr, np.concatenate(cidx), wptr,
               np.concatenate(wts).astype(np.float32) if wts else np.zeros(0, np.float32), taps)


def unpack(fkw: FKW, kp: KernelPatterns, shape: tuple[int, int, int, int]) -> np.ndarray:
    """Dense W: (O, Cg, kh, kw) float32 back from the packed form (for checks)."""
    o, cg, kh, kw = shape
    out = np.zeros((o, cg, kh * kw), dtype=np.float32)
    for i, f in enumerate(fkw.order):
        for p in range(kp.num_patterns):
            k0, k1 = fkw.kptr[i, p], fkw.kptr[i, p + 1]
            t = int(fkw.taps[p])
            vals = fkw.wts[fkw.wptr[i, p]:fkw.wptr[i, p] + (k1 - k0) * t].reshape(k1 - k0, t)
            for j, c in enumerate(fkw.cidx[k0:k1]):
                out[f, c, kp.patterns[p]] = vals[j]
    return out.reshape(shape)


def pack_blocked(fkw: FKW, cg: int, cblock: int) -> FKW:
    """fkw regrouped for render_pblock: kernels of slot i by (input-channel block b of
    cblock channels, pattern p), group g = b * P + p; kptr, wptr: (O, B * P + 1) int32 with
    B = ceil(cg / cblock) (1 if cblock is 0). cidx keeps channels within the group, and a
    spare entry; taps and order are fkw's."""
    o, p1 = fkw.kptr.shape
    npat = p1 - 1
    nb = max(1, -(-cg // cblock)) if cblock else 1
    k = fkw.num_kernels
    if k == 0:
        z = np.zeros((o, nb * npat + 1), np.int32)
        return FKW(fkw.order, z, fkw.cidx, z.copy(), fkw.wts, fkw.taps)
    # slot and pattern of every kernel (kernels are stored by slot, then pattern)
    group = np.repeat(np.arange(o * npat), np.diff(fkw.kptr, axis=1).reshape(-1))
    slot, pat = group // npat, group % npat
    cidx = fkw.cidx[:k]
    blk = cidx // cblock if cblock else np.zeros(k, np.int64)
    key = (slot * nb + blk) * npat + pat
    srt = np.argsort(key, kind="stable")
    counts = np.bincount(key, minlength=o * nb * npat).reshape(o, nb * npat)
    kptr = np.zeros((o, nb * npat + 1), np.int64)
    kptr[:, 1:] = np.cumsum(counts, axis=1)
    kptr += (np.cumsum(counts.sum(axis=1)) - counts.sum(axis=1))[:, None]
    # every kernel's weights: taps[p] floats from wptr[slot, p] + its rank in the group
    taps = fkw.taps.astype(np.int64)
    rank = np.arange(k) - fkw.kptr[slot, pat]
    start = fkw.wptr[slot, pat] + rank * taps[pat]
    ntap = taps[pat][srt]
    # weight offsets: a running sum of the tap counts of the kernels before
    wcum = np.concatenate([[0], np.cumsum(ntap)])
    wts = fkw.wts[np.arange(wcum[-1]) + np.repeat(start[srt] - wcum[:-1], ntap)]
    wptr = wcum[kptr]
    return FKW(fkw.order, kptr.astype(np.int32),
               np.concatenate([cidx[srt], np.zeros(1, np.int32)]).astype(np.int32),
               wptr.astype(np.int32), wts.astype(np.float32), fkw.taps)


@dataclass(frozen=True)
class TapPack:
    """FKW weights laid out for render_c's taps kernel (one layout, one channel blocking).

    kptr: (O, B + 1) int32, kernels of execution slot i in input-channel block b are
    kptr[i, b]:kptr[i, b + 1] (inside a block, by channel); off: (K + 1, T) int32, per kernel
    and tap the input offset in floats (channel * chan + the pattern's tap offset); wts:
    (K + 1, T) float32 the tap weights. Patterns with fewer than T taps are padded with
    weight-0 taps reading the kernel's first tap. One spare zero kernel at the end.
    """
    kptr: np.ndarray
    off: np.ndarray
    wts: np.ndarray


def pack_taps(fkw: FKW, offsets: list[list[int]], chan: int, cg: int, cblock: int) -> TapPack:
    """Re-pack fkw for the taps kernel: offsets[p][t] is tap t of pattern p from channel 0,
    chan the floats per input channel, cg input channels per group, cblock channels per
    block (0 = one block)."""
    o = fkw.kptr.shape[0]
    npat = fkw.kptr.shape[1] - 1
    ntaps = max([len(t) for t in offsets] or [1])
    nb = max(1, -(-cg // cblock)) if cblock else 1
    kptr = np.zeros((o, nb + 1), np.int32)
    offs: list[np.ndarray] = []
    wts: list[np.ndarray] = []
    k = 0
    for i in range(o):
        chans, offl, wl = [], [], []
        for p in range(npat):
            k0, k1 = int(fkw.kptr[i, p]), int(fkw.kptr[i, p + 1])
            if k1 == k0:
                continue
            t = int(fkw.taps[p])
            c = fkw.cidx[k0:k1].astype(np.int64)
            w = np.zeros((k1 - k0, ntaps), np.float32)
            w[:, :t] = fkw.wts[fkw.wptr[i, p]:fkw.wptr[i, p] + (k1 - k0) * t].reshape(-1, t)
            tap = np.array(offsets[p] + [offsets[p][0]] * (ntaps - t), np.int64)
            chans.append(c)
            offl.append(c[:, None] * chan + tap[None, :])
            wl.append(w)
        if chans:
            c = np.concatenate(chans)
            srt = np.argsort(c, kind="stable")
            c = c[srt]
            offs.append(np.concatenate(offl)[srt])
            wts.append(np.concatenate(wl)[srt])
            blk = c // cblock if cblock else np.zeros_like(c)
            kptr[i] = k + np.searchsorted(blk, np.arange(nb + 1), side="left")
            k += len(c)
        else:
            kptr[i] = k
    offs.append(np.zeros((1, ntaps), np.int64))
    wts.append(np.zeros((1, ntaps), np.float32))
    off = np.concatenate(offs)
    if off.max(initial=0) >= 2 ** 31:
        raise ValueError("input too large for 32-bit tap offsets")
    return TapPack(kptr, off.astype(np.int32), np.concatenate(wts).astype(np.float32))


@dataclass(frozen=True)
class BlockSparse:
    """A 1x1 conv / linear weight (O, C) packed for render_c's block-sparse GEMM.

    order: (ceil(O / tile_o) * tile_o,) int32 filter id per slot (padding slots repeat 0);
    cptr: (blocks + 1,) int32; clist: input channels block b visits are
    clist[cptr[b]:cptr[b + 1]]; wpk: (len(clist), tile_o) float32 weights of the block's
    filters for each visited channel (0 where a filter skips it).
    """
    order: np.ndarray
    cptr: np.ndarray
    clist: np.ndarray
    wpk: np.ndarray

    def nbytes(self) -> int:
        """Bytes stored: weights, channel lists, block pointers, slot order."""
        return self.wpk.nbytes + self.clist.nbytes + self.cptr.nbytes + self.order.nbytes


def pack_block_sparse(weight: np.ndarray, tile_o: int, order: np.ndarray | None = None) -> BlockSparse:
    """Pack W: (O, C) float32 in blocks of tile_o filters (taken in `order`)."""
    w = np.asarray(weight, np.float32).reshape(weight.shape[0], -1)
    o, c = w.shape
    order = np.arange(o, dtype=np.int32) if order is None else np.asarray(order, np.int32)
    nb = -(-o // tile_o)
    slots = np.zeros(nb * tile_o, np.int32)
    slots[:o] = order
    cptr = np.zeros(nb + 1, np.int32)
    clists, wblocks = [], []
    for b in range(nb):
        rows = order[b * tile_o:(b + 1) * tile_o]
        blk = np.zeros((tile_o, c), np.float32)
        blk[:len(rows)] = w[rows]
        chans = np.flatnonzero((blk != 0).any(axis=0)).astype(np.int32)
        clists.append(chans)
        wblocks.append(np.ascontiguousarray(blk[:, chans].T))
        cptr[b + 1] = cptr[b] + len(chans)
    return BlockSparse(slots, cptr, np.concatenate(clists + [np.zeros(1, np.int32)]),
                       np.concatenate(wblocks + [np.zeros((1, tile_o), np.float32)]))


def csr_nbytes(weight: np.ndarray, index_bytes: int = 4) -> int:
    """Bytes of W as CSR over (O, C*kh*kw): fp32 values, column indices, row pointers."""
    w = np.asarray(weight).reshape(weight.shape[0], -1)
    nnz = int((w != 0).sum())
    return nnz * 4 + nnz * index_bytes + (w.shape[0] + 1) * 4


def storage_row(name: str, weight: np.ndarray, kp: KernelPatterns,
                order: np.ndarray | None = None) -> dict:
    """One row of the storage table: bytes of one conv weight dense, as CSR, as FKW."""
    fkw = pack(weight, kp, order)
    dense = int(np.asarray(weight).size * 4)
    return {"layer": name, "shape": "x".join(map(str, weight.shape)),
            "kept_weights": kp.kept_weights, "patterns": kp.num_patterns,
            "dense_bytes": dense, "csr_bytes": csr_nbytes(weight),
            "csr16_bytes": csr_nbytes(weight, 2), "fkw_bytes": fkw.nbytes(index_bytes=2),
            "fkw_vs_csr": csr_nbytes(weight) / max(1, fkw.nbytes(index_bytes=2))}


def pack_direct(weight: np.ndarray, tile_o: int) -> np.ndarray:
    """W: (O, C, kh, kw) float32 as render_c's direct kernel reads it: (ceil(O / tile_o), C,
    kh * kw, tile_o), the tile_o filters of a block side by side for each tap, zero-padded
    filters in the last block."""
    w = np.asarray(weight, np.float32)
    o, c, kh, kw = w.shape
    nob = -(-o // tile_o)
    out = np.zeros((nob * tile_o, c, kh * kw), np.float32)
    out[:o] = w.reshape(o, c, kh * kw)
    return np.ascontiguousarray(out.reshape(nob, tile_o, c, kh * kw).transpose(0, 2, 3, 1))


def pack_columns(weight: np.ndarray, columns: list[tuple[int, int, int]],
                 tile_o: int) -> np.ndarray:
    """W: (O, C, kh, kw) float32 over its kept columns (c, dy, dx), as render_c's column
    kernel reads it: (ceil(O / tile_o), K, tile_o), a group's tile_o filters side by side for
    each column, zero-padded filters in the last group (a sequential walk per group)."""
    w = np.asarray(weight, np.float32)
    o = w.shape[0]
    ngroups = -(-o // tile_o)
    out = np.zeros((ngroups * tile_o, len(columns)), np.float32)
    if columns:
        c, dy, dx = (np.array(v, np.int64) for v in zip(*columns))
        out[:o] = w[:, c, dy, dx]
    return np.ascontiguousarray(out.reshape(ngroups, tile_o, len(columns)).transpose(0, 2, 1))
