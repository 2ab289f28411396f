"""CPU pinning for fair timings: n threads on n cores, for every runtime in the process.

torch.set_num_threads does not bound every library PyTorch calls (its NNPACK convolutions
ran on both cores of a 2-core host at torch.set_num_threads(1)), so a "1 thread" timing is
only fair if the process is also confined to one core. `pinned(n)` does both: the affinity
mask bounds every thread pool, and threads(n) sets each runtime's own count.

The mask is per thread (sched_setaffinity on pid 0 sets the calling thread's): threads that
already exist keep theirs, threads and processes started later inherit the creator's. A fresh
process started inside `affinity(n)` is therefore confined from its first instruction, before
any library it loads (OpenBLAS at numpy import, an OpenMP runtime) starts a pool.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from workbench.bench.timing import threads


def cores(n: int) -> set[int]:
    """The first n cores this process may run on."""
    allowed = sorted(os.sched_getaffinity(0))
    if n > len(allowed):
        raise ValueError(f"asked for {n} cores, this process may use {len(allowed)}")
    return set(allowed[:n])


@contextlib.contextmanager
def affinity(n: int) -> Iterator[set[int]]:
    """The calling thread (and what it starts) on the first n cores inside the block; yields them."""
    old = os.sched_getaffinity(0)
    use = cores(n)
    os.sched_setaffinity(0, use)
    try:
        yield use
    finally:
        os.sched_setaffinity(0, old)


@contextlib.contextmanager
def pinned(n: int) -> Iterator[None]:
    """Run the block on n cores with n threads for torch, numba and OpenMP; restore after."""
    with affinity(n), threads(n):
        yield
