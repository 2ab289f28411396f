"""C emitter for the fused halves of MobileNet-V2's blocks: a 1x1 expansion (C -> M channels,
stride 1) with the 3x3 depthwise conv (stride 1 or 2, padding 1) that alone reads its
output, and a depthwise conv with the 1x1 projection that alone reads its output.

Why: unfused, the expansion writes an M x H x W map that the depthwise conv reads back. On
MobileNet-V2-224's large planes that map is 1.8-4.8 MB (96 x 112 x 112 after features.2's
expansion), past the 1 MB L2 of a core; it goes out to the shared L3 and back, and the two
steps took 0.61 ms of a 4.1 ms inference, features.4's 0.23 ms. Fused, the expanded rows
never leave L1: a job takes a band of output rows and a group of TO mid channels, and walks
down the band keeping only the last three expanded input rows of its TO channels (a ring of
3 x TO rows, 12-20 KB). For each output row it expands the input rows that row needs and
have not been expanded yet (one at stride 1, two at stride 2), then runs the depthwise taps
on the ring and stores the row. A band re-expands the one or two rows above it that the
band before it also expanded; bands are as tall as keeps their input rows in L2.

Expansion: a register tile of TO filters x up to EXPAND_NV vectors of one row's pixels; per
input channel the group keeps (block-sparse storage: pruned 1x1 channels are skipped, as in
the blocked 1x1 GEMM), the vectors are loaded once and each of the TO weights broadcast
(TO * NV independent FMAs). Depthwise: render_c's tap code (plain stride 2 through one in-lane
shuffle per vector, _row_vectors), reading the ring rows. Bias and activations are fused.

Depthwise + projection (render_depthwise_project): per output row, the depthwise conv of
every channel into a row buffer (M rows of whole vectors, in L1), then the projection's
register tiles (TO filters x NV vectors, like the expansion's) over it, with the residual
add and activation fused: MobileNet-V2's features.1 (32 x 112 x 112 between the two).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.codegen.c.depthwise import _row_vectors, _unpermute
from workbench.codegen.c.prelude import PRELUDE, _act, _lanes, _store_lines, even_split
from workbench.codegen.ir import ConvIR, Layout, round_up
from workbench.codegen.lr import LRError
from workbench.codegen.storage import pack_block_sparse

# Mid channels per job (the ring holds TO channels' rows): the first of these dividing M.
FUSED_TO = (8, 6, 4)
# Pixel vectors per expansion register tile: TO x NV accumulators (24 of AVX-512's 32
# registers at TO = 8, NV = 3).
EXPAND_NV = 3
# A band's input rows (all C channels) should take at most this many bytes: each of the
# band's M / TO jobs reads them again, from L2.
BAND_INPUT_BYTES = 256 * 1024
# Ring row layout: image column 0 at float RING_LEFT (aligned stores from the expansion;
# the left tap's column -1 is the zero at RING_LEFT - 1).
RING_LEFT = 16


def channel_group(n: int) -> int:
    """Channels per group of the fused kernels (mid channels per job, projection filters per
    register tile): the first of FUSED_TO dividing n, 0 if none does."""
    return next((t for t in FUSED_TO if n % t == 0), 0)


@dataclass(frozen=True)
class FusedGeometry:
    """The numbers a fused kernel is rendered from."""
    c: int              # expansion input channels
    m: int              # mid channels (expansion outputs, depthwise channels)
    h: int              # input (and expanded) plane
    w: int
    stride: int         # the depthwise conv's
    ho: int
    wo: int
    to: int             # mid channels per job
    band: int           # output rows per band
    ring_row: int       # floats per ring row


def fused_geometry(c: int, m: int, h: int, w: int, stride: int, src: Layout, vw: int
                   ) -> FusedGeometry:
    """Geometry of the fused kernel (LRError if no channel group size divides m)."""
    to = channel_group(m)
    if not to:
        raise LRError(f"fused expansion + depthwise: {m} mid channels is not a multiple of "
                      f"any of {FUSED_TO}")
    if stride not in (1, 2):
        raise LRError(f"fused expansion + depthwise: stride {stride} (1 or 2 only)")
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    # the depthwise taps read whole vectors: up to stride * (columns of whole output
    # vectors) + 2 past the image's first column; the ring row has room for all of them
    ring_row = round_up(RING_LEFT + max(round_up(w, vw), stride * round_up(wo, vw) + 2) + vw,
                        16)
    per_row = c * src.row_stride * 4
    band = max(1, min(ho, (BAND_INPUT_BYTES // per_row - 2) // stride))
    nb = -(-ho // band)
    band = -(-ho // nb)              # even bands
    return FusedGeometry(c, m, h, w, stride, ho, wo, to, band, ring_row)


def pack_fused_weights(we: np.ndarray, be: np.ndarray, wd: np.ndarray, bd: np.ndarray,
                       to: int) -> tuple[np.ndarray, ...]:
    """(expansion weights, cptr, clist: storage.pack_block_sparse of the (M, C) expansion in
    groups of to mid channels, expansion bias (M,), depthwise weights (M, 9), depthwise bias)."""
    m = we.shape[0]
    bs = pack_block_sparse(np.asarray(we, np.float32).reshape(m, -1), to)
    return (bs.wpk, bs.cptr, bs.clist, np.ascontiguousarray(be, np.float32),
            np.ascontiguousarray(wd.reshape(m, 9), np.float32),
            np.ascontiguousarray(bd, np.float32))


def _expand_tile(g: FusedGeometry, src: Layout, nv: int, act: str, vw: int) -> list[str]:
    """static void ex_{nv}: expand columns x0.. (nv vectors) of input row xr (channel 0)
    into ring rows er (to rows, ring_row apart), visiting only the ne input channels cl
    the group keeps (w: their packed weights); lanes past the image's last column are
    stored as zeros (the right tap's padding)."""
    # not inlined: inlined into the job loop, GCC kept the bias broadcasts in registers
    # across calls and spilled the input vectors (every FMA then read the stack)
    L = [f"__attribute__((noinline)) static void ex_{nv}(const float *restrict xr,",
         "    const float *restrict w, const int32_t *restrict cl, int ne,",
         "    const float *restrict bias, float *restrict er, int x0) {"]
    L += [f"  vf a{t}_{j} = vdup(bias[{t}]);" for t in range(g.to) for j in range(nv)]
    L += [f"  for (int e = 0; e < ne; ++e, w += {g.to}) {{",
          f"    const float *x = xr + (size_t)cl[e] * {src.chan} + x0;"]
    L += [f"    const vf xv{j} = vld(x + {vw * j});" for j in range(nv)]
    for t in range(g.to):
        L.append(f"    {{ const vf wv = vdup(w[{t}]);")
        L += [f"      a{t}_{j} += wv * xv{j};" for j in range(nv)]
        L.append("    }")
    L.append("  }")
    for t in range(g.to):
        for j in range(nv):
            v = _act(act, f"a{t}_{j}")
            L.append(f"  if (x0 + {vw * (j + 1)} <= {g.w}) "
                     f"vst(er + {t * g.ring_row + RING_LEFT} + x0 + {vw * j}, {v});")
            L.append(f"  else vst(er + {t * g.ring_row + RING_LEFT} + x0 + {vw * j}, "
                     f"vkeep({v}, {g.w} - x0 - {vw * j}));")
    L.append("}")
    return L


def _depthwise_row(ir: ConvIR, g: FusedGeometry, vw: int) -> list[str]:
    """static void dw_row: output row oy of the job's to channels from ring rows r0, r1, r2
    (input rows stride * oy - 1 .. + 1), stored into ys (the group's first output plane)."""
    L = ["static void dw_row(const float *restrict r0, const float *restrict r1,",
         "                   const float *restrict r2, const float *restrict wd,",
         "                   const float *restrict bd, float *restrict ys, int oy) {",
         f"  for (int t = 0; t < {g.to}; ++t) {{",
         f"    const float *rr[3] = {{r0 + t * {g.ring_row}, r1 + t * {g.ring_row}, "
         f"r2 + t * {g.ring_row}}};",
         f"    float *yo = ys + (size_t)t * {ir.dst.chan};",
         "    const float b = bd[t];"]
    L += [f"    const vf w{k} = vdup(wd[t * 9 + {k}]);" for k in range(9)]
    ncv = -(-g.wo // vw)
    wide, n_wide, narrow, n_narrow = even_split(ncv, 4)
    cos = [RING_LEFT - 1 + dx for dx in range(3)]
    for width, count, start in ((wide, n_wide, 0), (narrow, n_narrow, n_wide * wide)):
        if not count:
            continue
        ind = "      "
        L += [f"    for (int ct = 0; ct < {count}; ++ct) {{",
              f"{ind}const int x0 = ({start} + ct * {width}) * {vw};"]
        L += [f"{ind}vf a0_{j} = vdup(b);" for j in range(width)]
        for dy in range(3):
            # base: the ring row at the tile's first column (stride * x0); column offsets
            # RING_LEFT - 1 + dx so that the middle tap's loads are aligned
            L.append(f"{ind}{{ const float *r = rr[{dy}] + {g.stride} * x0;")
            L += _row_vectors(ir, "r", cos, width, ind + "  ", "s")
            L += [f"{ind}  a0_{j} += w{dy * 3 + dx} * s{cos[dx]}_{j};"
                  for dx in range(3) for j in range(width)]
            L.append(f"{ind}}}")
        L += _unpermute(ir, [f"a0_{j}" for j in range(width)], ind)
        L += _store_lines(ir.dst, g.wo, vw, ir.act, 1, width, ind, "x0", "oy", acc="a")
        L.append("    }")
    L += ["  }", "}"]
    return L


def render_expand_depthwise(ir: ConvIR, g: FusedGeometry, src: Layout, expand_act: str) -> str:
    """C source of `int wb_exdw(xin, yout, wpk, cptr, clist, be, wd, bd, n, threads)`: the
    expansion (weights from pack_fused_weights: pruned input channels skipped) and the
    depthwise conv of ir (its dst, stride and activation; ir.src is only the plain one-phase
    layout its tap code reads), input xin in layout src (one phase, channels not blocked)."""
    vw = ir.vector
    if src.phases != 1 or src.cb != 1 or ir.dst.cb != 1:
        raise LRError(f"fused expansion + depthwise: layouts must be plain one-phase "
                      f"({src} -> {ir.dst})")
    if ir.kernel != (3, 3) or ir.padding != (1, 1) or ir.dilation != (1, 1):
        raise LRError(f"fused expansion + depthwise: 3x3 depthwise with padding 1 only, "
                      f"got {ir.kernel} padding {ir.padding}")
    nvx = -(-g.w // vw)
    ex_wide, ex_n_wide, ex_narrow, ex_n_narrow = even_split(nvx, EXPAND_NV)
    nb = -(-g.ho // g.band)
    ng = g.m // g.to
    s = g.stride
    what = (f"1x1 expansion {g.c} -> {g.m} (act {expand_act}) fused with a 3x3 depthwise conv "
            f"stride {s} (act {ir.act}) on {g.h}x{g.w}: {nb} band(s) of {g.band} output rows x "
            f"{ng} groups of {g.to} channels, ring rows of {g.ring_row} floats")
    L = [f"/* Generated by workbench.codegen.c.fused: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    for nv in sorted({ex_wide if ex_n_wide else 0, ex_narrow if ex_n_narrow else 0} - {0}):
        L += _expand_tile(g, src, nv, expand_act, vw)
    L += _depthwise_row(ir, g, vw)
    at_wide, at_narrow = (f"ct * {ex_wide * vw}",
                          f"({ex_n_wide * ex_wide} + (ct - {ex_n_wide}) * {ex_narrow}) * {vw}")
    ring = 3 * g.to * g.ring_row
    L += ["",
          "int wb_exdw(const float *restrict xin, float *restrict yout, const float *restrict wpk,",
          "            const int32_t *restrict cptr, const int32_t *restrict clist,",
          "            const float *restrict be, const float *restrict wd,",
          "            const float *restrict bd, int n_img, int threads) {",
          f"  const long jobs = (long)n_img * {nb} * {ng};",
          "  #pragma omp parallel for schedule(static) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {",
          f"    const int gi = (int)(job % {ng}), b = (int)((job / {ng}) % {nb}), "
          f"n = (int)(job / {nb * ng});",
          f"    float ring[{ring}] __attribute__((aligned(64)));",
          # the columns the expansion never writes are the taps' zero padding
          f"    for (int r = 0; r < {3 * g.to}; ++r) {{",
          f"      float *rr = ring + (size_t)r * {g.ring_row};",
          f"      memset(rr, 0, {RING_LEFT} * sizeof(float));",
          f"      memset(rr + {RING_LEFT + nvx * vw}, 0, {g.ring_row - RING_LEFT - nvx * vw} * "
          "sizeof(float));",
          "    }",
          f"    const float *xs = xin + (size_t)n * {src.image} + "
          f"{src.top * src.row_stride + src.left};",
          f"    float *ys = yout + (size_t)n * {ir.dst.image} + "
          f"(size_t)gi * {g.to} * {ir.dst.chan};",
          f"    const float *w = wpk + (size_t)cptr[gi] * {g.to}, *bias = be + gi * {g.to};",
          "    const int32_t *cl = clist + cptr[gi];",
          "    const int ne = cptr[gi + 1] - cptr[gi];",
          f"    const float *wdg = wd + (size_t)gi * {g.to * 9}, *bdg = bd + gi * {g.to};",
          f"    const int oy0 = b * {g.band}, "
          f"oy1 = oy0 + {g.band} < {g.ho} ? oy0 + {g.band} : {g.ho};",
          f"    int next = oy0 * {s} - 1;      /* the next input row to expand */",
          "    for (int oy = oy0; oy < oy1; ++oy) {",
          f"      for (; next <= oy * {s} + 1; ++next) {{",
          f"        float *er = ring + (size_t)((next + 3) % 3) * {g.to * g.ring_row};",
          f"        if (next < 0 || next >= {g.h}) {{",
          f"          for (int t = 0; t < {g.to}; ++t)",
          f"            memset(er + t * {g.ring_row} + {RING_LEFT}, 0, "
          f"{nvx * vw} * sizeof(float));",
          "          continue;",
          "        }",
          f"        const float *xr = xs + (size_t)next * {src.row_stride};",
          f"        for (int ct = 0; ct < {ex_n_wide + ex_n_narrow}; ++ct) {{",
          f"          if (ct < {ex_n_wide}) ex_{ex_wide}(xr, w, cl, ne, bias, er, {at_wide});"
          if ex_n_wide else "",
          f"          else ex_{ex_narrow}(xr, w, cl, ne, bias, er, {at_narrow});"
          if ex_n_narrow and ex_n_wide else
          (f"          ex_{ex_narrow}(xr, w, cl, ne, bias, er, {at_narrow});" if ex_n_narrow else ""),
          "        }",
          "      }",
          f"      const int top = oy * {s} - 1;",
          f"      dw_row(ring + (size_t)((top + 3) % 3) * {g.to * g.ring_row},",
          f"             ring + (size_t)((top + 4) % 3) * {g.to * g.ring_row},",
          f"             ring + (size_t)((top + 5) % 3) * {g.to * g.ring_row}, wdg, bdg, ys, oy);",
          "    }",
          "  }",
          "  return 0;",
          "}", ""]
    return "\n".join(line for line in L if line != "")


# --- a depthwise conv fused with the 1x1 projection that alone reads it ----------------------

# Output rows per job of the depthwise + projection kernel (a job reads its rows' inputs
# once; more jobs than threads keep two threads evenly loaded).
PROJECT_BAND = 4


def pack_projection_weights(wp: np.ndarray, to: int) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """Projection weights (O, M) as (wpk, cptr, clist): storage.pack_block_sparse in blocks of
    to filters, each block visiting only the mid channels one of its filters keeps."""
    bs = pack_block_sparse(np.asarray(wp, np.float32).reshape(wp.shape[0], -1), to)
    return bs.wpk, bs.cptr, bs.clist


def accumulate_channels(to: int, nv: int, vw: int, row_of: str) -> list[str]:
    """C lines: to x nv accumulators a{t}_0_{j} from bias, summed over the ne kept channels
    cl (row_of: the C expression of channel cl[e]'s input row), weights w (to per channel)."""
    L = [f"  vf a{t}_0_{j} = vdup(bias[{t}]);" for t in range(to) for j in range(nv)]
    L += [f"  for (int e = 0; e < ne; ++e, w += {to}) {{",
          f"    const float *x = {row_of};"]
    L += [f"    const vf xv{j} = vld(x + {vw * j});" for j in range(nv)]
    for t in range(to):
        L.append(f"    {{ const vf wv = vdup(w[{t}]);")
        L += [f"      a{t}_0_{j} += wv * xv{j};" for j in range(nv)]
        L.append("    }")
    L.append("  }")
    return L


def _project_tile(m: int, to: int, nv: int, row: int, dst: Layout, wo: int, act: str,
                  res: bool, vw: int) -> list[str]:
    """static void pj_{nv}: to filters x nv vectors (columns x0..) of output row oy from the
    row buffer (m channel rows, `row` floats apart; the ne channels cl the tile keeps), bias first, residual (read in dst's
    layout) and activation last, stored into planes ys (the tile's first filter's) of dst."""
    L = [f"__attribute__((noinline)) static void pj_{nv}(const float *restrict rb,",
         "    const float *restrict w, const int32_t *restrict cl, int ne,",
         "    const float *restrict bias, float *restrict ys,",
         "    const float *restrict rs, int oy, int x0) {"]
    L += accumulate_channels(to, nv, vw, f"rb + (size_t)cl[e] * {row} + x0")
    for t in range(to):
        if res:
            L.append(f"  {{ const float *rr = rs + (size_t){t} * {dst.chan} + "
                     f"(size_t)(oy + {dst.top}) * {dst.row_stride} + {dst.left} + x0;")
            for j in range(nv):
                L.append(f"    if (x0 + {vw * (j + 1)} <= {wo}) a{t}_0_{j} += vld(rr + {vw * j});")
                L.append(f"    else for (int l = 0; l < {wo} - x0 - {vw * j}; ++l) "
                         f"a{t}_0_{j}[l] += rr[{vw * j} + l];")
            L.append("  }")
        L.append(f"  {{ float *yo = ys + (size_t){t} * {dst.chan};")
        L += _store_lines(dst, wo, vw, act, 1, nv, "    ", "x0", "oy", acc=f"a{t}_")
        L.append("  }")
    L.append("}")
    return L


def render_depthwise_project(ir: ConvIR, o: int, dst: Layout, res: Layout | None,
                             act: str) -> str:
    """C source of `int wb_dwpj(xin, yout, wd, bd, wpk, cptr, clist, bp, rin, n, threads)`:
    the depthwise conv of ir (input xin in ir.src, weights (M, 9) and bias, its activation)
    fused with a 1x1 projection to o channels (pack_projection_weights: pruned mid channels
    skipped, bias bp, residual rin
    in dst's layout when res, activation act) writing yout in dst. A job takes PROJECT_BAND
    output rows; per row it runs the depthwise conv of every channel into a row buffer
    (M rows of whole vectors, in L1), then the projection's register tiles over it: the
    depthwise output never goes to memory."""
    vw, src = ir.vector, ir.src
    if ir.kernel != (3, 3) or ir.padding != (1, 1) or ir.dilation != (1, 1) or \
            src.phases != 1 or src.cb != 1 or dst.cb != 1 or dst.phases != 1:
        raise LRError(f"fused depthwise + projection: a 3x3 depthwise conv with padding 1 on "
                      f"plain one-phase layouts only, got {ir.kernel} padding {ir.padding}, "
                      f"{src} -> {dst}")
    if res is not None and res != dst:
        raise LRError(f"fused depthwise + projection: the residual is read in the output's "
                      f"layout {dst}, got {res}")
    to = channel_group(o)
    if not to:
        raise LRError(f"fused depthwise + projection: {o} outputs is not a multiple of any of "
                      f"{FUSED_TO}")
    m, ho, wo = ir.o, ir.ho, ir.wo
    rs, cs = ir.stride
    ncv = -(-wo // vw)
    row = ncv * vw + (16 if (ncv * vw) % 32 == 0 else 0)   # channel rows not 4 KB apart
    band = min(PROJECT_BAND, ho)
    nb = -(-ho // band)
    pj_wide, pj_n_wide, pj_narrow, pj_n_narrow = even_split(ncv, EXPAND_NV)
    what = (f"3x3 depthwise conv on {m} channels, stride {ir.stride} (act {ir.act}), fused with "
            f"a 1x1 projection {m} -> {o} (act {act}"
            f"{', residual add' if res is not None else ''}) on {ir.h}x{ir.w}: {nb} band(s) "
            f"of {band} output rows")
    L = [f"/* Generated by workbench.codegen.c.fused: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    for nv in sorted({pj_wide if pj_n_wide else 0, pj_narrow if pj_n_narrow else 0} - {0}):
        L += _project_tile(m, to, nv, row, dst, wo, act, res is not None, vw)
    # the depthwise taps: one channel's output row, column tiles of up to 4 vectors
    L += ["__attribute__((noinline)) static void dw_chan(const float *restrict xc,",
          "    const float *restrict wc, float b, float *restrict out, int oy) {"]
    L += [f"  const vf w{k} = vdup(wc[{k}]);" for k in range(9)]
    wide, n_wide, narrow, n_narrow = even_split(ncv, 4)
    for width, count, start in ((wide, n_wide, 0), (narrow, n_narrow, n_wide * wide)):
        if not count:
            continue
        ind = "    "
        L += [f"  for (int ct = 0; ct < {count}; ++ct) {{",
              f"{ind}const int x0 = ({start} + ct * {width}) * {vw};",
              f"{ind}const float *xr = xc + (size_t)({rs} * oy) * {src.row_stride} + {cs} * x0;"]
        L += [f"{ind}vf a0_{j} = vdup(b);" for j in range(width)]
        for dy in range(3):
            cos = [ir.phase_tap(dy, dx)[2] for dx in range(3)]
            u = ir.phase_tap(dy, 0)[1]
            L.append(f"{ind}{{ const float *r = xr + {u * src.row_stride};")
            L += _row_vectors(ir, "r", sorted(set(cos)), width, ind + "  ", "s")
            L += [f"{ind}  a0_{j} += w{dy * 3 + dx} * s{cos[dx]}_{j};"
                  for dx in range(3) for j in range(width)]
            L.append(f"{ind}}}")
        L += _unpermute(ir, [f"a0_{j}" for j in range(width)], ind)
        L += [f"{ind}vst(out + x0 + {vw * j}, {_act(ir.act, f'a0_{j}')});" for j in range(width)]
        L.append("  }")
    L.append("}")
    at_wide, at_narrow = (f"ct * {pj_wide * vw}",
                          f"({pj_n_wide * pj_wide} + (ct - {pj_n_wide}) * {pj_narrow}) * {vw}")
    tiles = pj_n_wide + pj_n_narrow
    L += ["",
          "int wb_dwpj(const float *restrict xin, float *restrict yout, const float *restrict wd,",
          "            const float *restrict bd, const float *restrict wpk,",
          "            const int32_t *restrict cptr, const int32_t *restrict clist,",
          "            const float *restrict bp, const float *restrict rin, int n_img,",
          "            int threads) {",
          f"  const long jobs = (long)n_img * {nb};",
          "  #pragma omp parallel for schedule(static) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {",
          f"    const int b = (int)(job % {nb}), n = (int)(job / {nb});",
          f"    float rb[{m * row}] __attribute__((aligned(64)));",
          f"    const float *xs = xin + (size_t)n * {src.image};",
          f"    const int oy0 = b * {band}, oy1 = oy0 + {band} < {ho} ? oy0 + {band} : {ho};",
          "    for (int oy = oy0; oy < oy1; ++oy) {",
          f"      for (int c = 0; c < {m}; ++c)",
          f"        dw_chan(xs + (size_t)c * {src.chan}, wd + c * 9, bd[c], rb + c * {row}, oy);",
          f"      float *ys = yout + (size_t)n * {dst.image};",
          f"      const float *rs = rin ? rin + (size_t)n * {dst.image} : 0;",
          f"      for (int ob = 0; ob < {o // to}; ++ob) {{",
          f"        const float *w = wpk + (size_t)cptr[ob] * {to};",
          "        const int32_t *cl = clist + cptr[ob];",
          "        const int ne = cptr[ob + 1] - cptr[ob];",
          f"        for (int ct = 0; ct < {tiles}; ++ct) {{"]

    def args(at: str) -> str:
        return (f"(rb, w, cl, ne, bp + ob * {to}, ys + (size_t)ob * {to * dst.chan}, "
                f"rs ? rs + (size_t)ob * {to * dst.chan} : 0, oy, {at})")
    if pj_n_wide and pj_n_narrow:
        L += [f"          if (ct < {pj_n_wide}) pj_{pj_wide}{args(at_wide)};",
              f"          else pj_{pj_narrow}{args(at_narrow)};"]
    elif pj_n_wide:
        L.append(f"          pj_{pj_wide}{args(at_wide)};")
    else:
        L.append(f"          pj_{pj_narrow}{args(at_narrow)};")
    L += ["        }", "      }", "    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)
