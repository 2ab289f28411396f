"""The GPU tuner without a GPU: its candidates and its log (timing needs the GPU machine)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.codegen.cuda.conv import check_schedule, conv_geometry
from workbench.codegen.cuda.schedule import GpuSchedule
from workbench.codegen.cuda.tune import (GPU_LOG_VERSION, GpuTuningLog, compile_all,
                                         default_schedule, layer_signature, neighbours,
                                         random_points)
from workbench.codegen.lr import conv_layer

from ..helpers import pattern_pruned


def test_the_walk_starts_from_the_default_and_every_schedule_runs_the_layer() -> None:
    rng = np.random.default_rng(0)
    layer = conv_layer(pattern_pruned(rng, 64, 32, 0.3), None, 1, 1, name="c", inputs=["x"])
    g = conv_geometry(layer, (32, 28, 28))
    first = default_schedule(layer, (32, 28, 28))
    near = neighbours(g, first)
    fill = random_points(g, 24, {first, *near})
    assert len(fill) == 24 and len(set(fill)) == 24
    assert not set(fill) & {first, *near}             # the random fill repeats nothing timed
    for s in [first, *near, *fill]:
        check_schedule(g, s)        # raises if a schedule could not run


def test_depthwise_schedules_keep_one_filter_group_per_block() -> None:
    rng = np.random.default_rng(1)
    layer = conv_layer(rng.standard_normal((32, 1, 3, 3)).astype(np.float32), None, 1, 1,
                       groups=32, name="dw", inputs=["x"])
    g = conv_geometry(layer, (32, 14, 14))
    first = default_schedule(layer, (32, 14, 14))
    scheds = [*neighbours(g, first), *random_points(g, 16, {first})]
    assert scheds and all(s.groups == 1 and s.tile_f == 1 for s in scheds)


def test_the_log_replays_the_last_pick_of_this_version_and_card(tmp_path: Path) -> None:
    log = GpuTuningLog(tmp_path / "log.jsonl")
    a, b = GpuSchedule(tile_f=4), GpuSchedule(tile_f=16)
    sig = "conv2d:x"
    log.append({"signature": sig, "target": "cuda:sm_90:H100", "version": GPU_LOG_VERSION,
                "schedule": a.to_dict(), "ms": 0.1, "pick": True})
    log.append({"signature": sig, "target": "cuda:sm_90:H100", "version": GPU_LOG_VERSION,
                "schedule": b.to_dict(), "ms": 0.2, "pick": True})
    log.append({"signature": sig, "target": "cuda:sm_80:A100", "version": GPU_LOG_VERSION,
                "schedule": a.to_dict(), "ms": 0.05, "pick": True})
    log.append({"signature": sig, "target": "cuda:sm_90:H100", "version": GPU_LOG_VERSION + 1,
                "schedule": a.to_dict(), "ms": 0.01, "pick": True})
    with log.path.open("a") as f:
        f.write('{"torn": ')           # an interrupted append
    assert log.best(sig, "cuda:sm_90:H100") == b
    assert log.best(sig, "cuda:sm_86:other") is None
    assert log.best("conv2d:y", "cuda:sm_90:H100") is None


def test_the_signature_names_the_batch_size() -> None:
    rng = np.random.default_rng(0)
    layer = conv_layer(pattern_pruned(rng, 8, 8, 0.3), None, 1, 1, name="c")
    assert layer_signature(layer, (8, 9, 9), 1) != layer_signature(layer, (8, 9, 9), 8)


@pytest.mark.needs_nvrtc
def test_compile_all_fills_the_cache_from_a_pool_of_processes(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.codegen.build import source_hash
    from workbench.codegen.cuda import nvrtc
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))   # the spawned workers inherit it
    srcs = [f'extern "C" __global__ void k{i}(float* y) {{ y[0] = {i}.0f; }}' for i in range(3)]
    compile_all(srcs, "compute_90")
    for src in srcs:
        key = source_hash(src, "compute_90", nvrtc.nvrtc_version(), *nvrtc._FLAGS)
        assert (tmp_path / "cuda" / f"{key}.ptx").exists()


def test_the_walk_finds_a_pair_of_knobs_that_pay_only_together(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.codegen.cuda import tune
    rng = np.random.default_rng(0)
    layer = conv_layer(pattern_pruned(rng, 128, 64, 0.3), None, 1, 1, name="c", inputs=["x"])
    shape = (64, 28, 28)
    first = tune.default_schedule(layer, shape)
    assert (first.groups, first.stages) == (4, 1)

    def cost(s: GpuSchedule) -> float:
        # 16 groups alone barely pay, double buffering alone costs; both together win, and
        # the way there runs through 8 groups, then 8 with double buffering
        base = {(4, 1): 1.0, (8, 1): 0.9, (16, 1): 0.95, (4, 2): 1.02, (8, 2): 0.92,
                (16, 2): 0.5}.get((s.groups, s.stages), 1.1)
        others = sum(getattr(s, k) != getattr(first, k) for k in
                     ("tile_f", "tile_h", "tile_w", "px_y", "px_x", "cblock", "ksplit"))
        return base + 0.1 * others

    monkeypatch.setattr(tune, "gpu_target", lambda: "cuda:sm_90:fake")
    monkeypatch.setattr(tune, "_layer_runners", lambda layer, shape, n, scheds: list(scheds))
    monkeypatch.setattr(tune, "time_graph", cost)
    log = GpuTuningLog(tmp_path / "log.jsonl")
    pick = tune.tune_layer(layer, shape, 1, 60, log)
    assert (pick.groups, pick.stages) == (16, 2) and cost(pick) == 0.5
    recs = log.records()
    assert len(recs) <= 60 and len({json.dumps(r["schedule"]) for r in recs}) == len(recs)
    assert [r["default"] for r in recs].count(True) == 1 and sum(r["pick"] for r in recs) == 1
    assert tune.tune_layer(layer, shape, 1, 60, log) == pick        # replayed, not re-timed
    assert len(log.records()) == len(recs)


def test_neighbours_change_one_knob_and_fit_the_layer() -> None:
    rng = np.random.default_rng(2)
    layer = conv_layer(pattern_pruned(rng, 64, 32, 0.3), None, 1, 1, name="c", inputs=["x"])
    s = default_schedule(layer, (32, 14, 14))
    g = conv_geometry(layer, (32, 14, 14))
    ns = neighbours(g, s)
    assert ns and s not in ns and len(set(ns)) == len(ns)
    for n in ns:
        diff = {k for k, v in n.to_dict().items() if v != getattr(s, k)}
        assert diff and (len(diff) == 1 or diff in ({"tile_h", "tile_w"}, {"px_y", "px_x"}))
        check_schedule(g, n)
