"""The GEMV kernels of every linear weight format against PyTorch: random shapes and sparsity,
activations, batches, NaN and Inf; and whole networks with pruned classifiers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.codegen.host.build import host_vector_width
from workbench.codegen.host.linear import LinearKernel
from workbench.codegen.linear_storage import LinearStorage
from workbench.codegen.schedule import Schedule
from workbench.codegen.targets import compile
from workbench.pruning.schemes import Block, Irregular

pytestmark = pytest.mark.needs_cc
ACTS = {"none": lambda t: t, "relu": F.relu, "relu6": F.relu6}


def _kernel(w: np.ndarray, b: np.ndarray, kind: str, rows: int, act: str) -> LinearKernel:
    """The generated GEMV of w in format kind (rows per rowblock block), on 2 threads."""
    return LinearKernel(w, b, act, host_vector_width(),
                        Schedule(kernel=kind, tile_o=rows or 4, threads=2))


def _support(store: LinearStorage) -> np.ndarray:
    """Bool (O, C): the weights the kernel multiplies (a rowblock block's zeros included)."""
    o, c = store.shape
    if store.kind == "dense":
        return np.ones((o, c), bool)
    s = np.zeros(((len(store.ptr) - 1) * store.rows if store.kind == "rowblock" else o, c), bool)
    for r in range(len(store.ptr) - 1):
        cols = store.cols[store.ptr[r]:store.ptr[r + 1]]
        if store.kind == "csr":
            s[r, cols] = True
        else:
            s[r * store.rows:(r + 1) * store.rows, cols] = True
    return s[:o]


@settings(max_examples=25, deadline=None)
@given(o=st.integers(1, 70), c=st.integers(1, 90), n=st.integers(1, 3),
       density=st.sampled_from([0.0, 0.1, 0.4, 1.0]),
       kind=st.sampled_from(["dense", "rowblock", "csr"]),
       act=st.sampled_from(list(ACTS)), seed=st.integers(0, 999))
def test_random_layers_match_pytorch(o: int, c: int, n: int, density: float, kind: str, act: str,
                                     seed: int) -> None:
    rng = np.random.default_rng(seed)
    vw = host_vector_width()
    w = (rng.standard_normal((o, c)) * (rng.random((o, c)) < density)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((n, c)).astype(np.float32)
    kern = _kernel(w, b, kind, 2 * vw, act)
    assert kern.store.kind == kind
    y = kern(x)
    ref = ACTS[act](F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["dense", "rowblock", "csr"])
@pytest.mark.parametrize("act", ["none", "relu", "relu6"])
def test_nan_and_inf_land_where_the_multiplied_weights_put_them(kind: str, act: str) -> None:
    # a pruned weight is absent (not a zero times NaN): the reference sums the weights the
    # format multiplies; dense multiplies all of them, exactly as PyTorch does
    rng = np.random.default_rng(3)
    vw = host_vector_width()
    o, c = 37, 50
    w = Block(0.25, vw, 1).project(rng.standard_normal((o, c)).astype(np.float32))[0]
    w[5, 3] = 0.0
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((2, c)).astype(np.float32)
    x[0, 3], x[1, 7], x[1, 11] = np.nan, np.inf, -np.inf
    kern = _kernel(w, b, kind, vw, act)
    store = kern.store
    y = kern(x)
    wd = np.where(_support(store), w.astype(np.float64), np.nan)
    with np.errstate(invalid="ignore"):
        terms = np.where(np.isnan(wd)[None], 0.0, wd[None] * x.astype(np.float64)[:, None])
        ref = ACTS[act](torch.from_numpy(terms.sum(-1) + b)).numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
    np.testing.assert_allclose(y[finite], ref[finite], rtol=1e-5, atol=1e-5)
    if kind == "dense":   # and dense is PyTorch's result on the masked weights
        torch_ref = ACTS[act](F.linear(torch.from_numpy(x), torch.from_numpy(w),
                                       torch.from_numpy(b)))
        np.testing.assert_array_equal(np.isnan(y), torch_ref.isnan().numpy())


def _classifier(scheme: str) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 96), nn.ReLU(), nn.Linear(96, 64),
                          nn.ReLU6(), nn.Linear(64, 10)).eval()
    proj = Block(0.125, 16, 1) if scheme == "block" else Irregular(0.125)
    with torch.no_grad():
        for i in (1, 3):
            model[i].weight.copy_(proj.project(model[i].weight)[0])
    return model


@pytest.mark.parametrize("scheme", ["block", "irregular"])
def test_networks_with_pruned_classifiers_match_pytorch_in_every_format(scheme: str) -> None:
    model = _classifier(scheme)
    x = torch.randn(3, 3, 4, 4)
    ref = model(x).detach().numpy()
    for kind in (None, "dense", "rowblock", "csr"):   # None: the compiler's choice
        net = compile(model, emitter="c", input_shape=(3, 4, 4),
                      schedules=None if kind is None else _by_layer(model, kind))
        np.testing.assert_allclose(net(x.numpy()), ref, rtol=1e-5, atol=1e-5)


def _by_layer(model: nn.Module, kind: str) -> dict[str, Schedule]:
    """A schedule forcing `kind` for each linear layer of the traced model (by LR name)."""
    from workbench.codegen.frontend_torch import from_torch
    lr = from_torch(model, (3, 4, 4))
    rows = max(16, host_vector_width())
    return {lay.name: Schedule(kernel=kind, tile_o=rows) for lay in lr.layers if lay.op == "linear"}
