"""The fused kernels against PyTorch: expansion + depthwise (borders, odd planes, both strides,
several bands, their overlapping rows expanded twice, several threads) and depthwise +
projection (with and without a residual)."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench.codegen.c.fused as render_fused
from workbench.codegen.c.fused import (channel_group, fused_geometry, pack_fused_weights,
    pack_projection_weights, render_depthwise_project, render_expand_depthwise)
from workbench.codegen.host.build import build_c
from workbench.codegen.ir import Layout, conv_ir
from workbench.codegen.lr import LRError, conv_layer

from ..helpers import conv_ref, rel_err

pytestmark = pytest.mark.needs_cc

_ACTS = {"none": lambda v: v, "relu": lambda v: np.maximum(v, 0),
         "relu6": lambda v: np.clip(v, 0, 6)}


def _prune_groups(w: np.ndarray, group: int, rng: np.random.Generator) -> np.ndarray:
    """W (O, C, 1, 1) with input channels dropped for each group of `group` filters (some
    groups keeping none), as pruning.schemes.Block(keep, group, 1) leaves a 1x1 conv."""
    o, c = w.shape[:2]
    keep = rng.random((-(-o // group), c)) < rng.uniform(0.0, 0.8)
    return (w * np.repeat(keep, group, axis=0)[:o, :, None, None]).astype(np.float32)


def _run_fused(vw: int, n: int, c: int, m: int, h: int, w: int, stride: int, acts: tuple[str, str],
               bordered: bool, threads: int, seed: int, pruned: bool = False) -> int:
    """Check one fused kernel against two F.conv2d calls; returns its band count."""
    rng = np.random.default_rng(seed)
    we = (rng.standard_normal((m, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    if pruned:
        we = _prune_groups(we, int(rng.choice([4, 8, 16])), rng)
    be = rng.standard_normal(m).astype(np.float32)
    wd = rng.standard_normal((m, 1, 3, 3)).astype(np.float32)
    bd = rng.standard_normal(m).astype(np.float32)
    dw = conv_layer(wd, bd, stride=stride, padding=1, groups=m, act=acts[1], name="dw")
    # the input may sit in a bordered layout (a value another 3x3 conv reads too)
    src = Layout(c, h, w, 1, 2, rows=h + 3, row=w + 5) if bordered else Layout(c, h, w)
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    dst = Layout(m, ho, wo, 1, 1, rows=ho + 2, row=wo + 2) if bordered else Layout(m, ho, wo)
    ir = conv_ir(dw, (m, h, w), vw, dst=dst)
    geo = fused_geometry(c, m, h, w, stride, src, vw)
    fn = build_c(render_expand_depthwise(ir, geo, src, acts[0])).wb_exdw
    fn.argtypes = [ctypes.c_void_p] * 8 + [ctypes.c_int] * 2
    consts = pack_fused_weights(we.reshape(m, c), be, wd, bd, geo.to)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    xb, yb = src.alloc(n), dst.alloc(n)
    src.write(xb, x)
    fn(xb.ctypes.data, yb.ctypes.data, *(k.ctypes.data for k in consts), n, threads)
    mid = _ACTS[acts[0]](conv_ref(x, we, be))
    ref = _ACTS[acts[1]](conv_ref(mid, wd, bd, stride, 1, groups=m))
    assert rel_err(dst.read(yb, n), ref) < 1e-5
    border = yb.copy()
    dst.write(border, np.zeros_like(ref))
    assert not border.any()        # the output's border and row padding stay zero
    return -(-ho // geo.band)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vw=st.sampled_from([4, 8, 16]), n=st.integers(1, 2), c=st.integers(1, 9),
       mk=st.integers(1, 5), h=st.integers(1, 19), w=st.integers(1, 37),
       stride=st.sampled_from([1, 2]),
       acts=st.tuples(st.sampled_from(sorted(_ACTS)), st.sampled_from(sorted(_ACTS))),
       bordered=st.booleans(), threads=st.integers(1, 3), seed=st.integers(0, 99),
       pruned=st.booleans())
def test_fused_expansion_depthwise_matches_torch(vw: int, n: int, c: int, mk: int, h: int,
                                                 w: int, stride: int, acts: tuple[str, str],
                                                 bordered: bool, threads: int,
                                                 seed: int, pruned: bool) -> None:
    # mid channels 4..20 in steps of 4: groups of 8, 6 and 4 channels all occur; pruned:
    # input channels dropped per filter group (kernel groups of other sizes than the
    # pruning's visit the union of their filters' channels)
    _run_fused(vw, n, c, 4 * mk, h, w, stride, acts, bordered, threads, seed, pruned)


def test_fused_kernels_visit_only_kept_channels() -> None:
    # the packed storage holds the kept (channel, group) pairs alone
    rng = np.random.default_rng(0)
    we = _prune_groups(rng.standard_normal((16, 12, 1, 1)).astype(np.float32), 8, rng)
    wpk, cptr, clist = pack_fused_weights(we.reshape(16, 12), np.zeros(16), np.zeros((16, 9)),
                                          np.zeros(16), 8)[:3]
    kept = [np.flatnonzero(we[g * 8:(g + 1) * 8, :, 0, 0].any(axis=0)) for g in range(2)]
    assert list(cptr) == [0, len(kept[0]), len(kept[0]) + len(kept[1])] and len(kept[0]) < 12
    assert np.array_equal(clist[:cptr[2]], np.concatenate(kept))
    assert np.array_equal(wpk[:cptr[1]], we[:8, kept[0], 0, 0].T)
    assert pack_projection_weights(we.reshape(16, 12), 8)[1].tolist() == list(cptr)


@pytest.mark.parametrize("stride", [1, 2])
def test_fused_kernel_bands_expand_their_edge_rows_again(monkeypatch: pytest.MonkeyPatch,
                                                         stride: int) -> None:
    # a tiny band budget: bands of one or two output rows, each re-expanding the rows the
    # band above it also read
    monkeypatch.setattr(render_fused, "BAND_INPUT_BYTES", 1)
    assert _run_fused(16, 2, 5, 24, 17, 29, stride, ("relu6", "relu6"), True, 2, 3) > 4


def test_fused_geometry_refuses_what_the_kernel_cannot_run() -> None:
    src = Layout(4, 8, 8)
    with pytest.raises(LRError, match="not a multiple"):
        fused_geometry(4, 10, 8, 8, 1, src, 16)
    with pytest.raises(LRError, match="stride 3"):
        fused_geometry(4, 8, 8, 8, 3, src, 16)
    dw = conv_layer(np.ones((8, 1, 5, 5), np.float32), stride=1, padding=2, groups=8)
    ir = conv_ir(dw, (8, 8, 8), 16)
    with pytest.raises(LRError, match="3x3 depthwise"):
        render_expand_depthwise(ir, fused_geometry(4, 8, 8, 8, 1, src, 16), src, "none")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vw=st.sampled_from([4, 8, 16]), n=st.integers(1, 2), m=st.integers(1, 9),
       ok=st.integers(1, 5), h=st.integers(1, 19), w=st.integers(1, 37),
       stride=st.sampled_from([1, 2]),
       acts=st.tuples(st.sampled_from(sorted(_ACTS)), st.sampled_from(sorted(_ACTS))),
       res=st.booleans(), bordered=st.booleans(), threads=st.integers(1, 3),
       seed=st.integers(0, 99), pruned=st.booleans())
def test_fused_depthwise_projection_matches_torch(vw: int, n: int, m: int, ok: int, h: int,
                                                  w: int, stride: int, acts: tuple[str, str],
                                                  res: bool, bordered: bool, threads: int,
                                                  seed: int, pruned: bool) -> None:
    rng = np.random.default_rng(seed)
    o = 4 * ok
    wd = rng.standard_normal((m, 1, 3, 3)).astype(np.float32)
    bd = rng.standard_normal(m).astype(np.float32)
    wp = (rng.standard_normal((o, m, 1, 1)) / np.sqrt(m)).astype(np.float32)
    if pruned:
        wp = _prune_groups(wp, int(rng.choice([4, 8, 16])), rng)
    bp = rng.standard_normal(o).astype(np.float32)
    dw = conv_layer(wd, bd, stride=stride, padding=1, groups=m, act=acts[0], name="dw")
    ir = conv_ir(dw, (m, h, w), vw)         # its input layout: the depthwise kernel's
    ho, wo = ir.ho, ir.wo
    dst = Layout(o, ho, wo, 1, 1, rows=ho + 2, row=wo + 2) if bordered else Layout(o, ho, wo)
    fn = build_c(render_depthwise_project(ir, o, dst, dst if res else None, acts[1])).wb_dwpj
    fn.argtypes = [ctypes.c_void_p] * 9 + [ctypes.c_int] * 2
    wpk, cptr, clist = pack_projection_weights(wp.reshape(o, m), channel_group(o))
    x = rng.standard_normal((n, m, h, w)).astype(np.float32)
    r = rng.standard_normal((n, o, ho, wo)).astype(np.float32)
    xb, yb, rb = ir.src.alloc(n), dst.alloc(n), dst.alloc(n)
    ir.src.write(xb, x)
    dst.write(rb, r)
    fn(xb.ctypes.data, yb.ctypes.data, wd.reshape(m, 9).ctypes.data, bd.ctypes.data,
       wpk.ctypes.data, cptr.ctypes.data, clist.ctypes.data, bp.ctypes.data, rb.ctypes.data if res else None, n, threads)
    mid = _ACTS[acts[0]](conv_ref(x, wd, bd, stride, 1, groups=m))
    ref = _ACTS[acts[1]](conv_ref(mid, wp, bp) + (r if res else 0))
    assert rel_err(dst.read(yb, n), ref) < 1e-5
    border = yb.copy()
    dst.write(border, np.zeros_like(ref))
    assert not border.any()


def test_fused_depthwise_projection_refuses_what_it_cannot_run() -> None:
    dw = conv_layer(np.ones((8, 1, 3, 3), np.float32), stride=1, padding=1, groups=8)
    ir = conv_ir(dw, (8, 6, 6), 16)
    with pytest.raises(LRError, match="not a multiple"):
        render_depthwise_project(ir, 10, Layout(10, 6, 6), None, "none")
    with pytest.raises(LRError, match="residual"):
        render_depthwise_project(ir, 8, Layout(8, 6, 6), Layout(8, 6, 6, 1, 1), "none")
