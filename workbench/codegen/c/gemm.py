"""The packed GEMM kernel for 1x1 convolutions (Schedule.kernel = "gemm"), residual add fused.
"""
from __future__ import annotations

from collections.abc import Callable

from workbench.codegen.c.pattern import _tile_start
from workbench.codegen.c.prelude import PRELUDE, _act, _even, _lanes, _steps, even_split
from workbench.codegen.ir import ConvIR, is_pointwise_layer, round_up
from workbench.codegen.schedule import Schedule


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
    L = [f"/* Generated by workbench.codegen.c.gemm: {what} */",
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
