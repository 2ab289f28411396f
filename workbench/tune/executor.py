"""One executor interface for CoCo-Tune's tasks: in-process by default, Dask when asked.

`Executor.map(fn, tasks) -> results` runs fn on every task and returns the results in task
order. InProcessExecutor loops; DaskExecutor sends the tasks to a dask.distributed cluster: an
existing scheduler (an address such as 'tcp://10.0.0.5:8786') or a LocalCluster it starts with
n_workers processes of one thread each (so N workers run N networks at a time, the report's
"#nodes"). fn and the tasks must pickle (top-level functions, plain dataclasses). Results are
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


class DaskExecutor:
    """A dask.distributed Client: on `address`, or on a LocalCluster of n_workers processes."""

    def __init__(self, address: str | None = None, n_workers: int = 2, processes: bool = True,
                 threads_per_worker: int = 1) -> None:
        self.address = address
        self.n_workers = n_workers
        self.processes = processes
        self.threads_per_worker = threads_per_worker
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


def make_executor(dask: str | int | None = None) -> InProcessExecutor | DaskExecutor:
    """None -> in-process; an address 'tcp://...' -> that cluster; an int n -> LocalCluster(n)."""
    if dask is None or dask == 0:
        return InProcessExecutor()
    if isinstance(dask, int) or (isinstance(dask, str) and dask.isdigit()):
        return DaskExecutor(n_workers=int(dask))
    return DaskExecutor(address=str(dask))
