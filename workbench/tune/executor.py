"""One executor interface for CoCo-Tune's tasks: in-process by default, Dask when asked.

`Executor.map(fn, tasks) -> results` runs fn on every task and returns the results in task
order. InProcessExecutor loops; DaskExecutor sends the tasks to a dask.distributed cluster: an
existing scheduler (an address such as 'tcp://10.0.0.5:8786') or a LocalCluster it starts with
n_workers processes of one thread each (so N workers run N networks at a time, the report's
"#nodes"). With gpus=G, worker i of a LocalCluster sees only GPU i mod G
(CUDA_VISIBLE_DEVICES, set before the worker first touches CUDA), so N workers on a machine of G
GPUs train N networks at once without sharing a GPU when N <= G. fn and the tasks must pickle (top-level functions, plain dataclasses). Results are
not kept here: tasks that must survive an interruption write their own (see explore.ResultStore).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Executor(Protocol):
    """Runs a function over tasks; `workers` is how many run at the same time."""

    workers: int

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
        """fn(task) for every task, in task order."""
        ...

    def close(self) -> None:
        """Release workers and connections."""
        ...


class InProcessExecutor:
    """Runs tasks one after another in this process."""

    workers = 1

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
        """fn(task) for every task, in order."""
        return [fn(t) for t in tasks]

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "InProcessExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pin_gpu(index: int) -> str:
    """Make this process see only CUDA device `index`; returns the setting. Must run before the
    process first uses CUDA (a fresh Dask worker), since CUDA reads the variable once."""
    import os
    import sys

    if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        raise RuntimeError("CUDA is already initialised in this worker; cannot pin it to a GPU")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
    return os.environ["CUDA_VISIBLE_DEVICES"]


class DaskExecutor:
    """A dask.distributed Client: on `address`, or on a LocalCluster of n_workers processes
    (each pinned to one of `gpus` GPUs, round robin, when gpus > 0)."""

    def __init__(self, address: str | None = None, n_workers: int = 2, processes: bool = True,
                 threads_per_worker: int = 1, gpus: int = 0) -> None:
        if gpus and address is not None:
            raise ValueError("gpus pins the workers of a LocalCluster this executor starts; "
                             "pin a remote cluster's workers when starting them "
                             "(CUDA_VISIBLE_DEVICES=i dask worker ...)")
        if gpus and not processes:
            raise ValueError("pinning workers to GPUs needs worker processes (processes=True)")
        self.address = address
        self.n_workers = n_workers
        self.processes = processes
        self.threads_per_worker = threads_per_worker
        self.gpus = gpus
        self.pinned: dict[str, str] = {}   # worker address -> CUDA_VISIBLE_DEVICES
        self._client = None
        self._cluster = None

    def _start(self):
        if self._client is None:
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError as e:
                raise RuntimeError('DaskExecutor needs dask.distributed: pip install '
                                   '"dask[distributed]"') from e
            if self.address is not None:
                self._client = Client(self.address)
            else:
                if self.n_workers < 1:
                    raise ValueError(f"n_workers must be >= 1, got {self.n_workers}")
                self._cluster = LocalCluster(n_workers=self.n_workers, processes=self.processes,
                                             threads_per_worker=self.threads_per_worker,
                                             dashboard_address=None)
                self._client = Client(self._cluster)
                if self.gpus:
                    self._client.wait_for_workers(self.n_workers)
                    addresses = sorted(self._client.scheduler_info()["workers"])
                    for i, w in enumerate(addresses):
                        self.pinned.update(self._client.run(pin_gpu, i % self.gpus, workers=[w]))
        return self._client

    @property
    def workers(self) -> int:
        """Number of workers the scheduler knows (started on first use)."""
        return len(self._start().scheduler_info()["workers"])

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
        """fn(task) for every task on the cluster; results in task order."""
        client = self._start()
        futures = client.map(fn, list(tasks), pure=False)
        return client.gather(futures)

    def close(self) -> None:
        """Close the client and the LocalCluster it started."""
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def __enter__(self) -> "DaskExecutor":
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(dask: str | int | None = None,
                  gpus: int = 0) -> InProcessExecutor | DaskExecutor:
    """None -> in-process; an address 'tcp://...' -> that cluster; an int n -> LocalCluster(n),
    its workers pinned round robin to `gpus` GPUs when gpus > 0."""
    if dask is None or dask == 0:
        return InProcessExecutor()
    if isinstance(dask, int) or (isinstance(dask, str) and dask.isdigit()):
        return DaskExecutor(n_workers=int(dask), gpus=gpus)
    return DaskExecutor(address=str(dask))
