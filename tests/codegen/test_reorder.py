"""Filter kernel reorder: a permutation that groups filters by work and pattern signature."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.codegen.lr import conv_layer
from workbench.codegen.patterns import analyse
from workbench.codegen.reorder import (branch_changes, channel_order, filter_order,
    pattern_signature, reorder_layer)

from .helpers import conv_ref, pattern_pruned, rel_err


def test_order_is_a_permutation_sorted_by_kept_kernels() -> None:
    w = pattern_pruned(np.random.default_rng(0), 40, 16, 0.3)
    kp = analyse(w)
    order = filter_order(kp)
    assert sorted(order.tolist()) == list(range(40))
    kept = pattern_signature(kp).sum(axis=1)[order]
    assert (np.diff(kept) <= 0).all()


def test_repeated_signatures_become_neighbours() -> None:
    rng = np.random.default_rng(1)
    base = pattern_pruned(rng, 4, 8, 0.5)
    w = np.concatenate([base] * 5)[rng.permutation(20)]  # 4 signatures, each 5 times, shuffled
    kp = analyse(w)
    assert branch_changes(kp, filter_order(kp)) < branch_changes(kp, np.arange(20))


def test_channel_order_groups_equal_channel_sets() -> None:
    w = np.zeros((6, 4, 1, 1), np.float32)
    w[[0, 3, 5], 1] = 1.0
    w[[1, 2, 4], 2] = 1.0
    order = channel_order(w).tolist()
    assert {frozenset(order[:3]), frozenset(order[3:])} == {frozenset({0, 3, 5}),
                                                            frozenset({1, 2, 4})}


@pytest.mark.needs_numba
def test_reordered_layer_computes_the_same() -> None:
    rng = np.random.default_rng(2)
    w = pattern_pruned(rng, 12, 6, 0.4)
    layer = reorder_layer(conv_layer(w, padding=1))
    assert (layer.params["filter_order"] != np.arange(12)).any()
    x = rng.standard_normal((1, 6, 9, 9)).astype(np.float32)
    from workbench.codegen.host.kernel import CompiledLayer
    assert rel_err(CompiledLayer(layer)(x), conv_ref(x, w, None, 1, 1)) < 1e-5
