"""The CUDA conv kernel without a GPU: its storage round-trips, its schedules are checked, and
its source (and every kernel of whole networks) compiles to PTX through NVRTC."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.codegen.cuda.conv import (check_schedule, conv_geometry, fit_schedule, pack_gpu,
                                         render_conv, unpack_gpu)
from workbench.codegen.cuda.nvrtc import CudaCompileError, compile_cuda
from workbench.codegen.cuda.pointwise import (is_pointwise, pack_pointwise, render_pointwise,
                                              unpack_pointwise)
from workbench.codegen.cuda.schedule import (CONV_SPACE, GpuSchedule, default_gpu_schedule,
                                             schedule_at)
from workbench.codegen.lr import LRError, conv_layer
from workbench.codegen.targets import compile

from ..helpers import pattern_pruned


def _layer(rng: np.random.Generator, o: int, c: int, k: int, groups: int = 1, stride: int = 1,
           keep: float = 0.3):
    if k == 3 and groups == 1:
        w = pattern_pruned(rng, o, c, keep)
    else:
        w = rng.standard_normal((o, c // groups, k, k)).astype(np.float32)
    return conv_layer(w, rng.standard_normal(o).astype(np.float32), stride, k // 2,
                      groups=groups, act="relu")


@pytest.mark.parametrize("o,c,k,groups,tile_f", [(24, 16, 3, 1, 8), (20, 16, 3, 1, 8),
                                                (16, 16, 3, 16, 1), (8, 12, 1, 1, 4),
                                                (12, 6, 5, 3, 2)])
def test_gpu_storage_round_trips_every_kept_weight(o, c, k, groups, tile_f) -> None:
    rng = np.random.default_rng(0)
    layer = _layer(rng, o, c, k, groups)
    w = layer.params["weight"]
    packed = pack_gpu(layer, tile_f)
    np.testing.assert_array_equal(unpack_gpu(packed, w.shape, groups), w)
    # one entry per kept kernel, never one for a pruned kernel
    assert packed.code.size == int((np.abs(w).reshape(o, -1, k * k).sum(2) > 0).sum())


@pytest.mark.parametrize("o,c,tile_f,cblock", [(32, 24, 8, 8), (20, 16, 8, 16), (16, 40, 16, 16),
                                               (12, 7, 4, 4)])
def test_pointwise_storage_round_trips_and_skips_channels_no_filter_of_a_group_keeps(
        o, c, tile_f, cblock) -> None:
    from workbench.pruning.schemes import Block
    rng = np.random.default_rng(2)
    w = torch.from_numpy(rng.standard_normal((o, c, 1, 1)).astype(np.float32))
    w = Block(0.5, 16, 1).project(w)[0].numpy()          # half the channels per 16 filters
    layer = conv_layer(w, None, name="pw")
    packed = pack_pointwise(layer, tile_f, cblock)
    np.testing.assert_array_equal(unpack_pointwise(packed, o, c), w)
    if 16 % tile_f == 0 and o % 16 == 0:
        assert packed.chan.size == int((w[:, :, 0, 0] != 0).sum()) // tile_f


def test_irregular_weights_fall_back_to_one_dense_pattern() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    w[rng.random(w.shape) < 0.6] = 0.0     # hundreds of distinct patterns
    packed = pack_gpu(conv_layer(w, padding=1), 4)
    assert packed.patterns.shape == (1, 9)
    np.testing.assert_array_equal(unpack_gpu(packed, w.shape, 1), w)


def test_schedules_that_cannot_run_are_refused() -> None:
    rng = np.random.default_rng(0)
    g = conv_geometry(_layer(rng, 64, 64, 3), (64, 56, 56))
    pats = np.ones((1, 9), bool)
    with pytest.raises(ValueError, match="threads"):
        render_conv(g, GpuSchedule(tile_h=64, tile_w=64, px_y=1, px_x=1), pats)
    with pytest.raises(ValueError, match="shared memory"):
        render_conv(g, GpuSchedule(tile_h=32, tile_w=64, px_y=4, px_x=4, cblock=16), pats)
    with pytest.raises(ValueError, match="whole number"):
        GpuSchedule(tile_h=8, px_y=3)
    gd = conv_geometry(_layer(rng, 16, 16, 3, groups=16), (16, 8, 8))
    with pytest.raises(ValueError, match="tile_f"):
        render_conv(gd, GpuSchedule(tile_f=2), pats)
    with pytest.raises(ValueError, match="one per block"):
        render_conv(gd, GpuSchedule(tile_f=1, groups=2), pats)


def test_conv_space_counts_and_indexes_its_points() -> None:
    assert len(CONV_SPACE) == 3 * 4 * 4 * 3 * 4 * 5 * 2
    points = list(CONV_SPACE)
    assert len(points) == len(CONV_SPACE) and points[7] == CONV_SPACE[7]
    assert schedule_at(points[0]).tile_f == 4
    with pytest.raises(IndexError):
        CONV_SPACE[len(CONV_SPACE)]


@pytest.mark.needs_nvrtc
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(o=st.sampled_from([8, 16, 24]), c=st.sampled_from([3, 8, 16]), k=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]), hw=st.integers(5, 40), point=st.integers(0, len(CONV_SPACE) - 1))
def test_conv_source_compiles_to_ptx_for_random_layers_and_schedules(o, c, k, stride, hw, point) -> None:
    rng = np.random.default_rng(o * 1000 + c * 10 + k)
    layer = _layer(rng, o, c, k, stride=stride)
    g = conv_geometry(layer, (c, hw, hw))
    s = schedule_at(CONV_SPACE[point])
    if g.og % s.tile_f:
        s = s.with_(tile_f=4)
    render = (lambda s: render_pointwise(g, s)) if is_pointwise(g) else \
        (lambda s: render_conv(g, s, pack_gpu(layer, s.tile_f).patterns))
    try:
        src = render(s)
    except ValueError:
        src = render(default_gpu_schedule(g.og, g.ho, g.wo, g.kh, g.kw, g.cg, k == 1))
    ptx = compile_cuda(src, "compute_90").decode()
    assert ".entry wb_conv" in ptx


@pytest.mark.needs_nvrtc
@pytest.mark.parametrize("k,hw,s", [
    (3, 20, GpuSchedule(stages=2, groups=4)),
    (3, 40, GpuSchedule(stages=2, tile_h=16, tile_w=16, px_y=1, px_x=1, ksplit=2)),
    (1, 14, GpuSchedule(stages=2, px_y=4, px_x=2, cblock=16, groups=2)),
    (5, 9, GpuSchedule(stages=2, tile_h=4, tile_w=64, px_y=1, px_x=1, cblock=4))])
def test_double_buffered_tiles_assemble_for_the_card(k: int, hw: int, s: GpuSchedule) -> None:
    # a CUBIN runs ptxas, which checks the cp.async inline assembly that PTX output only copies
    rng = np.random.default_rng(k + hw)
    layer = _layer(rng, 16, 16, k)
    g = conv_geometry(layer, (16, hw, hw))
    src = render_pointwise(g, s) if is_pointwise(g) else \
        render_conv(g, s, pack_gpu(layer, s.tile_f).patterns)
    assert "cp.async.wait_group 1" in src
    assert compile_cuda(src, "sm_90")[:4] == b"\x7fELF"


def test_a_double_buffered_tile_takes_twice_the_shared_memory() -> None:
    rng = np.random.default_rng(0)
    g = conv_geometry(_layer(rng, 16, 16, 3), (16, 64, 64))
    s = GpuSchedule(tile_h=16, tile_w=64, px_y=2, px_x=2, cblock=8, groups=1)
    check_schedule(g, s)          # 8 channels of 18 x 68 floats: 39 KB of the 48 KB
    with pytest.raises(ValueError, match="shared memory"):
        check_schedule(g, s.with_(stages=2))
    assert fit_schedule(g, s.with_(stages=2)).cblock == 4
    with pytest.raises(ValueError, match="stages"):
        GpuSchedule(stages=3)


@pytest.mark.needs_nvrtc
def test_nvrtc_errors_carry_the_log_and_the_numbered_source() -> None:
    with pytest.raises(CudaCompileError, match="undefined") as e:
        compile_cuda('extern "C" __global__ void k() { nope = 1; }')
    assert "   1  extern" in str(e.value)


@pytest.mark.needs_nvrtc
def test_a_small_network_compiles_to_ptx_every_kernel() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU6(),
                          nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 10), nn.Sigmoid()).eval()
    net = compile(model, target="cuda", input_shape=(3, 16, 16))
    ptx = net.ptx()
    assert len(ptx) == len(net.sources()) >= 7
    assert all(b".entry" in p for p in ptx.values())


def test_an_op_without_a_cuda_kernel_is_refused_by_name() -> None:
    model = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)).eval()
    with pytest.raises(LRError, match="pixel_shuffle.*no CUDA kernel"):
        compile(model, target="cuda", input_shape=(3, 8, 8))
