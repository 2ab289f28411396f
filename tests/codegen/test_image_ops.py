"""The apps' ops (pixel shuffle, nearest upsampling, instance norm, concat, broadcast, tanh,
sigmoid, arithmetic by a constant, 5x5 / 9x9 convs, any H x W) against PyTorch, in both
emitters, between convs (padded layouts) and on the network's own input and output (NaN and
Inf included); what the LR cannot express is refused by name."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.codegen.frontend_torch import UnsupportedOpError, from_torch
from workbench.codegen.lr import Layer, LRError
from workbench.codegen.targets import compile
from workbench.models.image_to_image import build_app_model

from .helpers import rel_err

pytestmark = [pytest.mark.needs_cc, pytest.mark.needs_numba]

EMITTERS = ("c", "numba")


class _Between(nn.Module):
    """conv 3x3 -> op -> conv 3x3: the op reads and writes the padded layouts convs use."""

    def __init__(self, op: nn.Module, cin: int, mid: int, mid_out: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(cin, mid, 3, padding=1)
        self.op = op
        self.b = nn.Conv2d(mid_out, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.op(self.a(x)))


class _Affine(nn.Module):
    """The arithmetic by constants WDSR does (a registered per-channel buffer) and more."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.rand(1, c, 1, 1))
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x - self.mean)
        return (2.0 - y) * 0.5 + self.mean / 4 + y / 3.0


class _GlobalFuse(nn.Module):
    """ColorNet's fusion: a global feature vector broadcast over a map and concatenated."""

    def __init__(self, c: int, g: int) -> None:
        super().__init__()
        self.local = nn.Conv2d(c, c, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, g)
        self.fuse = nn.Conv2d(c + g + c, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        loc = self.local(x)
        v = torch.relu(self.fc(self.pool(loc).flatten(1)))
        gmap = v[:, :, None, None].expand(-1, -1, loc.shape[2], loc.shape[3])
        return self.fuse(torch.cat([loc, gmap, x], dim=1))


def _check(model: nn.Module, x: torch.Tensor, tol: float = 1e-5) -> None:
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy()
    for emitter in EMITTERS:
        net = compile(model, emitter=emitter, input_shape=tuple(x.shape[1:]))
        y = net(x.numpy())
        assert y.shape == ref.shape, emitter
        assert rel_err(y, ref) < tol, (emitter, rel_err(y, ref))


def _random_norm(m: nn.Module) -> nn.Module:
    for mod in m.modules():
        if isinstance(mod, (nn.InstanceNorm2d, nn.BatchNorm2d)) and mod.weight is not None:
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    return m


@settings(max_examples=6, deadline=None)
@given(r=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       seed=st.integers(0, 99))
def test_pixel_shuffle_between_convs(r, c, h, w, seed):
    torch.manual_seed(seed)
    _check(_Between(nn.PixelShuffle(r), 2, c * r * r, c), torch.randn(2, 2, h, w))


@settings(max_examples=6, deadline=None)
@given(sh=st.integers(1, 3), sw=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       seed=st.integers(0, 99))
def test_nearest_upsampling_between_convs(sh, sw, h, w, seed):
    torch.manual_seed(seed)
    op = nn.Upsample(scale_factor=(sh, sw), mode="nearest")
    _check(_Between(op, 3, 5, 5), torch.randn(1, 3, h, w))


@settings(max_examples=6, deadline=None)
@given(affine=st.booleans(), relu=st.booleans(), h=st.integers(1, 11), w=st.integers(2, 11),
       seed=st.integers(0, 99))
def test_instance_norm_with_its_activation(affine, relu, h, w, seed):
    torch.manual_seed(seed)
    op = nn.Sequential(nn.InstanceNorm2d(6, affine=affine), *([nn.ReLU()] if relu else []))
    _check(_Between(_random_norm(op), 3, 6, 6), 3 * torch.randn(2, 3, h, w) + 1)


@pytest.mark.parametrize("act", [nn.Tanh(), nn.Sigmoid()])
def test_tanh_and_sigmoid_after_a_conv(act):
    torch.manual_seed(0)
    _check(_Between(act, 3, 4, 4), 4 * torch.randn(1, 3, 7, 10))


def test_arithmetic_by_constants_is_a_per_channel_scale_and_shift():
    torch.manual_seed(1)
    _check(_Affine(3), torch.rand(2, 3, 9, 7))


def test_global_feature_broadcast_and_concat():
    torch.manual_seed(2)
    _check(_GlobalFuse(5, 7), torch.randn(2, 5, 6, 8))


@pytest.mark.parametrize("k", [5, 9])
def test_large_first_and_last_kernels(k):
    torch.manual_seed(k)
    m = nn.Sequential(nn.Conv2d(3, 8, k, padding=k // 2), nn.ReLU(),
                      nn.Conv2d(8, 3, k, padding=k // 2))
    _check(m, torch.randn(1, 3, 13, 11))


NONFINITE = {"upsample": nn.Upsample(scale_factor=2, mode="nearest"),
             "pixel_shuffle": nn.PixelShuffle(2), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(),
             "instance_norm": nn.InstanceNorm2d(4, affine=True)}


@pytest.mark.parametrize("name", sorted(NONFINITE))
def test_nan_and_inf_land_where_pytorch_puts_them(name):
    # the op reads the network's input and writes its output: plain layouts at both ends
    torch.manual_seed(3)
    x = torch.randn(2, 4, 6, 6)
    x[0, 1, 2, 3], x[1, 2, 0, 0], x[1, 3, 5, 5] = float("nan"), float("inf"), float("-inf")
    model = _random_norm(nn.Sequential(NONFINITE[name])).eval()
    with torch.no_grad():
        ref = model(x).numpy()
    for emitter in EMITTERS:
        y = compile(model, emitter=emitter, input_shape=(4, 6, 6))(x.numpy())
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, equal_nan=True,
                                   err_msg=emitter)


SMALL = {"wdsr": {"channels": 8, "blocks": 2}, "colornet": {"width": 8, "global_dim": 16},
         "transformer_net": {"width": 8, "blocks": 1}}


@pytest.mark.parametrize("name,shape", [("wdsr", (3, 13, 10)), ("colornet", (1, 24, 40)),
                                        ("transformer_net", (3, 20, 12))])
def test_app_networks_compile_and_match_pytorch(name, shape):
    torch.manual_seed(4)
    m = build_app_model(name, **SMALL[name])
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.3, 0.3)
            mod.running_var.uniform_(0.5, 2.0)
    _check(_random_norm(m), torch.rand(2, *shape), tol=2e-5)


class _Bilinear(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=2, mode="bilinear")


class _CatRows(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=2)


class _RowScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("s", torch.rand(1, 1, 6, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


class _OverTensor(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 / x


class _ParamAdd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.rand(3, 6, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.p)


@pytest.mark.parametrize("model,what", [(_Bilinear(), "mode 'bilinear'"),
                                        (_CatRows(), "cat along dim 2"),
                                        (_RowScale(), "one value per channel"),
                                        (_OverTensor(), "divided by a tensor"),
                                        (_ParamAdd(), "parameter access 'p'")])
def test_what_the_lr_cannot_express_is_refused_by_name(model, what):
    with pytest.raises(UnsupportedOpError, match="graph node") as e:
        from_torch(model, (3, 6, 6))
    assert what in str(e.value)


def test_a_conv_carrying_tanh_is_refused():
    # the conv kernels fuse relu / relu6 only: tanh must stay its own act layer
    layer = Layer("c", "conv2d", ["input"], {"in_channels": 1, "out_channels": 1,
                                             "kernel": [1, 1], "stride": [1, 1],
                                             "padding": [0, 0], "dilation": [1, 1],
                                             "groups": 1, "act": "tanh"},
                  {"weight": np.ones((1, 1, 1, 1), np.float32)})
    with pytest.raises(LRError, match="act layer of its own"):
        layer.validate()
