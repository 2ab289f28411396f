"""The column kernel (implicit GEMM over kept im2col columns) against F.conv2d."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.codegen import Schedule, compile, compile_layer
from workbench.codegen.c.render import default_kernel, kernel_kind, render_c
from workbench.codegen.host.kernel import CompiledLayer
from workbench.codegen.ir import (Layout, conv_ir, conv_src_layout, is_column_shaped,
    reads_plain_stride2)
from workbench.codegen.lr import conv_layer

from ..helpers import column_pruned, conv_ref, pattern_pruned, rel_err

pytestmark = pytest.mark.needs_cc


def _act(y: np.ndarray, act: str) -> np.ndarray:
    return np.maximum(y, 0) if act == "relu" else np.clip(y, 0, 6) if act == "relu6" else y


def _src_layout(need: Layout, pad: int, et: int, el: int, er: int, ec: int) -> Layout:
    """need (conv_src_layout) with et / el more border rows / columns and er / ec spare rows
    / columns: a bordered input as a producer in a network may leave it."""
    sy, sx = need.sy, need.sx
    return Layout(need.c, need.h, need.w, pad + et, pad + el, sy, sx,
                  rows=need.plane_rows + -(-et // sy) + er, row=need.row_stride + -(-el // sx) + ec)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 20), o=st.integers(1, 20), h=st.integers(1, 17),
       w=st.integers(1, 17), k=st.sampled_from([3, 3, 5]), stride=st.sampled_from([1, 1, 2, 3]),
       padding=st.integers(0, 2), bias=st.booleans(),
       act=st.sampled_from(["none", "relu", "relu6"]),
       keep=st.sampled_from([0.05, 0.15, 0.3, 0.6, 1.0]), empty=st.booleans(),
       tile=st.sampled_from([(4, 3, 2), (8, 3, 1), (1, 1, 1), (3, 2, 4), (5, 4, 1)]),
       unroll=st.integers(1, 3), per_col=st.booleans(), prefetch=st.integers(0, 1),
       threads=st.integers(1, 2),
       vector=st.sampled_from([4, 8, 16]), border=st.tuples(*[st.integers(0, 3)] * 4),
       out_border=st.tuples(*[st.integers(0, 2)] * 4), seed=st.integers(0, 2**16))
def test_column_kernel_matches_conv2d(n: int, c: int, o: int, h: int, w: int, k: int,
                                      stride: int, padding: int, bias: bool, act: str,
                                      keep: float, empty: bool, tile: tuple[int, int, int],
                                      unroll: int, per_col: bool, prefetch: int, threads: int,
                                      vector: int,
                                      border: tuple[int, ...], out_border: tuple[int, ...],
                                      seed: int) -> None:
    """Random shapes, column keep rates (all kept, a channel with none), strides through
    phase-split inputs, tiles not dividing O or the row, bordered and row-padded input and
    output layouts; the output's border stays zero."""
    rng = np.random.default_rng(seed)
    padding = min(padding, k // 2)
    if h + 2 * padding < k or w + 2 * padding < k:
        padding = k // 2
    if h + 2 * padding < k or w + 2 * padding < k:
        h, w = max(h, k), max(w, k)
    wt = column_pruned(rng, o, c, k, keep, empty and c > 1)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    layer = conv_layer(wt, b, stride=stride, padding=padding, act=act)
    to, tw, th = tile
    sched = Schedule(kernel="column", tile_o=to, tile_w=tw, tile_h=th, unroll_k=unroll,
                     loop_order="cols_filter" if per_col else "filter_cols", threads=threads,
                     vector=vector, prefetch=prefetch)
    src = _src_layout(conv_src_layout(layer, h, w, vector), padding, *border)
    ref = _act(conv_ref(x, wt, b, stride, padding), act)
    ho, wo = ref.shape[2:]
    t, l, r, e = out_border
    dst = Layout(o, ho, wo, t, l, rows=ho + t + r, row=wo + l + e)
    kern = CompiledLayer(layer, "c", sched)
    ir, _ = kern._c_kernel(h, w, src, dst)
    # a plain stride-2 input (few channels: ir.reads_plain_stride2) falls back to pattern
    plain = stride == 2 and reads_plain_stride2(layer)
    assert (kernel_kind(ir, sched) == "column") != plain
    assert ("column kernel" in kern.source) == (kernel_kind(ir, sched) == "column")
    xs, ys = src.alloc(n), dst.alloc(n)
    src.write(xs, x)
    kern.run_c(xs, ys, n, h, w, src, dst)
    assert rel_err(dst.read(ys, n), ref) < 1e-4
    full = ys.reshape(n, o, dst.plane_rows, dst.row_stride).copy()
    full[:, :, t:t + ho, l:l + wo] = 0.0
    assert not full.any()


@pytest.mark.parametrize("keep", [0.1, 1.0])
def test_nine_by_nine_and_dilated(keep: float) -> None:
    rng = np.random.default_rng(int(keep * 10))
    wt = column_pruned(rng, 3, 7, 9, keep, empty_channel=True)
    b = rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((1, 7, 17, 23)).astype(np.float32)
    y = compile_layer(weight=wt, bias=b, padding=4, emitter="c")(x)
    assert rel_err(y, conv_ref(x, wt, b, 1, 4)) < 1e-5
    three = column_pruned(rng, 6, 5, 3, 0.4)
    x = rng.standard_normal((2, 5, 11, 14)).astype(np.float32)
    y = compile_layer(weight=three, padding=2, dilation=2, emitter="c",
                      schedule=Schedule(kernel="column", tile_o=4, tile_h=3, tile_w=1))(x)
    assert rel_err(y, conv_ref(x, three, None, 1, 2, dilation=2)) < 1e-5


def test_no_kept_column_gives_the_bias() -> None:
    rng = np.random.default_rng(3)
    b = rng.standard_normal(5).astype(np.float32)
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    k = compile_layer(weight=np.zeros((5, 4, 3, 3), np.float32), bias=b, padding=1,
                      emitter="c", schedule=Schedule(kernel="column", tile_o=2))
    y = k(x)
    assert "0 kept columns" in k.source
    np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None], y.shape))


def test_column_pruned_layers_default_to_the_column_kernel() -> None:
    rng = np.random.default_rng(4)
    column = conv_layer(column_pruned(rng, 8, 8, 3, 0.3), padding=1)
    pattern = conv_layer(pattern_pruned(rng, 8, 8), padding=1)
    dense = conv_layer(rng.standard_normal((8, 8, 3, 3)).astype(np.float32), padding=1)
    assert is_column_shaped(column) and is_column_shaped(dense) and not is_column_shaped(pattern)
    shape = (8, 12, 12)
    assert default_kernel(conv_ir(column, shape, 8)) == "column"
    assert default_kernel(conv_ir(pattern, shape, 8)) is None
    assert default_kernel(conv_ir(dense, shape, 8)) is None
    k = CompiledLayer(column, "c", input_shape=shape)
    assert k.schedule.kernel == "column" and "column kernel" in k.source
    # grouped, 1x1 and plain stride-2 (few-channel) convs fall back
    sched = Schedule(kernel="column")
    grouped = conv_layer(column_pruned(rng, 8, 4, 3, 0.3), padding=1, groups=2)
    assert kernel_kind(conv_ir(grouped, shape, 8), sched) == "pattern"
    one = conv_layer(rng.standard_normal((8, 8, 1, 1)).astype(np.float32))
    assert kernel_kind(conv_ir(one, shape, 8), sched) == "pointwise"
    stem = conv_layer(column_pruned(rng, 8, 3, 3, 0.5), stride=2, padding=1)
    stem_ir = conv_ir(stem, (3, 12, 12), 8)
    assert kernel_kind(stem_ir, sched) == "pattern" and default_kernel(stem_ir) is None
    assert "column kernel" not in render_c(stem_ir, sched)


def test_column_pruned_transformer_net_matches_pytorch() -> None:
    """TransformerNet column-pruned 4x on every conv but the first (stride 1 and 2, the 9x9
    last layer), untuned: its column-pruned convs run the column kernel."""
    from workbench.models.image_to_image import TransformerNet
    from workbench.pruning.sparsifier import Sparsifier
    torch.manual_seed(6)
    model = TransformerNet(width=8, blocks=1).eval()
    convs = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    Sparsifier([{"tensor": t, "scheme": "column", "rate": 4.0} for t in convs[1:]]
               ).prepare(model).step()
    net = compile(model, emitter="c", input_shape=(3, 20, 28))
    kinds = [s.compiled.schedule.kernel for s in net.steps if s.layer.op == "conv2d"]
    assert kinds.count("column") == len(convs) - 1
    x = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        ref = model(x).numpy()
    assert rel_err(np.asarray(net(x)), ref) < 1e-4
