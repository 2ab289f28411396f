"""FKW packing: a lossless, reorderable compact form of pattern-pruned weights."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.codegen.patterns import analyse
from workbench.codegen.storage import pack, unpack

from .helpers import pattern_pruned


@settings(max_examples=30, deadline=None)
@given(o=st.integers(1, 10), c=st.integers(1, 10), keep=st.floats(0, 1), seed=st.integers(0, 999))
def test_pack_unpack_round_trip_in_any_filter_order(o: int, c: int, keep: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = pattern_pruned(rng, o, c, keep)
    kp = analyse(w)
    fkw = pack(w, kp, rng.permutation(o))
    np.testing.assert_array_equal(unpack(fkw, kp, w.shape), w)
    assert fkw.num_kernels == kp.kept_kernels
    assert fkw.wts.size == kp.kept_weights


def test_groups_are_contiguous_per_filter_and_pattern() -> None:
    w = pattern_pruned(np.random.default_rng(0), 6, 16, 0.5)
    kp = analyse(w)
    fkw = pack(w, kp)
    assert fkw.kptr[0, 0] == 0 and fkw.kptr[-1, -1] == fkw.num_kernels
    assert (np.diff(fkw.kptr, axis=1) >= 0).all()
    for i in range(6):
        for p in range(kp.num_patterns):
            chans = fkw.cidx[fkw.kptr[i, p]:fkw.kptr[i, p + 1]]
            assert (kp.kernel_pattern[i, chans] == p).all()


def test_fkw_is_smaller_than_dense() -> None:
    w = pattern_pruned(np.random.default_rng(0), 64, 64, 0.3)
    fkw = pack(w, analyse(w))
    assert fkw.nbytes() < 0.25 * w.nbytes


def test_storage_row_compares_formats() -> None:
    from workbench.codegen.storage import csr_nbytes, storage_row
    w = pattern_pruned(np.random.default_rng(3), 64, 64, 0.3)
    kp = analyse(w)
    row = storage_row("conv", w, kp)
    nnz = int((w != 0).sum())
    assert row["dense_bytes"] == w.size * 4
    assert row["csr_bytes"] == csr_nbytes(w) == nnz * 8 + 65 * 4
    assert row["fkw_bytes"] < row["csr16_bytes"] < row["csr_bytes"] < row["dense_bytes"]


@settings(max_examples=30, deadline=None)
@given(o=st.integers(1, 10), c=st.integers(1, 40), keep=st.floats(0, 1),
       cblock=st.sampled_from([0, 1, 3, 8, 64]), seed=st.integers(0, 999))
def test_pack_blocked_regroups_by_block_then_pattern(o: int, c: int, keep: float, cblock: int,
                                                     seed: int) -> None:
    """Every kernel of slot i, block b, pattern p sits in group b * P + p with its own taps'
    weights: expanding the groups back gives the weight."""
    from workbench.codegen.storage import pack_blocked
    rng = np.random.default_rng(seed)
    w = pattern_pruned(rng, o, c, keep)
    kp = analyse(w)
    fkw = pack(w, kp, rng.permutation(o))
    pb = pack_blocked(fkw, c, cblock)
    npat, nb = kp.num_patterns, (max(1, -(-c // cblock)) if cblock else 1)
    assert pb.kptr.shape == (o, nb * npat + 1) and pb.wptr.shape == pb.kptr.shape
    out = np.zeros((o, c, 9), np.float32)
    for i, f in enumerate(pb.order):
        for g in range(nb * npat):
            b, p = divmod(g, npat)
            k0, k1 = pb.kptr[i, g], pb.kptr[i, g + 1]
            t = int(pb.taps[p])
            vals = pb.wts[pb.wptr[i, g]:pb.wptr[i, g] + (k1 - k0) * t].reshape(k1 - k0, t)
            for j, ch in enumerate(pb.cidx[k0:k1]):
                assert cblock == 0 or ch // cblock == b
                out[f, ch, kp.patterns[p]] = vals[j]
    np.testing.assert_array_equal(out.reshape(w.shape), w)
    assert pb.num_kernels == kp.kept_kernels and pb.wts.size == kp.kept_weights


def test_the_gemm_blocks_skip_channels_a_pointwise_pruned_group_dropped() -> None:
    from workbench.codegen.storage import pack_block_sparse
    from workbench.pruning.schemes import Block
    w = Block(0.5, 16, 1).project(np.random.default_rng(0).standard_normal((64, 96, 1, 1)))[0]
    kept = (w[:, :, 0, 0] != 0).reshape(4, 16, 96).any(1).sum(1)   # channels each group kept
    assert kept.sum() == 4 * 48
    for tile_o in (4, 8, 16):   # a tile inside a 16-filter group visits only the group's channels
        bs = pack_block_sparse(w[:, :, 0, 0].astype(np.float32), tile_o)
        np.testing.assert_array_equal(np.diff(bs.cptr), np.repeat(kept, 16 // tile_o))


def test_pack_columns_puts_a_groups_filters_side_by_side() -> None:
    from workbench.codegen.storage import pack_columns
    from .helpers import column_pruned
    w = column_pruned(np.random.default_rng(5), 7, 4, 3, 0.4, empty_channel=True)
    cols = analyse(w).kept_columns()
    packed = pack_columns(w, cols, 3)                 # (ceil(7 / 3), K, 3)
    assert packed.shape == (3, len(cols), 3) and packed.flags.c_contiguous
    for k, (c, dy, dx) in enumerate(cols):
        np.testing.assert_array_equal(packed[:, k].reshape(-1)[:7], w[:, c, dy, dx])
    assert not packed[2, :, 1:].any()                 # padded filters are zero
    assert pack_columns(np.zeros((2, 3, 3, 3), np.float32), [], 4).shape == (1, 0, 4)
