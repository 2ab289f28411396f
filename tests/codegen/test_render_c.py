"""C emitter: pattern, dense, depthwise, strided and 1x1 convolutions against F.conv2d."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.codegen import Schedule, compile_layer
from workbench.codegen.ir import Layout, conv_ir
from workbench.codegen.lr import LRError, conv_layer
from workbench.codegen.render_c import render_c

from .helpers import PATTERNS8, conv_ref, pattern_pruned, rel_err

pytestmark = pytest.mark.needs_cc


def _run(w: np.ndarray, x: np.ndarray, b: np.ndarray | None, stride: int, padding: int,
         groups: int = 1, dilation: int = 1, act: str = "none", **sched) -> float:
    k = compile_layer(weight=w, bias=b, stride=stride, padding=padding, groups=groups,
                      dilation=dilation, act=act, emitter="c",
                      schedule=Schedule(**sched) if sched else None)
    y = k(x)
    ref = conv_ref(x, w, b, stride, padding, groups, dilation)
    ref = np.maximum(ref, 0) if act == "relu" else np.clip(ref, 0, 6) if act == "relu6" else ref
    assert y.shape == ref.shape
    return rel_err(y, ref)


@pytest.mark.parametrize("lre", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_pattern_conv_every_lre_and_stride(lre: int, stride: int) -> None:
    rng = np.random.default_rng(lre * 10 + stride)
    w = pattern_pruned(rng, 10, 6, 0.4)
    x = rng.standard_normal((2, 6, 13, 19)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    assert _run(w, x, b, stride, 1, lre=lre, tile_h=3, tile_w=2, act="relu") < 1e-5


def test_dense_depthwise_dilated_and_pointwise() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 8, 15, 15)).astype(np.float32)
    dense = rng.standard_normal((5, 8, 3, 3)).astype(np.float32)
    assert _run(dense, x, None, 1, 1) < 1e-5
    depthwise = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    assert _run(depthwise, x, None, 2, 1, groups=8, act="relu6") < 1e-5
    assert _run(pattern_pruned(rng, 4, 8), x, None, 1, 2, dilation=2) < 1e-5
    pointwise = rng.standard_normal((12, 8, 1, 1)).astype(np.float32)
    pointwise[:, 3] = 0.0  # a channel no filter reads
    for stride in (1, 2, 3):
        assert _run(pointwise, x, rng.standard_normal(12).astype(np.float32), stride, 0,
                    tile_o=5, tile_w=2) < 1e-5
    five = rng.standard_normal((3, 8, 5, 5)).astype(np.float32)
    assert _run(five, x, None, 2, 2) < 1e-5


def test_fully_pruned_layer_is_bias() -> None:
    rng = np.random.default_rng(8)
    b = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    y = compile_layer(weight=np.zeros((4, 3, 3, 3), np.float32), bias=b, padding=1, emitter="c")(x)
    np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None], y.shape))


def test_source_is_specialised_and_holds_no_names() -> None:
    rng = np.random.default_rng(9)
    layer = conv_layer(pattern_pruned(rng, 8, 8), padding=1, name='evil"; system("rm -rf /")')
    src = render_c(conv_ir(layer, (8, 12, 12), 8), Schedule(tile_h=2, tile_w=1))
    assert "evil" not in src and "system" not in src
    # one body per pattern in each tile function (a full-width one, maybe a narrower one)
    p = layer.kernel_patterns.num_patterns
    assert src.count("/* pattern ") in (p, 2 * p)
    assert "typedef float vf __attribute__((vector_size(VW * 4)))" in src


def test_layout_checks_name_the_problem() -> None:
    layer = conv_layer(np.ones((2, 3, 3, 3), np.float32), padding=1)
    with pytest.raises(LRError, match="border"):
        conv_ir(layer, (3, 8, 8), 8, src=Layout(3, 8, 8))
    with pytest.raises(LRError, match="output layout"):
        conv_ir(layer, (3, 8, 8), 8, dst=Layout(2, 8, 8, sy=2, sx=2))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 9), o=st.integers(1, 9), h=st.integers(1, 12),
       w=st.integers(1, 21), k=st.sampled_from([1, 3]), stride=st.sampled_from([1, 2]),
       padding=st.integers(0, 2), depthwise=st.booleans(), keep=st.floats(0.1, 1.0),
       th=st.integers(1, 5), tw=st.integers(1, 3), lre=st.sampled_from([0, 1, 2]),
       seed=st.integers(0, 2**16))
def test_random_layers_match_conv2d(n: int, c: int, o: int, h: int, w: int, k: int, stride: int,
                                    padding: int, depthwise: bool, keep: float, th: int, tw: int,
                                    lre: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = c if depthwise else 1
    o = c if depthwise else o
    padding = min(padding, k // 2 + 1) if k == 3 else padding
    if h + 2 * padding < k or w + 2 * padding < k:
        padding = k
    if k == 3:
        wt = pattern_pruned(rng, o, c // groups, keep, PATTERNS8)
    else:
        wt = rng.standard_normal((o, c // groups, 1, 1)).astype(np.float32)
        wt *= rng.random(wt.shape) < keep
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    err = _run(wt, x, b, stride, padding, groups, lre=lre, tile_h=th, tile_w=tw, tile_o=th + 1)
    assert err < 1e-4


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 12), o=st.integers(1, 9), h=st.integers(1, 13),
       w=st.integers(1, 27), stride=st.sampled_from([1, 3]), padding=st.integers(0, 2),
       depthwise=st.booleans(), keep=st.floats(0.1, 1.0), th=st.integers(1, 5),
       tw=st.integers(1, 4), cblock=st.integers(0, 5), per_col=st.booleans(),
       parallel=st.sampled_from(["rows", "filters"]), prefetch=st.integers(0, 1),
       act=st.sampled_from(["none", "relu"]), seed=st.integers(0, 2**16))
def test_taps_kernel_matches_conv2d(n: int, c: int, o: int, h: int, w: int, stride: int,
                                    padding: int, depthwise: bool, keep: float, th: int, tw: int,
                                    cblock: int, per_col: bool, parallel: str, prefetch: int,
                                    act: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = c if depthwise else 1
    o = c if depthwise else o
    if h + 2 * padding < 3 or w + 2 * padding < 3:
        padding = 2
    wt = pattern_pruned(rng, o, c // groups, keep, PATTERNS8)
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    err = _run(wt, x, b, stride, padding, groups, act=act, kernel="taps", tile_h=th, tile_w=tw,
               cblock=cblock, loop_order="cols_filter" if per_col else "filter_cols",
               parallel=parallel, prefetch=prefetch)
    assert err < 1e-4


def test_taps_kernel_mixed_tap_counts_and_dense() -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 5, 9, 17)).astype(np.float32)
    mixed = pattern_pruned(rng, 6, 5, 0.7, ((4,), (1, 4, 7), (0, 1, 2, 3, 4, 5, 6, 7, 8)))
    assert _run(mixed, x, None, 1, 1, kernel="taps", tile_h=2, tile_w=2, cblock=2) < 1e-5
    dense = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    assert _run(dense, x, None, 1, 0, kernel="taps", tile_h=4, tile_w=3, cblock=3) < 1e-5


def test_taps_kernel_is_rendered_only_where_it_applies() -> None:
    rng = np.random.default_rng(12)
    layer = conv_layer(pattern_pruned(rng, 8, 8), padding=1)
    taps = Schedule(kernel="taps", cblock=4)
    assert "taps kernel, 2 channel block(s)" in render_c(conv_ir(layer, (8, 12, 12), 8), taps)
    strided = conv_layer(pattern_pruned(rng, 8, 8), padding=1, stride=2)
    # stride 2 reads a plain buffer through lane gathers: the pattern kernel renders it
    assert "taps kernel" not in render_c(conv_ir(strided, (8, 12, 12), 8), taps)
