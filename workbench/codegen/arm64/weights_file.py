"""The bundle's weights file: a program's constant arrays in a documented binary layout.

All integers little-endian. No pickle, no Python needed to read it (the bundle's generated
main reads it in C; read_weights is the same reader in Python, for tests and tools).

    offset  size        field
    0       8           magic b"WBWEIGHT"
    8       4           u32 version (VERSION)
    12      4           u32 count: number of arrays
    16      8           u64 fingerprint of the program (Program.fingerprint) it belongs to
    24      8 * count   u64 byte length of each array
    ...                 each array's raw bytes (float32 weights, int32 tables), starting at
                        the next multiple of 64 from the file's start, zero padding between
    ...                 zero padding to a multiple of 8 bytes
    end - 8 8           u64 checksum of every byte before it (checksum(): the sum of the
                        64-bit words w_i, zero-padded, times 2 i + 1, mod 2^64)

A file whose magic, version, fingerprint, count, array lengths, total length or checksum
does not match what the program expects is refused, naming the field.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"WBWEIGHT"
VERSION = 1
ALIGN = 64


class WeightsFileError(ValueError):
    """A weights file that does not belong to the program reading it, or is damaged."""


def checksum(data: bytes) -> int:
    """sum of w_i * (2 i + 1) mod 2^64 over the 64-bit little-endian words w_i of data (a
    whole number of words): any one changed word changes it, and numpy (and C) compute it at
    memory speed."""
    w = np.frombuffer(data, "<u8")
    with np.errstate(over="ignore"):
        return int((w * (2 * np.arange(len(w), dtype=np.uint64) + 1)).sum(dtype=np.uint64))


def _offsets(sizes: list[int]) -> tuple[list[int], int]:
    """Start of each array in the file and the checksum's offset."""
    pos = 24 + 8 * len(sizes)
    starts = []
    for n in sizes:
        pos = -(-pos // ALIGN) * ALIGN
        starts.append(pos)
        pos += n
    return starts, -(-pos // 8) * 8


def encode_weights(arrays: list[np.ndarray], fingerprint: int) -> bytes:
    """The file's bytes for arrays (any dtype, written raw in C order)."""
    raw = [np.ascontiguousarray(a).tobytes() for a in arrays]
    starts, end = _offsets([len(r) for r in raw])
    buf = bytearray(end)
    struct.pack_into("<8sIIQ", buf, 0, MAGIC, VERSION, len(raw), fingerprint)
    struct.pack_into(f"<{len(raw)}Q", buf, 24, *[len(r) for r in raw])
    for s, r in zip(starts, raw):
        buf[s:s + len(r)] = r
    return bytes(buf) + struct.pack("<Q", checksum(bytes(buf)))


def write_weights(path: Path, arrays: list[np.ndarray], fingerprint: int) -> None:
    """Write the weights file atomically (a temporary file renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(encode_weights(arrays, fingerprint))
    tmp.replace(path)


def read_weights(data: bytes, fingerprint: int, sizes: list[int]) -> list[bytes]:
    """The arrays' raw bytes from a file made for the program (fingerprint, array sizes);
    WeightsFileError naming what is wrong otherwise."""
    if len(data) < 32 or data[:8] != MAGIC:
        raise WeightsFileError("not a workbench weights file (bad magic)")
    _, version, count, fp = struct.unpack_from("<8sIIQ", data, 0)
    if version != VERSION:
        raise WeightsFileError(f"weights file version {version}, this program reads {VERSION}")
    if fp != fingerprint:
        raise WeightsFileError("weights file made for another program (fingerprint differs)")
    if count != len(sizes):
        raise WeightsFileError(f"weights file holds {count} arrays, the program needs "
                               f"{len(sizes)}")
    got = list(struct.unpack_from(f"<{count}Q", data, 24))
    if got != sizes:
        raise WeightsFileError("weights file array sizes differ from the program's")
    starts, end = _offsets(sizes)
    if len(data) != end + 8:
        raise WeightsFileError(f"weights file is {len(data)} bytes, expected {end + 8}")
    if struct.unpack_from("<Q", data, end)[0] != checksum(data[:end]):
        raise WeightsFileError("weights file checksum mismatch (damaged)")
    return [data[s:s + n] for s, n in zip(starts, sizes)]
