"""The CUDA target on a GPU: random layers and whole networks against PyTorch (fp32, TF32 off),
eager and as one CUDA graph, NaN and Inf included. Skipped, with the reason, without a GPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.codegen.cuda.conv import conv_geometry
from workbench.codegen.cuda.network import CudaNetwork
from workbench.codegen.cuda.schedule import CONV_SPACE, default_gpu_schedule, schedule_at
from workbench.codegen.lr import LR, conv_layer
from workbench.codegen.targets import compile

from ..helpers import conv_ref, pattern_pruned, rel_err

pytestmark = pytest.mark.needs_gpu


@pytest.fixture(autouse=True)
def _no_tf32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _conv_net(w: np.ndarray, b: np.ndarray, stride: int, pad: int, groups: int, act: str,
              hw: tuple[int, int], point: int | None) -> tuple[CudaNetwork, object]:
    layer = conv_layer(w, b, stride, pad, groups=groups, act=act, name="conv", inputs=["x"])
    c = w.shape[1] * groups
    g = conv_geometry(layer, (c, *hw))
    sched = default_gpu_schedule(g.og, g.ho, g.wo, g.kh, g.kw, g.cg, w.shape[2:] == (1, 1))
    if point is not None:
        s = schedule_at(CONV_SPACE[point])
        if g.og % s.tile_f == 0 or groups == 1:
            sched = s
    lr = LR({"x": [c, *hw]}, [layer], ["conv"])
    try:
        return CudaNetwork(lr, {"conv": sched}), sched
    except ValueError:   # a space point that does not fit this layer (threads, shared memory)
        return CudaNetwork(lr), None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(o=st.sampled_from([4, 8, 16, 24, 40]), c=st.sampled_from([1, 3, 8, 16, 48]),
       k=st.sampled_from([1, 3, 5, 7]), stride=st.sampled_from([1, 2]),
       depthwise=st.booleans(), dense=st.booleans(), h=st.integers(3, 30), w=st.integers(3, 30),
       n=st.integers(1, 3), act=st.sampled_from(["none", "relu", "relu6"]),
       point=st.one_of(st.none(), st.integers(0, len(CONV_SPACE) - 1)))
def test_random_conv_layers_match_pytorch(o, c, k, stride, depthwise, dense, h, w, n, act,
                                          point) -> None:
    rng = np.random.default_rng(o + 7 * c + 31 * k + h * w)
    groups = c if depthwise else 1
    if depthwise:
        o = c
    if k == 3 and groups == 1 and not dense:
        wt = pattern_pruned(rng, o, c, 0.3)
    else:
        wt = rng.standard_normal((o, c // groups, k, k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    net, _ = _conv_net(wt, b, stride, k // 2, groups, act, (h, w), point)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    ref = conv_ref(x, wt, b, stride, k // 2, groups)
    ref = {"none": ref, "relu": np.maximum(ref, 0), "relu6": np.clip(ref, 0, 6)}[act]
    y = net(torch.from_numpy(x).cuda()).cpu().numpy()
    assert y.shape == ref.shape
    assert rel_err(y, ref) < 1e-5


def test_split_sums_and_every_filter_tail_match_pytorch() -> None:
    rng = np.random.default_rng(3)
    wt = pattern_pruned(rng, 20, 64, 0.3)    # 20 filters: a partial last group of 8
    b = rng.standard_normal(20).astype(np.float32)
    x = rng.standard_normal((2, 64, 9, 11)).astype(np.float32)
    ref = np.maximum(conv_ref(x, wt, b, 1, 1), 0)
    for ks in (1, 2, 4, 8):
        for stages in (1, 2):       # 2: the double-buffered tile, staged one block ahead
            s = default_gpu_schedule(20, 9, 11, 3, 3, 64, False).with_(
                tile_f=8, ksplit=ks, cblock=8, stages=stages)
            net = CudaNetwork(LR({"x": [64, 9, 11]}, [conv_layer(wt, b, 1, 1, act="relu",
                                                                 name="conv", inputs=["x"])],
                                 ["conv"]), {"conv": s})
            assert rel_err(net(torch.from_numpy(x).cuda()).cpu().numpy(), ref) < 1e-5, (ks, stages)


@pytest.mark.parametrize("c", [5, 44, 67])
def test_a_double_buffered_tile_zero_fills_the_last_partial_block(c: int) -> None:
    rng = np.random.default_rng(c)
    wt = pattern_pruned(rng, 16, c, 0.5)
    b = rng.standard_normal(16).astype(np.float32)
    x = rng.standard_normal((1, c, 13, 10)).astype(np.float32)
    ref = conv_ref(x, wt, b, 1, 1)
    for cblock in (4, 8, 16):
        s = default_gpu_schedule(16, 13, 10, 3, 3, c, False).with_(cblock=cblock, stages=2)
        net = CudaNetwork(LR({"x": [c, 13, 10]}, [conv_layer(wt, b, 1, 1, name="conv",
                                                             inputs=["x"])], ["conv"]),
                          {"conv": s})
        assert rel_err(net(torch.from_numpy(x).cuda()).cpu().numpy(), ref) < 1e-5, cblock


class _Residual(nn.Module):
    """conv, relu, conv, + input, relu: the residual add with its fused activation."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(16, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.c2(torch.relu(self.c1(x))) + x)


@pytest.mark.parametrize("n", [1, 3])
def test_pools_add_linear_and_activations_match_pytorch(n: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), _Residual(),
                          nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                          nn.AvgPool2d(3, 2, 1, count_include_pad=False),
                          nn.AvgPool2d(2, 2, 1, ceil_mode=True), nn.Tanh(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10), nn.Sigmoid()
                          ).eval()
    x = torch.randn(n, 3, 37, 29)
    ref = model(x).detach().numpy()
    net = compile(model, target="cuda", input_shape=(3, 37, 29))
    assert rel_err(net(x.cuda()).cpu().numpy(), ref) < 1e-5


def test_nan_and_inf_land_where_the_kept_weights_put_them() -> None:
    rng = np.random.default_rng(5)
    wt = pattern_pruned(rng, 16, 8, 0.3)
    layer = conv_layer(wt, None, 1, 1, name="conv", inputs=["x"])
    net = CudaNetwork(LR({"x": [8, 12, 12]}, [layer], ["conv"]))
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)
    x[0, 2, 5, 5], x[0, 6, 0, 11] = np.nan, np.inf
    y = net(torch.from_numpy(x).cuda()).cpu().numpy()
    # the reference multiplies only kept weights: sum over kept (channel, tap) products
    cols = F.unfold(torch.from_numpy(x).double(), 3, padding=1)[0]       # (C 9, L)
    wf = torch.from_numpy(wt).double().reshape(16, -1)
    prod = wf[:, :, None] * cols[None]
    ref = torch.where(wf[:, :, None] != 0, prod, 0).sum(1).reshape(16, 12, 12).numpy()[None]
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
    np.testing.assert_array_equal(np.isneginf(y), np.isneginf(ref))
    fin = np.isfinite(ref)
    assert np.isnan(ref).any() and np.isinf(ref).any()
    assert rel_err(y[fin], ref[fin].astype(np.float32)) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet50", "mobilenet_v2"])
def test_whole_pruned_networks_match_pytorch_eager_and_as_one_graph(name: str) -> None:
    from workbench.bench.peers_bench import model_pair
    _, pruned, _, _ = model_pair(name, 224)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = pruned.cuda()(x.cuda()).cpu().numpy()
    net = compile(pruned.cpu(), target="cuda", input_shape=(3, 224, 224))
    assert rel_err(net(x.cuda()).cpu().numpy(), ref) < 1e-4
    assert rel_err(net.graph(x.cuda()).cpu().numpy(), ref) < 1e-4
    x2 = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref2 = pruned.cuda()(x2.cuda()).cpu().numpy()
    assert rel_err(net.graph(x2.cuda()).cpu().numpy(), ref2) < 1e-4   # a replay, new input
