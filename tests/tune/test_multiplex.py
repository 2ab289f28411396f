"""The generated multiplexing model imports, runs, and agrees with the source model."""
from pathlib import Path

import pytest
import torch

from workbench.models.resnet_cifar import ResNetCifar
from workbench.tune.filter_pruning import l1_prune
from workbench.tune.multiplex import load_multiplex, write_multiplex
from workbench.tune.network import GraphModel, from_module, state_from_module
from workbench.tune.prototxt import load_prototxt

DATA = Path(__file__).parent / "data"


@pytest.fixture
def resnet(tmp_path):
    m = ResNetCifar(14, 10, in_channels=1, widths=(4, 8, 8))
    x = torch.randn(64, 1, 8, 8)
    m.train()(x)  # non-trivial batch-norm statistics
    m.eval()
    net = from_module(m, m.block_names(), (1, 8, 8))
    return m, net, load_multiplex(write_multiplex(net, tmp_path / "mux.py"))


def test_full_mode_equals_source_model(resnet):
    m, net, mux = resnet
    full = mux.MultiplexNet("full").eval()
    full.load_state_dict(state_from_module(net, m))
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(full(x), m(x))
    assert mux.MODULES == net.modules


def test_finetune_mode_is_the_pruned_network(resnet):
    m, net, mux = resnet
    rates = dict(zip(net.modules, (0.3, 0.5, 0.7, 0.3, 0.5, 0.7)))
    ft = mux.MultiplexNet("finetune", {"rates": rates}).eval()
    assert sum(p.numel() for p in ft.parameters()) == net.param_count(rates)
    state = l1_prune(net, state_from_module(net, m), rates)
    ft.load_state_dict(state)
    ref = GraphModel(net, rates).eval()
    ref.load_state_dict(state)
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(ft(x), ref(x))


def test_pretrain_mode_pairs_blocks_with_teacher_outputs(resnet):
    m, net, mux = resnet
    blocks = [[(net.modules[0], 0.5)], [(net.modules[2], 0.3), (net.modules[3], 0.7)]]
    pt = mux.MultiplexNet("pretrain", {"blocks": blocks})
    pt.layers.load_state_dict({k[7:]: v for k, v in state_from_module(net, m).items()})
    pt.eval()
    x = torch.randn(3, 1, 8, 8)
    out, pairs = pt(x)
    torch.testing.assert_close(out, m(x))
    assert len(pairs) == 2 and all(s.shape == t.shape for s, t in pairs)
    assert pairs[1][0].shape == (3, 8, 4, 4)  # output of the stage-2 second block
    assert not any(p.requires_grad for p in pt.layers.parameters())
    assert all(p.requires_grad for p in pt.blocks.parameters())
    # a block of unpruned modules with the teacher's weights reproduces the teacher exactly
    same = mux.MultiplexNet("pretrain", {"blocks": [[(net.modules[1], 0.0)]]}).eval()
    sd = {k[7:]: v for k, v in state_from_module(net, m).items()}
    same.layers.load_state_dict(sd)
    same.blocks[0].load_state_dict({k: v for k, v in sd.items() if k in same.blocks[0].state_dict()})
    _, [(s, t)] = same(x)
    torch.testing.assert_close(s, t)


def test_bad_prune_info_is_explained(resnet):
    _, net, mux = resnet
    with pytest.raises(ValueError, match="mode_to_use"):
        mux.MultiplexNet("train")
    with pytest.raises(ValueError, match="unknown modules"):
        mux.MultiplexNet("finetune", {"rates": {"nope": 0.3}})
    with pytest.raises(ValueError, match="consecutive"):
        mux.MultiplexNet("pretrain", {"blocks": [[(net.modules[0], 0.3), (net.modules[2], 0.3)]]})


def test_prototxt_multiplex_matches_interpreter(tmp_path):
    net = load_prototxt(DATA / "resnet8.prototxt")
    mux = load_multiplex(write_multiplex(net, tmp_path / "r8.py"))
    ref = GraphModel(net)
    for p in ref.parameters():
        torch.nn.init.normal_(p, 0, 0.3)
    ref.eval()
    full = mux.MultiplexNet("full").eval()
    full.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(full(x), ref(x))
    source = (tmp_path / "r8.py").read_text()
    assert "class MultiplexNet(nn.Module)" in source and "keep(32, rate)" in source
