"""The pattern kernel: render_conv(ir, schedule) -> C source of one pattern-pruned conv.

Pattern convolutions (any kh x kw, any stride through phase-split inputs, groups) keep a
tile_h x tile_w register tile of outputs for one filter while walking that filter's kernels
pattern group by pattern group, with one straight-line body per pattern. Load redundancy
elimination (Schedule.lre): each input row of the tile is loaded once per kernel and shared
by every tap and output row that reads it (lre >= 1); the column-shifted copies the left and
right taps need are made in registers from aligned loads (lre = 2).
"""
from __future__ import annotations

from workbench.codegen.c.prelude import (PRELUDE, _even, _lanes, _shift, _steps, _store_lines,
    even_split)
from workbench.codegen.ir import ConvIR
from workbench.codegen.schedule import Schedule


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
    L = [f"/* Generated by workbench.codegen.c.pattern: {what} */",
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
