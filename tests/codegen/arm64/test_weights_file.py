"""The weights file's layout: round trip, and every field checked (the C reader mirrors it)."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.codegen.arm64.weights_file import (ALIGN, MAGIC, VERSION, WeightsFileError,
    checksum, encode_weights, read_weights, write_weights)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), max_size=6), seed=st.integers(0, 2**16),
       fp=st.integers(0, 2**64 - 1))
def test_round_trip_keeps_every_byte_and_aligns_every_array(sizes: list[int], seed: int,
                                                            fp: int) -> None:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(n).astype(np.float32) if i % 2 else
              rng.integers(-9, 9, n).astype(np.int32) for i, n in enumerate(sizes)]
    data = encode_weights(arrays, fp)
    assert data[:8] == MAGIC and struct.unpack_from("<IIQ", data, 8) == (VERSION, len(sizes), fp)
    back = read_weights(data, fp, [a.nbytes for a in arrays])
    assert [bytes(b) for b in back] == [a.tobytes() for a in arrays]
    assert len(data) % 8 == 0
    # each array's bytes at the next multiple of ALIGN after the previous one
    pos = 24 + 8 * len(arrays)
    for a in arrays:
        pos = -(-pos // ALIGN) * ALIGN
        assert data[pos:pos + a.nbytes] == a.tobytes()
        pos += a.nbytes


def test_each_field_is_checked(tmp_path) -> None:
    arrays = [np.arange(5, dtype=np.float32), np.arange(3, dtype=np.int32)]
    write_weights(tmp_path / "w.bin", arrays, 7)
    good = (tmp_path / "w.bin").read_bytes()
    sizes = [20, 12]
    assert [bytes(b) for b in read_weights(good, 7, sizes)] == [a.tobytes() for a in arrays]
    cases = [(b"NOTWEIGH" + good[8:], 7, sizes, "bad magic"),
             (good[:8] + struct.pack("<I", 9) + good[12:], 7, sizes, "version 9"),
             (good, 8, sizes, "another program"),
             (good, 7, [20], "holds 2 arrays"),
             (good, 7, [20, 16], "sizes differ"),
             (good + bytes(8), 7, sizes, "bytes, expected"),
             (good[:70] + bytes([good[70] ^ 4]) + good[71:], 7, sizes, "checksum")]
    for data, fp, sz, message in cases:
        with pytest.raises(WeightsFileError, match=message):
            read_weights(data, fp, sz)


def test_checksum_sees_a_moved_word() -> None:
    a = struct.pack("<4Q", 1, 2, 3, 4)
    b = struct.pack("<4Q", 2, 1, 3, 4)
    assert checksum(a) != checksum(b) and checksum(bytes(32)) == 0
