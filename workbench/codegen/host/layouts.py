"""Which buffer layout each value of a C plan wants: its readers' and its producer's.

Every value gets one buffer layout, chosen for its readers: the zero-bordered, row-aligned
layout its stride-1 convolutions read (so the producing kernel writes straight into it and
no padding copy is made), else plain NCHW. Values on small planes (at most
BLOCKED_MAX_PIXELS pixels) that only 1x1 and depthwise convs make and read are held
channel-blocked instead (Layout.cb, c.blocked): those convs then run the blocked kernels,
which use every vector lane whatever the plane size.
"""
from __future__ import annotations

import os

from workbench.codegen.c.blocked import depthwise_src_need
from workbench.codegen.host.fusion import fused_depthwise, is_fused_pointwise, is_fused_projection
from workbench.codegen.ir import (Layout, conv_ir, conv_src_layout, is_depthwise_layer,
    is_pointwise_layer, pointwise_src_layout)
from workbench.codegen.lr import Layer, LRError

# Planes of at most this many pixels may be held channel-blocked (MobileNet-V2's 28x28,
# 14x14 and 7x7 blocks; its 56x56 and larger blocks already match the peers in NCHW).
# $WORKBENCH_BLOCKED_PIXELS overrides it (0: never), for comparisons.
BLOCKED_MAX_PIXELS = 28 * 28


def blocked_max_pixels() -> int:
    """The plane size (pixels) up to which values may be held channel-blocked."""
    return int(os.environ.get("WORKBENCH_BLOCKED_PIXELS", BLOCKED_MAX_PIXELS))


def blocked_capable(layer: Layer) -> bool:
    """True for the convs render_blocked has a kernel for: 1x1 stride 1, depthwise undilated."""
    if layer.op != "conv2d" or is_fused_projection(layer) or is_fused_pointwise(layer):
        return False
    a = layer.attrs
    if is_pointwise_layer(layer):
        return tuple(a["stride"]) == (1, 1)
    return is_depthwise_layer(layer) and tuple(a["dilation"]) == (1, 1)


def _preferred(layer: Layer, shape: tuple[int, ...], vector: int, blocked: bool = False
               ) -> Layout:
    if is_fused_projection(layer):
        layer = fused_depthwise(layer)    # it reads its input as its depthwise conv does
    c, h, w = shape
    if blocked:
        if is_pointwise_layer(layer):
            return Layout(c, h, w, cb=vector)
        rows, cols = depthwise_src_need(layer, h, w)
        ph, pw = (int(t) for t in layer.attrs["padding"])
        return Layout(c, h, w, ph, pw, rows=rows, row=cols, cb=vector)
    if is_pointwise_layer(layer):
        return pointwise_src_layout(layer, h, w)
    return conv_src_layout(layer, h, w, vector)


def _accepts(layer: Layer, shape: tuple[int, ...], layout: Layout, vector: int,
             blocked: bool = False) -> bool:
    if is_fused_projection(layer):
        layer = fused_depthwise(layer)
    if blocked:
        # the blocked GEMM reads blocked or plain inputs in place, the depthwise blocked ones
        if layout.cb not in (1, vector) or layout.phases != 1:
            return False
        if is_pointwise_layer(layer):
            return True
        if layout.cb != vector:
            return False
        rows, cols = depthwise_src_need(layer, shape[1], shape[2])
        ph, pw = (int(t) for t in layer.attrs["padding"])
        return layout.top >= ph and layout.left >= pw and \
            layout.plane_rows - (layout.top - ph) >= rows and \
            layout.row_stride - (layout.left - pw) >= cols
    try:
        conv_ir(layer, shape, vector, src=layout)
    except LRError:
        return False
    return True


def _merge(a: Layout, b: Layout) -> Layout | None:
    """One stride-1 layout both readers accept: the larger border and rows (None if phased
    or blocked differently)."""
    if a.phases != 1 or b.phases != 1 or a.cb != b.cb:
        return None
    return Layout(a.c, a.h, a.w, max(a.top, b.top), max(a.left, b.left), 1, 1,
                  rows=max(a.plane_rows + (max(a.top, b.top) - a.top),
                           b.plane_rows + (max(a.top, b.top) - b.top)),
                  row=max(a.row_stride + (max(a.left, b.left) - a.left),
                          b.row_stride + (max(a.left, b.left) - b.left)), cb=a.cb)
