"""Input dtypes: float32 as it is, other floats converted to float32, the rest refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.codegen.host.kernel import compile_layer
from workbench.codegen.inputs import float32_input
from workbench.codegen.targets import compile


def test_float32_is_used_as_it_is_and_other_floats_are_converted() -> None:
    x = np.arange(6, dtype=np.float32).reshape(1, 6)
    assert float32_input(x, "network") is x
    for dt in (np.float16, np.float64, np.longdouble):
        y = float32_input(x.astype(dt), "network")
        assert y.dtype == np.float32 and y.flags.c_contiguous and np.array_equal(y, x)
    for dt in (torch.float16, torch.bfloat16, torch.float64):
        y = float32_input(torch.from_numpy(x).to(dt), "network")
        assert y.dtype == np.float32 and np.array_equal(y, x)
    # beyond float32's range: +-Inf, as torch's .float() gives, never a wrapped number
    big = float32_input(np.array([1e300, -1e300]), "network")
    assert np.isposinf(big[0]) and np.isneginf(big[1])


@pytest.mark.parametrize("bad", [np.zeros((1, 3), np.uint8), np.zeros((1, 3), np.int64),
                                 np.zeros((1, 3), bool), np.zeros((1, 3), np.complex64),
                                 torch.zeros(1, 3, dtype=torch.int32),
                                 torch.zeros(1, 3, dtype=torch.complex64)])
def test_integer_bool_and_complex_inputs_are_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="takes float inputs.*got dtype"):
        float32_input(bad, "network")


@pytest.mark.needs_numba
@pytest.mark.parametrize("emitter", ["numba", pytest.param("c", marks=pytest.mark.needs_cc)])
def test_compiled_networks_and_layers_apply_the_rule(emitter: str) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    net = compile(model, input_shape=(3, 6, 5), emitter=emitter)
    layer = compile_layer(model[0], emitter=emitter)
    x = torch.randn(2, 3, 6, 5)
    ref = model(x).detach()
    for dt in (torch.float64, torch.float16):
        xd = x.to(dt)
        want = model(xd.float()).detach()
        for y in (net(xd), net(xd.numpy())):
            y = torch.as_tensor(y)
            assert y.dtype == torch.float32 and torch.allclose(y, want, atol=1e-5)
        assert torch.allclose(torch.relu(layer(xd)), want, atol=1e-5)
    assert torch.allclose(net(x), ref, atol=1e-5)
    for bad in (x.to(torch.int64), (x.numpy() * 255).astype(np.uint8)):
        with pytest.raises(TypeError, match="network takes float inputs"):
            net(bad)
        with pytest.raises(TypeError, match="layer takes float inputs"):
            layer(bad)
