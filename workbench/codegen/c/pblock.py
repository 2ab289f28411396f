"""C emitter, "pblock" kernel: per-pattern straight-line code inside input-channel blocks.

The pattern kernel (c.pattern.render_conv) walks all of a filter's kernels for one register
tile before the next filter, so every filter re-reads its ~30% of the input channels' rows
from L2 (or L3): on VGG-16's 56- and 28-wide layers that traffic, not the FMAs, sets its
speed. The taps kernel (c.taps.render_taps) keeps a block of input channels in L1 while
every filter reads it, but its one generic body loads every (tap, output row) vector on its
own. This kernel does both: a job (one output row tile of one image) walks the input
channels in blocks of Schedule.cblock; for each block every filter runs render_c's
per-pattern bodies (c.pattern._pattern_body: each input row of the tile loaded once per
kernel and shared by every tap and output row reading it, lre 1 with unaligned loads or
lre 2 with column shifts made in registers) over its kernels in that block, on a tile_h x
tile_w register tile whose partial sums wait in the output buffer between blocks. Weights
are the FKW packing regrouped by (block, pattern) (storage.pack_blocked), so the per-pattern
loops are render_conv's with the pointers moved to the block.

Plain C with vector extensions, like every kernel of render_c (ports to NEON unchanged).
"""
from __future__ import annotations

from workbench.codegen.ir import ConvIR, is_pointwise_layer
from workbench.codegen.schedule import Schedule


def pblock_supported(ir: ConvIR) -> bool:
    """Any non-1x1 conv render_conv runs (stride 1, plain stride 2, phase-split strides)."""
    return not is_pointwise_layer(ir.layer)


def uses_pblock(ir: ConvIR, sched: Schedule) -> bool:
    """True when render_c renders this kernel for ir under sched."""
    return sched.kernel == "pblock" and pblock_supported(ir)


def pblock_blocks(ir: ConvIR, sched: Schedule) -> int:
    """Input-channel blocks: ceil(channels per group / cblock), 1 if cblock is 0."""
    cb = int(sched.cblock)
    return max(1, -(-ir.cg // cb)) if cb else 1


def pblock_group(ir: ConvIR, sched: Schedule) -> int:
    """Filters per group (Schedule.tile_o, at most O): a job walks the channel blocks for one
    group of filters, whose partial sums then stay in L1 between blocks."""
    return max(1, min(int(sched.tile_o), ir.o))


def _partial_lines(ir: ConvIR, th: int, tw: int, load: bool, indent: str) -> list[str]:
    """Load (load=True) or store the raw th x tw partial sums of the tile at (oy0, x0) of
    yo. Where the output row has room for whole vectors (the padded layouts of a network) a
    vector past the last column is moved whole: its extra lanes are never read as output and
    the last block's masked store zeroes them; else those lanes go one by one."""
    vw, dst, wo = ir.vector, ir.dst, ir.wo
    room = dst.row_stride - dst.left >= -(-wo // vw) * vw
    L = []
    for t in range(th):
        L.append(f"{indent}{{ float *yr = yo + (size_t)(oy0 + {t + dst.top}) * {dst.row_stride}"
                 f" + {dst.left} + x0;")
        for j in range(tw):
            a, p = f"a{t}_{j}", f"yr + {vw * j}"
            if room:
                op = f"{a} = vld({p})" if load else f"vst({p}, {a})"
                L.append(f"{indent}  {op};")
                continue
            n = f"{wo} - x0 - {vw * j}"
            if load:
                L.append(f"{indent}  if (x0 + {vw * (j + 1)} <= {wo}) {a} = vld({p}); else {{ "
                         f"{a} = vdup(0.0f); for (int l = 0; l < {n}; ++l) {a}[l] = ({p})[l]; }}")
            else:
                L.append(f"{indent}  if (x0 + {vw * (j + 1)} <= {wo}) vst({p}, {a}); else "
                         f"for (int l = 0; l < {n}; ++l) ({p})[l] = {a}[l];")
        L.append(f"{indent}}}")
    return L


def _pb_tile(ir: ConvIR, th: int, tw: int, lre: int) -> list[str]:
    """static void pb_{th}_{tw}: one filter's kernels of one channel block into the tile.

    kp, wp point at the filter's (block, pattern 0) entries of the blocked packing. mode bit
    0: first block (start from the bias, else from the partial sums in yo), bit 1: last
    block (activation, masked store keeping the border zero)."""
    from workbench.codegen.c.pattern import _pattern_body
    from workbench.codegen.c.prelude import _steps, _store_lines
    src = ir.src
    _, cs = _steps(ir)
    L = [f"static void pb_{th}_{tw}(const float *restrict xn, float *restrict yo, int oy0, int x0,",
         "                   const int32_t *restrict kp, const int32_t *restrict wp,",
         "                   const int32_t *restrict cidx, const float *restrict wts, int cb,"
         " float bias, int mode) {"]
    L += [f"  vf a{t}_{j};" for t in range(th) for j in range(tw)]
    L.append("  if (mode & 1) {")
    L += [f"    a{t}_{j} = vdup(bias);" for t in range(th) for j in range(tw)]
    L.append("  } else {")
    L += _partial_lines(ir, th, tw, True, "    ")
    L.append("  }")
    for p, taps in enumerate(ir.taps):
        L += [f"  /* pattern {p}: taps {list(taps)} */",
              f"  {{ const float *w = wts + wp[{p}];",
              f"    for (int k = kp[{p}]; k < kp[{p + 1}]; ++k, w += {len(taps)}) {{",
              f"      const float *xc = xn + (size_t)(cb + cidx[k]) * {src.chan} + {cs} * x0;"]
        L += _pattern_body(ir, p, th, tw, lre, "      ")
        L += ["    }", "  }"]
    L.append("  if (mode & 2) {")
    L += _store_lines(ir.dst, ir.wo, ir.vector, ir.act, th, tw, "    ", "x0", "oy0")
    L.append("  } else {")
    L += _partial_lines(ir, th, tw, False, "    ")
    L += ["  }", "}"]
    return L


def render_pblock(ir: ConvIR, sched: Schedule) -> str:
    """C source of `int wb_conv(xin, yout, kptr, cidx, wptr, wts, bias, order, n, threads)`
    (render_conv's ABI with the arrays of storage.pack_blocked).

    kptr, wptr: (O, B * P + 1) int32, kernels of slot i in channel block b with pattern p
    are kptr[i, b * P + p]:kptr[i, b * P + p + 1], their weights from wptr[i, b * P + p];
    cidx, wts, bias, order as in render_conv. A job is one output row tile of one image
    ("rows": threads split row tiles) or of one thread's share of the filters ("filters");
    inside it blocks run outermost, then filters, then column tiles (loop_order
    "filter_cols"), or column tiles outermost ("cols_filter": a block's input is one tile
    wide, so more channels fit in L1).
    """
    from workbench.codegen.c.prelude import PRELUDE, _lanes, even_split
    vw, src, dst = ir.vector, ir.src, ir.dst
    th = min(int(sched.tile_h), ir.ho)
    rem = ir.ho % th
    nrt = -(-ir.ho // th)
    ncv = -(-ir.wo // vw)
    tw = min(int(sched.tile_w), ncv)
    wide, n_wide, narrow, n_narrow = even_split(ncv, tw)
    P = len(ir.taps)
    nb = pblock_blocks(ir, sched)
    what = (f"conv {ir.o}x{ir.c}x{ir.kernel[0]}x{ir.kernel[1]} on {ir.h}x{ir.w}, stride "
            f"{ir.stride}, pad {ir.padding}, dilation {ir.dilation}, groups {ir.groups}, "
            f"{P} patterns, act {ir.act}, pblock kernel, {nb} channel block(s); schedule "
            f"{sched.to_dict()}")
    L = [f"/* Generated by workbench.codegen.c.pblock: {what} */",
         PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")]
    heights = sorted({th, rem} - {0})
    widths = sorted({wide if n_wide else 0, narrow if n_narrow else 0} - {0})
    for h in heights:
        for w in widths:
            L += _pb_tile(ir, h, w, int(sched.lre))
    args = "kp, wp, cidx, wts, cb, bias[f], mode"
    per_col = sched.loop_order == "cols_filter"

    def tiles(h: int, ind: str) -> list[str]:
        if per_col:
            out = []
            if n_wide:
                out.append(f"{ind}{'if (wide) ' if n_narrow else ''}pb_{h}_{wide}(xn, yo, oy0, "
                           f"x0, {args});")
            if n_narrow:
                out.append(f"{ind}{'else ' if n_wide else ''}pb_{h}_{narrow}(xn, yo, oy0, x0, "
                           f"{args});")
            return out
        out = []
        for width, count, start in ((wide, n_wide, 0), (narrow, n_narrow, n_wide * wide)):
            if count:
                out += [f"{ind}for (int c = 0; c < {count}; ++c)",
                        f"{ind}  pb_{h}_{width}(xn, yo, oy0, ({start} + c * {width}) * {vw}, "
                        f"{args});"]
        return out

    ng = -(-ir.o // pblock_group(ir, sched))
    gsz = -(-ir.o // ng)   # filters per group, as even as possible
    if sched.parallel == "rows":   # consecutive jobs (one thread's share): groups fastest
        split = [f"    const int g = (int)(job % {ng}), rt = (int)((job / {ng}) % {nrt});",
                 f"    const int n = (int)(job / {ng * nrt});"]
    else:
        split = [f"    const int rt = (int)(job % {nrt}), g = (int)((job / {nrt}) % {ng});",
                 f"    const int n = (int)(job / {ng * nrt});"]
    head = [f"  const long jobs = (long)n_img * {nrt * ng};",
            "  #pragma omp parallel for schedule(static) num_threads(threads)",
            "  for (long job = 0; job < jobs; ++job) {"] + split + [
            f"    const int i0 = g * {gsz}, i1 = i0 + {gsz} < {ir.o} ? i0 + {gsz} : {ir.o};"]
    L += ["",
          "int wb_conv(const float *restrict xin, float *restrict yout, const int32_t *restrict kptr,",
          "            const int32_t *restrict cidx, const int32_t *restrict wptr,",
          "            const float *restrict wts, const float *restrict bias,",
          "            const int32_t *restrict order, int n_img, int threads) {"]
    L += head
    L += [f"    const int oy0 = rt * {th};",
          f"    const float *xn = xin + (size_t)n * {src.image};",
          f"    float *yn = yout + (size_t)n * {dst.image};"]
    if per_col:
        L += [f"    for (int ct = 0; ct < {n_wide + n_narrow}; ++ct) {{",
              f"      const int wide = ct < {n_wide}; (void)wide;",
              f"      const int x0 = (ct < {n_wide} ? ct * {wide} : {n_wide * wide} + (ct - "
              f"{n_wide}) * {narrow}) * {vw};"]
    else:
        L.append("    {")
    L += [f"    for (int b = 0; b < {nb}; ++b) {{",
          f"      const int mode = (b == 0) | ((b == {nb - 1}) << 1);",
          "      for (int i = i0; i < i1; ++i) {",
          "        const int f = order[i];",
          f"        const int32_t *kp = kptr + (size_t)i * {nb * P + 1} + b * {P};",
          f"        const int32_t *wp = wptr + (size_t)i * {nb * P + 1} + b * {P};",
          # an empty middle block leaves the partial sums where they are
          f"        if (kp[0] == kp[{P}] && mode == 0) continue;",
          f"        const int cb = (f / {ir.opg}) * {ir.cg};",
          f"        float *yo = yn + (size_t)f * {dst.chan};"]
    if rem:
        # a shorter last tile (not one moved up over its neighbour: the rows they share
        # would hold partial sums of both, maybe on two threads)
        L.append(f"        if (oy0 + {th} <= {ir.ho}) {{")
        L += tiles(th, "          ")
        L.append("        } else {")
        L += tiles(rem, "          ")
        L.append("        }")
    else:
        L += tiles(th, "        ")
    L += ["      }", "    }", "    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)
