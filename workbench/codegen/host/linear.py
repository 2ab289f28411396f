"""A linear layer's generated GEMV, built for this machine: weight format, kernel and the
arrays its calls point into (the network plan binds them; the linear benchmark calls them).
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from workbench.codegen.c.linear import render_linear, render_linear_csr, render_linear_rowblock
from workbench.codegen.host.build import build_c
from workbench.codegen.host.parallel import default_threads
from workbench.codegen.linear_storage import FORMATS, LinearStorage, pack_linear
from workbench.codegen.schedule import Schedule


class LinearKernel:
    """y (N, O) = act(x (N, C) @ W.T + bias) by the GEMV of W's format: the one with the
    fewest bytes, or the one sched.kernel names ("dense", "rowblock" with sched.tile_o rows
    per block, "csr")."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, act: str, vector: int,
                 sched: Schedule | None = None) -> None:
        sched = sched or Schedule()
        w = np.asarray(weight, np.float32)
        o, c = w.shape
        kind = sched.kernel if sched.kernel in FORMATS else None
        self.store: LinearStorage = pack_linear(w, vector, kind,
                                                int(sched.tile_o) if kind == "rowblock" else 0)
        self.bias = np.ascontiguousarray(np.zeros(o) if bias is None else bias, np.float32)
        self.kept = int(np.count_nonzero(w))
        self.threads = int(sched.threads)
        s = self.store
        if s.kind == "dense":
            self.source = render_linear(c, o, act, vector, sched)
            self.arrays: list[np.ndarray] = [s.values]
        else:
            assert s.cols is not None and s.ptr is not None
            self.source = (render_linear_csr(c, o, act, vector, s.index_type) if s.kind == "csr"
                           else render_linear_rowblock(c, o, s.rows, act, vector, s.index_type))
            self.arrays = [s.values, s.cols, s.ptr]
        self.fn = build_c(self.source).wb_linear
        self.fn.argtypes = [ctypes.c_void_p] * (len(self.arrays) + 3) + [ctypes.c_int] * 2

    def args(self, x_addr: int, y_addr: int, n: int) -> tuple[Any, ...]:
        """The kernel's arguments for n images at x_addr (N, C) and y_addr (N, O) float32."""
        return (x_addr, y_addr, *(a.ctypes.data for a in self.arrays), self.bias.ctypes.data,
                n, self.threads or default_threads())

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """y for x (N, C) float32 (contiguous), into out when given."""
        x = np.ascontiguousarray(x, np.float32)
        y = out if out is not None else np.empty((x.shape[0], self.store.shape[0]), np.float32)
        self.fn(*self.args(x.ctypes.data, y.ctypes.data, x.shape[0]))
        return y
