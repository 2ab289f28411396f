"""Executors: in-process, and Dask on a LocalCluster of two worker processes."""
import operator
from functools import partial

import pytest

from workbench.tune.executor import DaskExecutor, InProcessExecutor, make_executor
from workbench.tune.explore import Cached, explore


def test_in_process_map_keeps_order():
    assert InProcessExecutor().map(partial(operator.mul, 3), [1, 2, 3]) == [3, 6, 9]
    assert isinstance(make_executor(None), InProcessExecutor)
    assert isinstance(make_executor(2), DaskExecutor) and make_executor(2).n_workers == 2
    assert make_executor("tcp://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"


def test_dask_local_cluster_explores_two_at_a_time(tmp_path):
    pytest.importorskip("distributed", reason='needs dask.distributed: pip install "dask[distributed]"')
    from tests.tune.test_explore import evaluate_toy, toys

    tasks = toys(tmp_path / "log")
    with DaskExecutor(n_workers=2) as ex:
        assert ex.workers == 2
        assert ex.map(partial(operator.mul, 2), [1, 2, 3]) == [2, 4, 6]
        e = explore(tasks, Cached(evaluate_toy, str(tmp_path / "nets")), 0.9, workers=2,
                    executor=ex)
    assert [r["key"] for r in e.evaluated] == ["n0", "n1", "n2", "n3"]
    assert e.chosen["key"] == "n3" and e.time_s == 2 + 4
    assert sorted((tmp_path / "log").read_text().split()) == ["n0", "n1", "n2", "n3"]


def cuda_visible_devices(_: object = None) -> str | None:
    import os
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_dask_workers_pinned_to_gpus_round_robin():
    pytest.importorskip("distributed", reason='needs dask.distributed: pip install "dask[distributed]"')
    with DaskExecutor(n_workers=3, gpus=2) as ex:
        assert sorted(ex.pinned.values()) == ["0", "0", "1"]
        # tasks see their worker's setting (pinning happens in the worker process, not here)
        assert set(ex.map(cuda_visible_devices, range(6))) <= {"0", "1"}
        assert ex._client.run(cuda_visible_devices) == ex.pinned


def test_gpu_pinning_needs_a_local_cluster_of_processes():
    with pytest.raises(ValueError, match="remote cluster"):
        DaskExecutor(address="tcp://127.0.0.1:8786", gpus=2)
    with pytest.raises(ValueError, match="processes"):
        DaskExecutor(n_workers=2, processes=False, gpus=1)
    assert make_executor(2, gpus=2).gpus == 2
