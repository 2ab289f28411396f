"""The depthwise kernel and the small-channel direct kernel.

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

from workbench.codegen.c.prelude import PRELUDE, _act, _lanes, _steps, _store_lines, even_split
from workbench.codegen.ir import ConvIR, is_pointwise_layer
from workbench.codegen.schedule import Schedule


def is_depthwise_ir(ir: ConvIR) -> bool:
    """One input and one output channel per group (MobileNet's depthwise 3x3 convolutions)."""
    return ir.groups == ir.c == ir.o


def direct_supported(ir: ConvIR) -> bool:
    """The direct kernel computes every tap of a dense (groups 1) kxk conv, reading a
    stride-1, plain stride-2 or phase-split input: meant for few input channels (the 7x7 stem)."""
    return ir.groups == 1 and not is_pointwise_layer(ir.layer)


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
    L = [f"/* Generated by workbench.codegen.c.depthwise: {what} */",
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
    L = [f"/* Generated by workbench.codegen.c.depthwise: {what} */",
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
