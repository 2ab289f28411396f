"""The GPU tuner without a GPU: its candidates and its log (timing needs the GPU machine)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.codegen.cuda.conv import check_schedule, conv_geometry
from workbench.codegen.cuda.schedule import GpuSchedule
from workbench.codegen.cuda.tune import (GPU_LOG_VERSION, GpuTuningLog, candidates, compile_all,
                                         layer_signature)
from workbench.codegen.lr import conv_layer

from ..helpers import pattern_pruned


def test_candidates_start_with_the_default_and_all_run_the_layer() -> None:
    rng = np.random.default_rng(0)
    layer = conv_layer(pattern_pruned(rng, 64, 32, 0.3), None, 1, 1, name="c", inputs=["x"])
    cands = candidates(layer, (32, 28, 28), 24)
    assert len(cands) == 24 and len(set(cands)) == 24
    assert cands[0] == candidates(layer, (32, 28, 28), 1)[0]   # the default, first
    g = conv_geometry(layer, (32, 28, 28))
    for s in cands:
        check_schedule(g, s)        # raises if a candidate could not run


def test_depthwise_candidates_keep_one_filter_group_per_block() -> None:
    rng = np.random.default_rng(1)
    layer = conv_layer(rng.standard_normal((32, 1, 3, 3)).astype(np.float32), None, 1, 1,
                       groups=32, name="dw", inputs=["x"])
    cands = candidates(layer, (32, 14, 14), 16)
    assert cands and all(s.groups == 1 and s.tile_f == 1 for s in cands)


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
