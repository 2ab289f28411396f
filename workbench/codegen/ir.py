"""Kernel IR: one LR layer with its shapes and buffer layouts fixed, ready for a C renderer.

The C emitter specialises every constant (shapes, strides, pattern taps, layouts), so a layer
plus its input shape plus the target's vector width is what it renders from. Buffer layouts
say where pixel (c, y, x) of a value lives, so producers can write straight into the padded,
row-aligned (or stride-phase split) layout their reader wants.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.codegen.lr import Layer, LRError


@dataclass(frozen=True)
class Layout:
    """Where (n, c, y, x) of a C x H x W value sits in a float buffer.

    Padded coordinates (y + top, x + left) are split into phases (sy, sx): plane
    ((y + top) % sy) * sx + (x + left) % sx holds rows (y + top) // sy and columns
    (x + left) // sx. Rows are `row` floats apart, planes `plane`, channels `chan`, images
    `image`; everything outside the H x W image is zero.

    cb > 1 (one phase only): channels in blocks of cb held in the lanes of each pixel
    (NCHW{cb}c, as XNNPACK and oneDNN keep them): (c, y, x) sits at (c // cb) * block +
    ((y + top) * row + x + left) * cb + c % cb. Small planes waste no vector lanes that way
    (c.blocked's kernels read and write it).
    """
    c: int
    h: int
    w: int
    top: int = 0
    left: int = 0
    sy: int = 1
    sx: int = 1
    rows: int = 0        # rows per plane (0: just enough)
    row: int = 0         # pixels per row (0: just enough)
    cb: int = 1          # channels per block, held in each pixel's lanes

    def __post_init__(self) -> None:
        if self.cb > 1 and (self.phases != 1 or self.c % self.cb):
            raise LRError(f"a channel-blocked layout needs one phase and channels a multiple "
                          f"of {self.cb}: {self}")

    @property
    def phases(self) -> int:
        """Number of phase planes."""
        return self.sy * self.sx

    @property
    def row_stride(self) -> int:
        """Floats between rows of a plane."""
        return self.row or -(-(self.w + self.left) // self.sx)

    @property
    def plane_rows(self) -> int:
        """Rows of a phase plane."""
        return self.rows or -(-(self.h + self.top) // self.sy)

    @property
    def plane(self) -> int:
        """Floats per phase plane."""
        return self.plane_rows * self.row_stride

    @property
    def chan(self) -> int:
        """Floats per channel."""
        return self.phases * self.plane

    @property
    def block(self) -> int:
        """Floats per block of cb channels."""
        return self.chan * self.cb

    @property
    def image(self) -> int:
        """Floats per image."""
        return self.c // self.cb * self.block

    @property
    def dense(self) -> bool:
        """True if this is plain NCHW (no padding, phases, row padding or channel blocks)."""
        return (self.top, self.left, self.sy, self.sx, self.cb) == (0, 0, 1, 1, 1) and \
            self.row_stride == self.w and self.plane_rows == self.h

    @property
    def tight(self) -> bool:
        """True if every float of the image is a value (no border, row padding or phases; any
        channel blocking): a producer writes all of it, so nothing in it must stay zero."""
        return (self.top, self.left, self.sy, self.sx) == (0, 0, 1, 1) and \
            self.row_stride == self.w and self.plane_rows == self.h

    def alloc(self, n: int, zero: bool = True) -> np.ndarray:
        """A zeroed (or, zero=False, uninitialised) (n, image) float32 buffer (64-byte
        aligned) for this layout."""
        image = self.image
        return aligned_floats(n * image, zero).reshape(n, image)

    def write(self, buf: np.ndarray, x: np.ndarray) -> None:
        """Store x (N, C, H, W) into buf (N, image) in this layout (the border stays zero)."""
        if self.cb > 1:
            v = self._blocks(buf, x.shape[0])
            v[:, :, self.top:self.top + self.h, self.left:self.left + self.w] = \
                x.reshape(x.shape[0], -1, self.cb, self.h, self.w).transpose(0, 1, 3, 4, 2)
            return
        v = buf.reshape(x.shape[0], self.c, self.phases, self.plane_rows, self.row_stride)
        for py in range(self.sy):
            for px in range(self.sx):
                ys = (py - self.top) % self.sy  # first image row landing in this phase
                xs = (px - self.left) % self.sx
                part = x[:, :, ys::self.sy, xs::self.sx]
                r0, c0 = (ys + self.top) // self.sy, (xs + self.left) // self.sx
                v[:, :, py * self.sx + px, r0:r0 + part.shape[2], c0:c0 + part.shape[3]] = part

    def read(self, buf: np.ndarray, n: int) -> np.ndarray:
        """The (n, C, H, W) value held in buf (a view when there is one phase)."""
        if self.cb > 1:
            v = self._blocks(buf, n)[:, :, self.top:self.top + self.h, self.left:self.left + self.w]
            return v.transpose(0, 1, 4, 2, 3).reshape(n, self.c, self.h, self.w)
        v = buf.reshape(n, self.c, self.phases, self.plane_rows, self.row_stride)
        if self.phases == 1:
            return v[:, :, 0, self.top:self.top + self.h, self.left:self.left + self.w]
        out = np.empty((n, self.c, self.h, self.w), np.float32)
        for py in range(self.sy):
            for px in range(self.sx):
                ys, xs = (py - self.top) % self.sy, (px - self.left) % self.sx
                r0, c0 = (ys + self.top) // self.sy, (xs + self.left) // self.sx
                nr = len(range(ys, self.h, self.sy))
                nc = len(range(xs, self.w, self.sx))
                out[:, :, ys::self.sy, xs::self.sx] = v[:, :, py * self.sx + px, r0:r0 + nr,
                                                        c0:c0 + nc]
        return out

    def _blocks(self, buf: np.ndarray, n: int) -> np.ndarray:
        """buf as (n, C / cb, rows, row, cb)."""
        return buf.reshape(n, self.c // self.cb, self.plane_rows, self.row_stride, self.cb)


# Rows start on a cache line (64 bytes): an unaligned vector load then crosses a line only
# when it starts in the line's second half, the same columns in every row.
ROW_ALIGN = 16
SLACK = 256


def aligned_floats(count: int, zero: bool = True) -> np.ndarray:
    """A zeroed (or, zero=False, uninitialised) float32 array of count floats, 64-byte
    aligned, with SLACK floats after its end that belong to it (whole-vector loads of a last
    partial vector stay in bounds)."""
    buf = (np.zeros if zero else np.empty)(count + 16 + SLACK, np.float32)
    off = (-buf.ctypes.data // 4) % 16
    return buf[off:off + count]


def round_up(v: int, m: int) -> int:
    """v rounded up to a multiple of m."""
    return -(-v // m) * m


@dataclass(frozen=True)
class ConvIR:
    """A conv2d layer with fixed geometry: what render_c needs besides the schedule.

    taps[p]: pattern p's (dy, dx) offsets; src / dst: input and output buffer layouts;
    ho, wo: output size; vector: floats per SIMD vector of the target; res: the layout of a
    residual added before the activation (a fused add; 1x1 GEMM kernels only), or None.
    """
    layer: Layer
    c: int
    h: int
    w: int
    o: int
    ho: int
    wo: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    act: str
    taps: tuple[tuple[tuple[int, int], ...], ...]
    src: Layout
    dst: Layout
    vector: int
    res: Layout | None = None

    @property
    def cg(self) -> int:
        """Input channels per group."""
        return self.c // self.groups

    @property
    def opg(self) -> int:
        """Output channels per group."""
        return self.o // self.groups

    def phase_tap(self, dy: int, dx: int) -> tuple[int, int, int]:
        """Tap (dy, dx) as (phase plane, row offset, column offset) in src, from output (0, 0)."""
        (dh, dw), (ph, pw) = self.dilation, self.padding
        y = dy * dh + self.src.top - ph   # buffer row (padded) read by output row 0
        x = dx * dw + self.src.left - pw
        return (y % self.src.sy) * self.src.sx + x % self.src.sx, y // self.src.sy, x // self.src.sx


def is_pointwise_layer(layer: Layer) -> bool:
    """A 1x1 conv with no padding and one group: the C emitter renders it as a GEMM."""
    a = layer.attrs
    return tuple(a["kernel"]) == (1, 1) and tuple(a["padding"]) == (0, 0) and a["groups"] == 1


def is_depthwise_layer(layer: Layer) -> bool:
    """One input and one output channel per group (MobileNet's depthwise convolutions); not
    a 1x1 with one group (that is pointwise)."""
    a = layer.attrs
    return int(a["groups"]) == int(a["in_channels"]) == int(a["out_channels"]) and \
        not is_pointwise_layer(layer)


def is_direct_candidate(layer: Layer) -> bool:
    """A dense (groups 1) conv with at most 4 input channels and a kernel larger than 1x1
    (the 7x7 stem, a first 3x3 layer): the direct kernel may beat the pattern kernel there."""
    a = layer.attrs
    return int(a["groups"]) == 1 and int(a["in_channels"]) <= 4 and \
        tuple(a["kernel"]) != (1, 1)


# At or above this share of O x kept columns non-zero, a layer is column-shaped: a few
# weights that train to exactly 0 inside kept columns do not change the kernel's choice.
COLUMN_DENSITY = 0.95


def is_column_shaped(layer: Layer) -> bool:
    """A non-1x1 conv with one group whose filters keep the same taps of each input channel
    (KernelPatterns.column_density >= COLUMN_DENSITY): column pruning's im2col columns, or a
    dense layer. The column kernel (c.column) runs these as a dense GEMM over kept columns."""
    a = layer.attrs
    return int(a["groups"]) == 1 and not is_pointwise_layer(layer) and \
        layer.kernel_patterns.column_density >= COLUMN_DENSITY


def is_dense_layer(layer: Layer) -> bool:
    """Every weight of the conv is kept (no pruning left a zero weight)."""
    kp = layer.kernel_patterns
    return kp.kept_weights == kp.total_kernels * kp.kernel_shape[0] * kp.kernel_shape[1]


def is_column_pruned(layer: Layer) -> bool:
    """A column-shaped conv with some column removed (not dense): the layers an untuned
    schedule and the tuner's space give the column kernel. Dense layers keep the kernels
    (and logged bests) they had: there the column kernel only ties or wins by up to 20%."""
    return is_column_shaped(layer) and not is_dense_layer(layer)


def reads_plain_stride2(layer: Layer) -> bool:
    """True for the stride-2 convs whose kernels read the plain buffer through one in-lane
    shuffle per vector (depthwise, and the few-channel convs the direct kernel runs). The
    pattern, taps and pblock kernels read stride 2 through phases instead: on the plain
    buffer each tap vector costs two loads and a lane-crossing gather (ResNet-50's stride-2
    3x3 layers ran at 5-6 useful GFLOP/s that way), far more than one relayout copy."""
    return is_depthwise_layer(layer) or is_direct_candidate(layer)


def pointwise_src_layout(layer: Layer, h: int, w: int) -> Layout:
    """Input layout of a 1x1 conv: plain NCHW (stride 2 gathers the even pixels of each row
    it reads), or for other strides split into phases (plane 0 = the pixels it reads)."""
    sh, sw = layer.attrs["stride"]
    if (sh, sw) in ((1, 1), (2, 2)):
        return Layout(int(layer.attrs["in_channels"]), h, w)
    return Layout(int(layer.attrs["in_channels"]), h, w, 0, 0, sh, sw)


def conv_src_layout(layer: Layer, h: int, w: int, vector: int, extra_cols: int = 0) -> Layout:
    """The input layout a conv kernel reads: a zero border of the layer's padding, rows a
    multiple of 16 floats long and long enough for whole-vector loads past the last output
    column, spare rows below for the last row tile. Stride 2 reads it as is where the kernel
    gathers in-lane (reads_plain_stride2); other strides get it split into stride phases."""
    a = layer.attrs
    (sh, sw), (ph, pw) = a["stride"], a["padding"]
    (kh, kw), (dh, dw) = a["kernel"], a["dilation"]
    c = int(a["in_channels"])
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    if (sh, sw) == (1, 1) or ((sh, sw) == (2, 2) and reads_plain_stride2(layer)):
        # Rows only as long as the padded image (rounded to whole vectors): a load running
        # past a row's end reads the next row, which only feeds lanes past the last output
        # column, and those are never stored. Tight rows keep more of the layer in cache.
        cols = w + 2 * pw + extra_cols
        rows = max(sh * (ho - 1) + dh * (kh - 1) + 2, h + 2 * ph)
        return Layout(c, h, w, ph, pw, 1, 1, rows=rows, row=round_up(cols, vector))
    # Phase planes get tight rows too: output column x < wo reads plane columns up to
    # x + (dw * (kw - 1)) // sw, so rows that long keep every stored lane inside its row.
    cols = max(wo + (dw * (kw - 1)) // sw + extra_cols, -(-(w + pw) // sw))
    rows = max(ho + (dh * (kh - 1)) // sh + 1, -(-(h + ph) // sh))
    # Planes of at most 8 columns get rows of 8 floats, two to a cache line: ResNet-50's
    # 14 -> 7 layer then reads 0.59 MB of phases, not 1.18, which fits a 1 MB L2 (0.64 ->
    # 0.44 ms alone on Zen 5).
    row = 8 if cols <= 8 else round_up(cols, max(vector, ROW_ALIGN))
    return Layout(c, h, w, ph, pw, sh, sw, rows=rows, row=row)


def conv_ir(layer: Layer, in_shape: tuple[int, int, int], vector: int,
            src: Layout | None = None, dst: Layout | None = None,
            res: Layout | None = None) -> ConvIR:
    """ConvIR of a conv2d layer on (C, H, W) inputs for a target with `vector`-float SIMD;
    res: the layout of a residual to add before the activation (must be dst's)."""
    if layer.op != "conv2d":
        raise LRError(f"conv_ir: layer {layer.name!r} is {layer.op}")
    a = layer.attrs
    c, h, w = (int(v) for v in in_shape)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (tuple(int(t) for t in a[k]) for k in
                                              ("kernel", "stride", "padding", "dilation"))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    o = int(a["out_channels"])
    kp = layer.kernel_patterns
    taps = tuple(tuple(kp.taps(p)) for p in range(kp.num_patterns))
    if src is None:
        src = pointwise_src_layout(layer, h, w) if is_pointwise_layer(layer) else \
            conv_src_layout(layer, h, w, vector)
    dst = dst or Layout(o, ho, wo)
    if src.cb != 1 or dst.cb != 1 or (res is not None and res.cb != 1):
        raise LRError(f"layer {layer.name!r}: channel-blocked layouts are read and written by "
                      f"c.blocked's kernels, not this one ({src} -> {dst})")
    if (src.c, src.h, src.w) != (c, h, w) or (src.sy, src.sx) not in ((sh, sw), (1, 1)) or \
            (src.phases == 1 and (sh, sw) not in ((1, 1), (2, 2))):
        raise LRError(f"layer {layer.name!r}: input layout {src} does not fit input {in_shape} "
                      f"with stride {(sh, sw)}")
    if src.top < ph or src.left < pw:
        raise LRError(f"layer {layer.name!r}: input layout border {src.top, src.left} is "
                      f"smaller than the padding {(ph, pw)}")
    if not is_pointwise_layer(layer):
        need = conv_src_layout(layer, h, w, vector)
        if need.phases != src.phases:
            raise LRError(f"layer {layer.name!r}: input layout {src} is not split into the "
                          f"phases the kernel reads ({need})")
        # the kernel reads whole vectors past the last output column and rows past the last
        # output row; a border wider than the padding shifts both further right / down
        if need.phases == 1:
            # loads may run past a row end (into the next row / the buffer's slack); only
            # the rows read must exist and the image must sit inside the border
            small = (src.plane_rows - (src.top - ph) < need.plane_rows or
                     src.row_stride < src.left + w + pw)
        else:
            small = (src.row_stride - (src.left - pw) // sw < need.row_stride or
                     src.plane_rows - (src.top - ph) // sh < need.plane_rows)
        if small:
            raise LRError(f"layer {layer.name!r}: input layout {src} is too small for the "
                          f"kernel's reads (needs {need})")
    if dst.phases != 1 or (dst.c, dst.h, dst.w) != (o, ho, wo):
        raise LRError(f"layer {layer.name!r}: output layout {dst} does not hold ({o}, {ho}, "
                      f"{wo}) in one phase")
    if res is not None and (res != dst or not is_pointwise_layer(layer)):
        raise LRError(f"layer {layer.name!r}: a residual add is fused only into a 1x1 conv "
                      f"and read in the output's layout ({dst}), got {res}")
    return ConvIR(layer, c, h, w, o, ho, wo, (kh, kw), (sh, sw), (ph, pw), (dh, dw),
                  int(a["groups"]), a["act"], taps, src, dst, vector, res)
