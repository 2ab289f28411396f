"""NaN and +-Inf land where PyTorch puts them, in every emitter, op and kernel kind.

PyTorch runs a pruned model on its masked weights, so a pruned weight is a stored zero that
multiplies: 0 x NaN = NaN and 0 x Inf = NaN reach every output whose window covers the
non-finite input. A sparse kernel never reads a pruned weight, so the reference here is
PyTorch's convolution (and linear layer) over the kept weights only (`sparse_reference`): every
non-finite value it has, ours must have, of the same kind (NaN, +Inf, -Inf), and every finite
value must match. Ours may in addition be NaN only where PyTorch's dense computation is NaN (a
kernel that multiplies a stored zero, as the dense ones do): that is 0 x NaN again, never a
number made up.
"""
from __future__ import annotations

import copy
import os
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.codegen.frontend_torch import from_torch
from workbench.codegen.schedule import Schedule
from workbench.codegen.targets import compile

from .helpers import PATTERNS8, pattern_pruned
from .test_frontend_torch import _randomise_bn
from .host.test_network import _small_mobilenet

pytestmark = [pytest.mark.needs_cc, pytest.mark.needs_numba]

KINDS = (float("nan"), float("inf"), float("-inf"))


class _KeptConv(nn.Module):
    """conv2d summing only the products of nonzero weights (float64): a pruned weight is
    absent, as in a sparse kernel, so 0 x NaN never happens; padding zeros are input values and
    do multiply (a NaN weight makes its whole output plane NaN, as in PyTorch)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        n, g = x.shape[0], c.groups
        kh, kw = c.kernel_size
        ho = (x.shape[2] + 2 * c.padding[0] - c.dilation[0] * (kh - 1) - 1) // c.stride[0] + 1
        wo = (x.shape[3] + 2 * c.padding[1] - c.dilation[1] * (kw - 1) - 1) // c.stride[1] + 1
        cols = F.unfold(x, c.kernel_size, c.dilation, c.padding, c.stride)   # (N, C k k, L)
        cols = cols.reshape(n, g, -1, cols.shape[-1])
        w = c.weight.reshape(g, c.out_channels // g, -1)                      # (G, Og, Cg k k)
        prod = w[None, :, :, :, None] * cols[:, :, None, :, :]               # (N, G, Og, K, L)
        y = torch.where(w[None, :, :, :, None] != 0, prod, 0).sum(3)
        y = y.reshape(n, c.out_channels, ho, wo)
        return y if c.bias is None else y + c.bias.reshape(1, -1, 1, 1)


class _KeptLinear(nn.Module):
    """linear layer summing only the products of nonzero weights (see _KeptConv)."""

    def __init__(self, fc: nn.Linear) -> None:
        super().__init__()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc.weight
        y = torch.where(w[None] != 0, w[None] * x[:, None, :], 0).sum(2)
        return y if self.fc.bias is None else y + self.fc.bias


def sparse_reference(model: nn.Module) -> nn.Module:
    """A float64 copy of model whose convs and linear layers skip pruned (zero) weights."""
    ref = copy.deepcopy(model).double().eval()
    for name, m in list(ref.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.Conv2d):
                setattr(m, child_name, _KeptConv(child))
            elif isinstance(child, nn.Linear):
                setattr(m, child_name, _KeptLinear(child))
    return ref


def assert_nonfinite_like(ours: np.ndarray, sparse: np.ndarray, dense: np.ndarray) -> None:
    """ours (float32) against the kept-weights reference `sparse` and PyTorch's dense `dense`
    (float64): same NaN / +Inf / -Inf wherever sparse has one, finite and close where it is
    finite; NaN in ours beyond that only where dense is NaN."""
    assert ours.shape == sparse.shape == dense.shape
    ours = ours.astype(np.float64)
    excused = np.isnan(ours) & np.isnan(dense)
    for kind in (np.isnan, np.isposinf, np.isneginf):
        lost = kind(sparse) & ~kind(ours) & ~excused
        assert not lost.any(), (f"{int(lost.sum())} of {int(kind(sparse).sum())} "
                                f"{kind.__name__[2:]} values of PyTorch's output are not "
                                f"{kind.__name__[2:]} in ours, e.g. {ours[lost][:4]}")
    made_up = np.isfinite(sparse) & ~np.isfinite(ours) & ~excused
    assert not made_up.any(), f"{int(made_up.sum())} non-finite values where PyTorch has numbers"
    both = np.isfinite(sparse) & np.isfinite(ours)
    if both.any():
        scale = max(float(np.abs(sparse[both]).max()), 1e-6)
        assert float(np.abs(ours[both] - sparse[both]).max()) / scale < 1e-4


def _poison(rng: np.random.Generator, t: torch.Tensor, count: int) -> None:
    """Set `count` random entries of t (in place) to NaN, +Inf or -Inf, each kind at random."""
    flat = t.detach().view(-1)
    for i in rng.choice(flat.numel(), size=min(count, flat.numel()), replace=False):
        flat[int(i)] = KINDS[int(rng.integers(0, 3))]


def _check(model: nn.Module, shape: tuple[int, int, int], emitter: str, seed: int,
           in_bad: int, w_bad: int, batch: int = 2,
           schedules: dict[str, Schedule] | None = None) -> None:
    """Poison in_bad input entries and w_bad weights of model's convs / linear layers, compile
    it with emitter and compare with PyTorch (assert_nonfinite_like)."""
    rng = np.random.default_rng(seed)
    model = model.eval()
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for _ in range(w_bad):
            _poison(rng, weights[int(rng.integers(0, len(weights)))], 1)
    x = torch.from_numpy(rng.standard_normal((batch, *shape)).astype(np.float32))
    _poison(rng, x, in_bad)
    with torch.no_grad():
        dense = model.double()(x.double()).numpy()
        model.float()
        sparse = sparse_reference(model)(x.double()).numpy()
    ours = compile(model, input_shape=shape, emitter=emitter, schedules=schedules)(x)
    assert_nonfinite_like(np.asarray(ours), sparse, dense)


def _pruned_conv(rng: np.random.Generator, c: int, o: int, k: int, stride: int, padding: int,
                 groups: int, prune: str) -> nn.Conv2d:
    conv = nn.Conv2d(c, o, k, stride, padding, groups=groups)
    with torch.no_grad():
        if prune == "pattern" and k == 3:
            conv.weight.copy_(torch.from_numpy(pattern_pruned(rng, o, c // groups, 0.5, PATTERNS8)))
        elif prune == "connectivity":
            keep = torch.from_numpy(rng.random((o, c // groups, 1, 1)) < 0.5)
            conv.weight.mul_(keep)
        elif prune == "column":   # whole im2col columns, as the column kernel runs them
            conv.weight.mul_(torch.from_numpy(rng.random((1, c // groups, k, k)) < 0.4))
    return conv


ACTS = {"none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6}
POOLS = {"none": nn.Identity, "max2": lambda: nn.MaxPool2d(2),
         "max3s2p1": lambda: nn.MaxPool2d(3, 2, 1),
         "max2ceil": lambda: nn.MaxPool2d(2, ceil_mode=True),
         "avg2": lambda: nn.AvgPool2d(2), "avg3p1": lambda: nn.AvgPool2d(3, 1, 1),
         "avg3p1ex": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
         "gap": lambda: nn.AdaptiveAvgPool2d(1)}
# the C kernel kinds a layer can take (c.render.kernel_kind falls back where one does not apply)
C_KERNELS = {"pointwise": ("gemm", "pattern"), "depthwise": ("depthwise", "pattern", "taps"),
             "dense": ("pattern", "taps", "pblock", "direct", "column")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(emitter=st.sampled_from(["c", "c", "numba"]), c=st.integers(1, 8), o=st.integers(1, 9),
       h=st.integers(2, 11), w=st.integers(2, 13),
       shape=st.sampled_from(["dense", "dense", "pointwise", "depthwise"]),
       k=st.sampled_from([3, 3, 5]), stride=st.sampled_from([1, 2]), padding=st.integers(0, 2),
       prune=st.sampled_from(["none", "pattern", "connectivity", "column"]),
       act=st.sampled_from(sorted(ACTS)), pool=st.sampled_from(sorted(POOLS)),
       kernel=st.integers(0, 4), in_bad=st.integers(0, 4), w_bad=st.integers(0, 2),
       seed=st.integers(0, 2**16))
def test_random_layers_put_non_finite_values_where_pytorch_does(
        emitter: str, c: int, o: int, h: int, w: int, shape: str, k: int, stride: int,
        padding: int, prune: str, act: str, pool: str, kernel: int, in_bad: int, w_bad: int,
        seed: int) -> None:
    rng = np.random.default_rng(seed)
    if shape == "pointwise":
        k, padding = 1, 0
    groups = c if shape == "depthwise" else 1
    o = c if shape == "depthwise" else o
    padding = min(padding, k // 2)
    ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    windowed = pool.startswith("max") or pool == "avg2"
    assume(min(ho, wo) >= (2 if windowed else 1))
    model = nn.Sequential(_pruned_conv(rng, c, o, k, stride, padding, groups, prune),
                          ACTS[act](), POOLS[pool]())
    kinds = C_KERNELS[shape]
    name = from_torch(model, (c, h, w)).layers[0].name
    scheds = {name: Schedule(kernel=kinds[kernel % len(kinds)])} if emitter == "c" else None
    _check(model, (c, h, w), emitter, seed, in_bad, w_bad, schedules=scheds)


class _Residual(nn.Module):
    """A ResNet basic block (3x3, 3x3 pattern-pruned, identity or 1x1 stride-2 shortcut), the
    add and its ReLU written as functions."""

    def __init__(self, c: int, o: int, stride: int) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o),
                               nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o))
        self.short = (nn.Sequential(nn.Conv2d(c, o, 1, stride, bias=False), nn.BatchNorm2d(o))
                      if stride != 1 or c != o else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b(self.a(x)) + self.short(x))


class _MeanHead(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def _network(name: str) -> tuple[nn.Module, tuple[int, int, int]]:
    """Small networks that between them use every op the front end accepts."""
    if name == "vgg":
        model = nn.Sequential(
            nn.Conv2d(3, 8, 5, 1, 2), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU6(), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Dropout(), nn.Linear(16 * 2 * 2, 12), nn.ReLU(), nn.Linear(12, 10))
        return _randomise_bn(model), (3, 16, 14)
    if name == "resnet":
        model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                              _Residual(8, 8, 1), _Residual(8, 16, 2), _MeanHead(),
                              nn.Linear(16, 10))
        return _randomise_bn(model), (3, 12, 10)
    return _small_mobilenet(), (3, 13, 11)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["vgg", "resnet", "mobilenet"]),
       emitter=st.sampled_from(["c", "c", "numba"]), fuse=st.booleans(),
       prune=st.booleans(), in_bad=st.integers(0, 5), w_bad=st.integers(0, 3),
       seed=st.integers(0, 2**16))
def test_small_networks_put_non_finite_values_where_pytorch_does(
        name: str, emitter: str, fuse: bool, prune: bool, in_bad: int, w_bad: int,
        seed: int) -> None:
    torch.manual_seed(seed)
    model, shape = _network(name)
    if prune:
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1:
                    m.weight.copy_(m.weight * torch.from_numpy(
                        pattern_pruned(rng, m.out_channels, m.in_channels, 0.4) != 0))
    # fuse: every MobileNet expansion / projection fused with its depthwise conv (C plan)
    with mock.patch.dict(os.environ, {"WORKBENCH_FUSE_MIN_BYTES": "0" if fuse else str(1 << 20)}):
        _check(model, shape, emitter, seed, in_bad, w_bad, batch=1 + seed % 2)


@pytest.mark.parametrize("emitter", ["c", "numba"])
@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_one_nan_after_conv_act_and_pool_stays_nan(emitter: str, act: str) -> None:
    # the case that was reported: the C ReLU / ReLU6 zeroed every NaN, and both emitters'
    # max pools dropped a NaN that was not the first value of its window
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), ACTS[act](), nn.MaxPool2d(2)).eval()
    x = torch.randn(1, 3, 8, 8)
    x[0, 1, 3, 3] = float("nan")
    y = compile(model, input_shape=(3, 8, 8), emitter=emitter)(x)
    ref = model(x).detach()
    assert int(ref.isnan().sum()) == 32
    assert torch.equal(y.isnan(), ref.isnan())
    assert torch.allclose(y.nan_to_num(), ref.nan_to_num(), atol=1e-5)
