"""The demo apps' networks: shapes at any allowed H x W, output ranges, training signal, and the
compiler front end tracing each of them whole."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.codegen.frontend_torch import from_torch
from workbench.models.image_to_image import (APP_MODELS, WDSR, ColorNet, TransformerNet,
                                             build_app_model, check_input_size)

SMALL = {"wdsr": {"channels": 8, "blocks": 2}, "colornet": {"width": 8, "global_dim": 16},
         "transformer_net": {"width": 8, "blocks": 1}}
IN_CHANNELS = {"wdsr": 3, "colornet": 1, "transformer_net": 3}


@settings(max_examples=10, deadline=None)
@given(scale=st.sampled_from([2, 3, 4]), h=st.integers(1, 24), w=st.integers(1, 24))
def test_wdsr_upscales_any_size(scale, h, w):
    m = WDSR(scale, **SMALL["wdsr"]).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 3, h, w)).shape == (2, 3, scale * h, scale * w)


def test_wdsr_skip_branch_alone_is_an_upsampler_of_a_flat_image():
    # With the body's output conv zeroed, a flat image at the mean stays at the mean: the
    # mean is subtracted before and added after, so only the residual is learnt.
    m = WDSR(2, **SMALL["wdsr"]).eval()
    with torch.no_grad():
        for conv in (m.tail[0], m.skip[0]):
            conv.weight.zero_()
            conv.bias.zero_()
        x = m.mean.expand(1, 3, 5, 7).clone()
        assert torch.allclose(m(x), m.mean.expand(1, 3, 10, 14))


@settings(max_examples=8, deadline=None)
@given(h=st.integers(1, 4), w=st.integers(1, 4))
def test_colornet_maps_l_to_ab_of_the_same_size(h, w):
    m = ColorNet(**SMALL["colornet"]).eval()
    with torch.no_grad():
        ab = m(torch.rand(2, 1, 8 * h, 8 * w))
    assert ab.shape == (2, 2, 8 * h, 8 * w)
    assert ab.abs().max() <= 1.0  # tanh: ab / 110


def test_colornet_global_branch_reaches_every_pixel():
    # A change in one corner reaches the far corner of a 128 x 128 image only through the global
    # feature: the local path's receptive field is about 115 pixels wide.
    torch.manual_seed(0)
    m = ColorNet(**SMALL["colornet"]).eval()
    x = torch.rand(1, 1, 128, 128)
    y = x.clone()
    y[..., :8, :8] = 1.0 - y[..., :8, :8]
    with torch.no_grad():
        far = (m(x) - m(y))[..., -8:, -8:].abs().max()
        for p in m.global_fc.parameters():
            p.zero_()  # global feature constant (zero): the far corner no longer hears it
        far_local = (m(x) - m(y))[..., -8:, -8:].abs().max()
    assert far > 0 and far_local == 0


@settings(max_examples=8, deadline=None)
@given(h=st.integers(2, 6), w=st.integers(2, 6))  # IN needs > 1 pixel at 1/4
def test_transformer_net_keeps_size_and_range(h, w):
    m = TransformerNet(**SMALL["transformer_net"]).eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, 4 * h, 4 * w))
    assert out.shape == (1, 3, 4 * h, 4 * w)
    assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("name", sorted(APP_MODELS))
def test_every_parameter_gets_a_gradient(name):
    m = build_app_model(name, **SMALL[name]).train()
    x = torch.rand(2, IN_CHANNELS[name], 16, 16)
    m(x).square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_check_input_size():
    check_input_size("colornet", 64, 48)
    check_input_size("wdsr", 7, 5)
    with pytest.raises(ValueError, match="multiples of 8"):
        check_input_size("colornet", 60, 48)
    with pytest.raises(ValueError, match="multiples of 4"):
        check_input_size("transformer_net", 64, 30)
    with pytest.raises(ValueError, match="positive"):
        check_input_size("wdsr", 0, 5)


def test_build_app_model_errors():
    with pytest.raises(ValueError, match="unknown app model 'srgan'"):
        build_app_model("srgan")
    with pytest.raises(ValueError, match="scale must be 2, 3 or 4"):
        WDSR(scale=5)


# What the front end meets first in each network today; when the compiler covers it, this test
# gives way to one that checks the compiled network against PyTorch.
@pytest.mark.parametrize("name", sorted(APP_MODELS))
def test_front_end_traces_each_app_to_an_lr_of_the_right_output_shape(name):
    # tests/codegen/test_image_ops.py runs them against PyTorch; here: the trace is whole
    m = build_app_model(name, **SMALL[name]).eval()
    lr = from_torch(m, (IN_CHANNELS[name], 16, 24))
    with torch.no_grad():
        out = m(torch.rand(1, IN_CHANNELS[name], 16, 24))
    assert lr.shapes()[lr.outputs[0]] == tuple(out.shape[1:])
