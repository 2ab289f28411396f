"""The fused 1x1 pair (expansion + reduction, c.fused_pointwise) against PyTorch, through
compile(emitter="c"): random small networks (3x3 -> 1x1 expand -> relu -> 1x1 reduce -> 3x3,
biases or not, the reduction writing a bordered layout, pruned expansion channels), NaN/Inf
inputs, and the WDSR app model; the fusion threshold is lowered to 1 byte so these tiny
maps fuse."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.codegen.host.fusion import is_fused_pointwise
from workbench.codegen.targets import compile
from workbench.models.image_to_image import build_app_model

from ..helpers import rel_err
from ..test_nonfinite import KINDS, assert_nonfinite_like, sparse_reference

pytestmark = pytest.mark.needs_cc

_ACTS = {"none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6}


@pytest.fixture(autouse=True)
def _fuse_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_FUSE_MIN_BYTES", "1")


def _pair_net(rng: np.random.Generator, act: str, bias: bool) -> tuple[nn.Module, tuple]:
    """conv 3x3 -> 1x1 expand -> relu -> 1x1 reduce -> act -> conv 3x3, random channels
    (1-40) and plane (1-20); some expansion channels pruned; returns (model, input shape)."""
    c, m, r, o = (int(v) for v in rng.integers(1, 41, 4))
    h, w = (int(v) for v in rng.integers(1, 21, 2))
    model = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, m, 1, bias=bias),
                          nn.ReLU(), nn.Conv2d(m, r, 1, bias=bias), _ACTS[act](),
                          nn.Conv2d(r, o, 3, padding=1)).eval()
    with torch.no_grad():
        for conv in (model[1], model[3]):
            conv.weight.normal_()
            if bias:
                conv.bias.normal_()
        keep = torch.from_numpy(rng.random((m, c)) < 0.7).float()
        model[1].weight.mul_(keep[:, :, None, None])
    return model, (3, h, w)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("act", ["none", "relu", "relu6"])
def test_random_pairs_match_pytorch(seed: int, act: str) -> None:
    rng = np.random.default_rng(seed)
    model, shape = _pair_net(rng, act, bias=seed % 2 == 0)
    net = compile(model, input_shape=shape, emitter="c")
    assert [s.layer.attrs["fused"] for s in net.steps if is_fused_pointwise(s.layer)] == \
        [["_1", "_3"]]
    x = torch.from_numpy(rng.standard_normal((1 + seed % 2, *shape)).astype(np.float32))
    with torch.no_grad():
        ref = model.double()(x.double()).float().numpy()
    assert rel_err(np.asarray(net(x)), ref) < 1e-5


@pytest.mark.parametrize("seed", range(4))
def test_non_finite_inputs_land_where_pytorch_puts_them(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    model, shape = _pair_net(rng, "relu", bias=True)
    x = torch.from_numpy(rng.standard_normal((2, *shape)).astype(np.float32))
    flat = x.view(-1)
    for i in rng.choice(flat.numel(), size=min(3, flat.numel()), replace=False):
        flat[int(i)] = KINDS[int(rng.integers(0, 3))]
    net = compile(model, input_shape=shape, emitter="c")
    assert any(is_fused_pointwise(s.layer) for s in net.steps)
    with torch.no_grad():
        dense = model.double()(x.double()).numpy()
        model.float()
        sparse = sparse_reference(model)(x.double()).numpy()
    assert_nonfinite_like(np.asarray(net(x)), sparse, dense)


def test_wdsr_app_model_fuses_every_block_and_matches_pytorch() -> None:
    torch.manual_seed(0)
    model = build_app_model("wdsr", channels=8, blocks=2).eval()
    net = compile(model, input_shape=(3, 12, 20), emitter="c")
    assert sum(is_fused_pointwise(s.layer) for s in net.steps) == 2
    x = torch.rand(2, 3, 12, 20)
    with torch.no_grad():
        ref = model(x).numpy()
    assert rel_err(np.asarray(net(x)), ref) < 1e-5


def test_pairs_stay_apart_below_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_FUSE_MIN_BYTES", str(1 << 40))
    model, shape = _pair_net(np.random.default_rng(0), "none", bias=True)
    net = compile(model, input_shape=shape, emitter="c")
    assert not any(is_fused_pointwise(s.layer) for s in net.steps)
