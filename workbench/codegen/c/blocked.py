"""C emitter for values in the channel-blocked layout (Layout.cb = VW, NCHW16c on AVX-512):
the 1x1 GEMM, the depthwise conv, the global average pool and the copies into and out of it.

Why a second layout: in plain NCHW the vector lanes run along an image row, so a 14-pixel
row fills 14 of 16 lanes and a 7-pixel row 7 (with row padding, MobileNet-V2's 14x14 and
7x7 blocks ran their 1x1 convs at 150-200 useful GFLOP/s, their depthwise convs at 20-90).
With channels in the lanes every lane is useful whatever the plane size, which is how
XNNPACK (TFLite) runs these blocks. The C plan uses it for small planes only (host.plan
BLOCKED_MAX_PIXELS): on large planes the NCHW kernels already match the peers.

GEMM: a register tile of MR pixels x NV vectors (NV * VW output channels); per input
channel, NV weight vectors are loaded and each pixel's input value is broadcast (one
vbroadcastss load on x86), MR * NV independent FMAs. Jobs are (output
channel group, pixel tile), group-major, so a thread keeps one group's weights hot while it
walks the pixels. Depthwise: one job per (channel block, output row); the kernel's kh * kw
weight vectors stay in registers; each input row of a tile of T outputs is loaded once
(T * stride + kw - 1 vectors) and feeds every tap that reads it.
"""
from __future__ import annotations

import numpy as np

from workbench.codegen.c.prelude import PRELUDE, _act, _lanes
from workbench.codegen.ir import Layout
from workbench.codegen.lr import Layer, LRError

# Register tile of the blocked GEMM: 7 pixels x 3 vectors (21 accumulators and 3 weight
# vectors of AVX-512's 32 registers); 7 divides the 28x28, 14x14 and 7x7 planes.
GEMM_MR = 7
GEMM_NV = 2
# Prefetch the next output group's weights while running this group's pixel tiles: a
# group's weights come from L3 on its first tile (MobileNet-V2's 7x7 1x1 convs ran 25-35%
# slower in the network than hot in L2).
GEMM_PREFETCH = True
# Outputs per depthwise register tile (a row of up to 8 outputs: 8 accumulators, kh * kw
# weights and one input row of vectors stay in registers).
DW_TILE = 8


def _prelude(vw: int) -> str:
    return PRELUDE.format(vw=vw, lanes=_lanes(vw), dup="{" + ", ".join(["x"] * vw) + "}")


def _pix(lay: Layout, w: int, p: str) -> str:
    """C expression: the float offset, in one channel block of lay, of pixel number p of a
    w-wide image (pixels numbered row by row)."""
    if lay.top == lay.left == 0 and lay.row_stride == w:
        return f"({p}) * {lay.cb}"
    return f"((({p}) / {w} + {lay.top}) * {lay.row_stride} + ({p}) % {w} + {lay.left}) * {lay.cb}"


def _check_blocked(*lays: Layout) -> int:
    cbs = {lay.cb for lay in lays}
    if len(cbs) != 1 or cbs == {1}:
        raise LRError(f"render_blocked: layouts are not blocked alike: {lays}")
    return cbs.pop()


def gemm_vectors(o: int, vw: int, nv: int | None = None) -> int:
    """Vectors of output channels per register tile of the blocked GEMM for o outputs."""
    return min(nv or GEMM_NV, o // vw)


def pack_gemm_weights(weight: np.ndarray, vw: int, nv: int | None = None) -> np.ndarray:
    """W (O, C) packed for the blocked GEMM: (groups of nv * vw filters, C, nv * vw) with nv
    from gemm_vectors, zero past O (one slab per output group, one row of nv vectors per
    input channel)."""
    w = np.asarray(weight, np.float32).reshape(weight.shape[0], -1)
    o, c = w.shape
    width = gemm_vectors(o, vw, nv) * vw
    groups = -(-o // width)
    out = np.zeros((groups * width, c), np.float32)
    out[:o] = w
    return np.ascontiguousarray(out.reshape(groups, width, c).transpose(0, 2, 1))


def pack_depthwise_weights(weight: np.ndarray, vw: int) -> np.ndarray:
    """Depthwise W (C, 1, kh, kw) as (C / vw, kh * kw, vw): each tap's weights of one
    channel block in one vector."""
    w = np.asarray(weight, np.float32)
    c = w.shape[0]
    return np.ascontiguousarray(w.reshape(c // vw, vw, -1).transpose(0, 2, 1))


def render_blocked_gemm(layer: Layer, src: Layout, dst: Layout, res: Layout | None,
                        mr: int | None = None, nv: int | None = None) -> str:
    """C source of `int wb_bgemm(xin, yout, wpk, bias, rin, n, threads)`: a 1x1 stride-1
    conv into a blocked layout from a blocked or a plain (one-phase NCHW) input, y = act(W x + bias (+ residual rin, in dst's layout)); wpk
    from pack_gemm_weights(W, VW, nv), bias padded to whole groups of nv * VW."""
    a = layer.attrs
    vw = _check_blocked(dst, *([res] if res is not None else []))
    plain = src.cb == 1      # a plain (NCHW) input, any channel count, read in place
    if src.phases != 1 or src.cb not in (1, vw):
        raise LRError(f"layer {layer.name!r}: the blocked GEMM reads a one-phase plain or "
                      f"{vw}-blocked input, got {src}")
    c, o = int(a["in_channels"]), int(a["out_channels"])
    if tuple(a["kernel"]) != (1, 1) or tuple(a["stride"]) != (1, 1) or int(a["groups"]) != 1 \
            or tuple(a["padding"]) != (0, 0):
        raise LRError(f"layer {layer.name!r}: the blocked GEMM runs 1x1 stride-1 convs only")
    if (src.c, dst.c, src.h, src.w) != (c, o, dst.h, dst.w) or (res is not None and res != dst):
        raise LRError(f"layer {layer.name!r}: layouts {src} -> {dst} (residual {res}) do not "
                      f"fit a {o}x{c} 1x1 conv")
    h, w = dst.h, dst.w
    P = h * w
    mr = min(mr or GEMM_MR, P)
    nvec = o // vw
    nv = gemm_vectors(o, vw, nv)
    width = nv * vw
    groups = -(-nvec // nv)
    nv_last = nvec - (groups - 1) * nv
    tiles = -(-P // mr)
    mr_last = P - (tiles - 1) * mr
    kb = c // vw
    # cache lines of the next group's weights to prefetch per channel block of a tile: the
    # group's c * width floats spread over its tiles
    pf_lines = -(-(c * width // 16) // (tiles * kb)) \
        if GEMM_PREFETCH and groups > 1 and not plain else 0
    what = (f"blocked 1x1 conv {o}x{c} on {h}x{w}, act {a['act']}, tiles of {mr} pixels x "
            f"{nv} vectors{', residual add fused' if res is not None else ''}")
    L = [f"/* Generated by workbench.codegen.c.blocked: {what} */", _prelude(vw)]
    for m, v in sorted({(mr, nv), (mr_last, nv), (mr, nv_last), (mr_last, nv_last)}):
        L += [f"static void gk_{m}_{v}(const float *restrict xs, const float *restrict w,",
              "                  const float *restrict b, float *restrict ys,",
              "                  const float *restrict rs, int p0, const float *pf) {",
              "  (void)rs; (void)pf;"]
        L += [f"  const float *x{i} = xs + {_pix(src, w, f'p0 + {i}')};" for i in range(m)]
        L += [f"  vf a{i}_{j} = vld(b + {j * vw});" for i in range(m) for j in range(v)]
        def fmas(wrow: str, xat: str, ind: str) -> list[str]:
            """One input channel: its v weight vectors from wrow, pixel i's value x{i}[xat]
            broadcast, m * v FMAs."""
            out = [f"{ind}const vf w{j} = vld({wrow} + {j * vw});" for j in range(v)]
            for i in range(m):
                out.append(f"{ind}{{ const vf xv = vdup(x{i}[{xat}]);")
                out += [f"{ind}  a{i}_{j} += xv * w{j};" for j in range(v)]
                out.append(f"{ind}}}")
            return out
        if plain:
            # channel k of pixel i lies a channel plane from channel k - 1
            L += ["  #pragma GCC unroll 8",
                  f"  for (int k = 0; k < {c}; ++k) {{",
                  f"    const float *wk = w + (size_t)k * {width};"]
            L += fmas("wk", f"(size_t)k * {src.chan}", "    ")
            L.append("  }")
        else:
            # channel block k, lane l: the pixel's value of channel k * VW + l
            L += [f"  for (int k = 0; k < {kb}; ++k) {{",
                  f"    const float *wk = w + (size_t)k * {vw * width};"]
            L += [f"    __builtin_prefetch(pf + (size_t)k * {pf_lines * 16} + {q * 16});"
                  for q in range(pf_lines)]
            L += [f"    #pragma GCC unroll {vw}",
                  f"    for (int l = 0; l < {vw}; ++l) {{"]
            L += fmas(f"wk + l * {width}", f"(size_t)k * {src.block} + l", "      ")
            L += ["    }", "  }"]
        for i in range(m):
            L.append(f"  {{ const size_t q = {_pix(dst, w, f'p0 + {i}')};")
            for j in range(v):
                if res is not None:
                    L.append(f"    a{i}_{j} += vld(rs + q + {j * dst.block});")
                L.append(f"    vst(ys + q + {j * dst.block}, {_act(a['act'], f'a{i}_{j}')});")
            L.append("  }")
        L.append("}")
    L += ["",
          "int wb_bgemm(const float *restrict xin, float *restrict yout, const float *restrict wpk,",
          "             const float *restrict bias, const float *restrict rin, int n_img,",
          "             int threads) {",
          f"  const long jobs = (long)n_img * {groups * tiles};",
          "  (void)rin;",
          "  #pragma omp parallel for schedule(static) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {",
          f"    const int n = (int)(job / {groups * tiles}), g = (int)(job / {tiles} % {groups}),",
          f"              t = (int)(job % {tiles});",
          f"    const float *xs = xin + (size_t)n * {src.image};",
          f"    const float *w = wpk + (size_t)g * {c * width}, *b = bias + (size_t)g * {width};",
          f"    float *ys = yout + (size_t)n * {dst.image} + (size_t)g * {nv * dst.block};",
          f"    const float *rs = {'rin + (size_t)n * %d + (size_t)g * %d' % (dst.image, nv * dst.block) if res is not None else '0'};",
          f"    const int full = g < {groups - 1} || {int(nv_last == nv)};",
          # this tile's share of the next group's weights (the last group: its own)
          f"    const float *pf = (g + 1 < {groups} ? w + {c * width} : w) + "
          f"(size_t)t * {kb * pf_lines * 16};",
          f"    if (t < {tiles - 1}) {{",
          f"      if (full) gk_{mr}_{nv}(xs, w, b, ys, rs, t * {mr}, pf);",
          f"      else gk_{mr}_{nv_last}(xs, w, b, ys, rs, t * {mr}, pf);",
          "    } else {",
          f"      if (full) gk_{mr_last}_{nv}(xs, w, b, ys, rs, t * {mr}, pf);",
          f"      else gk_{mr_last}_{nv_last}(xs, w, b, ys, rs, t * {mr}, pf);",
          "    }",
          "  }",
          "  return 0;",
          "}", ""]
    return "\n".join(L)


def depthwise_src_need(layer: Layer, h: int, w: int) -> tuple[int, int]:
    """(rows, pixels per row) from the top-left of the padding that the blocked depthwise
    kernel reads for an h x w input."""
    a = layer.attrs
    (kh, kw), (sh, sw), (ph, pw) = (tuple(int(t) for t in a[k])
                                    for k in ("kernel", "stride", "padding"))
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return max(sh * (ho - 1) + kh, h + ph), max(sw * (wo - 1) + kw, w + pw)


def render_blocked_depthwise(layer: Layer, src: Layout, dst: Layout) -> str:
    """C source of `int wb_bdw(xin, yout, wdw, bias, n, threads)`: a depthwise conv (any
    kernel, stride and padding; dilation 1) between blocked layouts; src's border must hold
    the padding (depthwise_src_need); wdw from pack_depthwise_weights."""
    a = layer.attrs
    vw = _check_blocked(src, dst)
    (kh, kw), (sh, sw), (ph, pw) = (tuple(int(t) for t in a[k])
                                    for k in ("kernel", "stride", "padding"))
    c = int(a["in_channels"])
    if int(a["groups"]) != c or int(a["out_channels"]) != c or \
            tuple(int(t) for t in a["dilation"]) != (1, 1):
        raise LRError(f"layer {layer.name!r}: the blocked depthwise kernel runs undilated "
                      f"depthwise convs only")
    ho, wo = dst.h, dst.w
    rows, cols = depthwise_src_need(layer, src.h, src.w)
    if src.top < ph or src.left < pw or src.plane_rows - (src.top - ph) < rows or \
            src.row_stride - (src.left - pw) < cols or (dst.c, src.c) != (c, c):
        raise LRError(f"layer {layer.name!r}: input layout {src} does not hold the padded "
                      f"input the blocked depthwise kernel reads ({rows} x {cols})")
    t_full = min(DW_TILE, wo)
    n_full, t_last = divmod(wo, t_full)
    what = (f"blocked depthwise {kh}x{kw} conv, stride ({sh}, {sw}), {c} channels on "
            f"{src.h}x{src.w}, act {a['act']}")
    L = [f"/* Generated by workbench.codegen.c.blocked: {what} */", _prelude(vw)]
    for t in sorted({t_full, t_last} - {0}):
        span = sw * (t - 1) + kw
        L += [f"static inline void dt_{t}(const float *restrict xr, float *restrict yr,",
              "                        const vf *restrict wv, vf bv) {"]
        L += [f"  vf a{i} = bv;" for i in range(t)]
        for dy in range(kh):
            L.append("  {")
            L += [f"    const vf x{k} = vld(xr + {(dy * src.row_stride + k) * vw});"
                  for k in range(span)]
            L += [f"    a{i} += wv[{dy * kw + dx}] * x{sw * i + dx};"
                  for i in range(t) for dx in range(kw)]
            L.append("  }")
        L += [f"  vst(yr + {i * vw}, {_act(a['act'], f'a{i}')});" for i in range(t)]
        L.append("}")
    L += ["",
          "int wb_bdw(const float *restrict xin, float *restrict yout, const float *restrict wdw,",
          "           const float *restrict bias, int n_img, int threads) {",
          f"  const long jobs = (long)n_img * {c // vw * ho};",
          "  #pragma omp parallel for schedule(static) num_threads(threads)",
          "  for (long job = 0; job < jobs; ++job) {",
          f"    const int n = (int)(job / {c // vw * ho}), cb = (int)(job / {ho} % {c // vw}),",
          f"              oy = (int)(job % {ho});",
          f"    vf wv[{kh * kw}];",
          f"    for (int k = 0; k < {kh * kw}; ++k) wv[k] = vld(wdw + ((size_t)cb * {kh * kw} + k) * {vw});",
          f"    const vf bv = vld(bias + (size_t)cb * {vw});",
          f"    const float *xr = xin + (size_t)n * {src.image} + (size_t)cb * {src.block} +",
          f"                      ((size_t)(oy * {sh} + {src.top - ph}) * {src.row_stride} + "
          f"{src.left - pw}) * {vw};",
          f"    float *yr = yout + (size_t)n * {dst.image} + (size_t)cb * {dst.block} +",
          f"                ((size_t)(oy + {dst.top}) * {dst.row_stride} + {dst.left}) * {vw};",
          f"    for (int i = 0; i < {n_full}; ++i)",
          f"      dt_{t_full}(xr + i * {t_full * sw * vw}, yr + i * {t_full * vw}, wv, bv);"]
    if t_last:
        L.append(f"    dt_{t_last}(xr + {n_full * t_full * sw * vw}, yr + {n_full * t_full * vw}, "
                 "wv, bv);")
    L += ["  }", "  return 0;", "}", ""]
    return "\n".join(L)


def render_blocked_global_avgpool(src: Layout, dst: Layout) -> str:
    """C source of `int wb_gap(x, y, n, threads)` for a blocked src: each channel block's
    pixel vectors summed, then spread into dst (one float per channel, any one-phase
    unblocked layout of C x 1 x 1)."""
    vw = src.cb
    if vw == 1 or dst.cb != 1 or (dst.c, dst.h, dst.w) != (src.c, 1, 1) or dst.phases != 1:
        raise LRError(f"render_blocked_global_avgpool: {src} -> {dst}")
    origin = dst.top * dst.row_stride + dst.left
    what = f"global average pool over blocked {src.c}x{src.h}x{src.w}"
    return "\n".join([
        f"/* Generated by workbench.codegen.c.blocked: {what} */", _prelude(vw),
        "int wb_gap(const float *restrict xin, float *restrict yout, int n_img, int threads) {",
        f"  const long jobs = (long)n_img * {src.c // vw};",
        "  #pragma omp parallel for schedule(static) num_threads(threads)",
        "  for (long job = 0; job < jobs; ++job) {",
        f"    const long n = job / {src.c // vw}, cb = job % {src.c // vw};",
        f"    const float *xc = xin + n * {src.image} + cb * {src.block};",
        "    vf s = vdup(0.0f);",
        f"    for (int y = 0; y < {src.h}; ++y)",
        f"      for (int x = 0; x < {src.w}; ++x)",
        f"        s += vld(xc + ((size_t)(y + {src.top}) * {src.row_stride} + x + {src.left}) * {vw});",
        f"    s *= vdup({1.0 / (src.h * src.w)!r}f);",
        f"    for (int l = 0; l < {vw}; ++l)",
        f"      yout[n * {dst.image} + (cb * {vw} + l) * {dst.chan} + {origin}] = s[l];",
        "  }",
        "  return 0;",
        "}", ""])


def render_blocked_relayout(src: Layout, dst: Layout) -> str:
    """C source of `int wb_relayout(x, y, n, threads)` between one-phase layouts where
    either is blocked (c.elementwise.render_relayout's ABI): one job per (image, block
    of the blocked side's channels, row); into blocks by in-register transposes
    (_relayout_into_blocks), out of them element by element (no network needs that often)."""
    if (src.c, src.h, src.w) != (dst.c, dst.h, dst.w) or src.phases != 1 or dst.phases != 1:
        raise LRError(f"render_blocked_relayout: {src} -> {dst}")
    cb = max(src.cb, dst.cb)
    if cb == 1:
        raise LRError(f"render_blocked_relayout: neither layout is blocked: {src}, {dst}")

    if src.cb == 1:
        return _relayout_into_blocks(src, dst)

    def at(lay: Layout, c: str) -> str:
        return (f"({c}) / {lay.cb} * {lay.block} + ({c}) % {lay.cb} + "
                f"((size_t)(y + {lay.top}) * {lay.row_stride} + x + {lay.left}) * {lay.cb}"
                if lay.cb > 1 else
                f"({c}) * {lay.chan} + (size_t)(y + {lay.top}) * {lay.row_stride} + x + {lay.left}")
    what = f"relayout {src.c}x{src.h}x{src.w}, channel blocks {src.cb} -> {dst.cb}"
    return "\n".join([
        f"/* Generated by workbench.codegen.c.blocked: {what} */",
        "#include <stddef.h>",
        "int wb_relayout(const float *restrict xin, float *restrict yout, int n_img, int threads) {",
        f"  const long jobs = (long)n_img * {src.c // cb * src.h};",
        "  #pragma omp parallel for schedule(static) num_threads(threads)",
        "  for (long job = 0; job < jobs; ++job) {",
        f"    const long n = job / {src.c // cb * src.h};",
        f"    const int b = (int)(job / {src.h} % {src.c // cb}), y = (int)(job % {src.h});",
        f"    const float *xs = xin + n * {src.image};",
        f"    float *ys = yout + n * {dst.image};",
        f"    for (int l = 0; l < {cb}; ++l)",
        f"      for (int x = 0; x < {src.w}; ++x) {{",
        f"        const int c = b * {cb} + l;",
        f"        ys[{at(dst, 'c')}] = xs[{at(src, 'c')}];",
        "      }",
        "  }",
        "  return 0;",
        "}", ""])


def _transpose_lines(vw: int) -> list[str]:
    """C statements transposing the vw x vw matrix held in vectors r0 .. r{vw-1} in place:
    log2(vw) stages, each swapping the off-diagonal s x s blocks of every 2s x 2s block by
    two-input shuffles (one vpermt2ps each on AVX-512)."""
    L = []
    s = vw // 2
    while s:
        for i in range(vw):
            if i & s:
                continue
            j = i | s
            lo = ", ".join(str(p if not p & s else vw + p - s) for p in range(vw))
            hi = ", ".join(str(p + s if not p & s else vw + p) for p in range(vw))
            L.append(f"      {{ const vf a = r{i}, b = r{j};"
                     f" r{i} = __builtin_shufflevector(a, b, {lo});"
                     f" r{j} = __builtin_shufflevector(a, b, {hi}); }}")
        s //= 2
    return L


def _relayout_into_blocks(src: Layout, dst: Layout) -> str:
    """wb_relayout from an unblocked src into blocked dst: per (image, channel block, row),
    vw x vw tiles (vw channels x vw pixels) loaded as vw row vectors, transposed in
    registers and stored as pixel vectors (element by element, MobileNet-V2's copy of 144 x
    28 x 28 into blocks took 0.057 ms at one thread, more than the 1x1 conv reading it)."""
    vw = dst.cb
    if dst.cb != vw or src.cb != 1:
        raise LRError(f"_relayout_into_blocks: {src} -> {dst}")
    nb = src.c // vw
    what = f"relayout {src.c}x{src.h}x{src.w} into blocks of {vw} channels"
    L = [f"/* Generated by workbench.codegen.c.blocked: {what} */", _prelude(vw),
         "int wb_relayout(const float *restrict xin, float *restrict yout, int n_img, int threads) {",
         f"  const long jobs = (long)n_img * {nb * src.h};",
         "  #pragma omp parallel for schedule(static) num_threads(threads)",
         "  for (long job = 0; job < jobs; ++job) {",
         f"    const long n = job / {nb * src.h};",
         f"    const int b = (int)(job / {src.h} % {nb}), y = (int)(job % {src.h});",
         f"    const float *xs = xin + n * {src.image} + (size_t)b * {vw * src.chan} +",
         f"                      (size_t)(y + {src.top}) * {src.row_stride} + {src.left};",
         f"    float *ys = yout + n * {dst.image} + (size_t)b * {dst.block} +",
         f"                ((size_t)(y + {dst.top}) * {dst.row_stride} + {dst.left}) * {vw};",
         f"    for (int x0 = 0; x0 < {src.w}; x0 += {vw}) {{"]
    # a last partial tile reads on past the row end (the next row, or the buffer's slack);
    # only its pixels of the image are stored
    L += [f"      vf r{i} = vld(xs + {i * src.chan} + x0);" for i in range(vw)]
    L += _transpose_lines(vw)
    L += [f"      const int m = {src.w} - x0 < {vw} ? {src.w} - x0 : {vw};"]
    L += [f"      if ({i} < m) vst(ys + (size_t)(x0 + {i}) * {vw}, r{i});" for i in range(vw)]
    L += ["    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)
