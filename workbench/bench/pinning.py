"""CPU pinning for fair timings: n threads on n cores, for every runtime in the process.

torch.set_num_threads does not bound every library PyTorch calls (its NNPACK convolutions
ran on both cores of a 2-core host at torch.set_num_threads(1)), so a "1 thread" timing is
only fair if the process is also confined to one core. `pinned(n)` does both: the affinity
mask bounds every thread pool, and threads(n) sets each runtime's own count.
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
def pinned(n: int) -> Iterator[None]:
    """Run the block on n cores with n threads for torch, numba and OpenMP; restore after."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores(n))
    try:
        with threads(n):
            yield
    finally:
        os.sched_setaffinity(0, old)
