"""Channel-blocked layout and its kernels (GEMM, depthwise, global pool, relayouts) against
PyTorch, with borders, odd plane sizes, remainder tiles and several threads."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.codegen.c.blocked import (depthwise_src_need, pack_depthwise_weights,
    pack_gemm_weights, render_blocked_depthwise, render_blocked_gemm,
    render_blocked_global_avgpool, render_blocked_relayout)
from workbench.codegen.host.build import build_c
from workbench.codegen.ir import Layout
from workbench.codegen.lr import LRError, conv_layer

from ..helpers import conv_ref, rel_err

pytestmark = pytest.mark.needs_cc


def _outside_is_zero(lay: Layout, buf: np.ndarray, n: int) -> bool:
    """True if every float of buf outside the image (border, row padding) is zero."""
    full = buf.copy()
    lay.write(full, np.zeros((n, lay.c, lay.h, lay.w), np.float32))
    return not full.any()


def test_blocked_layout_round_trips_and_says_where_each_value_is() -> None:
    rng = np.random.default_rng(0)
    lay = Layout(8, 3, 5, 1, 2, rows=6, row=9, cb=4)
    assert lay.image == 2 * 6 * 9 * 4 and not lay.dense
    x = rng.standard_normal((2, 8, 3, 5)).astype(np.float32)
    buf = lay.alloc(2)
    lay.write(buf, x)
    np.testing.assert_array_equal(lay.read(buf, 2), x)
    assert _outside_is_zero(lay, buf, 2)
    # (c, y, x) at (c // cb) * block + ((y + top) * row + x + left) * cb + c % cb
    c, y, xx = 6, 2, 3
    assert buf[1, c // 4 * lay.block + ((y + 1) * 9 + xx + 2) * 4 + c % 4] == x[1, c, y, xx]
    with pytest.raises(LRError, match="multiple of 4"):
        Layout(6, 3, 3, cb=4)
    with pytest.raises(LRError, match="one phase"):
        Layout(8, 4, 4, 0, 0, 2, 2, cb=4)


def _run_gemm(vw: int, n: int, c: int, o: int, h: int, w: int, act: str, res: bool,
              bordered: bool, threads: int, mr: int | None, nv: int | None, seed: int,
              plain: bool = False) -> None:
    rng = np.random.default_rng(seed)
    wt = (rng.standard_normal((o, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    layer = conv_layer(weight=wt, bias=b, stride=1, padding=0, dilation=1, groups=1, act=act,
                       name="pw")
    src = Layout(c, h, w, 1, 2, rows=h + 2, row=w + 3, cb=1 if plain else vw) if bordered \
        else Layout(c, h, w, cb=1 if plain else vw)
    dst = Layout(o, h, w, 2, 1, rows=h + 3, row=w + 1, cb=vw) if bordered else \
        Layout(o, h, w, cb=vw)
    fn = build_c(render_blocked_gemm(layer, src, dst, dst if res else None, mr, nv)).wb_bgemm
    fn.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 2
    wpk = pack_gemm_weights(wt.reshape(o, c), vw, nv)
    bias = np.zeros(wpk.shape[0] * wpk.shape[2], np.float32)
    bias[:o] = b
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    r = rng.standard_normal((n, o, h, w)).astype(np.float32)
    xb, yb, rb = src.alloc(n), dst.alloc(n), dst.alloc(n)
    src.write(xb, x)
    dst.write(rb, r)
    fn(xb.ctypes.data, yb.ctypes.data, wpk.ctypes.data, bias.ctypes.data,
       rb.ctypes.data if res else None, n, threads)
    ref = conv_ref(x, wt, b) + (r if res else 0)
    ref = {"none": ref, "relu": np.maximum(ref, 0), "relu6": np.clip(ref, 0, 6)}[act]
    assert rel_err(dst.read(yb, n), ref) < 1e-5
    assert _outside_is_zero(dst, yb, n)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vw=st.sampled_from([4, 8, 16]), n=st.integers(1, 2), cb=st.integers(1, 5),
       ob=st.integers(1, 7), h=st.integers(1, 9), w=st.integers(1, 9),
       act=st.sampled_from(["none", "relu", "relu6"]), res=st.booleans(),
       bordered=st.booleans(), threads=st.integers(1, 3), mr=st.sampled_from([None, 3, 7]),
       nv=st.sampled_from([None, 1, 3]), seed=st.integers(0, 99), plain=st.booleans(),
       extra=st.integers(0, 5))
def test_blocked_gemm_matches_torch(vw: int, n: int, cb: int, ob: int, h: int, w: int,
                                    act: str, res: bool, bordered: bool, threads: int,
                                    mr: int | None, nv: int | None, seed: int, plain: bool,
                                    extra: int) -> None:
    # channel counts cb and ob vectors: remainder groups (ob % nv) and remainder pixel tiles
    # (h * w % mr) both occur; a plain (NCHW) input may have any channel count
    c = cb * vw + (extra if plain else 0)
    _run_gemm(vw, n, c, ob * vw, h, w, act, res, bordered, threads, mr, nv, seed, plain)


def test_blocked_gemm_mobilenet_shapes() -> None:
    # MobileNet-V2's 14x14 expansion and 7x7 projection with its residual, host-sized vectors
    for c, o, hw, res in [(96, 576, 14, False), (960, 160, 7, True)]:
        _run_gemm(16, 1, c, o, hw, hw, "relu6" if not res else "none", res, False, 2, None,
                  None, c)
    # features.4's projection reads the plain depthwise output in place
    _run_gemm(16, 1, 144, 32, 28, 28, "none", False, False, 2, None, None, 4, plain=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vw=st.sampled_from([4, 8, 16]), n=st.integers(1, 2), cb=st.integers(1, 3),
       h=st.integers(1, 19), w=st.integers(1, 19), k=st.sampled_from([3, 5]),
       stride=st.sampled_from([1, 2]), act=st.sampled_from(["none", "relu6"]),
       extra=st.integers(0, 2), threads=st.integers(1, 3), seed=st.integers(0, 99))
def test_blocked_depthwise_matches_torch(vw: int, n: int, cb: int, h: int, w: int, k: int,
                                         stride: int, act: str, extra: int, threads: int,
                                         seed: int) -> None:
    rng = np.random.default_rng(seed)
    c, pad = cb * vw, k // 2
    wt = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    layer = conv_layer(weight=wt, bias=b, stride=stride, padding=pad, dilation=1, groups=c,
                       act=act, name="dw")
    rows, cols = depthwise_src_need(layer, h, w)
    # a border wider than the padding (a value shared with another reader) is read right
    src = Layout(c, h, w, pad + extra, pad + extra, rows=rows + 2 * extra, row=cols + extra,
                 cb=vw)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    ref = conv_ref(x, wt, b, stride, pad, groups=c)
    if act == "relu6":
        ref = np.clip(ref, 0, 6)
    ho, wo = ref.shape[2:]
    dst = Layout(c, ho, wo, 1, 1, rows=ho + 2, row=wo + 2, cb=vw)
    fn = build_c(render_blocked_depthwise(layer, src, dst)).wb_bdw
    fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 2
    wdw = pack_depthwise_weights(wt, vw)
    xb, yb = src.alloc(n), dst.alloc(n)
    src.write(xb, x)
    fn(xb.ctypes.data, yb.ctypes.data, wdw.ctypes.data, b.ctypes.data, n, threads)
    assert rel_err(dst.read(yb, n), ref) < 1e-5
    assert _outside_is_zero(dst, yb, n)


def test_blocked_depthwise_refuses_a_border_smaller_than_its_padding() -> None:
    wt = np.ones((16, 1, 3, 3), np.float32)
    layer = conv_layer(weight=wt, bias=None, stride=1, padding=1, dilation=1, groups=16,
                       act="none", name="dw")
    with pytest.raises(LRError, match="does not hold the padded input"):
        render_blocked_depthwise(layer, Layout(16, 5, 5, cb=16), Layout(16, 5, 5, cb=16))


@pytest.mark.parametrize("vw", [4, 16])
def test_blocked_global_avgpool_matches_torch(vw: int) -> None:
    rng = np.random.default_rng(vw)
    n, c, h, w = 2, 2 * vw, 7, 5
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    src, dst = Layout(c, h, w, 1, 1, rows=h + 2, row=w + 2, cb=vw), Layout(c, 1, 1)
    fn = build_c(render_blocked_global_avgpool(src, dst)).wb_gap
    fn.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int] * 2
    xb, yb = src.alloc(n), dst.alloc(n)
    src.write(xb, x)
    fn(xb.ctypes.data, yb.ctypes.data, n, 2)
    ref = F.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    assert rel_err(dst.read(yb, n), ref) < 1e-6


@pytest.mark.parametrize("vw", [4, 8, 16])
@pytest.mark.parametrize("into", [True, False])
def test_blocked_relayouts_copy_every_pixel_and_only_those(vw: int, into: bool) -> None:
    # widths below, at and past a whole vw x vw tile; bordered plain and blocked layouts
    rng = np.random.default_rng(vw)
    for h, w in [(3, 5), (4, vw), (5, vw + 3)]:
        c = 2 * vw
        plain = Layout(c, h, w, 1, 2, rows=h + 2, row=w + 5)
        blocked = Layout(c, h, w, 1, 1, rows=h + 3, row=w + 2, cb=vw)
        src, dst = (plain, blocked) if into else (blocked, plain)
        fn = build_c(render_blocked_relayout(src, dst)).wb_relayout
        fn.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int] * 2
        x = rng.standard_normal((2, c, h, w)).astype(np.float32)
        xb, yb = src.alloc(2), dst.alloc(2)
        src.write(xb, x)
        fn(xb.ctypes.data, yb.ctypes.data, 2, 3)
        np.testing.assert_array_equal(dst.read(yb, 2), x)
        assert _outside_is_zero(dst, yb, 2)
