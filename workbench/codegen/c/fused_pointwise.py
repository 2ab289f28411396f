"""C emitter for a 1x1 expansion (C -> M channels, its activation) fused with the 1x1 reduction
(M -> O) that alone reads its output: WDSR's wide-activation blocks (32 -> 192 -> 26).

Why: unfused, the expansion writes an M x H x W map that the reduction reads back; WDSR's
is 192 x 256 x 256 (50 MB) per block, far past L2, so both 1x1s stream it through DRAM.
Fused, a job takes one output row; per tile of up to PAIR_NV vectors of the row's pixels it
copies the tile's C input channels into a panel (zeros past the row's end, so no read
leaves the input), expands them into a scratch tile of M rows (M x PAIR_NV * VW floats on
the thread's stack: 36 KB for WDSR at AVX-512, in L1) and reduces the scratch tile straight
into the output row: the wide map never goes to memory.

Both halves are register tiles of TO filters x NV vectors (as c.fused's projection): per
input channel the block keeps (block-sparse storage, storage.pack_block_sparse: pruned 1x1
channels are skipped), NV vector loads and TO broadcast weights. Filter counts that TO does
not divide are padded with zero filters (never stored). Only the output's valid pixels
are written (a partial last vector masked to zeros where the row has room: the border
stays zero).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.codegen.c.fused import accumulate_channels
from workbench.codegen.c.prelude import PRELUDE, _act, _lanes, _store_lines, even_split
from workbench.codegen.ir import Layout
from workbench.codegen.lr import LRError
from workbench.codegen.storage import pack_block_sparse

# Vectors of pixels per tile: the register tiles' width (TO x 3 accumulators) and the
# scratch tile's (M rows of PAIR_NV * VW floats).
PAIR_NV = 3
# Filters per register tile: the candidate that pads the filter count least (ties: the
# larger), at most 8 (8 x 3 accumulators, 3 inputs and a weight: 28 of 32 vector registers).
PAIR_TO = (8, 7, 6, 5, 4)
# The scratch tile (and the input panel) should fit a share of L1/L2: pairs with more
# would not be fused (PAIR_NV * VW * 4 bytes per mid channel).
PAIR_SCRATCH_BYTES = 128 * 1024


def pair_tile_o(n: int, vw: int) -> int:
    """Filters per register tile for n filters (AVX2's 16 registers: at most 4)."""
    cands = [t for t in PAIR_TO if vw != 8 or t <= 4]
    return min(cands, key=lambda t: (-(-n // t) * t, -t))


def pair_fits(c: int, m: int, vw: int) -> bool:
    """True if the scratch tile and input panel of a C -> M expansion fit PAIR_SCRATCH_BYTES."""
    mp = -(-m // pair_tile_o(m, vw)) * pair_tile_o(m, vw)
    return (mp + c) * PAIR_NV * vw * 4 <= PAIR_SCRATCH_BYTES


@dataclass(frozen=True)
class PairGeometry:
    """The numbers a fused 1x1 pair is rendered from."""
    c: int              # expansion inputs
    m: int              # mid channels
    o: int              # reduction outputs
    h: int              # plane (both convs: stride 1)
    w: int
    to1: int            # mid channels per expansion register tile
    to2: int            # outputs per reduction register tile
    vw: int

    @property
    def stride(self) -> int:
        """Floats between channel rows of the panel and the scratch tile."""
        return PAIR_NV * self.vw

    @property
    def mid_padded(self) -> int:
        """Scratch rows: m rounded up to whole expansion tiles."""
        return -(-self.m // self.to1) * self.to1


def pair_geometry(c: int, m: int, o: int, h: int, w: int, vw: int) -> PairGeometry:
    """Geometry of the fused pair (LRError if its scratch tile would not fit)."""
    if not pair_fits(c, m, vw):
        raise LRError(f"fused 1x1 pair: {c} -> {m} channels take more than "
                      f"{PAIR_SCRATCH_BYTES} bytes of scratch per tile")
    return PairGeometry(c, m, o, h, w, pair_tile_o(m, vw), pair_tile_o(o, vw), vw)


def pack_pair_weights(we: np.ndarray, be: np.ndarray, wr: np.ndarray, br: np.ndarray,
                      g: PairGeometry) -> tuple[np.ndarray, ...]:
    """(expansion wpk, cptr, clist, bias padded to mid_padded, reduction wpk, cptr, clist,
    bias padded to whole tiles): storage.pack_block_sparse of we (M, C) in tiles of to1 and
    wr (O, M) in tiles of to2, each tile visiting only the channels one of its filters keeps."""
    e = pack_block_sparse(np.asarray(we, np.float32).reshape(g.m, g.c), g.to1)
    r = pack_block_sparse(np.asarray(wr, np.float32).reshape(g.o, g.m), g.to2)
    bep = np.zeros(g.mid_padded, np.float32)
    bep[:g.m] = be
    brp = np.zeros(-(-g.o // g.to2) * g.to2, np.float32)
    brp[:g.o] = br
    return e.wpk, e.cptr, e.clist, bep, r.wpk, r.cptr, r.clist, brp


def _accumulate(to: int, nv: int, stride: int, vw: int) -> list[str]:
    """The body of a register tile: to x nv accumulators from bias, summed over the ne
    channels cl of the panel p (rows `stride` floats apart), weights w (to per channel)."""
    return accumulate_channels(to, nv, vw, f"p + (size_t)cl[e] * {stride}")


def _expand_tile(g: PairGeometry, nv: int, act: str) -> list[str]:
    """static void ex_{nv}: to1 mid channels of the tile into scratch rows sc (whole
    vectors: lanes past the row's end hold act(bias), never reduced into a stored lane)."""
    # not inlined: as in c.fused, GCC otherwise kept loop invariants in registers and
    # spilled the accumulators
    L = [f"__attribute__((noinline)) static void ex_{nv}(const float *restrict p,",
         "    const float *restrict w, const int32_t *restrict cl, int ne,",
         "    const float *restrict bias, float *restrict sc) {"]
    L += _accumulate(g.to1, nv, g.stride, g.vw)
    L += [f"  vst(sc + {t * g.stride + g.vw * j}, {_act(act, f'a{t}_0_{j}')});"
          for t in range(g.to1) for j in range(nv)]
    L.append("}")
    return L


def _reduce_tile(g: PairGeometry, nv: int, dst: Layout, act: str) -> list[str]:
    """static void rd_{nv}: to2 outputs (nf of them real) of the tile from the scratch
    rows, stored at row oy, columns x0.. of planes ys (the tile's first output's) of dst."""
    L = [f"__attribute__((noinline)) static void rd_{nv}(const float *restrict p,",
         "    const float *restrict w, const int32_t *restrict cl, int ne,",
         "    const float *restrict bias, float *restrict ys, int nf, int oy, int x0) {"]
    L += _accumulate(g.to2, nv, g.stride, g.vw)
    for t in range(g.to2):
        L.append(f"  if ({t} < nf) {{ float *yo = ys + (size_t){t} * {dst.chan};")
        L += _store_lines(dst, g.w, g.vw, act, 1, nv, "    ", "x0", "oy", acc=f"a{t}_")
        L.append("  }")
    L.append("}")
    return L


def render_pointwise_pair(g: PairGeometry, src: Layout, dst: Layout, expand_act: str,
                          act: str) -> str:
    """C source of `int wb_pwpair(xin, yout, wpe, cpe, cle, be, wpr, cpr, clr, br, n,
    threads)`: the 1x1 expansion (weights from pack_pair_weights, activation expand_act) and
    the 1x1 reduction (activation act) of input xin in layout src into yout in dst (both
    plain one-phase); OpenMP over (image, row) jobs."""
    vw, S = g.vw, g.stride
    for lay in (src, dst):
        if lay.phases != 1 or lay.cb != 1:
            raise LRError(f"fused 1x1 pair: layouts must be plain one-phase ({src} -> {dst})")
    nvx = -(-g.w // vw)
    wide, n_wide, narrow, n_narrow = even_split(nvx, PAIR_NV)
    widths = sorted({wide if n_wide else 0, narrow if n_narrow else 0} - {0})
    ng1, ng2 = g.mid_padded // g.to1, -(-g.o // g.to2)
    what = (f"1x1 expansion {g.c} -> {g.m} (act {expand_act}) fused with a 1x1 reduction "
            f"{g.m} -> {g.o} (act {act}) on {g.h}x{g.w}: tiles of up to {PAIR_NV} vectors, "
            f"register tiles of {g.to1} and {g.to2} filters")
    L = [f"/* Generated by workbench.codegen.c.fused_pointwise: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    for nv in widths:
        L += _expand_tile(g, nv, expand_act) + _reduce_tile(g, nv, dst, act)
    L += ["",
          "int wb_pwpair(const float *restrict xin, float *restrict yout,",
          "              const float *restrict wpe, const int32_t *restrict cpe,",
          "              const int32_t *restrict cle, const float *restrict be,",
          "              const float *restrict wpr, const int32_t *restrict cpr,",
          "              const int32_t *restrict clr, const float *restrict br, int n_img,",
          "              int threads) {",
          f"  const long jobs = (long)n_img * {g.h};",
          "  #pragma omp parallel for schedule(static) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {",
          f"    const int oy = (int)(job % {g.h}), n = (int)(job / {g.h});",
          f"    float xp[{g.c * S}] __attribute__((aligned(64)));",
          f"    float sc[{g.mid_padded * S}] __attribute__((aligned(64)));",
          f"    const float *xr = xin + (size_t)n * {src.image} + "
          f"(size_t)(oy + {src.top}) * {src.row_stride} + {src.left};",
          f"    float *ys = yout + (size_t)n * {dst.image};",
          f"    for (int ct = 0; ct < {n_wide + n_narrow}; ++ct) {{",
          f"      const int nv = ct < {n_wide} ? {wide} : {narrow};",
          f"      const int x0 = ct < {n_wide} ? ct * {wide * vw} : "
          f"({n_wide * wide} + (ct - {n_wide}) * {narrow}) * {vw};",
          # the panel: whole vectors of each channel's run, zeros past the row's end
          f"      for (int c = 0; c < {g.c}; ++c) {{",
          f"        const float *xc = xr + (size_t)c * {src.chan} + x0;",
          f"        float *pc = xp + c * {S};",
          "        for (int j = 0; j < nv; ++j) {",
          f"          if (x0 + {vw} * (j + 1) <= {g.w}) vst(pc + {vw} * j, vld(xc + {vw} * j));",
          f"          else for (int l = 0; l < {vw}; ++l)",
          f"            pc[{vw} * j + l] = x0 + {vw} * j + l < {g.w} ? xc[{vw} * j + l] : 0.0f;",
          "        }",
          "      }",
          f"      for (int gi = 0; gi < {ng1}; ++gi) {{",
          f"        const float *w = wpe + (size_t)cpe[gi] * {g.to1};",
          "        const int32_t *cl = cle + cpe[gi];",
          "        const int ne = cpe[gi + 1] - cpe[gi];",
          f"        float *s = sc + (size_t)gi * {g.to1 * S};"]
    L += _dispatch(widths, wide, "ex", f"(xp, w, cl, ne, be + gi * {g.to1}, s)", "        ")
    L += ["      }",
          f"      for (int ob = 0; ob < {ng2}; ++ob) {{",
          f"        const float *w = wpr + (size_t)cpr[ob] * {g.to2};",
          "        const int32_t *cl = clr + cpr[ob];",
          "        const int ne = cpr[ob + 1] - cpr[ob];",
          f"        const int nf = {g.o} - ob * {g.to2};"]
    L += _dispatch(widths, wide, "rd", f"(sc, w, cl, ne, br + ob * {g.to2}, "
                   f"ys + (size_t)ob * {g.to2 * dst.chan}, nf, oy, x0)", "        ")
    L += ["      }", "    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)


def _dispatch(widths: list[int], wide: int, name: str, args: str, ind: str) -> list[str]:
    """The call of name_{nv} for the tile's width (one or two widths rendered)."""
    if len(widths) == 2:
        return [f"{ind}if (nv == {wide}) {name}_{wide}{args};",
                f"{ind}else {name}_{widths[0]}{args};"]
    return [f"{ind}{name}_{widths[0]}{args};"]
