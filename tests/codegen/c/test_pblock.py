"""The pblock kernel (per-pattern bodies in input-channel blocks) against F.conv2d."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.codegen import Schedule, compile_layer
from workbench.codegen.c.render import kernel_kind, render_c
from workbench.codegen.host.kernel import CompiledLayer
from workbench.codegen.ir import Layout, conv_ir
from workbench.codegen.lr import conv_layer

from ..helpers import PATTERNS8, conv_ref, pattern_pruned, rel_err

pytestmark = pytest.mark.needs_cc


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 40), o=st.integers(1, 20), h=st.integers(1, 19),
       w=st.integers(1, 35), stride=st.sampled_from([1, 1, 2, 3]), padding=st.integers(0, 2),
       dilation=st.sampled_from([1, 1, 2]), grouped=st.booleans(), keep=st.floats(0.0, 1.0),
       th=st.integers(1, 6), tw=st.integers(1, 4), lre=st.integers(0, 2),
       cblock=st.sampled_from([0, 1, 3, 8, 32]), tile_o=st.sampled_from([1, 3, 4, 64]),
       per_col=st.booleans(), parallel=st.sampled_from(["rows", "filters"]),
       threads=st.integers(1, 2), act=st.sampled_from(["none", "relu", "relu6"]),
       seed=st.integers(0, 2**16))
def test_pblock_kernel_matches_conv2d(n: int, c: int, o: int, h: int, w: int, stride: int,
                                      padding: int, dilation: int, grouped: bool, keep: float,
                                      th: int, tw: int, lre: int, cblock: int, tile_o: int,
                                      per_col: bool, parallel: str, threads: int, act: str,
                                      seed: int) -> None:
    """Random shapes, random patterns, every knob: rows of a shorter last tile, channel
    blocks with empty groups, filter groups not dividing O, strides (plain stride 2,
    phase-split 3), dilation, groups."""
    rng = np.random.default_rng(seed)
    groups = 2 if grouped and c % 2 == 0 and o % 2 == 0 else 1
    span = 2 * dilation + 1
    if h + 2 * padding < span or w + 2 * padding < span:
        padding = span
    wt = pattern_pruned(rng, o, c // groups, keep, PATTERNS8)
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    sched = Schedule(kernel="pblock", tile_h=th, tile_w=tw, lre=lre, cblock=cblock,
                     tile_o=tile_o, loop_order="cols_filter" if per_col else "filter_cols",
                     parallel=parallel, threads=threads)
    k = compile_layer(weight=wt, bias=b, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, act=act, emitter="c", schedule=sched)
    y = k(x)
    ref = conv_ref(x, wt, b, stride, padding, groups, dilation)
    ref = np.maximum(ref, 0) if act == "relu" else np.clip(ref, 0, 6) if act == "relu6" else ref
    assert "pblock kernel" in k.source
    assert rel_err(y, ref) < 1e-4


def test_pblock_kernel_mixed_tap_counts_and_dense() -> None:
    rng = np.random.default_rng(21)
    x = rng.standard_normal((1, 5, 9, 17)).astype(np.float32)
    mixed = pattern_pruned(rng, 6, 5, 0.7, ((4,), (1, 4, 7), (0, 1, 2, 3, 4, 5, 6, 7, 8)))
    dense = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    for wt, pad in ((mixed, 1), (dense, 0), (np.zeros((3, 5, 3, 3), np.float32), 1)):
        b = rng.standard_normal(wt.shape[0]).astype(np.float32)
        y = compile_layer(weight=wt, bias=b, padding=pad, emitter="c",
                          schedule=Schedule(kernel="pblock", tile_h=2, tile_w=2, cblock=2,
                                            tile_o=2))(x)
        assert rel_err(y, conv_ref(x, wt, b, 1, pad)) < 1e-5


@pytest.mark.parametrize("per_col", [False, True])
@pytest.mark.parametrize("hw", [(7, 7), (14, 14), (9, 20)])
def test_pblock_kernel_writes_padded_layouts(per_col: bool, hw: tuple[int, int]) -> None:
    """In a network the output is a zero-bordered, row-padded buffer: partial sums move as
    whole vectors there between blocks, and the last block must leave the border zero."""
    rng = np.random.default_rng(hw[1] + per_col)
    c, o = 12, 10
    h, w = hw
    wt = pattern_pruned(rng, o, c, 0.5)
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    layer = conv_layer(wt, b, padding=1, act="relu")
    sched = Schedule(kernel="pblock", tile_h=3, tile_w=2, cblock=4, tile_o=3, threads=2,
                     loop_order="cols_filter" if per_col else "filter_cols")
    k = CompiledLayer(layer, "c", sched)
    src = conv_ir(layer, (c, h, w), 8).src
    dst = Layout(o, h, w, 1, 1, rows=h + 3, row=w + 10)
    xs, ys = src.alloc(2), dst.alloc(2)
    src.write(xs, x)
    k.run_c(xs, ys, 2, h, w, src, dst)
    assert rel_err(dst.read(ys, 2), np.maximum(conv_ref(x, wt, b, 1, 1), 0)) < 1e-5
    full = ys.reshape(2, o, dst.plane_rows, dst.row_stride).copy()
    full[:, :, 1:1 + h, 1:1 + w] = 0.0
    assert not full.any()


def test_pblock_kernel_is_rendered_where_asked() -> None:
    rng = np.random.default_rng(22)
    layer = conv_layer(pattern_pruned(rng, 8, 8), padding=1)
    ir = conv_ir(layer, (8, 12, 12), 8)
    sched = Schedule(kernel="pblock", cblock=3)
    assert kernel_kind(ir, sched) == "pblock"
    assert "pblock kernel, 3 channel block(s)" in render_c(ir, sched)
    # one body per pattern in each tile function, as the pattern kernel
    assert render_c(ir, sched).count("/* pattern ") % layer.kernel_patterns.num_patterns == 0
    one = conv_layer(rng.standard_normal((8, 8, 1, 1)).astype(np.float32))
    assert kernel_kind(conv_ir(one, (8, 12, 12), 8), sched) == "pointwise"


def test_network_on_the_pblock_kernel() -> None:
    """Every 3x3 conv of a ResNet-18 (stride 1 and 2) on the pblock kernel, batch 2: the
    runtime's bordered layouts and shared buffers hold the partial sums between blocks."""
    from workbench.codegen import compile
    from workbench.codegen.frontend_torch import from_torch
    from workbench.models import build_model
    torch.manual_seed(3)
    model = build_model("resnet18", 10, 32).eval()
    with torch.no_grad():
        rng = np.random.default_rng(3)
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3):
                m.weight.copy_(torch.from_numpy(pattern_pruned(rng, *m.weight.shape[:2])))
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    lr = from_torch(model, (3, 32, 32))
    pb = {l.name: Schedule(kernel="pblock", cblock=16, tile_o=24, tile_h=3, tile_w=2, threads=2)
          for l in lr.layers if l.op == "conv2d" and tuple(l.attrs["kernel"]) == (3, 3)}
    net = compile(lr, emitter="c", schedules=pb)
    assert sum("pblock kernel" in s.compiled.source for s in net.steps
               if s.layer.name in pb) == len(pb)
    x = torch.randn(2, 3, 32, 32)
    assert rel_err(np.asarray(net(x)), model(x).detach().numpy()) < 1e-4
