"""Promising subspaces: close-to-uniform sizes, grouped collections, tuning blocks."""
import numpy as np
import pytest

from workbench.models.resnet_cifar import ResNetCifar
from workbench.tune.network import from_module
from workbench.tune.subspace import (placed_blocks, rates_of, sample_grouped, sample_subspace,
                                     symbols, tuning_blocks)


@pytest.fixture(scope="module")
def net():
    m = ResNetCifar(20)
    return from_module(m, m.block_names(), (3, 32, 32))


def test_sample_is_distinct_sorted_and_spread(net):
    configs = sample_subspace(net, 16, seed=0)
    assert len(set(configs)) == 16 and all(len(c) == 9 for c in configs)
    sizes = np.array([net.param_count(rates_of(net, c)) for c in configs])
    assert (np.diff(sizes) >= 0).all()
    gaps = np.diff(sizes)
    # close to uniform: no gap is more than 3x the even spacing
    assert gaps.max() <= 3 * (sizes[-1] - sizes[0]) / 15
    assert sample_subspace(net, 16, seed=0) == configs  # seeded


def test_grouped_collection_uses_one_rate_per_stage(net):
    groups = [[m for m in net.modules if m.startswith(f"layer{s}")] for s in (1, 2, 3)]
    for c in sample_grouped(net, 8, groups, seed=1):
        r = rates_of(net, c)
        assert all(len({r[m] for m in g}) == 1 for g in groups)
    with pytest.raises(ValueError, match="only 27|give 27"):
        sample_grouped(net, 28, groups)


def test_blocks_per_module_and_sequitur(net):
    groups = [[m for m in net.modules if m.startswith(f"layer{s}")] for s in (1, 2, 3)]
    configs = sample_grouped(net, 6, groups, seed=0)
    per = tuning_blocks(net, configs, "per_module")
    assert all(len(b) == 1 for b in per.blocks)
    assert per.coverage == 1.0
    seq = tuning_blocks(net, configs, "sequitur")
    # one rate per stage: Sequitur finds multi-module blocks and fewer of them
    assert max(len(b) for b in seq.blocks) >= 2 and len(seq.blocks) < len(per.blocks)
    for i, c in enumerate(configs):
        syms = symbols(net, c)
        for pos, b in seq.composites[i].placements:
            assert tuple(syms[pos:pos + len(seq.blocks[b])]) == seq.blocks[b]
        assert placed_blocks(seq, i) == [b for _, b in sorted(seq.composites[i].placements)]
    with pytest.raises(ValueError, match="method"):
        tuning_blocks(net, configs, "greedy")
