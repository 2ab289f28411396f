"""Timing harness: medians of repeated runs after warm-up, at a set thread count."""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median and spread over `repeats` timed calls after warm-up."""
    median: float
    p10: float
    p90: float
    repeats: int

    @property
    def ms(self) -> float:
        """Median in milliseconds."""
        return self.median * 1e3


def measure(fn: Callable[[], object], warmup: int = 3, repeats: int = 21,
            min_seconds: float = 0.0) -> Timing:
    """Call fn warmup times, then time `repeats` calls (more until min_seconds total); median."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return Timing(statistics.median(times), times[len(times) // 10],
                  times[min(len(times) - 1, (9 * len(times)) // 10)], len(times))


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run torch, numba and OpenMP code with n threads inside the block; restore afterwards."""
    old_torch = torch.get_num_threads()
    old_omp = os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    old_numba = None
    try:
        import numba
        old_numba = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    try:
        yield
    finally:
        torch.set_num_threads(old_torch)
        if old_omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old_omp
        if old_numba is not None:
            import numba
            numba.set_num_threads(old_numba)
