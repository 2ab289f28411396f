"""Network description: PyTorch models with declared modules, widths and parameter counts."""
import pytest
import torch
from torch import nn

from workbench.models.resnet_cifar import ResNetCifar
from workbench.tune.network import (GraphModel, NetworkError, from_module, keep, net_from_dict,
                                    net_to_dict, state_from_module)


@pytest.fixture
def resnet():
    m = ResNetCifar(8, 10, in_channels=1, widths=(4, 8, 8)).eval()
    return m, from_module(m, m.block_names(), (1, 8, 8))


def test_keep():
    assert [keep(16, r) for r in (0.0, 0.3, 0.5, 0.7)] == [16, 11, 8, 5]
    assert keep(2, 0.7) == 1 and keep(1, 0.7) == 1


def test_traced_model_matches_source(resnet):
    m, net = resnet
    assert net.modules == ("layer1.0", "layer2.0", "layer3.0")
    g = GraphModel(net).eval()
    g.load_state_dict(state_from_module(net, m))
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(g(x), m(x))
    assert net.param_count() == sum(p.numel() for p in m.parameters())


def test_pruned_param_count_matches_built_model(resnet):
    _, net = resnet
    rates = {"layer1.0": 0.3, "layer2.0": 0.7, "layer3.0": 0.5}
    g = GraphModel(net, rates)
    assert net.param_count(rates) == sum(p.numel() for p in g.parameters())
    assert net.param_count(rates) < net.param_count()
    assert g(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert g.layers["layer2_0_conv1"].out_channels == keep(8, 0.7)
    assert g.layers["layer2_0_conv2"].in_channels == keep(8, 0.7)
    assert g.layers["layer2_0_shortcut_0"].out_channels == 8  # shortcuts stay whole


def test_json_round_trip(resnet):
    _, net = resnet
    back = net_from_dict(net_to_dict(net))
    assert back.modules == net.modules and back.param_count({"layer1.0": 0.5}) == \
        net.param_count({"layer1.0": 0.5})


def test_bad_declarations_are_explained():
    m = ResNetCifar(8, 10)
    with pytest.raises(NetworkError, match="not a submodule"):
        from_module(m, ["layer9.0"], (3, 32, 32))
    with pytest.raises(NetworkError, match="may not nest"):
        from_module(m, ["layer1", "layer1.0"], (3, 32, 32))

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return torch.sigmoid(self.c(x))

    with pytest.raises(NetworkError, match="sigmoid"):
        from_module(Odd(), [], (3, 8, 8))
    with pytest.raises(NetworkError, match="undeclared modules"):
        from_module(m, m.block_names(), (3, 32, 32)).widths({"layerX": 0.3})
