"""C emitter: render_c(ir, schedule) -> C source of one layer's kernel (OpenMP, SIMD).

Vectors are GCC/Clang vector extensions (`vector_size`), so one source serves AVX-512 (16
floats), AVX2 (8) and NEON (4): the compiler maps each vector op to one instruction, and
`a += w * x` becomes a fused multiply-add under -ffp-contract=fast. Every shape, stride,
layout offset and pattern tap is a literal in the source; only the packed weights, the
buffers and the batch size are arguments. Names from models never reach the source.

Pattern convolutions (any kh x kw, any stride through phase-split inputs, groups) keep a
tile_h x tile_w register tile of outputs for one filter while walking that filter's kernels
pattern group by pattern group, with one straight-line body per pattern. Load redundancy
elimination (Schedule.lre): each input row of the tile is loaded once per kernel and shared
by every tap and output row that reads it (lre >= 1); the column-shifted copies the left and
right taps need are made in registers from aligned loads (lre = 2).

The taps kernel (Schedule.kernel = "taps", stride-1 and phase-split inputs) trades that
per-pattern code for one body read through a per-kernel table of tap offsets: no pattern
branches, so input channels can be walked in small blocks (Schedule.cblock) for every
filter in turn, keeping a block's input rows in L1 while all filters read them; partial sums
wait in the output buffer between blocks. It is plain vector-extension code too (each tap is
a broadcast and unaligned loads feeding FMAs), so it ports to NEON unchanged.

The depthwise kernel (Schedule.kernel = "depthwise", groups == C == O) works one channel
plane at a time with the kernel's weights in broadcast registers; each input row of a tile is
loaded once and feeds every output row that reads it, and an output row is stored as soon as
its last input row is in, so only kh rows of accumulators are live. The direct kernel
("direct", dense convs with few input channels such as the 7x7 stem) shares each input vector
among tile_o filters. Both read stride 2 from the plain buffer through one in-lane shuffle per
vector (_s2_perm: lanes come out in the order x86's vshufps gives, put right once per output
vector before the store).
"""
from __future__ import annotations

from collections.abc import Callable

from workbench.codegen.ir import ConvIR, Layout, is_pointwise_layer, round_up
from workbench.codegen.lr import LRError
from workbench.codegen.schedule import Schedule

PRELUDE = r"""#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VW {vw}
typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
static inline vf vld(const float *p) {{ vf v; memcpy(&v, p, sizeof v); return v; }}
static inline void vst(float *p, vf v) {{ memcpy(p, &v, sizeof v); }}
static inline vf vdup(float x) {{ vf v = {dup}; return v; }}
/* NaN fails every ordered compare: clearing the lanes where v < 0 keeps a NaN (PyTorch's relu
   does), where keeping the lanes with v > 0 would zero it; one compare and one and-not either
   way. Lanes over 6 become 6: a NaN stays, as in PyTorch's hardtanh. */
static inline vf vrelu(vf v) {{ vi m = v < (vf){{0}}; return (vf)((vi)v & ~m); }}
static inline vf vrelu6(vf v) {{
  v = vrelu(v); vi m = v > vdup(6.0f);
  return (vf)(((vi)v & ~m) | ((vi)vdup(6.0f) & m));
}}
static inline vf vkeep(vf v, int n) {{  /* zero lanes n.. (keeps a buffer's border zero) */
  vi lane = {lanes}; vi m = lane < (vi){{0}} + n; return (vf)((vi)v & m);
}}
"""


def _lanes(vw: int) -> str:
    return "{" + ", ".join(str(i) for i in range(vw)) + "}"


def _shift(vw: int, lo: str, hi: str, k: int) -> str:
    """Lanes k .. k + VW - 1 of the concatenation lo:hi (one valignd / vperm2 on x86)."""
    idx = ", ".join(str(k + i) for i in range(vw))
    return f"__builtin_shufflevector({lo}, {hi}, {idx})"


def _act(act: str, v: str) -> str:
    return {"relu": f"vrelu({v})", "relu6": f"vrelu6({v})"}.get(act, v)


def _store_lines(dst: Layout, wo: int, vw: int, act: str, th: int, tw: int, indent: str,
                 col0: str, row0: str, acc: str = "a") -> list[str]:
    """Store the th x tw accumulator tile at output (row0 + t, col0 + VW * j) of dst."""
    L = []
    row_room = dst.row_stride - dst.left  # floats from column 0 of a row to its end
    for t in range(th):
        L.append(f"{indent}{{ float *yr = yo + (size_t)({row0} + {t + dst.top}) * {dst.row_stride}"
                 f" + {dst.left} + {col0};")
        for j in range(tw):
            v = _act(act, f"{acc}{t}_{j}")
            # Columns col0 + VW*j .. are valid while < wo: a partial last vector is masked
            # (if the row has room, keeping the zero border) or written lane by lane.
            L.append(f"{indent}  if ({col0} + {vw * (j + 1)} <= {wo}) vst(yr + {vw * j}, {v});")
            if row_room >= -(-wo // vw) * vw:
                L.append(f"{indent}  else vst(yr + {vw * j}, vkeep({v}, {wo} - {col0} - {vw * j}));")
            else:
                L.append(f"{indent}  else {{ vf tv = {v}; for (int l = 0; l < {wo} - {col0} - "
                         f"{vw * j}; ++l) yr[{vw * j} + l] = tv[l]; }}")
        L.append(f"{indent}}}")
    return L


def _steps(ir: ConvIR) -> tuple[int, int]:
    """(row step, column step) between neighbouring outputs in the input buffer: the stride
    when a strided conv reads a plain (not phase-split) buffer, else 1."""
    if ir.src.phases == 1:
        return ir.stride
    return 1, 1


def _even(vw: int, a: str, b: str) -> str:
    """Lanes 0, 2, 4, .. of the concatenation a:b (a stride-2 gather of 2 * VW floats)."""
    return f"__builtin_shufflevector({a}, {b}, {', '.join(str(2 * i) for i in range(vw))})"


def _pattern_body(ir: ConvIR, p: int, th: int, tw: int, lre: int, indent: str) -> list[str]:
    """Straight-line code adding one kernel of pattern p into the th x tw tile."""
    vw = ir.vector
    src = ir.src
    rs, cs = _steps(ir)
    taps = ir.taps[p]
    L = [f"{indent}const vf w{t} = vdup(w[{t}]);" for t in range(len(taps))]
    # (plane, buffer row offset from output row) -> list of (tap index, column offset)
    rows: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for t, (dy, dx) in enumerate(taps):
        ph, ro, co = ir.phase_tap(dy, dx)
        rows.setdefault((ph, ro), []).append((t, co))

    def load(r: str, co: int, j: int) -> str:
        if cs == 1:
            return f"vld({r} + {vw * j + co})"
        # stride 2 on a plain buffer: two loads, keep the even lanes
        return _even(vw, f"vld({r} + {cs * vw * j + co})", f"vld({r} + {cs * vw * j + co + vw})")

    if lre == 0:
        # Every (tap, output row, vector) loads its own (unaligned) input vector.
        for (ph, ro), tl in sorted(rows.items()):
            for t_out in range(th):
                base = f"(xc + {ph * src.plane} + (size_t)({rs} * oy0 + {rs * t_out + ro}) * " \
                       f"{src.row_stride})"
                for t, co in tl:
                    for j in range(tw):
                        L.append(f"{indent}a{t_out}_{j} += w{t} * {load(base, co, j)};")
        return L
    # Buffer row u = rs * t + ro: for each distinct (plane, u), load once and feed every
    # output row t and tap that reads it.
    by_u: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for (ph, ro), tl in rows.items():
        for t_out in range(th):
            for t, co in tl:
                by_u.setdefault((ph, rs * t_out + ro), []).append((t_out, t, co))
    for (ph, u), uses in sorted(by_u.items()):
        L.append(f"{indent}{{ const float *r = xc + {ph * src.plane} + (size_t)({rs} * oy0 + {u})"
                 f" * {src.row_stride};")
        cos = sorted({co for _, _, co in uses})
        if lre == 2 and cs == 1:
            need = sorted({j + co // vw + d for co in cos for j in range(tw)
                           for d in ((0, 1) if co % vw else (0,))})
            L += [f"{indent}  const vf v{m} = vld(r + {vw * m});" for m in need]
            for co in cos:
                q, rem = divmod(co, vw)
                for j in range(tw):
                    expr = f"v{j + q}" if rem == 0 else _shift(vw, f"v{j + q}", f"v{j + q + 1}", rem)
                    L.append(f"{indent}  const vf s{co}_{j} = {expr};")
        else:
            for co in cos:
                L += [f"{indent}  const vf s{co}_{j} = {load('r', co, j)};" for j in range(tw)]
        for t_out, t, co in uses:
            for j in range(tw):
                L.append(f"{indent}  a{t_out}_{j} += w{t} * s{co}_{j};")
        L.append(f"{indent}}}")
    return L


def even_split(n: int, t: int) -> tuple[int, int, int, int]:
    """n vectors in ceil(n / t) tiles as even as possible: (wide, n_wide, narrow, n_narrow),
    wide = narrow + 1; e.g. 7 by 3 -> 3, 2, 2 rather than 3, 3, 1 (a one-vector tile has too
    few accumulators to hide the FMA latency)."""
    k = -(-n // t)
    base, extra = divmod(n, k)
    return base + 1, extra, base, k - extra


def _tile_start(ct: str, wide: int, n_wide: int, narrow: int, vw: int) -> tuple[str, str]:
    """C expressions (start column of tile ct if wide, if narrow)."""
    return f"{ct} * {wide * vw}", f"({n_wide * wide} + ({ct} - {n_wide}) * {narrow}) * {vw}"


def _rows_used(ir: ConvIR, p: int, th: int) -> list[tuple[int, int]]:
    """(plane, buffer row from rs * oy0) pairs that pattern p reads for a th-row tile."""
    rs, _ = _steps(ir)
    out = set()
    for dy, dx in ir.taps[p]:
        ph, ro, _ = ir.phase_tap(dy, dx)
        out |= {(ph, rs * t + ro) for t in range(th)}
    return sorted(out)


def _tile_function(ir: ConvIR, th: int, tw: int, lre: int, prefetch: int = 0) -> list[str]:
    """static void tile_{tw}(...): one filter, output rows oy0.., columns x0.. (tw vectors)."""
    src, dst = ir.src, ir.dst
    rs, cs = _steps(ir)
    L = [f"static void tile_{tw}(const float *restrict xn, float *restrict yo, int oy0, int x0,",
         "                   const int32_t *restrict kp, const int32_t *restrict wp,",
         "                   const int32_t *restrict cidx, const float *restrict wts, int cb,"
         " float bias) {"]
    L += [f"  vf a{t}_{j} = vdup(bias);" for t in range(th) for j in range(tw)]
    for p, taps in enumerate(ir.taps):
        L += [f"  /* pattern {p}: taps {list(taps)} */",
              f"  {{ const float *w = wts + wp[{p}];",
              f"    for (int k = kp[{p}]; k < kp[{p + 1}]; ++k, w += {len(taps)}) {{",
              f"      const float *xc = xn + (size_t)(cb + cidx[k]) * {src.chan} + {cs} * x0;"]
        if prefetch:
            # The next kernel's rows (cidx has a spare entry at the end, so k + 1 is safe).
            L.append(f"      const float *xq = xn + (size_t)(cb + cidx[k + 1]) * {src.chan} + "
                     f"{cs} * x0;")
            for ph, u in _rows_used(ir, p, th):
                for line in range(0, cs * (tw + 1) * ir.vector, 16):
                    L.append(f"      __builtin_prefetch(xq + {ph * src.plane} + (size_t)({rs} * oy0"
                             f" + {u}) * {src.row_stride} + {line});")
        L += _pattern_body(ir, p, th, tw, lre, "      ")
        L += ["    }", "  }"]
    L += _store_lines(dst, ir.wo, ir.vector, ir.act, th, tw, "  ", "x0", "oy0")
    L.append("}")
    return L


def render_conv(ir: ConvIR, sched: Schedule) -> str:
    """C source of `int wb_conv(xin, yout, kptr, cidx, wptr, wts, bias, order, n, threads)`.

    xin: (N, src.image) float32 in ir.src's layout; yout: (N, dst.image) float32 in ir.dst's
    layout; kptr, wptr: (O, P + 1) int32; cidx: (K,) int32; wts: float32; bias: (O,) float32;
    order: (O,) int32 (the FKW packing, storage.FKW). Returns 0.
    """
    vw = ir.vector
    th = min(int(sched.tile_h), ir.ho)
    ncv = -(-ir.wo // vw)                  # vectors per output row
    tw = min(int(sched.tile_w), ncv)
    wide, n_wide, narrow, n_narrow = even_split(ncv, tw)
    nrt = -(-ir.ho // th)
    P = len(ir.taps)
    what = (f"conv {ir.o}x{ir.c}x{ir.kernel[0]}x{ir.kernel[1]} on {ir.h}x{ir.w}, stride "
            f"{ir.stride}, pad {ir.padding}, dilation {ir.dilation}, groups {ir.groups}, "
            f"{P} patterns, act {ir.act}; schedule {sched.to_dict()}")
    L = [f"/* Generated by workbench.codegen.render_c: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    for width in sorted({wide if n_wide else 0, narrow if n_narrow else 0} - {0}):
        L += _tile_function(ir, th, width, sched.lre, sched.prefetch)
    # Jobs: (image, row tile, filter slot) with filters fastest for parallel="rows" (a
    # thread's jobs share input rows), row tiles fastest for "filters"; loop_order
    # "cols_filter" adds the column tile to the job, inside the row tile, outside filters.
    ncols = n_wide + n_narrow
    per_job_cols = sched.loop_order == "filter_cols"
    nct = 1 if per_job_cols else ncols
    if sched.parallel == "rows":
        split = [f"    const int i = (int)(job % {ir.o});",
                 f"    const long r = job / {ir.o};",
                 f"    const int ct = (int)(r % {nct});",
                 f"    const int rt = (int)((r / {nct}) % {nrt}), n = (int)(r / {nct * nrt});"]
    else:
        split = [f"    const int rt = (int)(job % {nrt});",
                 f"    const long r = job / {nrt};",
                 f"    const int ct = (int)(r % {nct});",
                 f"    const int i = (int)((r / {nct}) % {ir.o}), n = (int)(r / {nct * ir.o});"]
    args = "kp, wp, cidx, wts, cb, bias[f]"
    if per_job_cols:
        cols = ["    (void)ct;"]
        if n_wide:
            cols += [f"    for (int c = 0; c < {n_wide}; ++c)",
                     f"      tile_{wide}(xn, yo, oy0, c * {wide * vw}, {args});"]
        if n_narrow:
            cols += [f"    for (int c = 0; c < {n_narrow}; ++c)",
                     f"      tile_{narrow}(xn, yo, oy0, ({n_wide * wide} + c * {narrow}) * {vw}, "
                     f"{args});"]
    else:
        at_wide, at_narrow = _tile_start("ct", wide, n_wide, narrow, vw)
        if n_wide and n_narrow:
            cols = [f"    if (ct < {n_wide}) tile_{wide}(xn, yo, oy0, {at_wide}, {args});",
                    f"    else tile_{narrow}(xn, yo, oy0, {at_narrow}, {args});"]
        elif n_wide:
            cols = [f"    tile_{wide}(xn, yo, oy0, {at_wide}, {args});"]
        else:
            cols = [f"    tile_{narrow}(xn, yo, oy0, {at_narrow}, {args});"]
    L += ["",
          "int wb_conv(const float *restrict xin, float *restrict yout, const int32_t *restrict kptr,",
          "            const int32_t *restrict cidx, const int32_t *restrict wptr,",
          "            const float *restrict wts, const float *restrict bias,",
          "            const int32_t *restrict order, int n_img, int threads) {",
          f"  const long jobs = (long)n_img * {nrt} * {nct} * {ir.o};",
          # "filters": whole filters dealt out in turn, so reordered (sorted) filters give
          # every thread the same mix of heavy and light ones
          "  #pragma omp parallel for schedule(static) num_threads(threads)"
          if sched.parallel == "rows" else
          f"  #pragma omp parallel for schedule(static, {nrt * nct}) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {"]
    L += split
    L += ["    const int f = order[i];",
          # The last row tile is moved up to end at the last row: it recomputes a few rows
          # instead of needing a second, shorter tile body.
          f"    int oy0 = rt * {th}; if (oy0 > {ir.ho - th}) oy0 = {ir.ho - th};",
          f"    const float *xn = xin + (size_t)n * {ir.src.image};",
          f"    float *yo = yout + (size_t)n * {ir.dst.image} + (size_t)f * {ir.dst.chan};",
          f"    const int cb = (f / {ir.opg}) * {ir.cg};",
          f"    const int32_t *kp = kptr + (size_t)i * {P + 1}, *wp = wptr + (size_t)i * {P + 1};",
          ]
    L += cols
    L += ["  }", "  return 0;", "}", ""]
    return "\n".join(L)


def pointwise_rows(ir: ConvIR) -> tuple[int, int, int, int]:
    """(rows, row length, src row stride, dst row stride) a 1x1 conv walks; one long row when
    both layouts hold the plane contiguously (then vectors run across output rows)."""
    src, dst = ir.src, ir.dst
    _, cs = _steps(ir)
    flat = (cs == 1 and src.row_stride == ir.wo and src.top == src.left == 0 and
            dst.row_stride == ir.wo and dst.top == dst.left == 0)
    if flat:
        return 1, ir.ho * ir.wo, 0, 0
    return ir.ho, ir.wo, src.row_stride, dst.row_stride


def render_pointwise(ir: ConvIR, sched: Schedule) -> str:
    """C source of `int wb_pointwise(xin, yout, cptr, clist, wpk, bias, order, n, threads)`: a
    1x1 convolution as a block-sparse GEMM.

    Output slots (filters in `order`) go in blocks of tile_o; block b visits only the input
    channels clist[cptr[b]:cptr[b + 1]] some filter of it keeps, with weights wpk (one
    tile_o-vector per visited channel, zeros for filters that skip it). A register tile is
    tile_o filters x tile_w vectors of pixels. Stride s reads phase plane 0 of an s x s
    phase-split input (the subsampled pixels, contiguous). bias: (O,) float32.
    """
    vw, src, dst = ir.vector, ir.src, ir.dst
    to = int(sched.tile_o)
    rs, cs = _steps(ir)
    nrow, rlen, srow, drow = pointwise_rows(ir)
    nv = -(-rlen // vw)
    tv = min(int(sched.tile_w), nv)
    wide, n_wide, narrow, n_narrow = even_split(nv, tv)
    nqt = n_wide + n_narrow
    nob = -(-ir.o // to)
    what = (f"pointwise conv {ir.o}x{ir.c} on {ir.h}x{ir.w}, stride {ir.stride}, act {ir.act}, "
            f"{nrow} row(s) of {rlen}; schedule {sched.to_dict()}")
    L = [f"/* Generated by workbench.codegen.render_c: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    # a partial last vector: masked full store if the row has room (keeps the border zero)
    room = nrow > 1 and dst.row_stride - dst.left >= -(-ir.wo // vw) * vw
    for width in sorted({wide if n_wide else 0, narrow if n_narrow else 0} - {0}):
        L += [f"static void ptile_{width}(const float *restrict xs, float *restrict ys, "
              "int ob, int q0, const int32_t *restrict cptr, const int32_t *restrict clist,",
              "                     const float *restrict wpk, const float *restrict bias,"
              " const int32_t *restrict order) {"]
        L += [f"  vf a{t}_{j} = vdup(bias[order[ob * {to} + {t}]]);"
              for t in range(to) for j in range(width)]
        L += ["  for (int e = cptr[ob]; e < cptr[ob + 1]; ++e) {",
              f"    const float *xr = xs + (size_t)clist[e] * {src.chan} + {cs} * q0;",
              f"    const float *w = wpk + (size_t)e * {to};"]
        if cs == 1:
            L += [f"    const vf x{j} = vld(xr + {vw * j});" for j in range(width)]
        else:  # stride 2 on a plain buffer: the even pixels of two vectors
            L += [f"    const vf x{j} = {_even(vw, f'vld(xr + {2 * vw * j})', f'vld(xr + {2 * vw * j + vw})')};"
                  for j in range(width)]
        for t in range(to):
            L.append(f"    {{ const vf wv = vdup(w[{t}]);")
            L += [f"      a{t}_{j} += wv * x{j};" for j in range(width)]
            L.append("    }")
        L.append("  }")
        for t in range(to):
            L.append(f"  if (ob * {to} + {t} < {ir.o}) {{ float *yr = ys + (size_t)order[ob * {to}"
                     f" + {t}] * {dst.chan} + q0;")
            for j in range(width):
                v = _act(ir.act, f"a{t}_{j}")
                L.append(f"    if (q0 + {vw * (j + 1)} <= {rlen}) vst(yr + {vw * j}, {v});")
                if room:
                    L.append(f"    else vst(yr + {vw * j}, vkeep({v}, {rlen} - q0 - {vw * j}));")
                else:
                    L.append(f"    else {{ vf tv = {v}; for (int l = 0; l < {rlen} - q0 - {vw * j};"
                             f" ++l) yr[{vw * j} + l] = tv[l]; }}")
            L.append("  }")
        L.append("}")
    L += ["",
          "int wb_pointwise(const float *restrict xin, float *restrict yout, const int32_t *restrict cptr,",
          "                 const int32_t *restrict clist, const float *restrict wpk,",
          "                 const float *restrict bias, const int32_t *restrict order, int n_img,",
          "                 int threads) {",
          f"  const long jobs = (long)n_img * {nrow} * {nqt} * {nob};",
          "  #pragma omp parallel for schedule(static) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {",
          # output blocks fastest: consecutive jobs reuse the same input pixels from cache
          f"    const int ob = (int)(job % {nob});",
          f"    const long r = job / {nob};",
          f"    const int qt = (int)(r % {nqt});",
          f"    const int row = (int)((r / {nqt}) % {nrow}), n = (int)(r / {nqt * nrow});",
          f"    const float *xs = xin + (size_t)n * {src.image} + (size_t)({rs} * row + {src.top}) * "
          f"{srow or src.row_stride} + {src.left};" if nrow > 1 else
          f"    const float *xs = xin + (size_t)n * {src.image};",
          f"    float *ys = yout + (size_t)n * {dst.image} + (size_t)(row + {dst.top}) * "
          f"{drow or dst.row_stride} + {dst.left};" if nrow > 1 else
          f"    float *ys = yout + (size_t)n * {dst.image}; (void)row;",
          ]
    at_wide, at_narrow = _tile_start("qt", wide, n_wide, narrow, vw)
    args = "cptr, clist, wpk, bias, order"
    if n_wide and n_narrow:
        L += [f"    if (qt < {n_wide}) ptile_{wide}(xs, ys, ob, {at_wide}, {args});",
              f"    else ptile_{narrow}(xs, ys, ob, {at_narrow}, {args});"]
    elif n_wide:
        L.append(f"    ptile_{wide}(xs, ys, ob, {at_wide}, {args});")
    else:
        L.append(f"    ptile_{narrow}(xs, ys, ob, {at_narrow}, {args});")
    L += ["  }", "  return 0;", "}", ""]
    return "\n".join(L)


def render_linear(c: int, o: int, act: str, vector: int, sched: Schedule) -> str:
    """C source of `int wb_linear(x, y, w, bias, n, threads)`: y (N, O) = act(x (N, C) @ w.T
    + bias) with w (O, C) float32 row-major; tile_o rows share each loaded slice of x."""
    vw, to = vector, int(sched.tile_o)
    nob = -(-o // to)
    L = [f"/* Generated by workbench.codegen.render_c: linear {c} -> {o}, act {act}; schedule "
         f"{sched.to_dict()} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}"),
         "int wb_linear(const float *restrict x, float *restrict y, const float *restrict w,",
         "              const float *restrict bias, int n_img, int threads) {",
         f"  const long jobs = (long)n_img * {nob};",
         "  #pragma omp parallel for schedule(static) num_threads(threads)",
         "  for (long job = 0; job < jobs; ++job) {",
         f"    const int ob = (int)(job % {nob}), n = (int)(job / {nob});",
         f"    const float *xn = x + (size_t)n * {c};",
         f"    for (int t = 0; t < {to}; ++t) {{",
         f"      const int o = ob * {to} + t;",
         f"      if (o >= {o}) break;",
         f"      const float *wr = w + (size_t)o * {c};",
         "      vf acc0 = vdup(0.0f), acc1 = vdup(0.0f);",
         "      int k = 0;",
         f"      for (; k + {2 * vw} <= {c}; k += {2 * vw}) {{",
         "        acc0 += vld(wr + k) * vld(xn + k);",
         f"        acc1 += vld(wr + k + {vw}) * vld(xn + k + {vw});",
         "      }",
         "      acc0 += acc1;",
         "      float s = bias[o];",
         f"      for (int l = 0; l < {vw}; ++l) s += acc0[l];",
         f"      for (; k < {c}; ++k) s += wr[k] * xn[k];"]
    if act == "relu":
        L.append("      s = s < 0.0f ? 0.0f : s;")   # a NaN fails the compare and stays
    elif act == "relu6":
        L.append("      s = s < 0.0f ? 0.0f : (s > 6.0f ? 6.0f : s);")
    L += [f"      y[(size_t)n * {o} + o] = s;", "    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)


def render_c(ir: ConvIR, sched: Schedule) -> str:
    """C source for one conv layer under sched: a GEMM for 1x1 convolutions, the kernel
    sched.kernel names where it applies (kernel_kind), else the pattern kernel (which also
    runs dense 3x3, depthwise and strided convolutions)."""
    if uses_gemm(ir, sched):
        return render_pointwise_gemm(ir, sched)
    if ir.res is not None:
        raise LRError(f"layer {ir.layer.name!r}: a residual add is fused only into the GEMM "
                      f"kernel (Schedule.kernel 'gemm'), not {sched.kernel!r}")
    if is_pointwise_layer(ir.layer):
        return render_pointwise(ir, sched)
    kind = kernel_kind(ir, sched)   # Schedule.kernel "depthwise" / "direct" where they apply
    if kind in ("depthwise", "direct"):
        return render_depthwise(ir, sched) if kind == "depthwise" else render_direct(ir, sched)
    if uses_taps(ir, sched):
        return render_taps(ir, sched)
    from workbench.codegen.render_pblock import render_pblock, uses_pblock
    if uses_pblock(ir, sched):
        return render_pblock(ir, sched)
    return render_conv(ir, sched)


# --- the "taps" kernel: one body for every pattern, input channels in L1-sized blocks -------

def taps_supported(ir: ConvIR) -> bool:
    """The taps kernel reads each tap as contiguous columns: stride 1, or any stride through
    a phase-split input (a plain stride-2 buffer needs the pattern kernel's lane gathers)."""
    return _steps(ir) == (1, 1)


def uses_taps(ir: ConvIR, sched: Schedule) -> bool:
    """True when render_c renders the taps kernel for this layer and schedule."""
    return sched.kernel == "taps" and taps_supported(ir) and not is_pointwise_layer(ir.layer)


def tap_offsets(ir: ConvIR) -> list[list[int]]:
    """Per pattern, per tap: floats from a tile's origin (channel 0, its first output row and
    column) to the input that tap reads, in ir.src's layout."""
    src = ir.src
    out = []
    for taps in ir.taps:
        offs = []
        for dy, dx in taps:
            ph, ro, co = ir.phase_tap(dy, dx)
            offs.append(ph * src.plane + ro * src.row_stride + co)
        out.append(offs)
    return out


def taps_blocks(ir: ConvIR, sched: Schedule) -> int:
    """Input-channel blocks of the taps kernel: ceil(channels per group / cblock), 1 if 0."""
    cb = int(sched.cblock)
    return max(1, -(-ir.cg // cb)) if cb else 1


def _taps_tile(ir: ConvIR, th: int, tw: int, ntaps: int) -> list[str]:
    """static void tt_{th}_{tw}: add kernels k0..k1 of one filter into a th x tw tile.

    mode bit 0: first channel block (start from the bias, else from the partial sums stored
    in the output), bit 1: last block (apply the activation). Every tap is one broadcast
    weight and th * tw unaligned loads, each feeding one FMA (a memory operand on x86)."""
    vw, dst = ir.vector, ir.dst
    rs = ir.src.row_stride
    drs = dst.row_stride
    room = dst.row_stride - dst.left >= -(-ir.wo // vw) * vw
    L = [f"static void tt_{th}_{tw}(const float *restrict xb, float *restrict yb, int x0,",
         "                       const int32_t *restrict off, const float *restrict w,"
         " int k0, int k1, int mode, float bias) {"]
    L += [f"  vf a{t}_{j};" for t in range(th) for j in range(tw)]
    L.append("  if (mode & 1) {")
    L += [f"    a{t}_{j} = vdup(bias);" for t in range(th) for j in range(tw)]
    L.append("  } else {")
    for t in range(th):
        for j in range(tw):
            # a partial last vector: read lane by lane (a whole load could pass the buffer end)
            L.append(f"    if (x0 + {vw * (j + 1)} <= {ir.wo}) a{t}_{j} = vld(yb + {t * drs + vw * j});"
                     f" else {{ a{t}_{j} = vdup(0.0f); for (int l = 0; l < {ir.wo} - x0 - {vw * j};"
                     f" ++l) a{t}_{j}[l] = yb[{t * drs + vw * j} + l]; }}")
    L.append("  }")
    L += ["  for (int k = k0; k < k1; ++k) {",
          f"    const int32_t *o = off + (size_t)k * {ntaps};",
          f"    const float *wk = w + (size_t)k * {ntaps};"]
    for tap in range(ntaps):
        L += [f"    {{ const float *q = xb + o[{tap}]; const vf wt = vdup(wk[{tap}]);"]
        L += [f"      a{t}_{j} += wt * vld(q + {t * rs + vw * j});"
              for t in range(th) for j in range(tw)]
        L.append("    }")
    L.append("  }")
    for last, act in ((1, ir.act), (0, "none")):
        L.append(f"  if ({'' if last else '!'}(mode & 2)) {{")
        for t in range(th):
            L.append(f"    {{ float *yr = yb + {t * drs};")
            for j in range(tw):
                v = _act(act, f"a{t}_{j}")
                L.append(f"      if (x0 + {vw * (j + 1)} <= {ir.wo}) vst(yr + {vw * j}, {v});")
                if room and last:
                    L.append(f"      else vst(yr + {vw * j}, vkeep({v}, {ir.wo} - x0 - {vw * j}));")
                else:
                    L.append(f"      else {{ vf tv = {v}; for (int l = 0; l < {ir.wo} - x0 - "
                             f"{vw * j}; ++l) yr[{vw * j} + l] = tv[l]; }}")
            L.append("    }")
        L.append("  }")
    L.append("}")
    return L


def render_taps(ir: ConvIR, sched: Schedule) -> str:
    """C source of the taps kernel, `int wb_conv(xin, yout, kptr, off, wptr, wts, bias, order,
    n, threads)` (render_conv's ABI with the arrays of storage.pack_taps).

    kptr: (O, B + 1) int32, kernels of execution slot i in channel block b are
    kptr[i, b]:kptr[i, b + 1]; off, wts: (K, T) int32 / float32, per kernel and tap its input
    offset (storage.pack_taps, from tap_offsets) and weight; wptr is not read. A job is one
    output row tile of one image (threads split row tiles, "rows"), or of one share of the
    filters ("filters"); inside it channel blocks run outermost, then filters, then column
    tiles, so the block's input rows are read from L1 by every filter.
    """
    vw, src, dst = ir.vector, ir.src, ir.dst
    th = min(int(sched.tile_h), ir.ho)
    rem = ir.ho % th
    nrt = -(-ir.ho // th)
    ncv = -(-ir.wo // vw)
    tw = min(int(sched.tile_w), ncv)
    wide, n_wide, narrow, n_narrow = even_split(ncv, tw)
    ntaps = max([len(t) for t in ir.taps] or [1])
    nb = taps_blocks(ir, sched)
    what = (f"conv {ir.o}x{ir.c}x{ir.kernel[0]}x{ir.kernel[1]} on {ir.h}x{ir.w}, stride "
            f"{ir.stride}, pad {ir.padding}, dilation {ir.dilation}, groups {ir.groups}, "
            f"{len(ir.taps)} patterns ({ntaps} taps each after padding), act {ir.act}, taps kernel, "
            f"{nb} channel block(s); schedule {sched.to_dict()}")
    L = [f"/* Generated by workbench.codegen.render_c: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    heights = sorted({th, rem} - {0})
    widths = sorted({wide if n_wide else 0, narrow if n_narrow else 0} - {0})
    for h in heights:
        for w in widths:
            L += _taps_tile(ir, h, w, ntaps)

    def cols(h: int, ind: str) -> list[str]:
        out = []
        for width, count, start in ((wide, n_wide, 0), (narrow, n_narrow, n_wide * wide)):
            if count:
                out += [f"{ind}for (int c = 0; c < {count}; ++c) {{",
                        f"{ind}  const int x0 = ({start} + c * {width}) * {vw};",
                        f"{ind}  tt_{h}_{width}(xb + x0, yb + x0, x0, off, wts, k0, k1, mode, bias[f]);",
                        f"{ind}}}"]
        return out
    if sched.parallel == "rows":
        head = [f"  const long jobs = (long)n_img * {nrt};",
                "  #pragma omp parallel for schedule(static) num_threads(threads)",
                "  for (long job = 0; job < jobs; ++job) {",
                f"    const int rt = (int)(job % {nrt}), n = (int)(job / {nrt});",
                f"    const int i0 = 0, i1 = {ir.o};"]
    else:
        head = ["  const int shares = threads > 0 ? threads : 1;",
                f"  const long jobs = (long)n_img * shares * {nrt};",
                "  #pragma omp parallel for schedule(static) num_threads(threads)",
                "  for (long job = 0; job < jobs; ++job) {",
                f"    const int rt = (int)(job % {nrt});",
                f"    const int q = (int)((job / {nrt}) % shares), n = (int)(job / ((long){nrt} * shares));",
                f"    const int i0 = (int)((long){ir.o} * q / shares), i1 = (int)((long){ir.o} * (q + 1) / shares);"]
    L += ["",
          "int wb_conv(const float *restrict xin, float *restrict yout, const int32_t *restrict kptr,",
          "            const int32_t *restrict off, const int32_t *restrict wptr,",
          "            const float *restrict wts, const float *restrict bias,",
          "            const int32_t *restrict order, int n_img, int threads) {",
          "  (void)wptr;"]
    L += head
    L += [f"    const int oy0 = rt * {th};",
          f"    const float *xn = xin + (size_t)n * {src.image} + (size_t)oy0 * {src.row_stride};",
          f"    float *yn = yout + (size_t)n * {dst.image} + (size_t)(oy0 + {dst.top}) * "
          f"{dst.row_stride} + {dst.left};"]
    # loop_order "cols_filter": one column tile at a time (blocks, then filters inside), so a
    # block's input is only as wide as one tile and more channels fit in L1
    per_col = sched.loop_order == "cols_filter"
    if per_col:
        L += [f"    for (int ct = 0; ct < {n_wide + n_narrow}; ++ct) {{",
              f"      const int wide = ct < {n_wide};",
              f"      const int x0 = (wide ? ct * {wide} : {n_wide * wide} + (ct - {n_wide}) * "
              f"{narrow}) * {vw};"]
    else:
        L.append("    {")
    L += [f"    for (int b = 0; b < {nb}; ++b) {{",
          f"      const int mode = (b == 0) | ((b == {nb - 1}) << 1);",
          "      for (int i = i0; i < i1; ++i) {",
          "        const int f = order[i];",
          f"        const int k0 = kptr[(size_t)i * {nb + 1} + b], k1 = kptr[(size_t)i * {nb + 1} + b + 1];",
          # an empty middle block leaves the partial sums where they are
          "        if (k0 == k1 && mode == 0) continue;",
          f"        const float *xb = xn + (size_t)((f / {ir.opg}) * {ir.cg}) * {src.chan};",
          f"        float *yb = yn + (size_t)f * {dst.chan};"]
    if sched.prefetch and nb > 1:
        # the next filter's partial sums (read back from L2 at the start of its tile)
        L.append("        if (i + 1 < i1 && b > 0) { float *yq = yn + (size_t)order[i + 1] * "
                 f"{dst.chan}{' + x0' if per_col else ''};")
        for t in range(th):
            for line in range(0, (tw if per_col else ncv) * vw, 16):
                L.append(f"          __builtin_prefetch(yq + {t * dst.row_stride + line});")
        L.append("        }")

    def one(h: int, ind: str) -> list[str]:
        if not per_col:
            return cols(h, ind)
        out = []
        if n_wide:
            out.append(f"{ind}{'if (wide) ' if n_narrow else ''}tt_{h}_{wide}(xb + x0, yb + x0, x0, "
                       "off, wts, k0, k1, mode, bias[f]);")
        if n_narrow:
            out.append(f"{ind}{'else ' if n_wide else ''}tt_{h}_{narrow}(xb + x0, yb + x0, x0, "
                       "off, wts, k0, k1, mode, bias[f]);")
        return out
    if rem:
        L.append(f"        if (oy0 + {th} <= {ir.ho}) {{")
        L += one(th, "          ")
        L.append("        } else {")
        L += one(rem, "          ")
        L.append("        }")
    else:
        L += one(th, "        ")
    # close: filters, blocks, column tile (or plain scope), job
    L += ["      }", "    }", "    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)


# --- depthwise and small-channel direct kernels -------------------------------------------

def is_depthwise_ir(ir: ConvIR) -> bool:
    """One input and one output channel per group (MobileNet's depthwise 3x3 convolutions)."""
    return ir.groups == ir.c == ir.o


def direct_supported(ir: ConvIR) -> bool:
    """The direct kernel computes every tap of a dense (groups 1) kxk conv, reading a
    stride-1, plain stride-2 or phase-split input: meant for few input channels (the 7x7 stem)."""
    return ir.groups == 1 and not is_pointwise_layer(ir.layer)


def kernel_kind(ir: ConvIR, sched: Schedule) -> str:
    """Which C kernel render_c emits for ir under sched: "pointwise", "depthwise", "direct",
    "taps", "pblock" or "pattern" (a kernel asked for where it does not apply falls back to
    pattern)."""
    if is_pointwise_layer(ir.layer):
        return "pointwise"
    if sched.kernel == "depthwise" and is_depthwise_ir(ir):
        return "depthwise"
    if sched.kernel == "direct" and direct_supported(ir):
        return "direct"
    if uses_taps(ir, sched):
        return "taps"
    if sched.kernel == "pblock" and not is_pointwise_layer(ir.layer):
        return "pblock"
    return "pattern"


def _s2_perm(vw: int) -> list[int]:
    """Lanes of a:b (2 * VW floats) holding columns 0, 2, 4, .. in the order one in-lane
    shuffle gives them on x86 (vshufps: per 128-bit lane a0 a2 b0 b2): no lane crossing per
    load, the output order is put right once per accumulator at the store."""
    return [4 * (i // 4) + 2 * (i % 2) + (vw if i % 4 >= 2 else 0) for i in range(vw)]


def _s2_unperm(vw: int) -> list[int]:
    """Accumulator lane holding output column i of a vector built with _s2_perm."""
    col = [p // 2 for p in _s2_perm(vw)]
    return [col.index(i) for i in range(vw)]


def _row_vectors(ir: ConvIR, base: str, cos: list[int], tw: int, indent: str,
                 name: str) -> list[str]:
    """const vf {name}{co}_{j}: the input vector tap column offset co reads for output vector
    j of a tile, from buffer row pointer base (base at the tile's first output column). Stride
    1 (or phase-split input): one unaligned load. Plain stride 2: the even (co even) or odd
    lanes of two loads at 2 * (co // 2), in _s2_perm's order; both parities share the loads."""
    vw = ir.vector
    _, cs = _steps(ir)
    if cs == 1:
        return [f"{indent}const vf {name}{co}_{j} = vld({base} + {vw * j + co});"
                for co in cos for j in range(tw)]
    L = []
    perm = _s2_perm(vw)
    for m in sorted({co // 2 for co in cos}):
        for j in range(tw):
            L += [f"{indent}const vf {name}l{m}_{j} = vld({base} + {2 * vw * j + 2 * m}),"
                  f" {name}h{m}_{j} = vld({base} + {2 * vw * j + 2 * m + vw});"]
    for co in cos:
        m, odd = divmod(co, 2)
        idx = ", ".join(str(p + odd) for p in perm)
        L += [f"{indent}const vf {name}{co}_{j} = __builtin_shufflevector({name}l{m}_{j}, "
              f"{name}h{m}_{j}, {idx});" for j in range(tw)]
    return L


def _unpermute(ir: ConvIR, accs: list[str], indent: str) -> list[str]:
    """Put accumulators built from _s2_perm vectors back in column order (plain stride 2)."""
    vw = ir.vector
    if _steps(ir)[1] == 1 or _s2_unperm(vw) == list(range(vw)):
        return []
    idx = ", ".join(map(str, _s2_unperm(vw)))
    return [f"{indent}{a} = __builtin_shufflevector({a}, {a}, {idx});" for a in accs]


def _tap_rows(ir: ConvIR, th: int) -> dict[tuple[int, int], list[tuple[int, int, int]]]:
    """(plane, buffer row from the tile's first row) -> [(output row, tap, column offset)]:
    every tap of the dense kernel, grouped by the input row it reads."""
    rs, _ = _steps(ir)
    kh, kw = ir.kernel
    by_u: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for t in range(kh * kw):
        ph, ro, co = ir.phase_tap(t // kw, t % kw)
        for t_out in range(th):
            by_u.setdefault((ph, rs * t_out + ro), []).append((t_out, t, co))
    return dict(sorted(by_u.items()))


def _dw_whole_planes(ir: ConvIR) -> bool:
    """True when the depthwise kernel writes whole channel planes per job, one column tile
    per row: the output rows have no room for a whole last vector (a plain NCHW buffer whose
    width is not a multiple of VW, e.g. 14 or 7), so a partial vector is stored whole with
    its extra lanes zeroed: they land in the next row, which the same job writes after it.
    Only the plane's last row needs lane-by-lane stores."""
    vw, dst = ir.vector, ir.dst
    ncv = -(-ir.wo // vw)
    return ir.wo % vw != 0 and dst.row_stride - dst.left < ncv * vw and ncv <= 4


def _dw_store(ir: ConvIR, t: int, tw: int, indent: str) -> list[str]:
    """Whole-plane mode store of row oy0 + t of a tile (all columns; see _dw_whole_planes)."""
    vw, dst = ir.vector, ir.dst
    L = [f"{indent}{{ float *yr = yo + (size_t)(oy0 + {t + dst.top}) * {dst.row_stride}"
         f" + {dst.left};"]
    for j in range(tw):
        v = _act(ir.act, f"a{t}_0_{j}")
        n = ir.wo - vw * j
        if n >= vw:
            L.append(f"{indent}  vst(yr + {vw * j}, {v});")
            continue
        # the zeroed lanes must stay inside this plane's rows still to be written
        last = ir.ho - 1 - -(-(vw - n) // dst.row_stride)
        L += [f"{indent}  if (oy0 + {t} <= {last}) vst(yr + {vw * j}, vkeep({v}, {n}));",
              # a constant-size copy: a few wide moves, not a loop over lanes
              f"{indent}  else {{ vf tv = {v}; memcpy(yr + {vw * j}, &tv, {n} * sizeof(float)); }}"]
    L.append(f"{indent}}}")
    return L


def render_depthwise(ir: ConvIR, sched: Schedule) -> str:
    """C source of the depthwise kernel, `int wb_conv(xin, yout, kptr, cidx, wptr, wts, bias,
    order, n, threads)` (render_conv's ABI; only wts and bias are read).

    wts: (O, kh * kw) float32, each channel's dense kernel (zeros where pruned). A job is one
    tile_h-row tile of one channel plane (a whole plane where _dw_whole_planes): its kh * kw
    weights are broadcast into registers once, then each tile_w-vector column tile keeps
    tile_h x tile_w accumulators while every input row the tile needs is loaded once and
    feeds all output rows and taps that read it (left / right neighbours are unaligned loads
    from the zero-bordered rows; plain stride 2 makes them with one in-lane shuffle each,
    _s2_perm). Bias and activation are fused.
    """
    vw, src, dst = ir.vector, ir.src, ir.dst
    rs, cs = _steps(ir)
    kh, kw = ir.kernel
    th = min(int(sched.tile_h), ir.ho)
    nrt = -(-ir.ho // th)
    ncv = -(-ir.wo // vw)
    whole = _dw_whole_planes(ir)
    tw = ncv if whole else min(int(sched.tile_w), ncv)
    wide, n_wide, narrow, n_narrow = even_split(ncv, tw)
    what = (f"depthwise conv {ir.o} channels {kh}x{kw} on {ir.h}x{ir.w}, stride {ir.stride}, "
            f"pad {ir.padding}, dilation {ir.dilation}, act {ir.act}, depthwise kernel"
            f"{', whole planes' if whole else ''}; schedule {sched.to_dict()}")
    jobs_per_plane = 1 if whole else nrt
    L = [f"/* Generated by workbench.codegen.render_c: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}"),
         "int wb_conv(const float *restrict xin, float *restrict yout, const int32_t *restrict kptr,",
         "            const int32_t *restrict cidx, const int32_t *restrict wptr,",
         "            const float *restrict wts, const float *restrict bias,",
         "            const int32_t *restrict order, int n_img, int threads) {",
         "  (void)kptr; (void)cidx; (void)wptr; (void)order;",
         f"  const long jobs = (long)n_img * {ir.o} * {jobs_per_plane};",
         "  #pragma omp parallel for schedule(static) num_threads(threads)",
         "  for (long job = 0; job < jobs; ++job) {",
         f"    const int rj = (int)(job % {jobs_per_plane}), c = (int)((job / {jobs_per_plane}) % "
         f"{ir.o}), n = (int)(job / ((long){jobs_per_plane} * {ir.o}));",
         f"    const float *xc = xin + (size_t)n * {src.image} + (size_t)c * {src.chan};",
         f"    float *yo = yout + (size_t)n * {dst.image} + (size_t)c * {dst.chan};",
         f"    const float *wc = wts + (size_t)c * {kh * kw};",
         "    const float b = bias[c];"]
    L += [f"    const vf w{t} = vdup(wc[{t}]);" for t in range(kh * kw)]
    if whole:
        L += [f"    (void)rj; for (int rt = 0; rt < {nrt}; ++rt) {{"]
    else:
        L += ["    { const int rt = rj;"]
    L.append(f"    int oy0 = rt * {th}; if (oy0 > {ir.ho - th}) oy0 = {ir.ho - th};")
    rows = _tap_rows(ir, th)
    # an output row is stored right after the last input row it reads: only the rows in
    # flight (kh of them at stride 1) hold accumulators, so tile_h can be large
    done: dict[int, list[int]] = {}
    for k, uses in enumerate(rows.values()):
        for t_out, _, _ in uses:
            done[t_out] = k
    finish: dict[int, list[int]] = {}
    for t_out, k in sorted(done.items()):
        finish.setdefault(k, []).append(t_out)
    for width, count, start in ((wide, n_wide, 0), (narrow, n_narrow, n_wide * wide)):
        if not count:
            continue
        ind = "      "
        L += [f"    for (int ct = 0; ct < {count}; ++ct) {{",
              f"{ind}const int x0 = ({start} + ct * {width}) * {vw};",
              f"{ind}const float *xr = xc + (size_t)({rs} * oy0) * {src.row_stride} + {cs} * x0;"]
        L += [f"{ind}vf a{t}_0_{j} = vdup(b);" for t in range(th) for j in range(width)]
        for k, ((ph, u), uses) in enumerate(rows.items()):
            L.append(f"{ind}{{ const float *r = xr + {ph * src.plane + u * src.row_stride};")
            L += _row_vectors(ir, "r", sorted({co for _, _, co in uses}), width, ind + "  ", "s")
            L += [f"{ind}  a{t_out}_0_{j} += w{t} * s{co}_{j};"
                  for t_out, t, co in uses for j in range(width)]
            L.append(f"{ind}}}")
            for t_out in finish.get(k, []):
                L += _unpermute(ir, [f"a{t_out}_0_{j}" for j in range(width)], ind)
                L += _dw_store(ir, t_out, width, ind) if whole else \
                    _store_lines(dst, ir.wo, vw, ir.act, 1, width, ind, "x0", f"oy0 + {t_out}",
                                 acc=f"a{t_out}_")
        L.append("    }")
    L += ["    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)


def render_direct(ir: ConvIR, sched: Schedule) -> str:
    """C source of the direct kernel for dense convs with few input channels (the 7x7 stem),
    `int wb_conv(xin, yout, kptr, cidx, wptr, wts, bias, order, n, threads)` (render_conv's
    ABI; only wts and bias are read).

    wts: storage.pack_direct(weight, tile_o), (ceil(O / tile_o), C, kh * kw, tile_o) float32.
    A job is tile_h output rows of one block of tile_o filters; each tile_w-vector column tile
    keeps tile_o x tile_h x tile_w accumulators, and every input vector (loaded once per tap
    row, plain stride 2 through one in-lane shuffle) feeds tile_o FMAs with broadcast weights.
    Filter blocks are the fastest job index, so a row's input stays in L1 for all of them.
    """
    vw, src, dst = ir.vector, ir.src, ir.dst
    rs, cs = _steps(ir)
    kh, kw = ir.kernel
    fo = int(sched.tile_o)
    nob = -(-ir.o // fo)
    th = min(int(sched.tile_h), ir.ho)
    nrt = -(-ir.ho // th)
    ncv = -(-ir.wo // vw)
    tw = min(int(sched.tile_w), ncv)
    wide, n_wide, narrow, n_narrow = even_split(ncv, tw)
    taps = kh * kw
    what = (f"direct conv {ir.o}x{ir.c}x{kh}x{kw} on {ir.h}x{ir.w}, stride {ir.stride}, pad "
            f"{ir.padding}, dilation {ir.dilation}, act {ir.act}, direct kernel; schedule "
            f"{sched.to_dict()}")
    L = [f"/* Generated by workbench.codegen.render_c: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}"),
         "int wb_conv(const float *restrict xin, float *restrict yout, const int32_t *restrict kptr,",
         "            const int32_t *restrict cidx, const int32_t *restrict wptr,",
         "            const float *restrict wts, const float *restrict bias,",
         "            const int32_t *restrict order, int n_img, int threads) {",
         "  (void)kptr; (void)cidx; (void)wptr; (void)order;",
         f"  const long jobs = (long)n_img * {nrt} * {nob};",
         "  #pragma omp parallel for schedule(static) num_threads(threads)",
         "  for (long job = 0; job < jobs; ++job) {",
         f"    const int ob = (int)(job % {nob}), rt = (int)((job / {nob}) % {nrt}),"
         f" n = (int)(job / ((long){nob} * {nrt}));",
         f"    int oy0 = rt * {th}; if (oy0 > {ir.ho - th}) oy0 = {ir.ho - th};",
         f"    const float *xn = xin + (size_t)n * {src.image};",
         f"    const float *wb = wts + (size_t)ob * {ir.c * taps * fo};"]
    rows = _tap_rows(ir, th)
    for width, count, start in ((wide, n_wide, 0), (narrow, n_narrow, n_wide * wide)):
        if not count:
            continue
        ind = "      "
        accs = [f"a{f}_{t}_{j}" for f in range(fo) for t in range(th) for j in range(width)]
        L += [f"    for (int ct = 0; ct < {count}; ++ct) {{",
              f"{ind}const int x0 = ({start} + ct * {width}) * {vw};"]
        L += [f"{ind}vf {a} = vdup(0.0f);" for a in accs]
        L += [f"{ind}for (int c = 0; c < {ir.c}; ++c) {{",
              f"{ind}  const float *xr = xn + (size_t)c * {src.chan} + (size_t)({rs} * oy0) * "
              f"{src.row_stride} + {cs} * x0;",
              f"{ind}  const float *wc = wb + (size_t)c * {taps * fo};"]
        for (ph, u), uses in rows.items():
            L.append(f"{ind}  {{ const float *r = xr + {ph * src.plane + u * src.row_stride};")
            L += _row_vectors(ir, "r", sorted({co for _, _, co in uses}), width, ind + "    ", "s")
            for t_out, t, co in uses:
                for f in range(fo):
                    L.append(f"{ind}    {{ const vf wt = vdup(wc[{t * fo + f}]);")
                    L += [f"{ind}      a{f}_{t_out}_{j} += wt * s{co}_{j};" for j in range(width)]
                    L.append(f"{ind}    }}")
            L.append(f"{ind}  }}")
        L.append(f"{ind}}}")
        L += _unpermute(ir, accs, ind)
        for f in range(fo):
            L += [f"{ind}if (ob * {fo} + {f} < {ir.o}) {{",
                  f"{ind}  const float b = bias[ob * {fo} + {f}];",
                  f"{ind}  float *yo = yout + (size_t)n * {dst.image} + (size_t)(ob * {fo} + {f}) * "
                  f"{dst.chan};"]
            L += [f"{ind}  a{f}_{t}_{j} += vdup(b);" for t in range(th) for j in range(width)]
            L += _store_lines(dst, ir.wo, vw, ir.act, th, width, ind + "  ", "x0", "oy0",
                              acc=f"a{f}_")
            L.append(f"{ind}}}")
        L.append("    }")
    L += ["  }", "  return 0;", "}", ""]
    return "\n".join(L)


def default_kernel(ir: ConvIR) -> str | None:
    """The kernel an untuned schedule should use where the pattern kernel is a poor fit:
    "depthwise" for depthwise layers, "direct" for dense convs with at most 4 input channels
    and kernels of 5x5 or more (the stem), else None (the C default)."""
    if is_pointwise_layer(ir.layer):
        return None
    if is_depthwise_ir(ir):
        return "depthwise"
    if direct_supported(ir) and ir.cg <= 4 and ir.kernel[0] * ir.kernel[1] >= 25:
        return "direct"
    return None


# --- the packed GEMM kernel for 1x1 convolutions ----------------------------------------------

def uses_gemm(ir: ConvIR, sched: Schedule) -> bool:
    """True when render_c renders the packed GEMM kernel (Schedule.kernel = "gemm", 1x1)."""
    return sched.kernel == "gemm" and is_pointwise_layer(ir.layer)


def gemm_row_width(ir: ConvIR) -> int:
    """Pixels per output row as the GEMM kernel numbers them: the output width, or, where the
    output has a border (a 3x3 reader's padding) and rows are not whole vectors, the width
    rounded up to whole vectors. Then no vector crosses a row end: each is one vector store,
    its lanes past the row end zeroed into the border (the vectors that crossed row ends were
    stored lane by lane). Only where every such lane lands on border (the row stride has room,
    and the last row's spill, if any, lands on a bottom border row or on the next plane's top
    border row), and where it pays: the padded lanes cost C FMAs each, a vector stored lane by
    lane about 24 cycles (AVX2). MobileNet-V2's expansions (C 24-160 into 28x28 to 7x7, 3.7 ->
    2.6 ms in all at 1 thread) pay; ResNet-50's first 1x1 of each block (C 256-2048) lost 7%."""
    vw, dst, wo = ir.vector, ir.dst, ir.wo
    wpad = round_up(wo, vw)
    flat = dst.row_stride == wo and dst.top == dst.left == 0
    if flat or wpad == wo or dst.phases != 1 or wpad > dst.row_stride:
        return wo
    spills = dst.left + wpad > dst.row_stride
    if spills and dst.plane_rows <= dst.top + ir.ho and dst.top == 0:
        return wo
    crossing = sum(1 for y in range(1, ir.ho) if (y * wo) % vw)   # row ends inside a vector
    # per filter: ho * (wpad - wo) / vw more vectors of C FMAs at 2 per cycle, against
    # `crossing` vectors of ~24 cycles each
    if ir.ho * (wpad - wo) * ir.c >= 48 * vw * crossing:
        return wo
    return wpad


# Channel steps ahead at which the GEMM kernel prefetches its packed weights. In a network
# every layer's weights come from DRAM (ResNet-50 streams ~64 MB per image), and with 49
# pixels per plane a weight feeds only a few FMAs: ResNet-50's 2048 -> 512 GEMM on 7x7 took
# 0.52 ms with its weights in cache and 0.89 ms in the network; prefetching 128 steps ahead
# (4 KB at 8 filters per tile) brought it to 0.55 (32 steps: 0.67, 512: 0.56).
GEMM_WEIGHT_PREFETCH = 128


def _gemm_micro(ir: ConvIR, to: int, nv: int, stride: int, unroll: int) -> list[str]:
    """static void gk_{nv}: one register tile, `to` filters x nv vectors of pixels, summed over
    the block's visited channels from the panel (`stride` floats between channels: a packed
    panel's row, or the input's own channel stride where it is read in place) and the packed
    weights (to floats per visited channel); bias first, activation and store last."""
    vw, dst, res = ir.vector, ir.dst, ir.res
    W = gemm_row_width(ir)
    P = ir.ho * W
    flat = dst.row_stride == ir.wo and dst.top == dst.left == 0
    L = [f"static void gk_{nv}(const float *restrict panel, const float *restrict w,",
         "                  const int32_t *restrict cl, int ne, float *restrict ys, int q0,",
         "                  const float *restrict bias, const int32_t *restrict slot, int nf"
         + (", const float *restrict rs) {" if res else ") {")]
    L += [f"  vf a{t}_{j} = vdup(bias[slot[{t}]]);" for t in range(to) for j in range(nv)]
    # one step per visited channel: nv vector loads of the panel, `to` broadcast weights,
    # to * nv independent FMAs (the accumulators hide the FMA latency)
    # a block that visits every channel reads the panel in order (no channel list loads)
    for dense in (True, False):
        L += [f"  if (ne == {ir.c}) {{" if dense else "  } else {",
              f"    #pragma GCC unroll {unroll}" if unroll > 1 else "",
              f"    for (int e = 0; e < {ir.c if dense else 'ne'}; ++e, w += {to}) {{",
              f"      const float *xr = panel + (size_t){'e' if dense else 'cl[e]'} * {stride};"]
        L += [f"      const vf x{j} = vld(xr + {vw * j});" for j in range(nv)]
        # the weights of this block and the next ones, GEMM_WEIGHT_PREFETCH steps ahead
        L.append(f"      __builtin_prefetch(w + {to * GEMM_WEIGHT_PREFETCH});")
        for t in range(to):
            L.append(f"      {{ const vf wv = vdup(w[{t}]);")
            L += [f"        a{t}_{j} += wv * x{j};" for j in range(nv)]
            L.append("      }")
        L.append("    }")
    L.append("  }")
    if W != ir.wo:
        return L + _gemm_row_stores(ir, to, nv, W)
    # where each vector of pixels q0 + VW * j lands: one run of a row (a plain vector store),
    # else lane by lane (it crosses a row end, or passes the last pixel)
    for j in range(nv):
        L.append(f"  const int p{j} = q0 + {vw * j};")
        if flat:
            L.append(f"  const int o{j} = p{j}, w{j} = p{j} + {vw} <= {P};")
        else:
            L.append(f"  const int y{j} = p{j} / {ir.wo}, x{j} = p{j} - y{j} * {ir.wo};")
            L.append(f"  const int o{j} = (y{j} + {dst.top}) * {dst.row_stride} + {dst.left} + x{j},"
                     f" w{j} = x{j} + {vw} <= {ir.wo} && p{j} + {vw} <= {P};")
    lane = "p + l" if flat else \
        f"((p + l) / {ir.wo} + {dst.top}) * {dst.row_stride} + {dst.left} + (p + l) % {ir.wo}"
    def store(acc: str, j: int) -> list[str]:
        out = []
        if res is not None:
            out += [f"    if (w{j}) {acc} += vld(rr + o{j});",
                    f"    else {{ const int p = p{j}; for (int l = 0; l < {vw} && p + l < {P};"
                    f" ++l) {acc}[l] += rr[{lane}]; }}"]
        v = _act(ir.act, acc)
        return out + [f"    if (w{j}) vst(yr + o{j}, {v});",
                      f"    else {{ const vf tv = {v}; const int p = p{j};"
                      f" for (int l = 0; l < {vw} && p + l < {P}; ++l) yr[{lane}] = tv[l]; }}"]
    return L + _gemm_filter_stores(ir, to, nv, store)


def _gemm_filter_stores(ir: ConvIR, to: int, nv: int,
                        store: Callable[[str, int], list[str]]) -> list[str]:
    """The end of gk_{nv}: for each of the tile's filters that exists (t < nf), its output
    plane yr (and its residual plane rr, when ir.res: in the output's layout, conv_ir checks),
    then store(accumulator, j) for each of its nv vectors."""
    L = []
    for t in range(to):
        L.append(f"  if ({t} < nf) {{ float *yr = ys + (size_t)slot[{t}] * {ir.dst.chan};")
        if ir.res is not None:
            L.append(f"    const float *rr = rs + (size_t)slot[{t}] * {ir.res.chan};")
        for j in range(nv):
            L += store(f"a{t}_{j}", j)
        L.append("  }")
    L.append("}")
    return L


def _gemm_row_stores(ir: ConvIR, to: int, nv: int, W: int) -> list[str]:
    """The end of gk_{nv} with rows of W (a whole number of vectors, > wo) pixels
    (gemm_row_width): every vector lies in one row; a row's last vector keeps its first
    wo % VW lanes and stores zeros past the row end, on the border."""
    vw, dst = ir.vector, ir.dst
    L = []
    for j in range(nv):
        L.append(f"  const int y{j} = (q0 + {vw * j}) / {W}, x{j} = q0 + {vw * j} - y{j} * {W};")
        L.append(f"  const int o{j} = (y{j} + {dst.top}) * {dst.row_stride} + {dst.left} + x{j};")

    def store(acc: str, j: int) -> list[str]:
        v = _act(ir.act, acc)
        return ([f"    {acc} += vld(rr + o{j});"] if ir.res is not None else []) + \
            [f"    vst(yr + o{j}, x{j} + {vw} <= {ir.wo} ? {v} : vkeep({v}, {ir.wo % vw}));"]
    return L + _gemm_filter_stores(ir, to, nv, store)


def _gemm_pack(ir: ConvIR, group: int, nr: int) -> list[str]:
    """static void gpack: copy the pixels of nt consecutive column tiles (tile i: nv[i]
    vectors from pixel q0[i]) of every input channel into panels (tile i at panel + i * C *
    nr, nr floats per channel), so the register tiles read them contiguously whatever the
    input layout, stride or plane size. Channels outermost: each channel's pixels of the
    whole group are read as one run (prefetcher-friendly)."""
    vw, src = ir.vector, ir.src
    W = gemm_row_width(ir)     # pixels past wo in a row (W > wo) read on past the row's end
    P = ir.ho * W
    rs, cs = _steps(ir)
    srow = src.row_stride
    flat = cs == 1 and rs == 1 and srow == ir.wo == W and src.top == src.left == 0
    L = ["static void gpack(const float *restrict xs, float *restrict panel, const int *q0,",
         "                  const int *nv, int nt) {"]
    if flat:
        # contiguous pixels: a straight copy (a last partial vector reads on into the next
        # channel or the buffer's slack; those lanes are never stored)
        L += [f"  for (int c = 0; c < {ir.c}; ++c) {{",
              f"    const float *xc = xs + (size_t)c * {src.chan};",
              "    for (int i = 0; i < nt; ++i) {",
              f"      float *pc = panel + ((size_t)i * {ir.c} + c) * {nr};",
              "      for (int j = 0; j < nv[i]; ++j) vst(pc + j * VW, vld(xc + q0[i] + j * VW));",
              "    }", "  }", "}"]
        return L
    nvec = group * (nr // vw)

    def at(p: str) -> str:
        return (f"({rs} * (({p}) / {W}) + {src.top}) * {srow} + {src.left} + "
                f"{cs} * (({p}) % {W})")
    # per vector: its offset in a channel if its pixels are one run of a row (run[v] = 1),
    # else per-lane offsets (it crosses a row end, or passes the last pixel)
    L += [f"  int off[{nvec}], run[{nvec}], lane[{nvec}][{vw}], nvt = 0;",
          "  for (int i = 0; i < nt; ++i)",
          "    for (int j = 0; j < nv[i]; ++j, ++nvt) {",
          f"      const int p = q0[i] + j * {vw}, x = p % {W};",
          f"      run[nvt] = x + {vw} <= {W};",
          f"      off[nvt] = {at('p')};",
          f"      for (int l = 0; l < {vw}; ++l) lane[nvt][l] = p + l < {P} ? {at('p + l')} : 0;",
          "    }",
          f"  for (int c = 0; c < {ir.c}; ++c) {{",
          f"    const float *xc = xs + (size_t)c * {src.chan};",
          "    int v = 0;",
          "    for (int i = 0; i < nt; ++i) {",
          f"      float *pc = panel + ((size_t)i * {ir.c} + c) * {nr};",
          "      for (int j = 0; j < nv[i]; ++j, ++v) {",
          "        const float *xr = xc + off[v];",
          "        if (run[v]) "]
    if cs == 1:
        L[-1] += "vst(pc + j * VW, vld(xr));"
    elif cs == 2:
        L[-1] += f"vst(pc + j * VW, {_even(vw, 'vld(xr)', f'vld(xr + {vw})')});"
    else:
        L[-1] += f"for (int l = 0; l < {vw}; ++l) pc[j * VW + l] = xr[{cs} * l];"
    L += [f"        else for (int l = 0; l < {vw}; ++l) pc[j * VW + l] = xc[lane[v][l]];",
          "      }", "    }", "  }", "}"]
    return L


def gemm_can_read_in_place(ir: ConvIR) -> bool:
    """Each input channel's pixels are already one run in the GEMM kernel's order (stride 1,
    no border, rows of exactly wo, numbered as gemm_row_width numbers the output) starting on
    a whole vector (the channel stride a multiple of VW: on 14x14 planes, 196 floats apart,
    most panel vectors would straddle two cache lines; ResNet-50's 14x14 GEMMs ran 8-10%
    slower in place)."""
    rs, cs = _steps(ir)
    s = ir.src
    return rs == cs == 1 and s.row_stride == ir.wo == gemm_row_width(ir) and \
        s.top == s.left == 0 and s.chan % ir.vector == 0


def gemm_group(ir: ConvIR, sched: Schedule) -> int:
    """Column tiles packed and run together per job by the GEMM kernel: Schedule.tile_h,
    capped so that the group's panels take at most 256 KiB (a share of L2, on the stack)."""
    nr = min(int(sched.tile_w), -(-ir.ho * gemm_row_width(ir) // ir.vector)) * ir.vector
    return max(1, min(int(sched.tile_h), (64 * 1024) // (ir.c * nr)))


def render_pointwise_gemm(ir: ConvIR, sched: Schedule) -> str:
    """C source of the packed GEMM kernel for a 1x1 convolution, render_pointwise's ABI
    `int wb_pointwise(xin, yout, cptr, clist, wpk, bias, order, n, threads)` and packing.

    Pixels are numbered across the whole output plane (rows joined), in column tiles of
    tile_w vectors. A job takes a group of gemm_group(...) consecutive tiles (Schedule.tile_h),
    packs their input pixels of every channel into contiguous panels (C x tile_w * VW floats
    per tile, on the thread's stack), then for each output block of tile_o filters runs the
    register tile over every panel of the group: the block's packed weights (its A sliver,
    storage.pack_block_sparse) stay in L1 across the group and each filter's output is written
    as one run of the group's pixels. Stores go straight to the output layout (a vector that
    crosses a row end is written lane by lane). parallel "rows": threads split the groups;
    "filters": each group's blocks are split into `threads` shares (each share packs the
    group itself). unroll_k: the channel loop unrolled that many times. pack 0: where the
    input allows it (gemm_can_read_in_place), the register tiles read the input where it
    lies instead of a packed copy: no copy per job, and with the filter split no copy per
    share (ResNet-50's 56x56 and 28x28 GEMMs at 2 threads, in the network: 10-18% faster; at
    1 thread some won, some lost, so the tuner decides).
    """
    vw = ir.vector
    to = int(sched.tile_o)
    W = gemm_row_width(ir)
    P = ir.ho * W
    nvp = -(-P // vw)
    tv = min(int(sched.tile_w), nvp)
    wide, n_wide, narrow, n_narrow = even_split(nvp, tv)
    nqt = n_wide + n_narrow
    nob = -(-ir.o // to)
    nr = wide * vw
    g = min(gemm_group(ir, sched), nqt)
    ngr = -(-nqt // g)
    inplace = sched.pack == 0 and gemm_can_read_in_place(ir)
    what = (f"pointwise conv {ir.o}x{ir.c} on {ir.h}x{ir.w}, stride {ir.stride}, act {ir.act}, "
            f"packed GEMM over {P} pixels{f' (rows of {W})' if W != ir.wo else ''} in "
            f"{nqt} column tile(s), {g} per job"
            f"{', input read in place' if inplace else ''}"
            f"{', residual add fused' if ir.res else ''}; schedule {sched.to_dict()}")
    L = [f"/* Generated by workbench.codegen.render_c: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    if not inplace:
        L += _gemm_pack(ir, g, nr)
    widths = sorted({wide if n_wide else 0, narrow if n_narrow else 0} - {0})
    for width in widths:
        L += _gemm_micro(ir, to, width, ir.src.chan if inplace else nr, max(1, int(sched.unroll_k)))
    rows = sched.parallel != "filters"
    shares = "1" if rows else "threads > 0 ? threads : 1"
    # With several threads the groups get even numbers of tiles, and for "rows" their count
    # is a multiple of the thread count, so that OpenMP's static split hands each thread the
    # same pixels (17 tiles in groups of 2 gave one thread 10 and the other 7: ResNet-50's
    # 28x28 GEMMs; ResNet-50 at 2 threads 3-4% faster in the network). At one thread the
    # groups stay full ones of g tiles, as tuned.
    groups = f"(({ngr} + t - 1) / t) * t" if rows else str(ngr)
    at_wide, at_narrow = _tile_start("qt", wide, n_wide, narrow, vw)
    L += ["",
          "int wb_pointwise(const float *restrict xin, float *restrict yout, const int32_t *restrict cptr,",
          "                 const int32_t *restrict clist, const float *restrict wpk,",
          "                 const float *restrict bias, const int32_t *restrict order, int n_img,",
          "                 int threads" + (", const float *restrict rin) {" if ir.res else ") {"),
          f"  const int shares = {shares}, t = threads > 0 ? threads : 1, ngr = {groups};",
          "  const long jobs = (long)n_img * ngr * shares;",
          "  #pragma omp parallel for schedule(static) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {",
          "" if inplace else f"    float panel[{g * ir.c * nr}] __attribute__((aligned(64)));",
          "    const int s = (int)(job % shares);",
          "    const int gr = (int)((job / shares) % ngr), n = (int)(job / shares / ngr);",
          f"    int q0[{g}], nv[{g}], nt = 0;",
          f"    const int qa = t > 1 ? (int)((long)gr * {nqt} / ngr) : gr * {g};",
          f"    const int qb = t > 1 ? (int)((long)(gr + 1) * {nqt} / ngr) : {nqt};",
          f"    for (int qt = qa; qt < qb && nt < {g}; ++qt, ++nt) {{",
          f"      q0[nt] = qt < {n_wide} ? {at_wide} : {at_narrow};",
          f"      nv[nt] = qt < {n_wide} ? {wide} : {narrow};",
          "    }",
          f"    const float *xs = xin + (size_t)n * {ir.src.image};",
          "" if inplace else "    gpack(xs, panel, q0, nv, nt);",
          f"    float *ys = yout + (size_t)n * {ir.dst.image};",
          f"    const float *rs = rin + (size_t)n * {ir.res.image};" if ir.res else "",
          f"    const int b0 = (int)((long){nob} * s / shares), b1 = (int)((long){nob} * (s + 1) / shares);",
          "    for (int ob = b0; ob < b1; ++ob) {",
          f"      const int e0 = cptr[ob], ne = cptr[ob + 1] - e0, nf = {ir.o} - ob * {to};",
          f"      const float *w = wpk + (size_t)e0 * {to};",
          f"      const int32_t *slot = order + (size_t)ob * {to};",
          "      for (int i = 0; i < nt; ++i) {",
          "        const float *pi = xs + q0[i];" if inplace else
          f"        const float *pi = panel + (size_t)i * {ir.c * nr};"]
    call = f"(pi, w, clist + e0, ne, ys, q0[i], bias, slot, nf{', rs' if ir.res else ''})"
    if len(widths) == 2:
        L += [f"        if (nv[i] == {wide}) gk_{wide}{call};", f"        else gk_{narrow}{call};"]
    else:
        L.append(f"        gk_{widths[0]}{call};")
    L += ["      }", "    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)
