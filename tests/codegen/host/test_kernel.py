"""compile_layer: generated Numba pattern kernels against F.conv2d on the masked weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.codegen import LRError, Schedule, compile_layer

from ..helpers import PATTERNS8, conv_ref, pattern_pruned, rel_err

pytestmark = pytest.mark.needs_numba


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, 0), (2, 0)])
def test_conv_module_matches_conv2d(stride: int, padding: int) -> None:
    rng = np.random.default_rng(0)
    conv = torch.nn.Conv2d(8, 12, 3, stride=stride, padding=padding)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(pattern_pruned(rng, 12, 8)))
    kernel = compile_layer(conv, emitter="numba")
    x = rng.standard_normal((2, 8, 11, 9)).astype(np.float32)
    y = kernel(x)
    ref = conv_ref(x, conv.weight.detach().numpy(), conv.bias.detach().numpy(), stride, padding)
    assert y.shape == ref.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_attributes_describe_the_pruning() -> None:
    rng = np.random.default_rng(1)
    w = pattern_pruned(rng, 16, 16, keep=0.3)
    kernel = compile_layer(w, padding=1)
    kept = int((np.abs(w).sum(axis=(2, 3)) > 0).sum())
    assert kernel.kept_kernels == kept
    assert kernel.total_kernels == 256
    assert kernel.num_patterns == len({tuple(np.flatnonzero(k.reshape(-1)))
                                       for k in w.reshape(-1, 3, 3) if k.any()})
    assert kernel.lr.op == "conv2d" and kernel.lr.attrs["padding"] == [1, 1]
    assert "def kernel(" in kernel.source
    # One loop body per pattern, and no tap that a pattern prunes is ever read.
    assert kernel.source.count("# pattern ") == kernel.num_patterns


def test_torch_input_gives_torch_output_and_bias_free_conv() -> None:
    rng = np.random.default_rng(2)
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(pattern_pruned(rng, 6, 4, keep=0.5)))
    x = torch.randn(1, 4, 7, 7)
    y = compile_layer(conv)(x)
    assert isinstance(y, torch.Tensor)
    ref = conv_ref(x.numpy(), conv.weight.detach().numpy(), None, 1, 1)
    assert rel_err(y.numpy(), ref) < 1e-5


def test_fully_pruned_filters_give_bias_and_threads_split_the_work() -> None:
    rng = np.random.default_rng(3)
    w = pattern_pruned(rng, 32, 32, keep=0.3)
    w[5] = 0.0  # filter 5 has no kernel left: its output is its bias
    b = rng.standard_normal(32).astype(np.float32)
    x = rng.standard_normal((1, 32, 24, 24)).astype(np.float32)
    kernel = compile_layer(weight=w, bias=b, padding=1, schedule=Schedule(tile_h=5, threads=2))
    y = kernel(x)
    assert rel_err(y, conv_ref(x, w, b, 1, 1)) < 1e-5
    np.testing.assert_array_equal(y[0, 5], np.full((24, 24), b[5], np.float32))


def test_relu_is_fused_and_dilation_works() -> None:
    rng = np.random.default_rng(4)
    w = pattern_pruned(rng, 5, 3, keep=0.8)
    x = rng.standard_normal((1, 3, 10, 10)).astype(np.float32)
    y = compile_layer(weight=w, padding=2, dilation=2, act="relu")(x)
    ref = np.maximum(conv_ref(x, w, None, 1, 2, dilation=2), 0)
    assert rel_err(y, ref) < 1e-5


def test_bad_inputs_are_named() -> None:
    rng = np.random.default_rng(5)
    kernel = compile_layer(pattern_pruned(rng, 4, 3), padding=1)
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\)"):
        kernel(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(LRError, match="4-D"):
        compile_layer(np.zeros((4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="emitter"):
        compile_layer(pattern_pruned(rng, 4, 3), emitter="cuda")


# A small pool keeps the number of distinct generated sources (each a Numba compile) low.
POOL = PATTERNS8[:4]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c=st.integers(1, 6), o=st.integers(1, 6), h=st.integers(3, 9),
       w=st.integers(3, 9), stride=st.sampled_from([1, 2]), padding=st.integers(0, 2),
       depthwise=st.booleans(), keep=st.floats(0.2, 1.0), seed=st.integers(0, 2**16))
def test_random_layers_match_conv2d(n: int, c: int, o: int, h: int, w: int, stride: int,
                                    padding: int, depthwise: bool, keep: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = c if depthwise else 1
    o = c * (1 + o % 2) if depthwise else o
    if h + 2 * padding < 3 or w + 2 * padding < 3:
        padding = 1
    wt = pattern_pruned(rng, o, c // groups, keep, POOL)
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y = compile_layer(weight=wt, bias=b, stride=stride, padding=padding, groups=groups)(x)
    ref = conv_ref(x, wt, b, stride, padding, groups)
    assert y.shape == ref.shape
    assert rel_err(y, ref) < 1e-4
