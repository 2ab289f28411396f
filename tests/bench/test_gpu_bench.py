"""The GPU benchmark's reporting, from rows as the GPU machine writes them (no GPU needed)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.bench import gpu_bench


def _row(model: str, n: int, runtime: str, weights: str, ms: float, kept: float = 1.0) -> dict:
    return {"model": model, "batch": n, "runtime": runtime, "weights": weights, "ms": ms,
            "p10_ms": ms * 0.98, "p90_ms": ms * 1.03, "kept_macs": kept, "pruned_weights": "x"}


ROWS = [{"kind": "machine", "gpu": "H100"},
        _row("vgg16_features-224", 1, "torch_eager_fp32", "dense", 3.0),
        _row("vgg16_features-224", 1, "cudnn_graph_fp32", "dense", 2.4),
        _row("vgg16_features-224", 1, "cudnn_graph_tf32", "dense", 0.9),
        _row("vgg16_features-224", 1, "ours_default", "pruned", 1.5, 0.134),
        _row("vgg16_features-224", 1, "ours_tuned", "pruned", 1.0, 0.134),
        _row("vgg16_features-224", 1, "ours_default", "dense", 9.0),
        _row("resnet50-224", 1, "cudnn_graph_fp32", "dense", 1.2),
        _row("resnet50-224", 1, "ours_tuned", "pruned", 1.5, 0.4),
        {"kind": "layer", "layer": "features.0", "in": "3x224x224", "out_ch": 64, "kept": 0.13,
         "cudnn_fp32_ms": 0.05, "cudnn_tf32_ms": 0.03, "ours_ms": 0.02, "schedule": {},
         "ours_useful_tflops": 1.0},
        {"kind": "profile", "model": "resnet50-224", "batch": 1, "layer": "c1", "op": "conv2d",
         "ms": 0.02, "out_shape": "64x56x56", "schedule": {}, "useful_gflops": 1.0,
         "cudnn_conv_fp32_ms": 0.03, "geometry": "64x56x56->64 k3x3 s1"},
        {"kind": "profile", "model": "resnet50-224", "batch": 1, "layer": "c2", "op": "conv2d",
         "ms": 0.01, "out_shape": "64x56x56", "schedule": {}, "useful_gflops": 1.0,
         "cudnn_conv_fp32_ms": 0.004, "geometry": "64x56x56->64 k3x3 s1 dw"},
        {"kind": "profile", "model": "resnet50-224", "batch": 1, "layer": "c3", "op": "conv2d",
         "ms": 0.01, "out_shape": "256x56x56", "schedule": {}, "useful_gflops": 1.0,
         "cudnn_conv_fp32_ms": 0.02, "geometry": "64x56x56->256 k1x1 s1"},
        {"kind": "profile", "model": "resnet50-224", "batch": 1, "layer": "p", "op": "add",
         "ms": 0.005, "out_shape": "256x56x56", "schedule": None, "useful_gflops": 0.0,
         "cudnn_conv_fp32_ms": float("nan")}]


def test_targets_compare_our_fastest_pruned_run_with_the_fastest_dense_fp32_peer() -> None:
    df = pd.DataFrame([r for r in ROWS if "runtime" in r])
    t = gpu_bench.targets(df).set_index("model")
    vgg = t.loc["vgg16_features-224"]
    assert vgg.fastest_dense_fp32 == "cudnn_graph_fp32" and vgg.ours == "ours_tuned"
    assert vgg.ratio == pytest.approx(2.4) and bool(vgg.met)
    assert vgg.ratio_vs_tf32 == pytest.approx(0.9)
    assert vgg.ideal_ms == pytest.approx(2.4 * 0.134)
    res = t.loc["resnet50-224"]
    assert res.ratio == pytest.approx(0.8) and not bool(res.met)


def test_report_writes_every_table_and_the_figure(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "out"
    gpu_bench.main(["--report-only", "--work", str(work), "--out", str(out)])
    for name in ("end_to_end.md", "end_to_end.csv", "layers.md", "targets.md",
                 "end_to_end.png", "gpu.json", "profile.md", "profile_summary.md"):
        assert (out / name).exists(), name
    assert "speedup_vs_cudnn_fp32" in (out / "layers.md").read_text()
    assert "TensorRT not measured" in (out / "targets.md").read_text()


def test_the_profile_summary_sums_each_kind_of_layer() -> None:
    prof = pd.DataFrame([r for r in ROWS if r.get("kind") == "profile"])
    summ = gpu_bench.profile_summary(prof).set_index("kind")
    assert set(summ.index) == {"conv3x3", "depthwise", "conv1x1", "add"}
    assert summ.loc["conv3x3"].cudnn_over_ours == pytest.approx(1.5)
    assert summ.loc["depthwise"].cudnn_over_ours == pytest.approx(0.4)
    assert pd.isna(summ.loc["add"].cudnn_conv_fp32_ms) and summ.loc["add"].ours_ms == 0.005


def test_report_without_measured_rows_says_where_they_come_from(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="run the benchmark on a GPU"):
        gpu_bench.main(["--report-only", "--work", str(tmp_path), "--out", str(tmp_path / "o")])
