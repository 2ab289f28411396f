"""C max pooling, global average pooling, residual add, relayout and border clearing: against
PyTorch / NumPy in padded and plain layouts."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.codegen.c.elementwise import (render_add, render_clear_border,
    render_global_avgpool, render_maxpool, render_relayout)
from workbench.codegen.host.build import build_c
from workbench.codegen.ir import Layout, conv_src_layout
from workbench.codegen.lr import Layer, LRError, conv_layer

pytestmark = pytest.mark.needs_cc


def _pool_layer(k: int, s: int, p: int) -> Layer:
    return Layer("pool", "maxpool2d", ["x"], {"kernel": [k, k], "stride": [s, s],
                                              "padding": [p, p], "dilation": [1, 1]}, {})


@pytest.mark.parametrize("k,s,p,ceil", [(3, 2, 1, False), (2, 2, 0, False), (3, 1, 1, False),
                                        (3, 2, 0, True), (2, 2, 0, True)])
@pytest.mark.parametrize("padded", [False, True])
def test_maxpool_matches_torch(k: int, s: int, p: int, ceil: bool, padded: bool) -> None:
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    n, c, h, w = 2, 5, 13, 11
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    ref = F.max_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil).numpy()
    ho, wo = ref.shape[2:]
    src = Layout(c, h, w, 1, 2, rows=h + 3, row=32) if padded else Layout(c, h, w)
    dst = Layout(c, ho, wo, 2, 1, rows=ho + 4, row=16) if padded else Layout(c, ho, wo)
    fn = build_c(render_maxpool(_pool_layer(k, s, p), src, dst)).wb_maxpool
    fn.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_int]
    xb, yb = src.alloc(n), dst.alloc(n)
    src.write(xb, x)
    fn(xb.ctypes.data, yb.ctypes.data, n, 2)
    np.testing.assert_array_equal(dst.read(yb, n), ref)
    # the zero border of the output layout is left alone (readers rely on it)
    full = yb.reshape(n, c, dst.plane_rows, dst.row_stride).copy()
    full[:, :, dst.top:dst.top + ho, dst.left:dst.left + wo] = 0
    assert not full.any()


@pytest.mark.parametrize("act", ["none", "relu", "relu6"])
@pytest.mark.parametrize("layouts", ["dense", "mixed"])
def test_add_matches_numpy(act: str, layouts: str) -> None:
    rng = np.random.default_rng(len(act))
    n, c, h, w = 2, 3, 7, 9
    a, b = (3 * rng.standard_normal((n, c, h, w)).astype(np.float32) for _ in range(2))
    ref = a + b
    ref = {"none": ref, "relu": np.maximum(ref, 0), "relu6": np.clip(ref, 0, 6)}[act]
    if layouts == "dense":
        la = lb = ly = Layout(c, h, w)
    else:
        la, lb, ly = Layout(c, h, w, 1, 1, row=16), Layout(c, h, w), Layout(c, h, w, 2, 3, row=32)
    fn = build_c(render_add(la, lb, ly, act)).wb_add
    fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int, ctypes.c_int]
    ab, bb, yb = la.alloc(n), lb.alloc(n), ly.alloc(n)
    la.write(ab, a)
    lb.write(bb, b)
    fn(ab.ctypes.data, bb.ctypes.data, yb.ctypes.data, n, 2)
    np.testing.assert_allclose(ly.read(yb, n), ref, rtol=0, atol=1e-6)
    assert np.count_nonzero(yb) <= np.count_nonzero(ref)  # nothing written outside the image


def test_bad_input_is_refused_with_the_reason() -> None:
    with pytest.raises(LRError, match="shapes differ"):
        render_add(Layout(3, 4, 4), Layout(3, 4, 5), Layout(3, 4, 4), "relu")
    with pytest.raises(LRError, match="phases"):
        render_add(Layout(3, 4, 4, 1, 1, 2, 2), Layout(3, 4, 4), Layout(3, 4, 4), "relu")
    with pytest.raises(LRError, match="no C form"):
        render_add(Layout(3, 4, 4), Layout(3, 4, 4), Layout(3, 4, 4), "gelu")


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("hw", [(7, 7), (1, 1), (13, 20)])
def test_global_avgpool_matches_torch(padded: bool, hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(hw[1])
    n, c, (h, w) = 3, 17, hw
    x = rng.standard_normal((n, c, h, w)).astype(np.float32) + 3.0
    ref = F.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    src = Layout(c, h, w, 1, 1, rows=h + 3, row=w + 9) if padded else Layout(c, h, w)
    dst = Layout(c, 1, 1)
    fn = build_c(render_global_avgpool(src, dst)).wb_gap
    fn.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_int]
    xb, yb = src.alloc(n), dst.alloc(n)
    src.write(xb, x)
    fn(xb.ctypes.data, yb.ctypes.data, n, 2)
    np.testing.assert_allclose(dst.read(yb, n), ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(LRError, match="is not 17 x 1 x 1"):
        render_global_avgpool(src, Layout(c, 2, 1))


@pytest.mark.parametrize("hw", [(56, 56), (7, 9), (14, 14), (1, 3)])
@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("padded_src", [False, True])
def test_relayout_writes_what_layout_write_does(hw: tuple[int, int], stride: int,
                                                   padded_src: bool) -> None:
    rng = np.random.default_rng(hw[0] + stride)
    n, c, (h, w) = 2, 5, hw
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    src = Layout(c, h, w, 1, 1, rows=h + 3, row=w + 5) if padded_src else Layout(c, h, w)
    # the phases a 3x3 stride-s conv with padding 1 reads, and an odd border
    conv = conv_layer(rng.standard_normal((4, c, 3, 3)).astype(np.float32), padding=1,
                      stride=stride)
    # and a one-phase layout with a border (a fused residual read in its output's layout)
    for dst in (conv_src_layout(conv, h, w, 16), Layout(c, h, w, 2, 1, stride, stride),
                Layout(c, h, w, 1, 2, rows=h + 4, row=w + 7)):
        fn = build_c(render_relayout(src, dst)).wb_relayout
        fn.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_int]
        xb, yb, ref = src.alloc(n), dst.alloc(n), dst.alloc(n)
        src.write(xb, x)
        dst.write(ref, x)
        fn(xb.ctypes.data, yb.ctypes.data, n, 2)
        np.testing.assert_array_equal(yb, ref)   # borders and row padding stay zero


def test_relayout_refuses_other_shapes() -> None:
    with pytest.raises(LRError, match="shapes differ"):
        render_relayout(Layout(3, 4, 4), Layout(3, 4, 6, 1, 1, 2, 2))


@pytest.mark.parametrize("lay", [Layout(5, 7, 9, 1, 1, rows=10, row=16), Layout(3, 4, 4, 2, 0),
                                 Layout(32, 4, 3, 1, 1, rows=6, row=6, cb=16),
                                 Layout(16, 1, 1, 0, 1, rows=2, row=3, cb=8), Layout(4, 3, 5)],
                         ids=str)
def test_clear_border_zeroes_every_float_but_the_pixels(lay: Layout) -> None:
    # a buffer full of garbage (another value's, in the arena), its border cleared, then the
    # pixels written: the same buffer as a fresh zeroed one with the pixels written
    n = 2
    x = np.random.default_rng(0).standard_normal((n, lay.c, lay.h, lay.w)).astype(np.float32)
    fn = build_c(render_clear_border(lay)).wb_clear
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    buf, ref = lay.alloc(n), lay.alloc(n)
    buf[:] = np.nan
    fn(buf.ctypes.data, n, 2)
    lay.write(buf, x)
    lay.write(ref, x)
    np.testing.assert_array_equal(buf, ref)


def test_clear_border_refuses_stride_phases() -> None:
    with pytest.raises(LRError, match="stride phases"):
        render_clear_border(Layout(3, 4, 4, 1, 1, 2, 2))
