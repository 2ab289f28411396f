"""Compact storage of a pruned fully connected weight, and the choice among its formats.

At batch 1 a linear layer reads each weight once: it is memory-bound, so its time is the bytes
of its weights. Three formats, all read by generated GEMV kernels (c.linear):

    dense     W (O, C) float32 row-major                               4 bytes per weight
    rowblock  rows in blocks of R (a multiple of the vector width): for each block the
              columns where any of its R rows is nonzero (uint16 or int32), and per such
              column the R weights side by side (zeros of the other rows included): one
              broadcast of x[c] feeds R/VW vector FMAs. Exact for block-pruned weights
              (pruning.schemes.Block with R rows), whose kept blocks are full
    csr       per row its nonzeros: float32 values and column indices (uint16 where
              C <= 65536): irregular pruning, one gathered x per weight

linear_format picks the one with the fewest bytes (the compiler reads the structure from the
zeros, as it does the patterns of a conv); CSR only where it halves the dense bytes, since a
gathered load costs more than a streamed one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORMATS = ("dense", "rowblock", "csr")
ROW_BLOCKS = (64, 32, 16, 8, 4)   # rows per rowblock block, largest first


@dataclass(frozen=True)
class LinearStorage:
    """One linear weight (O, C) in a format: the arrays its kernel reads, and their bytes.

    dense: values (O, C). rowblock: rows R, ptr (ceil(O / R) + 1,) int32 into cols, cols
    (kept,) column ids, values (kept, R) float32 (rows past O in the last block are zero).
    csr: ptr (O + 1,) int32 into cols and values, cols (nnz,), values (nnz,) float32.
    """
    kind: str
    shape: tuple[int, int]
    values: np.ndarray
    cols: np.ndarray | None = None
    ptr: np.ndarray | None = None
    rows: int = 1

    @property
    def nbytes(self) -> int:
        """Bytes of weights and indices the kernel streams per image."""
        return int(sum(a.nbytes for a in (self.values, self.cols, self.ptr) if a is not None))

    @property
    def index_type(self) -> str:
        """The C type of cols ("uint16_t" or "int32_t"; "" for dense)."""
        if self.cols is None:
            return ""
        return "uint16_t" if self.cols.dtype == np.uint16 else "int32_t"

    def dense(self) -> np.ndarray:
        """W (O, C) float32 back from the format (for checks)."""
        o, c = self.shape
        if self.kind == "dense":
            return self.values.copy()
        w = np.zeros((o, c), np.float32)
        assert self.ptr is not None and self.cols is not None
        if self.kind == "csr":
            for r in range(o):
                s, e = self.ptr[r], self.ptr[r + 1]
                w[r, self.cols[s:e]] = self.values[s:e]
            return w
        padded = np.zeros((len(self.ptr) - 1, self.rows, c), np.float32)
        for b in range(len(self.ptr) - 1):
            s, e = self.ptr[b], self.ptr[b + 1]
            padded[b][:, self.cols[s:e]] = self.values[s:e].T
        return padded.reshape(-1, c)[:o]


def _index_dtype(c: int) -> type:
    return np.uint16 if c <= 1 << 16 else np.int32


def pack_dense(weight: np.ndarray) -> LinearStorage:
    """W (O, C) as it is."""
    w = np.ascontiguousarray(weight, np.float32)
    return LinearStorage("dense", (w.shape[0], w.shape[1]), w)


def pack_csr(weight: np.ndarray) -> LinearStorage:
    """W (O, C) as CSR: the nonzeros of each row in column order."""
    w = np.asarray(weight, np.float32)
    rows, cols = np.nonzero(w)
    ptr = np.zeros(w.shape[0] + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=ptr[1:])
    return LinearStorage("csr", (w.shape[0], w.shape[1]), np.ascontiguousarray(w[rows, cols]),
                         cols.astype(_index_dtype(w.shape[1])), ptr)


def pack_rowblock(weight: np.ndarray, rows: int) -> LinearStorage:
    """W (O, C) in blocks of `rows` rows, each keeping the columns any of its rows uses."""
    w = np.asarray(weight, np.float32)
    o, c = w.shape
    nb = -(-o // rows)
    padded = np.zeros((nb * rows, c), np.float32)
    padded[:o] = w
    blocks = padded.reshape(nb, rows, c)
    used = (blocks != 0).any(axis=1)                       # (nb, C)
    ptr = np.zeros(nb + 1, np.int32)
    np.cumsum(used.sum(axis=1), out=ptr[1:])
    b_idx, cols = np.nonzero(used)
    values = np.ascontiguousarray(blocks[b_idx, :, cols])  # (kept, rows)
    return LinearStorage("rowblock", (o, c), values, cols.astype(_index_dtype(c)), ptr, rows)


def rowblock_nbytes(weight: np.ndarray, rows: int) -> int:
    """Bytes pack_rowblock(weight, rows) would take, without packing."""
    w = np.asarray(weight)
    o, c = w.shape
    nb = -(-o // rows)
    padded = np.zeros((nb * rows, c), bool)
    padded[:o] = w != 0
    kept = int(padded.reshape(nb, rows, c).any(axis=1).sum())
    return kept * rows * 4 + kept * np.dtype(_index_dtype(c)).itemsize + (nb + 1) * 4


def max_rows(vector: int) -> int:
    """Most rows per rowblock block whose accumulators fit the vector registers: the kernel
    holds 2 * rows / vector of them and two broadcasts (16 registers with AVX2, 32 with
    AVX-512 and NEON)."""
    registers = 16 if vector == 8 else 32
    return (registers - 2) // 2 * vector


def linear_format(weight: np.ndarray, vector: int) -> tuple[str, int]:
    """(format, rows per block) with the fewest bytes for W (O, C) on vector-float registers:
    dense unless a sparse format is smaller; csr only at half the dense bytes or less."""
    w = np.asarray(weight)
    o, c = w.shape
    dense = o * c * 4
    nnz = int(np.count_nonzero(w))
    best = ("dense", 1, dense)
    for r in ROW_BLOCKS:
        if r % vector == 0 and r <= max(vector, o) and r <= max_rows(vector):
            n = rowblock_nbytes(w, r)
            if n < best[2]:
                best = ("rowblock", r, n)
    csr = nnz * (4 + np.dtype(_index_dtype(c)).itemsize) + (o + 1) * 4
    if csr < best[2] and 2 * csr <= dense:
        best = ("csr", 1, csr)
    return best[0], best[1]


def pack_linear(weight: np.ndarray, vector: int, kind: str | None = None,
                rows: int = 0) -> LinearStorage:
    """W (O, C) in `kind` (default: linear_format's choice); rows per rowblock block (0: the
    choice's, or the vector width)."""
    if kind is None:
        kind, rows = linear_format(weight, vector)
    if kind == "dense":
        return pack_dense(weight)
    if kind == "csr":
        return pack_csr(weight)
    if kind == "rowblock":
        rows = rows or vector
        if rows % vector:
            raise ValueError(f"rowblock rows ({rows}) must be a multiple of the vector width "
                             f"({vector})")
        return pack_rowblock(weight, rows)
    raise ValueError(f"unknown linear format {kind!r}; one of {FORMATS}")
