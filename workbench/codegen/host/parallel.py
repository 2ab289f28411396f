"""Run a generated GIL-free kernel over its jobs on several Python threads.

Kernels take (j0, step, ...) and do jobs j0, j0 + step, ...; thread t of n runs j0 = t. The
thread count follows $OMP_NUM_THREADS / numba.get_num_threads() (what timing.threads sets) unless
the schedule fixes it; layers too small to repay a thread hand-off run on the caller's thread.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

_POOL: ThreadPoolExecutor | None = None
# Below this many multiply-adds a second thread costs more (~20 us hand-off) than it saves.
MIN_PARALLEL_FMAS = 200_000


# Set by thread_placeholder: the thread count bound calls then carry is a marker that an
# exported program (workbench.codegen.arm64.program) replaces with its run-time thread count.
_PLACEHOLDER: list[int] = []


@contextlib.contextmanager
def thread_placeholder(value: int) -> Iterator[None]:
    """Within it, default_threads() returns value (an int no real argument equals)."""
    _PLACEHOLDER.append(value)
    try:
        yield
    finally:
        _PLACEHOLDER.pop()


def default_threads() -> int:
    """Threads to use now: $OMP_NUM_THREADS (workbench.bench.timing.threads sets it), else
    numba's setting, else the cores this process may run on."""
    if _PLACEHOLDER:
        return _PLACEHOLDER[-1]
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        import numba
        return int(numba.get_num_threads())
    except ImportError:
        return len(os.sched_getaffinity(0))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 1) - 1),
                                   thread_name_prefix="workbench-kernel")
    return _POOL


def run_jobs(fn: Callable[..., None], args: tuple, threads: int, fmas: int = 1 << 62) -> None:
    """fn(t, n, *args) for t in range(n) on n threads (the caller runs t = 0); fmas: work size."""
    n = max(1, threads)
    if fmas < MIN_PARALLEL_FMAS:
        n = 1
    if n == 1:
        fn(0, 1, *args)
        return
    futures = [_pool().submit(fn, t, n, *args) for t in range(1, n)]
    fn(0, n, *args)
    for f in futures:
        f.result()
