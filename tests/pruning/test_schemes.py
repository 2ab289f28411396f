"""Group schemes: projection is exact (vs brute force over supports), idempotent, feasible."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workbench.pruning.patterns import PatternSet, candidate_patterns, num_kept
from workbench.pruning.schemes import (SCHEMES, Channel, Column, Connectivity, Filter, Irregular,
                                       Scheme, make_scheme)

FLOATS = st.floats(-4, 4, allow_nan=False, allow_infinity=False, width=32)
GROUP_SCHEMES = [Irregular, Filter, Channel, Column, Connectivity]
# Which entries belong to one group: the axes NOT listed index the groups.
GROUP_AXES = {"irregular": (), "filter": (1, 2, 3), "channel": (0, 2, 3), "column": (0,),
              "connectivity": (2, 3)}


def _group_ids(shape, axes):
    """Integer group id per entry: entries sharing the non-reduced indices share an id."""
    idx = np.indices(shape)
    kept = [i for i in range(len(shape)) if i not in axes]
    ids = np.zeros(shape, dtype=np.int64)
    for i in kept:
        ids = ids * shape[i] + idx[i]
    return ids


def _brute_force(w, cls, keep):
    """Smallest ||W - Z||^2 over Z supported on any num_kept groups; also the groups' ids."""
    ids = _group_ids(w.shape, GROUP_AXES[cls.name])
    groups = np.unique(ids)
    norms = {g: float((w.astype(np.float64)[ids == g] ** 2).sum()) for g in groups}
    k = num_kept(keep, len(groups))
    total = sum(norms.values())
    best = min(total - sum(norms[g] for g in c) for c in itertools.combinations(groups, k))
    return best, ids, k


@settings(max_examples=40, deadline=None)
@given(w=arrays(np.float32, (3, 2, 2, 2), elements=FLOATS),
       cls=st.sampled_from(GROUP_SCHEMES), keep=st.sampled_from([0.1, 0.25, 0.5, 0.8, 1.0]))
def test_group_projection_exact_idempotent_feasible(w, cls, keep):
    scheme = cls(keep=keep)
    z, m = scheme.project(w)
    best, ids, k = _brute_force(w, cls, keep)
    np.testing.assert_array_equal(z, w * m)
    assert float(((w.astype(np.float64) - z) ** 2).sum()) == pytest.approx(best, rel=1e-5, abs=1e-5)
    # Feasible: the mask is a union of whole groups, at most k of them.
    kept_groups = np.unique(ids[m])
    assert all(m[ids == g].all() for g in kept_groups) and len(kept_groups) <= k
    z2, m2 = scheme.project(z)
    np.testing.assert_array_equal(z2, z)
    assert len(np.unique(ids[m2])) <= k


@pytest.mark.parametrize("cls", GROUP_SCHEMES)
def test_fully_connected_and_torch_in_torch_out(cls):
    w = torch.randn(6, 10)
    z, m = cls(keep=0.5).project(w)
    assert isinstance(z, torch.Tensor) and m.dtype == torch.bool and m.shape == w.shape
    assert torch.equal(z, w * m) and isinstance(cls(keep=0.5), Scheme)


def test_structures_are_what_the_names_say():
    w = torch.ones(4, 3, 3, 3)
    w[1] *= 5                     # filter 1 strongest
    w[:, 2] *= 3                  # input channel 2 strongest
    assert Filter(0.25).mask(w).flatten(1).all(1).tolist() == [False, True, False, False]
    assert Channel(1 / 3).mask(w)[:, 2].all() and Channel(1 / 3).mask(w).sum() == 4 * 9
    col = Column(1 / 27).mask(w)
    assert col[:, 2].all(0).sum() == 1 and col.sum() == 4         # one (i, y, x) in every filter
    conn = Connectivity(1 / 12).mask(w)
    assert conn.flatten(2).all(2).sum() == 1 and conn[1, 2].all()  # the (filter 1, channel 2) kernel
    assert Irregular(0.5).mask(torch.arange(10.0).reshape(2, 5)).sum() == 5


def test_make_scheme_rates_and_errors():
    ps = PatternSet(patterns=candidate_patterns()[:8])
    assert make_scheme("irregular", rate=8) == Irregular(keep=0.125)
    assert make_scheme("kernel", keep=0.3) == Connectivity(keep=0.3)
    pc = make_scheme("pattern_connectivity", rate=8, patterns=ps)
    assert pc.keep_kernels == pytest.approx(9 / 32) and pc.density == pytest.approx(1 / 8)
    assert make_scheme("pattern", rate=2.25, patterns=ps.with_keep_kernels(0.5)).keep_kernels is None
    with pytest.raises(ValueError, match="gives rate 2.25, not 4"):
        make_scheme("pattern", rate=4, patterns=ps)
    with pytest.raises(ValueError, match="below"):
        make_scheme("pattern_connectivity", rate=2, patterns=ps)
    with pytest.raises(ValueError, match="unknown scheme"):
        make_scheme("random", rate=2)
    with pytest.raises(ValueError, match="exactly one"):
        make_scheme("filter")
    with pytest.raises(ValueError, match="needs a PatternSet"):
        make_scheme("pattern", rate=2.25)
    with pytest.raises(ValueError, match=r"keep fraction must be in \(0, 1\]"):
        Filter(keep=0.0).project(torch.ones(2, 2))
    with pytest.raises(ValueError, match="got shape"):
        Irregular(0.5).project(torch.ones(3))
    assert set(SCHEMES) >= {"irregular", "filter", "channel", "column", "connectivity",
                            "pattern", "pattern_connectivity"}


def test_rates_come_out_exact_on_real_shapes():
    ps = PatternSet(patterns=candidate_patterns()[:8])
    w = torch.randn(64, 32, 3, 3)
    for name in ("irregular", "filter", "channel", "column", "connectivity", "pattern_connectivity"):
        m = make_scheme(name, rate=8, patterns=ps).mask(w)
        assert w.numel() / m.sum().item() == pytest.approx(8, rel=0.01), name


def _block_ids(shape, rows, cols):
    """Block id per entry of an (O, I) weight in rows x cols blocks (partial at the edges)."""
    r, c = np.indices(shape)
    return (r // rows) * (-(-shape[1] // cols)) + c // cols


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(w=arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 8)), elements=FLOATS),
       rows=st.integers(1, 4), cols=st.integers(1, 4),
       keep=st.sampled_from([0.1, 0.3, 0.5, 1.0]))
def test_block_projection_is_exact_over_partial_edge_blocks(w, rows, cols, keep):
    from workbench.pruning.schemes import Block
    ids = _block_ids(w.shape, rows, cols)
    groups = np.unique(ids)
    assume(len(groups) <= 10)          # the brute force walks every choice of kept blocks
    z, m = Block(keep, rows, cols).project(w)
    norms = {g: float((w.astype(np.float64)[ids == g] ** 2).sum()) for g in groups}
    k = num_kept(keep, len(groups))
    total = sum(norms.values())
    best = min(total - sum(norms[g] for g in c) for c in itertools.combinations(groups, k))
    np.testing.assert_array_equal(z, w * m)
    assert float(((w.astype(np.float64) - z) ** 2).sum()) == pytest.approx(best, rel=1e-5, abs=1e-5)
    kept = np.unique(ids[m])
    assert all(m[ids == g].all() for g in kept) and len(kept) <= k


def test_block_takes_fc_and_1x1_conv_weights_only():
    from workbench.pruning.schemes import Block
    w = torch.randn(32, 8, 1, 1)
    m = Block(0.25, 16, 2).mask(w)
    assert m.shape == w.shape and m.sum() == 0.25 * w.numel()
    assert make_scheme("block", rate=8) == Block(keep=0.125)
    with pytest.raises(ValueError, match="FC .* or 1x1 conv"):
        Block(0.5).mask(torch.ones(4, 4, 3, 3))
    with pytest.raises(ValueError, match="block shape must be positive"):
        Block(0.5, 0, 1).mask(torch.ones(4, 4))


def test_linear_config_prunes_every_fc_but_the_last():
    from workbench.pruning import Sparsifier, linear_config
    model = torch.nn.Sequential(torch.nn.Linear(40, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32),
                                torch.nn.ReLU(), torch.nn.Linear(32, 10))
    config = linear_config(model, "block", rate=8.0)
    assert [g["tensor"] for g in config] == ["0.weight", "2.weight"]
    Sparsifier(config).prepare(model).step()
    for i in (0, 2):
        w = model[i].weight.detach()
        assert w.numel() / (w != 0).sum().item() == pytest.approx(8, rel=0.05)
        blocks = (w != 0).reshape(-1, 16, w.shape[1])       # 16-row blocks: all or nothing
        assert torch.equal(blocks.all(1), blocks.any(1))
    assert (model[4].weight != 0).all()
    assert len(linear_config(model, "irregular", 4.0, dense_last=False)) == 3


def test_pointwise_config_drops_channels_for_whole_filter_groups():
    from workbench.pruning import Sparsifier, pointwise_config
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 32, 1), torch.nn.Conv2d(32, 32, 3),
                                torch.nn.Conv2d(32, 64, 1), torch.nn.Conv2d(64, 64, 1, groups=64))
    config = pointwise_config(model, rate=2.0)
    assert [g["tensor"] for g in config] == ["0.weight", "2.weight"]   # dense 1x1s only
    Sparsifier(config).prepare(model).step()
    for i in (0, 2):
        used = (model[i].weight[:, :, 0, 0] != 0).reshape(-1, 16, model[i].weight.shape[1])
        assert torch.equal(used.all(1), used.any(1))      # a channel: all 16 filters or none
        assert used.any(1).float().mean() == 0.5
