"""The CUDA 1x1 kernel: a GEMM over the kept input channels of each filter group, sharing the
conv kernel's tiles, staging and epilogue (cuda.conv.kernel_head / kernel_tail).

A 1x1 kernel has one tap, so the pattern kernel's per-kernel entry (a code, a 16-byte weight
load and a branch) would cost as much as the one FMA per pixel it feeds. Here a filter
group's storage lists, per staged channel block, the channels any of its tile_f filters keeps,
each with the tile_f weights of that channel (zero for a filter that pruned it): per channel a
thread loads its px_y x px_x pixels once and does tile_f x px_y x px_x FMAs with no branch, an
outer product as in a dense GEMM. Block-pruned 1x1s (whole input channels removed per 16
filters, peers_bench.prune_model) store no zeros when tile_f divides 16.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.codegen.cuda.conv import (ConvGeometry, _tile_dims, check_schedule, kernel_head,
                                         kernel_loop_end, kernel_tail)
from workbench.codegen.cuda.schedule import GpuSchedule
from workbench.codegen.lr import Layer


@dataclass(frozen=True)
class GpuPointwise:
    """A 1x1 conv's weights for the CUDA 1x1 kernel.

    order: (O,) int32, filter at slot i; blk_ptr: (G, nblk + 1) int32, entries of filter group
    g in channel block b; chan: (E,) int32, the entry's channel within its block; wts:
    (E, tile_f) float32, the group's weights for that channel; bias: (O,) float32.
    """
    order: np.ndarray
    blk_ptr: np.ndarray
    chan: np.ndarray
    wts: np.ndarray
    bias: np.ndarray
    tile_f: int
    cblock: int


def is_pointwise(g: ConvGeometry) -> bool:
    """True for the convs the 1x1 kernel runs: 1x1, no padding, groups 1."""
    return (g.kh, g.kw, g.ph, g.pw, g.groups) == (1, 1, 0, 0, 1)


def pack_pointwise(layer: Layer, tile_f: int, cblock: int) -> GpuPointwise:
    """Pack 1x1 conv `layer` per group of tile_f filters (in the reorder pass's order, which
    puts filters keeping the same channels together) and per block of cblock channels."""
    w = np.asarray(layer.params["weight"], np.float32)[:, :, 0, 0]
    o, c = w.shape
    cb = min(cblock, c)
    nblk = -(-c // cb)
    order = np.asarray(layer.params.get("filter_order", np.arange(o)), np.int32)
    n_groups = -(-o // tile_f)
    ws = np.zeros((n_groups * tile_f, c), np.float32)
    ws[:o] = w[order]
    wg = ws.reshape(n_groups, tile_f, c)
    kept = (wg != 0).any(axis=1)                                    # (G, C)
    gi, ci = np.nonzero(kept)                                       # group-major, channel order
    counts = np.zeros((n_groups, nblk), np.int64)
    np.add.at(counts, (gi, ci // cb), 1)
    blk_ptr = np.zeros((n_groups, nblk + 1), np.int64)
    flat = np.concatenate([[0], np.cumsum(counts.reshape(-1))])
    for g in range(n_groups):
        blk_ptr[g] = flat[g * nblk:(g + 1) * nblk + 1]
    bias = np.asarray(layer.params.get("bias", np.zeros(o)), np.float32)
    wts = wg[gi, :, ci] if gi.size else np.zeros((0, tile_f), np.float32)
    return GpuPointwise(order, blk_ptr.astype(np.int32), (ci % cb).astype(np.int32),
                        np.ascontiguousarray(wts, np.float32), bias, tile_f, cb)


def unpack_pointwise(p: GpuPointwise, o: int, c: int) -> np.ndarray:
    """Dense W: (O, C, 1, 1) float32 back from the storage (for checks)."""
    out = np.zeros((p.blk_ptr.shape[0] * p.tile_f, c), np.float32)
    for g in range(p.blk_ptr.shape[0]):
        for b in range(p.blk_ptr.shape[1] - 1):
            for k in range(p.blk_ptr[g, b], p.blk_ptr[g, b + 1]):
                out[g * p.tile_f:(g + 1) * p.tile_f, b * p.cblock + p.chan[k]] = p.wts[k]
    dense = np.zeros((o, c), np.float32)
    dense[p.order] = out[:o]
    return dense[:, :, None, None]


def render_pointwise(g: ConvGeometry, s: GpuSchedule, name: str = "wb_conv") -> str:
    """CUDA source of __global__ name(x, y, blk_ptr, chan, wts, order, bias): one 1x1 conv
    (any stride), arguments and ksplit as cuda.conv.render_conv's."""
    check_schedule(g, s)
    if not is_pointwise(g):
        raise ValueError(f"the 1x1 kernel runs 1x1 convs without padding or groups, not {g}")
    L = kernel_head(g, s, name)
    e = L.append
    cb = min(s.cblock, g.cg)
    nblk = -(-g.cg // cb)
    ih, iwp = _tile_dims(g, s)
    plane = ih * iwp
    tf = s.tile_f
    nq = -(-tf // 4)
    e(f"    const int k0 = __ldg(ptr + grp * {nblk + 1} + b), "
      f"k1 = __ldg(ptr + grp * {nblk + 1} + b + 1);")
    e("    #pragma unroll 2")
    e("    for (int k = k0; k < k1; ++k) {")
    e(f"      const float* s = tb + __ldg(idx + k) * {plane} + ty * {s.px_y * g.sh * iwp} + "
      f"tx * {s.px_x * g.sw};")
    for py in range(s.px_y):
        e("      " + " ".join(f"const float v{py}_{px} = s[{py * g.sh * iwp + px * g.sw}];"
                              for px in range(s.px_x)))
    if tf % 4 == 0:
        e(f"      const float4* wk = reinterpret_cast<const float4*>(wts) + (long)k * {nq};")
        for q in range(nq):
            e(f"      const float4 q{q} = __ldg(wk + {q});")
        ws = [f"q{f // 4}.{'xyzw'[f % 4]}" for f in range(tf)]
    else:
        e(f"      const float* wk = wts + (long)k * {tf};")
        ws = [f"__ldg(wk + {f})" for f in range(tf)]
        for f in range(tf):
            e(f"      const float w{f} = {ws[f]};")
        ws = [f"w{f}" for f in range(tf)]
    for f in range(tf):
        e("      " + " ".join(f"a{f}_{py}_{px} += {ws[f]} * v{py}_{px};"
                              for py in range(s.px_y) for px in range(s.px_x)))
    e("    }")
    L += kernel_loop_end(s)
    L += kernel_tail(g, s)
    return "\n".join(L) + "\n"
