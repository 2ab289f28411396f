"""The column kernel (Schedule.kernel = "column"): an implicit GEMM over a conv's kept columns.

Column pruning (pruning.schemes.Column) removes an (input channel, tap) position from every
filter at once, so what is left is a dense GEMM of the O filters over K kept im2col columns
(c, dy, dx). The pattern, taps and pblock kernels walk each filter's own kernels, mostly of
1-3 taps there, and pay a load and loop overhead per few FMAs; this kernel instead keeps a
register tile of tile_o filters x tile_h rows x tile_w vectors of one output row band and
walks the K columns: each input vector is loaded once and feeds tile_o FMAs with broadcast
weights, read in order from the packing storage.pack_columns ([filter group][k][tile_o]).
The columns' input offsets are literals in a static table of the source (from the input
Layout), walked unroll_k columns per pass: one straight-line body per column spilled under
GCC 12 (it hoists loads far ahead; 128 -> 128 on 64x64 at 8x took 3.4 ms against 0.8 as a
loop, on Zen 5). Stride 1 and phase-split strided inputs read alike (ConvIR.phase_tap).

Plain C with vector extensions, like every kernel of render_c (ports to NEON unchanged).
"""
from __future__ import annotations

from workbench.codegen.c.prelude import PRELUDE, _lanes, _steps, _store_lines, even_split
from workbench.codegen.ir import ConvIR, is_pointwise_layer
from workbench.codegen.schedule import Schedule


def column_supported(ir: ConvIR) -> bool:
    """The column kernel reads every kept column as contiguous input vectors: one group, not
    a 1x1 GEMM, stride 1 or a phase-split strided input (not a plain stride-2 buffer)."""
    return ir.groups == 1 and not is_pointwise_layer(ir.layer) and _steps(ir) == (1, 1)


def uses_column(ir: ConvIR, sched: Schedule) -> bool:
    """True when render_c renders the column kernel for this layer and schedule."""
    return sched.kernel == "column" and column_supported(ir)


def column_offsets(ir: ConvIR) -> list[int]:
    """Per kept column (KernelPatterns.kept_columns), floats from a tile's origin (channel 0,
    its first output row and column) to the input it reads, in ir.src's layout."""
    src = ir.src
    out = []
    for c, dy, dx in ir.layer.kernel_patterns.kept_columns():
        ph, ro, co = ir.phase_tap(dy, dx)
        out.append(c * src.chan + ph * src.plane + ro * src.row_stride + co)
    return out


def _tile(ir: ConvIR, K: int, fo: int, th: int, tw: int, unroll: int, guard: bool,
          prefetch: bool) -> list[str]:
    """static void ct_{tw}[_pf]: tile_o filters x th rows x tw vectors from output (oy0, x0);
    prefetch (_pf): also the input of the column tile to its right."""
    vw, rs = ir.vector, ir.src.row_stride
    accs = [(f, t, j) for f in range(fo) for t in range(th) for j in range(tw)]
    name = f"ct_{tw}{'_pf' if prefetch else ''}"
    L = [f"static void {name}(const float *restrict xb, float *restrict yg,"
         " const float *restrict wg,",
         "                 const float *restrict bg, int oy0, int x0, int nf) {"]
    L += [f"  vf a{f}_{t}_{j} = vdup(0.0f);" for f, t, j in accs]

    def body(q: str, w: str, ind: str) -> list[str]:
        """One column: th * tw input vectors from q, each feeding fo FMAs (weights w[0..fo))."""
        out = [f"{ind}const vf x{t}_{j} = vld({q} + {t * rs + vw * j});"
               for t in range(th) for j in range(tw)]
        if prefetch:
            # this column's lines of the next column tile: every column jumps to another
            # channel row, too many streams for the hardware prefetchers to follow
            out += [f"{ind}__builtin_prefetch({q} + {t * rs + vw * tw + m});"
                    for t in range(th) for m in range(0, vw * tw, 16)]
        for f in range(fo):
            out.append(f"{ind}{{ const vf wt = vdup({w}[{f}]);")
            out += [f"{ind}  a{f}_{t}_{j} += wt * x{t}_{j};" for t in range(th) for j in range(tw)]
            out.append(f"{ind}}}")
        return out
    # unroll columns per pass: unroll_k bodies back to back, then the K % unroll_k left
    main = K - K % unroll
    if main:
        L.append(f"  for (int k = 0; k < {main}; k += {unroll}) {{")
        for u in range(unroll):
            L.append("    {")
            L += body(f"(xb + coff[k + {u}])", f"(wg + (size_t)(k + {u}) * {fo})", "      ")
            L.append("    }")
        L.append("  }")
    if K > main:
        L.append(f"  for (int k = {main}; k < {K}; ++k) {{")
        L += body("(xb + coff[k])", f"(wg + (size_t)k * {fo})", "    ")
        L.append("  }")
    for f in range(fo):
        # the last filter group may be partial: its padded filters (zero weights) are not stored
        L.append(f"  {f'if ({f} < nf) ' if guard and f else ''}{{ float *yo = yg + "
                 f"(size_t){f} * {ir.dst.chan}; const vf b = vdup(bg[{f}]);")
        L += [f"    a{f}_{t}_{j} += b;" for t in range(th) for j in range(tw)]
        L += _store_lines(ir.dst, ir.wo, vw, ir.act, th, tw, "    ", "x0", "oy0", acc=f"a{f}_")
        L.append("  }")
    L.append("}")
    return L


def _runs(wide: int, n_wide: int, narrow: int, n_narrow: int, prefetch: bool
          ) -> list[tuple[int, int, int, bool]]:
    """A row's column tiles as runs (width in vectors, first vector, tiles, prefetch ahead).
    With prefetch, every tile but the row's last prefetches the input of the tile to its
    right (a 9x9 32 -> 3 layer at 8x on 256x256: 3.0 -> 1.1 ms on Zen 5): the last, which
    has none, is a run of its own."""
    runs = [(w, v0, n) for w, v0, n in ((wide, 0, n_wide), (narrow, n_wide * wide, n_narrow))
            if n]
    out = [(w, v0, n, prefetch) for w, v0, n in runs[:-1]]
    w, v0, n = runs[-1]
    if prefetch and n > 1:
        out.append((w, v0, n - 1, True))
    out.append((w, v0 + (n - 1) * w, 1, False) if prefetch else (w, v0, n, False))
    return out


def render_column(ir: ConvIR, sched: Schedule) -> str:
    """C source of the column kernel, `int wb_conv(xin, yout, kptr, cidx, wptr, wts, bias,
    order, n, threads)` (render_conv's ABI; only wts and bias are read).

    wts: storage.pack_columns(weight, kept_columns, tile_o), (ceil(O / tile_o), K, tile_o)
    float32. loop_order "filter_cols": a job is one (image, row tile of tile_h rows, group
    of tile_o filters), groups fastest so a thread's jobs share input rows, walking the row's
    column tiles (tile_w vectors, as even as even_split makes them), each over all K
    columns; "cols_filter": a job is one (image, row tile), every filter group in turn on
    each column tile. prefetch = 1: each column tile prefetches the next one's input (_runs).
    The last row tile is moved up to end at the last row (it recomputes a few rows, one body
    height).
    """
    vw, src, dst = ir.vector, ir.src, ir.dst
    fo = max(1, min(int(sched.tile_o), ir.o))
    ng = -(-ir.o // fo)
    th = min(int(sched.tile_h), ir.ho)
    nrt = -(-ir.ho // th)
    ncv = -(-ir.wo // vw)
    tw = min(int(sched.tile_w), ncv)
    wide, n_wide, narrow, n_narrow = even_split(ncv, tw)
    offs = column_offsets(ir)
    K = len(offs)
    if max(offs, default=0) >= 2 ** 31:
        raise ValueError("input too large for 32-bit column offsets")
    what = (f"conv {ir.o}x{ir.c}x{ir.kernel[0]}x{ir.kernel[1]} on {ir.h}x{ir.w}, stride "
            f"{ir.stride}, pad {ir.padding}, dilation {ir.dilation}, {K} kept columns, act "
            f"{ir.act}, column kernel; schedule {sched.to_dict()}")
    L = [f"/* Generated by workbench.codegen.c.column: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    L.append(f"static const int32_t coff[{max(1, K)}] = {{{', '.join(map(str, offs)) or '0'}}};")
    runs = _runs(wide, n_wide, narrow, n_narrow, bool(sched.prefetch))
    for w, ahead in sorted({(w, ahead) for w, _, _, ahead in runs}):
        L += _tile(ir, K, fo, th, w, max(1, int(sched.unroll_k)), ir.o % fo != 0, ahead)
    L += ["",
          "int wb_conv(const float *restrict xin, float *restrict yout, const int32_t *restrict kptr,",
          "            const int32_t *restrict cidx, const int32_t *restrict wptr,",
          "            const float *restrict wts, const float *restrict bias,",
          "            const int32_t *restrict order, int n_img, int threads) {",
          "  (void)kptr; (void)cidx; (void)wptr; (void)order;",
          ]
    # "cols_filter": a job is a row tile; each column tile is run by every filter group in
    # turn, so its input columns (K x tile_h x tile_w vectors) are read from L1, not L2
    per_col = sched.loop_order == "cols_filter"
    njobs = nrt if per_col else nrt * ng
    L += [f"  const long jobs = (long)n_img * {njobs};",
          "  #pragma omp parallel for schedule(static) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {",
          f"    const int rt = (int)((job / {1 if per_col else ng}) % {nrt}),"
          f" n = (int)(job / {njobs});",
          f"    int oy0 = rt * {th}; if (oy0 > {ir.ho - th}) oy0 = {ir.ho - th};",
          f"    const float *xn = xin + (size_t)n * {src.image} + (size_t)oy0 * {src.row_stride};"]
    group = [f"const float *wg = wts + (size_t)g * {K * fo}, *bg = bias + g * {fo};",
             f"float *yg = yout + (size_t)n * {dst.image} + (size_t)(g * {fo}) * {dst.chan};",
             f"const int nf = {ir.o} - g * {fo} < {fo} ? {ir.o} - g * {fo} : {fo};"]
    if not per_col:
        L.append(f"    const int g = (int)(job % {ng});")
        L += ["    " + line for line in group]
    for width, v0, count, ahead in runs:
        L += [f"    for (int c = 0; c < {count}; ++c) {{",
              f"      const int x0 = ({v0} + c * {width}) * {vw};"]
        call = f"ct_{width}{'_pf' if ahead else ''}(xn + x0, yg, wg, bg, oy0, x0, nf);"
        if per_col:
            L.append(f"      for (int g = 0; g < {ng}; ++g) {{")
            L += ["        " + line for line in group]
            L += ["        " + call, "      }"]
        else:
            L.append("      " + call)
        L.append("    }")
    L += ["  }", "  return 0;", "}", ""]
    return "\n".join(L)
