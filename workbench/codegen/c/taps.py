"""The taps kernel (Schedule.kernel = "taps"): one body for every pattern, read through tables.

It trades the pattern kernel's per-pattern code for one body read through a per-kernel table
of tap offsets (stride-1 and phase-split inputs): no pattern branches, so input channels can
be walked in small blocks (Schedule.cblock) for every filter in turn, keeping a block's input
rows in L1 while all filters read them; partial sums wait in the output buffer between
blocks. It is plain vector-extension code too (each tap is a broadcast and unaligned loads
feeding FMAs), so it ports to NEON unchanged.
"""
from __future__ import annotations

from workbench.codegen.c.prelude import PRELUDE, _act, _lanes, _steps, even_split
from workbench.codegen.ir import ConvIR, is_pointwise_layer
from workbench.codegen.schedule import Schedule


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
    L = [f"/* Generated by workbench.codegen.c.taps: {what} */",
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
