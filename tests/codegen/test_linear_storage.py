"""Linear weight formats: every format gives W back, bytes as counted, the smallest chosen."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.codegen.linear_storage import (linear_format, max_rows, pack_csr, pack_linear,
    pack_rowblock, rowblock_nbytes)
from workbench.pruning.schemes import Block, Irregular


def _sparse(rng: np.random.Generator, o: int, c: int, density: float) -> np.ndarray:
    w = rng.standard_normal((o, c)).astype(np.float32)
    return w * (rng.random((o, c)) < density)


@settings(max_examples=30, deadline=None)
@given(o=st.integers(1, 40), c=st.integers(1, 70), density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
       rows=st.sampled_from([4, 8, 16]), seed=st.integers(0, 999))
def test_every_format_round_trips(o: int, c: int, density: float, rows: int, seed: int) -> None:
    w = _sparse(np.random.default_rng(seed), o, c, density)
    for store in (pack_csr(w), pack_rowblock(w, rows), pack_linear(w, 4, "dense")):
        np.testing.assert_array_equal(store.dense(), w)
        assert store.nbytes == sum(a.nbytes for a in (store.values, store.cols, store.ptr)
                                   if a is not None)
    assert rowblock_nbytes(w, rows) == pack_rowblock(w, rows).nbytes
    assert pack_csr(w).values.size == np.count_nonzero(w)


def test_indices_are_16_bit_up_to_65536_inputs() -> None:
    w = np.zeros((2, 70000), np.float32)
    w[0, 69999] = 1.0
    assert pack_csr(w).index_type == "int32_t"
    assert pack_csr(w[:, :65536]).index_type == "uint16_t"


def test_the_format_follows_the_structure_of_the_zeros() -> None:
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((64, 96)).astype(np.float32)
    assert linear_format(dense, 8) == ("dense", 1)
    block = Block(0.125, 16, 1).project(dense)[0]
    assert linear_format(block, 8) == ("rowblock", 16)
    assert linear_format(block, 4) == ("rowblock", 16)
    store = pack_linear(block, 4)
    assert store.nbytes < dense.nbytes / 7            # 1/8 of the weights and a few indices
    irregular = Irregular(0.125).project(dense)[0]
    assert linear_format(irregular, 8)[0] == "csr"
    assert linear_format(Irregular(0.6).project(dense)[0], 8)[0] == "dense"


def test_blocks_are_capped_by_the_registers_and_the_vector_width() -> None:
    w = Block(0.125, 64, 1).project(np.random.default_rng(1).standard_normal((128, 64)))[0]
    assert linear_format(w, 16) == ("rowblock", 64)
    assert linear_format(w, 8)[1] <= max_rows(8) and linear_format(w, 8)[1] % 8 == 0
    with pytest.raises(ValueError, match="multiple of the vector width"):
        pack_linear(w, 8, "rowblock", 12)
    with pytest.raises(ValueError, match="unknown linear format"):
        pack_linear(w, 8, "ell")
