"""C emitter: pattern, dense, depthwise, strided and 1x1 convolutions against F.conv2d."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.codegen import Schedule, compile_layer
from workbench.codegen.c.render import render_c
from workbench.codegen.ir import Layout, conv_ir, round_up
from workbench.codegen.lr import LRError, conv_layer

from ..helpers import PATTERNS8, conv_ref, pattern_pruned, rel_err

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


@pytest.mark.parametrize("vector", [8, 16])
@pytest.mark.parametrize("kernel", ["pattern", "taps", "pblock"])
@pytest.mark.parametrize("stride", [1, 2])
def test_one_row_tile_per_plane(kernel: str, stride: int, vector: int) -> None:
    # tune._whole_plane: ResNet-50's 7-row outputs in one 7-row tile (14 -> 7 at stride 2)
    rng = np.random.default_rng(stride * 7 + vector)
    w = pattern_pruned(rng, 9, 20, 0.4)
    x = rng.standard_normal((2, 20, 7 * stride, 7 * stride)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    assert _run(w, x, b, stride, 1, act="relu", kernel=kernel, tile_h=7, tile_w=1,
                vector=vector, cblock=8, tile_o=4) < 1e-5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 12), o=st.integers(1, 9), h=st.integers(1, 13),
       w=st.integers(1, 27), stride=st.sampled_from([1, 2, 3]), padding=st.integers(0, 2),
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
    # stride 2 on 8 channels reads stride phases: each tap is a run of columns again
    strided = conv_layer(pattern_pruned(rng, 8, 8), padding=1, stride=2)
    assert conv_ir(strided, (8, 12, 12), 8).src.phases == 4
    assert "taps kernel" in render_c(conv_ir(strided, (8, 12, 12), 8), taps)
    # a 3-channel stride-2 conv (a stem the direct kernel may take) reads the plain buffer
    # through lane gathers: the pattern kernel renders it
    stem = conv_layer(pattern_pruned(rng, 8, 3), padding=1, stride=2)
    assert conv_ir(stem, (3, 12, 12), 8).src.phases == 1
    assert "taps kernel" not in render_c(conv_ir(stem, (3, 12, 12), 8), taps)


# --- depthwise and direct kernels -----------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 20), h=st.integers(1, 17), w=st.integers(1, 30),
       k=st.sampled_from([3, 3, 5]), stride=st.sampled_from([1, 2, 3]), padding=st.integers(0, 2),
       dilation=st.sampled_from([1, 1, 2]), pruned=st.booleans(), th=st.integers(1, 17),
       tw=st.integers(1, 4), vector=st.sampled_from([0, 4, 16]),
       act=st.sampled_from(["none", "relu", "relu6"]), seed=st.integers(0, 2**16))
def test_depthwise_kernel_matches_conv2d(n: int, c: int, h: int, w: int, k: int, stride: int,
                                         padding: int, dilation: int, pruned: bool, th: int,
                                         tw: int, vector: int, act: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    span = dilation * (k - 1) + 1
    if h + 2 * padding < span or w + 2 * padding < span:
        padding = span
    wt = pattern_pruned(rng, c, 1, 0.7) if pruned and k == 3 else \
        rng.standard_normal((c, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    assert _run(wt, x, b, stride, padding, c, dilation, act, kernel="depthwise", tile_h=th,
                tile_w=tw, vector=vector) < 1e-4


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 4), o=st.integers(1, 13), h=st.integers(3, 19),
       w=st.integers(3, 27), k=st.sampled_from([3, 5, 7]), stride=st.sampled_from([1, 2, 3]),
       padding=st.integers(0, 3), th=st.integers(1, 3), tw=st.integers(1, 3),
       to=st.integers(1, 6), vector=st.sampled_from([0, 4, 16]),
       act=st.sampled_from(["none", "relu"]), seed=st.integers(0, 2**16))
def test_direct_kernel_matches_conv2d(n: int, c: int, o: int, h: int, w: int, k: int,
                                      stride: int, padding: int, th: int, tw: int, to: int,
                                      vector: int, act: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if h + 2 * padding < k or w + 2 * padding < k:
        padding = k
    wt = rng.standard_normal((o, c, k, k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    assert _run(wt, x, b, stride, padding, act=act, kernel="direct", tile_h=th, tile_w=tw,
                tile_o=to, vector=vector) < 1e-4


def test_mobilenet_depthwise_shapes_and_the_stem() -> None:
    rng = np.random.default_rng(13)
    for c, hw, stride in ((32, 112, 1), (96, 112, 2), (192, 28, 1), (576, 14, 2), (960, 7, 1)):
        x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
        wt = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        assert _run(wt, x, b, stride, 1, c, act="relu6", kernel="depthwise", tile_h=4,
                    tile_w=2) < 1e-5
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    stem = rng.standard_normal((64, 3, 7, 7)).astype(np.float32)
    assert _run(stem, x, None, 2, 3, act="relu", kernel="direct", tile_o=5, tile_w=2) < 1e-5


@pytest.mark.parametrize("vector", [8, 16])
@pytest.mark.parametrize("h,w,stride", [(h, w, s) for s in (1, 2) for h in (1, 2, 5, 9)
                                        for w in (1, 2, 3, 7, 13, 15)])
def test_depthwise_whole_plane_stores_stay_in_the_plane(h: int, w: int, stride: int,
                                                        vector: int) -> None:
    """Rows without room for a whole last vector are stored whole with zeroed extra lanes
    (c.render._dw_whole_planes); nothing may land past the plane's last pixel."""
    from workbench.codegen.c.depthwise import _dw_whole_planes
    from workbench.codegen.host.kernel import CompiledLayer
    rng = np.random.default_rng(h * 100 + w * 3 + stride)
    layer = conv_layer(rng.standard_normal((1, 1, 3, 3)).astype(np.float32), padding=1,
                       stride=stride, groups=1)
    x = rng.standard_normal((1, 1, h, w)).astype(np.float32)
    # both widths on any host (the expectation once assumed AVX2's 8 floats)
    kern = CompiledLayer(layer, "c", Schedule(kernel="depthwise", tile_h=2, tile_w=1,
                                              vector=vector))
    ir, _ = kern._c_kernel(h, w)
    assert ir.vector == vector and _dw_whole_planes(ir) == (ir.wo % vector != 0)
    src = ir.src.alloc(1)
    ir.src.write(src, x)
    guard = np.full(ir.dst.image + 64, np.float32(1234.5))
    kern.run_c(src, guard[:ir.dst.image].reshape(1, -1), 1, h, w)
    assert (guard[ir.dst.image:] == np.float32(1234.5)).all()
    ref = conv_ref(x, layer.params["weight"], None, stride, 1)
    assert rel_err(guard[:ir.dst.image].reshape(ref.shape), ref) < 1e-5


def test_kernel_kind_dispatch() -> None:
    from workbench.codegen.c.render import default_kernel, kernel_kind
    rng = np.random.default_rng(14)
    dw = conv_ir(conv_layer(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), padding=1,
                            groups=8), (8, 10, 10), 8)
    stem = conv_ir(conv_layer(rng.standard_normal((16, 3, 7, 7)).astype(np.float32),
                              padding=3, stride=2), (3, 20, 20), 8)
    dense = conv_ir(conv_layer(pattern_pruned(rng, 8, 8), padding=1), (8, 10, 10), 8)
    assert kernel_kind(dw, Schedule(kernel="depthwise")) == "depthwise"
    assert "depthwise kernel" in render_c(dw, Schedule(kernel="depthwise"))
    assert kernel_kind(dw, Schedule()) == "pattern" and default_kernel(dw) == "depthwise"
    assert kernel_kind(stem, Schedule(kernel="direct")) == "direct"
    assert "direct kernel" in render_c(stem, Schedule(kernel="direct"))
    assert default_kernel(stem) == "direct" and default_kernel(dense) is None
    # a kernel asked for where it does not apply falls back to the pattern kernel
    assert kernel_kind(dense, Schedule(kernel="depthwise")) == "pattern"
    assert kernel_kind(dw, Schedule(kernel="direct")) == "pattern"
    # stride 2 from the plain buffer: one in-lane shuffle per vector, no lane gathers
    s2 = conv_ir(conv_layer(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), padding=1,
                            groups=8, stride=2), (8, 16, 16), 8)
    src = render_c(s2, Schedule(kernel="depthwise", tile_h=2, tile_w=1))
    assert "0, 2, 8, 10, 4, 6, 12, 14" in src and "1, 3, 9, 11, 5, 7, 13, 15" in src


# --- the packed GEMM kernel for 1x1 convolutions (Schedule.kernel "gemm") --------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 20), o=st.integers(1, 19), h=st.integers(1, 12),
       w=st.integers(1, 23), stride=st.sampled_from([1, 2, 3]), keep=st.floats(0.0, 1.0),
       pruned=st.booleans(), tile=st.sampled_from([(8, 1), (4, 2), (5, 2), (6, 2), (3, 3), (4, 3)]),
       group=st.integers(1, 5), unroll=st.integers(1, 3), threads=st.integers(1, 3),
       parallel=st.sampled_from(["rows", "filters"]), act=st.sampled_from(["none", "relu", "relu6"]),
       pack=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_gemm_kernel_matches_conv2d(n: int, c: int, o: int, h: int, w: int, stride: int,
                                    keep: float, pruned: bool, tile: tuple[int, int], group: int,
                                    unroll: int, threads: int, parallel: str, act: str,
                                    pack: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    wt = rng.standard_normal((o, c, 1, 1)).astype(np.float32)
    wt *= rng.random(wt.shape) < keep
    if pruned:  # whole input channels and filters removed: blocks skip them
        wt[:, rng.random(c) < 0.4] = 0.0
        wt[rng.random(o) < 0.3] = 0.0
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    err = _run(wt, x, b, stride, 0, act=act, kernel="gemm", tile_o=tile[0], tile_w=tile[1],
               tile_h=group, unroll_k=unroll, threads=threads, parallel=parallel, pack=pack)
    assert err < 1e-4


@pytest.mark.parametrize("hw,tile_w,group,threads", [
    ((28, 28), 3, 2, 2),    # 17 column tiles: groups of 1-2 tiles, 5 per thread
    ((5, 3), 1, 4, 3),      # 1 tile, 3 threads: two of the groups are empty
    ((9, 9), 2, 16, 2)])    # one group's worth of tiles split in two
@pytest.mark.parametrize("parallel", ["rows", "filters"])
def test_gemm_splits_tiles_evenly_across_threads(hw: tuple[int, int], tile_w: int, group: int,
                                                 threads: int, parallel: str) -> None:
    """With several threads, every tile is computed once whatever the groups' split."""
    rng = np.random.default_rng(threads)
    wt = rng.standard_normal((11, 7, 1, 1)).astype(np.float32)
    b = rng.standard_normal(11).astype(np.float32)
    x = rng.standard_normal((2, 7, *hw)).astype(np.float32)
    err = _run(wt, x, b, 1, 0, act="relu", kernel="gemm", tile_o=4, tile_w=tile_w,
               tile_h=group, threads=threads, parallel=parallel)
    assert err < 1e-5


@pytest.mark.parametrize("vector", [8, 16])
@pytest.mark.parametrize("parallel", ["rows", "filters"])
def test_gemm_reads_a_plain_aligned_input_in_place(vector: int, parallel: str) -> None:
    """pack=0: the register tiles read a plain input whose channels start on whole vectors
    where it lies (no panel, no copy), with a fused residual too; every other input (a plane
    of 14x14 = 196 floats, a stride, a border) is packed as with pack=1."""
    from workbench.codegen.host.kernel import CompiledLayer
    rng = np.random.default_rng(vector)
    c, o = 20, 13
    wt = rng.standard_normal((o, c, 1, 1)).astype(np.float32)
    wt[:, 4] = 0.0   # a channel no filter reads
    b = rng.standard_normal(o).astype(np.float32)
    layer = conv_layer(wt, b, act="relu")
    sched = Schedule(kernel="gemm", tile_o=5, tile_w=2, tile_h=3, pack=0, vector=vector,
                     parallel=parallel, threads=2)
    for h, w, in_place in ((16, 16, True), (8, 6, True), (14, 14, False)):
        if (h * w) % vector:
            assert not in_place
        x = rng.standard_normal((2, c, h, w)).astype(np.float32)
        r = rng.standard_normal((2, o, h, w)).astype(np.float32)
        k = CompiledLayer(layer, "c", sched)
        src, dst = Layout(c, h, w), Layout(o, h, w)
        xs, ys, rs = src.alloc(2), dst.alloc(2), dst.alloc(2)
        src.write(xs, x)
        dst.write(rs, r)
        k.run_c(xs, ys, 2, h, w, src, dst, rs, dst)
        assert ("input read in place" in k.source) == in_place
        assert ("gpack(" in k.source) != in_place
        assert rel_err(dst.read(ys, 2), np.maximum(conv_ref(x, wt, b, 1) + r, 0)) < 1e-5
    # a stride-2 conv reads every other pixel: packed
    strided = CompiledLayer(conv_layer(wt, b, stride=2), "c", sched, (c, 16, 16))
    assert "gpack(" in strided.source and "in place" not in strided.source


def test_gemm_kernel_prefetches_its_weights_ahead() -> None:
    # in a network the weights come from DRAM: each channel step prefetches the packed
    # weights GEMM_WEIGHT_PREFETCH steps ahead (tile_o floats per step)
    from workbench.codegen.c.gemm import GEMM_WEIGHT_PREFETCH
    layer = conv_layer(np.ones((16, 32, 1, 1), np.float32))
    src = render_c(conv_ir(layer, (32, 7, 7), 16), Schedule(kernel="gemm", tile_o=6, tile_w=2))
    # in both channel loops (all channels, a channel list) of every register-tile width
    assert src.count(f"__builtin_prefetch(w + {6 * GEMM_WEIGHT_PREFETCH});") == \
        2 * src.count("static void gk_") > 0


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("hw", [(7, 7), (14, 14), (9, 20)])
def test_gemm_kernel_writes_padded_layouts(stride: int, hw: tuple[int, int]) -> None:
    """In a network a 1x1 conv reads and writes zero-bordered, row-padded buffers (its reader
    is a 3x3 conv): vectors crossing row ends go lane by lane and the border stays zero."""
    from workbench.codegen.host.kernel import CompiledLayer
    rng = np.random.default_rng(stride * 100 + hw[1])
    c, o = 11, 13
    h, w = hw
    wt = rng.standard_normal((o, c, 1, 1)).astype(np.float32)
    wt[:, 2] = 0.0
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    layer = conv_layer(wt, b, stride=stride, act="relu")
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    src = Layout(c, h, w, 1, 1, rows=h + 3, row=w + 6)
    # an odd border, and the one a 3x3 reader asks for (rows of whole vectors: the GEMM
    # numbers rows of whole vectors where the border has room, gemm_row_width)
    for dst in (Layout(o, ho, wo, 1, 1, rows=ho + 3, row=wo + 3),
                Layout(o, ho, wo, 1, 1, rows=ho + 2, row=round_up(wo + 2, 8))):
        for sched in (Schedule(kernel="gemm", tile_o=6, tile_w=2, tile_h=3),
                      Schedule(kernel="gemm", tile_o=4, tile_w=3, tile_h=1, parallel="filters")):
            k = CompiledLayer(layer, "c", sched.with_(threads=2))
            xs, ys = src.alloc(2), dst.alloc(2)
            src.write(xs, x)
            ys[:] = 0.0
            k.run_c(xs, ys, 2, h, w, src, dst)
            ref = np.maximum(conv_ref(x, wt, b, stride), 0)
            assert rel_err(dst.read(ys, 2), ref) < 1e-5
            full = ys.reshape(2, o, dst.plane_rows, dst.row_stride).copy()
            full[:, :, 1:1 + ho, 1:1 + wo] = 0.0
            assert not full.any()  # nothing written outside the image


@pytest.mark.parametrize("hw", [(7, 7), (14, 14), (28, 28), (5, 12)])
def test_gemm_rows_of_whole_vectors_keep_the_border_zero(hw: tuple[int, int]) -> None:
    """Where the output rows are not whole vectors and the border has room, every vector lies in
    one row (no lane-by-lane stores); the lanes past a row end store zeros on the border, the
    fused residual included."""
    from workbench.codegen.c.gemm import gemm_row_width
    from workbench.codegen.host.build import host_vector_width
    from workbench.codegen.host.kernel import CompiledLayer
    rng = np.random.default_rng(hw[0])
    c, o = 9, 10
    h, w = hw
    wt = rng.standard_normal((o, c, 1, 1)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    r = rng.standard_normal((2, o, h, w)).astype(np.float32)
    layer = conv_layer(wt, b, act="relu")
    src = Layout(c, h, w)
    vec = host_vector_width()
    dst = Layout(o, h, w, 1, 1, rows=h + 2, row=round_up(w + 2, vec))
    assert gemm_row_width(conv_ir(layer, (c, h, w), vec, src, dst, dst)) == round_up(w, vec)
    for sched in (Schedule(kernel="gemm", tile_o=5, tile_w=2, tile_h=2),
                  Schedule(kernel="gemm", tile_o=3, tile_w=3, tile_h=16, parallel="filters")):
        k = CompiledLayer(layer, "c", sched.with_(threads=2))
        xs, ys, rs = src.alloc(2), dst.alloc(2), dst.alloc(2)
        src.write(xs, x)
        dst.write(rs, r)
        k.run_c(xs, ys, 2, h, w, src, dst, rs, dst)
        assert f"(rows of {round_up(w, vec)})" in k.source
        ref = np.maximum(conv_ref(x, wt, b, 1) + r, 0)
        assert rel_err(dst.read(ys, 2), ref) < 1e-5
        full = ys.reshape(2, o, dst.plane_rows, dst.row_stride).copy()
        full[:, :, 1:1 + h, 1:1 + w] = 0.0
        assert not full.any()


def test_gemm_kernel_is_the_pointwise_default() -> None:
    rng = np.random.default_rng(13)
    k = compile_layer(weight=rng.standard_normal((8, 16, 1, 1)).astype(np.float32), emitter="c",
                      input_shape=(16, 10, 10))
    assert k.schedule.kernel == "gemm" and "packed GEMM" in k.source
    old = compile_layer(weight=rng.standard_normal((8, 16, 1, 1)).astype(np.float32),
                        emitter="c", schedule=Schedule(tile_o=4), input_shape=(16, 10, 10))
    assert "packed GEMM" not in old.source
