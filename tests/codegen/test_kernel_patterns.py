"""Reading kept kernels and patterns off a weight's zeros."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.codegen.patterns import analyse

from .helpers import PATTERNS8, pattern_pruned


def test_patterns_and_removed_kernels_are_read_from_zeros() -> None:
    w = np.zeros((2, 3, 3, 3), np.float32)
    w[0, 0].flat[[1, 3, 4, 5]] = 1.0
    w[0, 2].flat[[1, 3, 4, 5]] = -2.0
    w[1, 1].flat[[4, 5, 7, 8]] = 0.5
    kp = analyse(w)
    assert kp.num_patterns == 2
    assert kp.kept_kernels == 3 and kp.total_kernels == 6 and kp.kept_weights == 12
    assert kp.kernel_pattern[0, 1] == -1 and kp.kernel_pattern[1, 0] == -1
    assert kp.kernel_pattern[0, 0] == kp.kernel_pattern[0, 2] != kp.kernel_pattern[1, 1]
    assert kp.taps(kp.kernel_pattern[1, 1]) == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_all_zero_weight_has_no_patterns() -> None:
    kp = analyse(np.zeros((4, 4, 3, 3), np.float32))
    assert kp.num_patterns == 0 and kp.kept_kernels == 0 and kp.kept_weights == 0


@settings(max_examples=30, deadline=None)
@given(o=st.integers(1, 8), c=st.integers(1, 8), keep=st.floats(0, 1), seed=st.integers(0, 999))
def test_pattern_table_reproduces_the_mask(o: int, c: int, keep: float, seed: int) -> None:
    w = pattern_pruned(np.random.default_rng(seed), o, c, keep)
    kp = analyse(w)
    mask = np.zeros((o, c, 9), bool)
    kept = kp.kernel_pattern >= 0
    mask[kept] = kp.patterns[kp.kernel_pattern[kept]]
    np.testing.assert_array_equal(mask.reshape(w.shape), w != 0)
    assert kp.num_patterns <= len(PATTERNS8)
    # Ids follow (tap count, bits), not the order kernels appear in.
    assert analyse(w[::-1].copy()).patterns.tolist() == kp.patterns.tolist()


def test_kept_columns_and_column_density() -> None:
    from .helpers import column_pruned
    rng = np.random.default_rng(6)
    w = column_pruned(rng, 5, 3, 3, 0.4, empty_channel=True)
    kp = analyse(w)
    cols = kp.kept_columns()
    assert cols == sorted(cols) and all(c != 0 for c, _, _ in cols)
    assert np.array_equal(kp.columns(), (w != 0).any(axis=0).reshape(3, 9))
    assert kp.column_density == 1.0
    # filters keeping different taps: below 1 (pattern pruning)
    assert analyse(pattern_pruned(rng, 8, 8, 0.5)).column_density < 0.6
