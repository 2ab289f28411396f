"""The CUDA conv kernel: one pattern-specialised kernel for every conv of the LR (pattern +
connectivity pruned or dense, any kh x kw, stride, padding, dilation and groups, depthwise and
1x1 included), and its compact weight storage.

Schedule (cuda.schedule.GpuSchedule): a block computes a tile of output pixels for tile_f
consecutive filters (a filter group, inside one conv group). Storage (pack_gpu) lists each
filter group's kept kernels channel by channel: for input channel c, the entries
chan_ptr[g, c]:chan_ptr[g, c + 1] each name (filter in the group, pattern) in one code and
carry that kernel's kept taps. So every thread of a block walks the same entries: the
switch on the code is uniform across the block and no warp diverges, whatever patterns the
filters have. Input channels are staged cblock at a time in shared memory (loaded once for
all tile_f filters and all taps: the load redundancy elimination of the CPU kernels, in
shared memory); each thread then copies the input window its px_y x px_x pixels read into
registers once per channel, and every case of the switch is straight-line FMAs on that
window with the pattern's taps as literal offsets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.codegen.cuda.schedule import MAX_THREADS, SMEM_LIMIT, GpuSchedule
from workbench.codegen.lr import Layer, LRError

# More distinct patterns than this and the switch would grow past use: such a layer (e.g.
# irregularly pruned) runs with one pattern, all kh x kw taps, over its kept kernels.
MAX_PATTERNS = 16


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one conv (per image): input C x H x W, output O x HO x WO."""
    c: int
    h: int
    w: int
    o: int
    ho: int
    wo: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    groups: int
    act: str

    @property
    def cg(self) -> int:
        """Input channels per group."""
        return self.c // self.groups

    @property
    def og(self) -> int:
        """Filters per group."""
        return self.o // self.groups


def conv_geometry(layer: Layer, in_shape: tuple[int, ...]) -> ConvGeometry:
    """The geometry of conv `layer` on a (C, H, W) input."""
    a = layer.attrs
    c, h, w = (int(d) for d in in_shape)
    kh, kw = (int(k) for k in a["kernel"])
    sh, sw = (int(s) for s in a["stride"])
    ph, pw = (int(p) for p in a["padding"])
    dh, dw = (int(d) for d in a["dilation"])
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise LRError(f"layer {layer.name!r}: a {kh}x{kw} conv leaves no output on {h}x{w}")
    return ConvGeometry(c, h, w, int(a["out_channels"]), ho, wo, kh, kw, sh, sw, ph, pw, dh, dw,
                        int(a["groups"]), a["act"])


@dataclass(frozen=True)
class GpuWeights:
    """A conv's weights as the CUDA kernel reads them.

    patterns: (P, kh*kw) bool, the taps of each pattern; order: (O,) int32, filter at slot i;
    chan_ptr: (G, Cg + 1) int32, entries of filter group g for input channel c;
    code: (E,) int32, filter-in-group * P + pattern of each entry; wts: (E, T) float32, its
    kept taps in row-major order (zero past the pattern's own count; T a multiple of 4);
    bias: (O,) float32.
    """
    patterns: np.ndarray
    order: np.ndarray
    chan_ptr: np.ndarray
    code: np.ndarray
    wts: np.ndarray
    bias: np.ndarray
    tile_f: int


def pack_gpu(layer: Layer, tile_f: int) -> GpuWeights:
    """Pack conv `layer`'s kept kernels per group of tile_f filters, channel-major."""
    a = layer.attrs
    w = np.asarray(layer.params["weight"], np.float32)
    o, cg, kh, kw = w.shape
    groups = int(a["groups"])
    og = o // groups
    if og % tile_f and groups > 1:
        raise LRError(f"layer {layer.name!r}: tile_f {tile_f} does not divide its {og} "
                      f"filters per group")
    kp = layer.kernel_patterns
    if kp.num_patterns > MAX_PATTERNS or kp.num_patterns == 0:
        patterns = np.ones((1, kh * kw), bool)
        kpat = np.where(kp.kernel_pattern >= 0, 0, -1).astype(np.int32)
    else:
        patterns, kpat = kp.patterns, kp.kernel_pattern
    npat = patterns.shape[0]
    t_max = row_floats(patterns)
    # filter order: the reorder pass's (groups of similar filters) where filters may move
    # freely; grouped convs keep theirs, so a filter group stays inside one conv group
    order = np.asarray(layer.params.get("filter_order", np.arange(o)), np.int32) \
        if groups == 1 else np.arange(o, dtype=np.int32)
    n_groups = -(-o // tile_f)
    flat = w.reshape(o, cg, kh * kw)
    slots = np.full(n_groups * tile_f, -1, np.int64)
    slots[:o] = order
    kslot = np.where(slots[:, None] >= 0, kpat[np.maximum(slots, 0)], -1)   # (G TF, Cg)
    kept = kslot.reshape(n_groups, tile_f, cg).transpose(0, 2, 1) >= 0      # (G, Cg, TF)
    counts = kept.sum(axis=2).reshape(-1)
    chan_ptr = np.zeros(n_groups * cg + 1, np.int64)
    np.cumsum(counts, out=chan_ptr[1:])
    # entries channel-major inside each group: nonzero walks (g, c, f-in-group) in order
    gi, ci, fl = np.nonzero(kept)
    f = slots[gi * tile_f + fl]
    pat = kpat[f, ci]
    tap_idx = np.zeros((npat, t_max), np.int64)
    tap_ok = np.zeros((npat, t_max), bool)
    for p in range(npat):
        idx = np.flatnonzero(patterns[p])
        tap_idx[p, :idx.size], tap_ok[p, :idx.size] = idx, True
    rows = np.where(tap_ok[pat], flat[f[:, None], ci[:, None], tap_idx[pat]], 0.0)
    codes = (fl * npat + pat).astype(np.int32)
    # chan_ptr rows overlap by one entry: row g is chan_ptr[g * cg:(g + 1) * cg + 1]
    chan_ptr = np.stack([chan_ptr[g * cg:(g + 1) * cg + 1] for g in range(n_groups)])
    bias = np.asarray(layer.params.get("bias", np.zeros(o)), np.float32)
    return GpuWeights(patterns.astype(bool), order, chan_ptr.astype(np.int32), codes,
                      rows.astype(np.float32).reshape(-1, t_max), bias, tile_f)


def row_floats(patterns: np.ndarray) -> int:
    """Floats per stored kernel: the most taps of any pattern, rounded up to 4 (the kernel
    reads a kernel's taps in 16-byte loads)."""
    t = int(patterns.sum(axis=1).max())
    return t + (-t) % 4


def act_expr(act: str, v: str) -> str:
    """CUDA expression applying a fused activation to v."""
    if act == "none":
        return v
    if act == "relu":
        return f"fmaxf({v}, 0.0f)"
    if act == "relu6":
        return f"fminf(fmaxf({v}, 0.0f), 6.0f)"
    raise LRError(f"activation {act!r} is not fused into CUDA kernels; it runs as an act layer")


def check_schedule(g: ConvGeometry, s: GpuSchedule) -> None:
    """Raise ValueError if schedule s cannot run conv g (threads, shared memory, groups)."""
    if s.threads > MAX_THREADS:
        raise ValueError(f"{s}: {s.threads} threads per block (at most {MAX_THREADS})")
    if g.groups > 1 and g.og % s.tile_f:
        raise ValueError(f"{s}: tile_f does not divide the {g.og} filters per group")
    if g.groups > 1 and s.groups > 1:
        raise ValueError(f"{s}: filter groups of a grouped conv read different channels; "
                         f"one per block")
    ih, iwp = _tile_dims(g, s)
    smem = 4 * s.stages * min(s.cblock, g.cg) * ih * iwp
    if smem > SMEM_LIMIT:
        raise ValueError(f"{s}: the input tile needs {smem} bytes of shared memory "
                         f"(at most {SMEM_LIMIT})")


def fit_schedule(g: ConvGeometry, s: GpuSchedule) -> GpuSchedule:
    """s with cblock halved until its input tile fits in shared memory (strided and large
    kernels read wide tiles)."""
    while s.cblock > 1:
        ih, iwp = _tile_dims(g, s)
        if 4 * s.stages * min(s.cblock, g.cg) * ih * iwp <= SMEM_LIMIT:
            break
        s = s.with_(cblock=s.cblock // 2)
    return s


def _tile_dims(g: ConvGeometry, s: GpuSchedule) -> tuple[int, int]:
    ih = (s.tile_h - 1) * g.sh + (g.kh - 1) * g.dh + 1
    iw = (s.tile_w - 1) * g.sw + (g.kw - 1) * g.dw + 1
    return ih, iw + (-iw) % 4 + (1 if iw % 32 == 0 else 0)


def launch_dims(g: ConvGeometry, s: GpuSchedule, n: int) -> tuple[tuple[int, int, int],
                                                                   tuple[int, int, int]]:
    """(grid, block) of the conv kernel for batch n."""
    tiles = -(-g.ho // s.tile_h) * -(-g.wo // s.tile_w)
    return (tiles, -(-g.o // (s.tile_f * s.groups)), n * effective_ksplit(g, s)), \
        (s.threads, 1, 1)


def kernel_head(g: ConvGeometry, s: GpuSchedule, name: str) -> list[str]:
    """The lines every conv kernel starts with: signature, block and thread indices, zeroed
    accumulators a{f}_{py}_{px}, and the loop over this split's channel blocks up to the
    staged tile `tb`, opening `if (live)` (threads without a filter group only stage);
    kernel_loop_end closes both.

    Arguments: x, y, ptr and idx (the storage's int offsets and indices), wts, order, bias."""
    cb = min(s.cblock, g.cg)
    nblk = -(-g.cg // cb)
    ks = min(s.ksplit, nblk)
    ih, iwp = _tile_dims(g, s)
    iw = (s.tile_w - 1) * g.sw + (g.kw - 1) * g.dw + 1
    plane = ih * iwp
    tx_n = s.tile_w // s.px_x
    tiles_x = -(-g.wo // s.tile_w)
    tf = s.tile_f
    fp = [(f, py, px) for f in range(tf) for py in range(s.px_y) for px in range(s.px_x)]
    L: list[str] = [CP_ASYNC] if s.stages == 2 else []
    e = L.append
    e(f"extern \"C\" __global__ void __launch_bounds__({s.threads}) {name}(")
    e("    const float* __restrict__ x, float* __restrict__ y,")
    e("    const int* __restrict__ ptr, const int* __restrict__ idx,")
    e("    const float* __restrict__ wts, const int* __restrict__ order,")
    e("    const float* __restrict__ bias) {")
    e(f"  __shared__ __align__(16) float tile[{s.stages * cb * plane}];")
    n_groups = -(-g.o // tf)
    per = -(-(ih * iw) // s.threads)     # tile elements of one channel each thread stages
    e("  const int t = threadIdx.x;")
    e(f"  const int sub = t / {s.group_threads}, q = t % {s.group_threads};")
    e(f"  const int ty = q / {tx_n}, tx = q % {tx_n};")
    e(f"  const int oy0 = (blockIdx.x / {tiles_x}) * {s.tile_h};")
    e(f"  const int ox0 = (blockIdx.x % {tiles_x}) * {s.tile_w};")
    e(f"  const int grp = blockIdx.y * {s.groups} + sub;   // this thread's filter group")
    e(f"  const bool live = grp < {n_groups};")
    e(f"  const int n = blockIdx.z / {ks}, split = blockIdx.z % {ks};")
    # the conv group of this filter group (its first slot's filter; one filter group a block)
    e(f"  const int cgrp = {'0' if g.groups == 1 else f'order[grp * {tf}] / {g.og}'};")
    e(f"  const float* xn = x + ((long)n * {g.c} + cgrp * {g.cg}) * {g.h * g.w};")
    e(f"  const int iy0 = oy0 * {g.sh} - {g.ph}, ix0 = ox0 * {g.sw} - {g.pw};")
    for f, py, px in fp:
        e(f"  float a{f}_{py}_{px} = 0.0f;")
    if per <= 8:
        # where each of this thread's staged elements sits, worked out once: in the image
        # (goff, -1 outside: padding) and in the tile (soff, -1 past it)
        for j in range(per):
            e(f"  int goff{j} = -1, soff{j} = -1;")
            e(f"  if (t + {j * s.threads} < {ih * iw}) {{")
            e(f"    const int r = (t + {j * s.threads}) / {iw}, col = (t + {j * s.threads}) % {iw};")
            e("    const int yy = iy0 + r, xx = ix0 + col;")
            e(f"    soff{j} = r * {iwp} + col;")
            e(f"    if (yy >= 0 && yy < {g.h} && xx >= 0 && xx < {g.w}) goff{j} = yy * {g.w} + xx;")
            e("  }")
    e(f"  const int b0 = split * {nblk} / {ks}, b1 = (split + 1) * {nblk} / {ks};")
    buf = cb * plane
    if s.stages == 2:
        # double buffering: block b0 is copied in before the loop, block b + 1 while b is
        # computed; one cp.async group per block, so waiting for all but the newest group
        # waits for block b
        L += _stage(g, s, "b0", "tile", per)
        e("  asm volatile(\"cp.async.commit_group;\\n\" ::: \"memory\");")
    e("  for (int b = b0; b < b1; ++b) {")
    if s.stages == 2:
        e("    if (b + 1 < b1) {")
        L += ["  " + ln for ln in _stage(g, s, "b + 1", f"(tile + ((b - b0 + 1) & 1) * {buf})", per)]
        e("    }")
        e("    asm volatile(\"cp.async.commit_group;\\n\" ::: \"memory\");")
        e("    asm volatile(\"cp.async.wait_group 1;\\n\" ::: \"memory\");")
        e("    __syncthreads();")
        e(f"    const float* tb = tile + ((b - b0) & 1) * {buf};")
    else:
        e("    __syncthreads();")
        L += _stage(g, s, "b", "tile", per)
        e("    __syncthreads();")
        e("    const float* tb = tile;")
    e("    if (live) {")
    return L


def kernel_loop_end(s: GpuSchedule) -> list[str]:
    """The lines that close kernel_head's `if (live)` and its channel-block loop (with a
    double-buffered tile, every thread must be done with a buffer before it is refilled)."""
    return ["    }"] + (["    __syncthreads();"] if s.stages == 2 else []) + ["  }"]


def _stage(g: ConvGeometry, s: GpuSchedule, blk: str, dst: str, per: int) -> list[str]:
    """Lines that copy channel block `blk` of the input window into shared memory at `dst`
    (zeros for padding and for channels past the last): plain loads and stores, or cp.async
    copies with a zero fill (src-size 0) when the tile is double-buffered."""
    cb = min(s.cblock, g.cg)
    ih, iwp = _tile_dims(g, s)
    iw = (s.tile_w - 1) * g.sw + (g.kw - 1) * g.dw + 1
    plane = ih * iwp
    L: list[str] = []
    e = L.append

    def put(at: str, ok: str, src: str) -> str:
        if s.stages == 2:
            return f"wb_cp4({dst} + {at}, {ok} ? {src} : xn, {ok});"
        return f"{dst}[{at}] = {ok} ? __ldg({src}) : 0.0f;"
    if per <= 8:
        e("    #pragma unroll")
        e(f"    for (int cl = 0; cl < {cb}; ++cl) {{")
        e(f"      const int c = ({blk}) * {cb} + cl;")
        e(f"      const float* xc = xn + (long)c * {g.h * g.w};")
        for j in range(per):
            e(f"      if (soff{j} >= 0) " +
              put(f"cl * {plane} + soff{j}", f"(goff{j} >= 0 && c < {g.cg})", f"xc + goff{j}"))
        e("    }")
    else:
        e(f"    for (int i = t; i < {cb * ih * iw}; i += {s.threads}) {{")
        e(f"      const int cl = i / {ih * iw}, r = (i / {iw}) % {ih}, col = i % {iw};")
        e(f"      const int c = ({blk}) * {cb} + cl, yy = iy0 + r, xx = ix0 + col;")
        e(f"      const bool ok = c < {g.cg} && yy >= 0 && yy < {g.h} && xx >= 0 && xx < {g.w};")
        e("      " + put(f"cl * {plane} + r * {iwp} + col", "ok",
                         f"xn + (long)c * {g.h * g.w} + yy * {g.w} + xx"))
        e("    }")
    return L


# a 4-byte global -> shared copy that does not wait (sm_80+); src-size 0 writes a zero
CP_ASYNC = """static __device__ __forceinline__ void wb_cp4(float* dst, const float* src, bool ok) {
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\\n" :: "r"(d), "l"(src),
               "r"(ok ? 4 : 0) : "memory");
}"""


def render_conv(g: ConvGeometry, s: GpuSchedule, patterns: np.ndarray, name: str = "wb_conv") -> str:
    """CUDA source of __global__ name(x, y, chan_ptr, code, wts, order, bias): one conv.

    x: (N, C, H, W), y: (N, O, HO, WO) float32 NCHW; with ksplit > 1, y must be zero and the
    kernel adds to it atomically (its activation then runs as a separate pass)."""
    check_schedule(g, s)
    L = kernel_head(g, s, name)
    e = L.append
    cb = min(s.cblock, g.cg)
    ih, iwp = _tile_dims(g, s)
    plane = ih * iwp
    wr = (s.px_y - 1) * g.sh + (g.kh - 1) * g.dh + 1
    wc = (s.px_x - 1) * g.sw + (g.kw - 1) * g.dw + 1
    npat = patterns.shape[0]
    t_max = row_floats(patterns)
    tf = s.tile_f
    e(f"    const int* cp = ptr + grp * {g.cg + 1};")
    e(f"    const int cend = min({cb}, {g.cg} - b * {cb});")
    e("    #pragma unroll 1")
    e("    for (int cl = 0; cl < cend; ++cl) {")
    e(f"      const int e0 = __ldg(cp + b * {cb} + cl), e1 = __ldg(cp + b * {cb} + cl + 1);")
    e("      if (e0 == e1) continue;")
    e(f"      const float* s = tb + cl * {plane} + ty * {s.px_y * g.sh * iwp} + "
      f"tx * {s.px_x * g.sw};")
    for r in range(wr):
        e("      " + " ".join(f"const float v{r}_{c} = s[{r * iwp + c}];" for c in range(wc)))
    e("      #pragma unroll 1")
    e("      for (int k = e0; k < e1; ++k) {")
    e(f"        const float4* wk = reinterpret_cast<const float4*>(wts) + (long)k * {t_max // 4};")
    e("        switch (__ldg(idx + k)) {")
    for f in range(tf):
        for p in range(npat):
            taps = [(int(i) // g.kw, int(i) % g.kw) for i in np.flatnonzero(patterns[p])]
            e(f"        case {f * npat + p}: {{")
            for q in range(-(-len(taps) // 4)):   # the taps in 16-byte loads
                e(f"          const float4 q{q} = __ldg(wk + {q});")
            e("          " + " ".join(f"const float w{j} = q{j // 4}.{'xyzw'[j % 4]};"
                                      for j in range(len(taps))))
            for py in range(s.px_y):
                for px in range(s.px_x):
                    terms = [f"w{j} * v{py * g.sh + dy * g.dh}_{px * g.sw + dx * g.dw}"
                             for j, (dy, dx) in enumerate(taps)]
                    e(f"          a{f}_{py}_{px} += " + " + ".join(terms) + ";")
            e("          break; }")
    e("        }")
    e("      }")
    e("    }")
    L += kernel_loop_end(s)
    L += kernel_tail(g, s)
    return "\n".join(L) + "\n"


def kernel_tail(g: ConvGeometry, s: GpuSchedule) -> list[str]:
    """The epilogue every conv kernel ends with: bias (once, by split 0), the activation (or
    the atomic add of a split sum), the stores."""
    L: list[str] = []
    e = L.append
    tf, ks = s.tile_f, effective_ksplit(g, s)
    e(f"  const int oy = oy0 + ty * {s.px_y}, ox = ox0 + tx * {s.px_x};")
    for f in range(tf):
        e(f"  if (live && grp * {tf} + {f} < {g.o}) {{")
        e(f"    const int o = order[grp * {tf} + {f}];")
        e("    const float bo = split == 0 ? __ldg(bias + o) : 0.0f;")
        e(f"    float* yo = y + ((long)n * {g.o} + o) * {g.ho * g.wo};")
        for py in range(s.px_y):
            for px in range(s.px_x):
                v = f"a{f}_{py}_{px} + bo"
                cond = f"oy + {py} < {g.ho} && ox + {px} < {g.wo}"
                idx = f"(oy + {py}) * {g.wo} + ox + {px}"
                if ks > 1:
                    e(f"    if ({cond}) atomicAdd(yo + {idx}, {v});")
                else:
                    e(f"    if ({cond}) yo[{idx}] = {act_expr(g.act, v)};")
        e("  }")
    e("}")
    return L


def effective_ksplit(g: ConvGeometry, s: GpuSchedule) -> int:
    """The channel splits the kernel really makes (never more than its channel blocks)."""
    return min(s.ksplit, -(-g.cg // min(s.cblock, g.cg)))


def unpack_gpu(wts: GpuWeights, shape: tuple[int, int, int, int], groups: int) -> np.ndarray:
    """Dense W: (O, Cg, kh, kw) float32 back from the GPU storage (for checks)."""
    o, cg, kh, kw = shape
    out = np.zeros((o, cg, kh * kw), np.float32)
    npat = wts.patterns.shape[0]
    for g in range(wts.chan_ptr.shape[0]):
        for c in range(cg):
            for k in range(wts.chan_ptr[g, c], wts.chan_ptr[g, c + 1]):
                fl, p = divmod(int(wts.code[k]), npat)
                taps = np.flatnonzero(wts.patterns[p])
                out[wts.order[g * wts.tile_f + fl], c, taps] = wts.wts[k, :taps.size]
    return out.reshape(shape)
