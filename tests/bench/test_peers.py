"""Every installed peer agrees with PyTorch on a tiny pruned CNN; missing ones skip with why."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from workbench.bench.codegen_bench import prune_model
from workbench.bench.peers import (CSRBaseline, DeepSparse, PeerUnavailable, Subject, all_peers,
                                   csr_model, rel_error)
from workbench.bench.peers_bench import (BenchConfig, conv_layers, figure5_rows, layer_rows,
                                         mac_counts, measure_peer, targets)
from workbench.bench.pinning import pinned

# converting (TFLite: a litert-torch process) or compiling (inductor) takes 5-20 s
SLOW = {"tflite", "torch_compile"}


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(32, 10)).eval()
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return prune_model(m)


@pytest.mark.parametrize("peer", [pytest.param(p, id=p.name, marks=[pytest.mark.slow]
                                               if p.name in SLOW else [])
                                  for p in all_peers(trials=1)])
def test_peer_matches_torch(peer, tmp_path) -> None:
    reason = peer.missing()
    if reason:
        pytest.skip(reason)
    if peer.name == "ours":
        peer.log = tmp_path / "tuning.jsonl"
    subject = Subject(_tiny(), torch.randn(1, 3, 12, 12), tmp_path / "files")
    with pinned(1):
        runner = peer.build(subject, 1)
        try:
            x = subject.x.numpy()
            assert rel_error(runner(x), subject.reference()) < 1e-4
            assert runner.time(x, warmup=1, repeats=2).repeats == 2
            assert runner.version
        finally:
            runner.close()
    if peer.name == "mnn":
        assert "aliyun" not in sys.modules      # MNN's usage logger was kept from loading


def test_csr_replaces_only_sparse_convs(tmp_path) -> None:
    dense = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3)).eval()
    assert csr_model(dense)[1] == 0
    with pytest.raises(PeerUnavailable, match="pruned weights only"):
        CSRBaseline().build(Subject(dense, torch.randn(1, 3, 8, 8), tmp_path), 1)
    model, n = csr_model(prune_model(dense))
    assert n == 2
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), dense(x).numpy(), rtol=1e-5, atol=1e-5)


def test_csr_runs_pruned_linears_too() -> None:
    torch.manual_seed(0)
    model = prune_model(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(),
                                      nn.Linear(8 * 16, 64), nn.ReLU(), nn.Linear(64, 10)).eval())
    assert float((model[2].weight != 0).float().mean()) == pytest.approx(0.125)
    assert bool((model[4].weight != 0).all())          # the class layer stays dense
    csr, _ = csr_model(model)
    assert type(csr[2]).__name__ == "CSRLinear" and isinstance(csr[4], nn.Linear)
    x = torch.randn(3, 3, 4, 4)
    with torch.no_grad():
        np.testing.assert_allclose(csr(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_missing_peer_is_reported(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WORKBENCH_DEEPSPARSE_PYTHON", str(tmp_path / "nope" / "python"))
    row = measure_peer(DeepSparse(), Subject(_tiny(), torch.randn(1, 3, 8, 8), tmp_path), 1,
                       0.01, BenchConfig.quick_config())
    assert row["note"].startswith("skipped: deepsparse 1.8.0 needs its own venv")
    assert "ms" not in row


def test_mac_counts_and_conv_layers() -> None:
    m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.Conv2d(4, 4, 1),
                      nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    with torch.no_grad():
        m[0].weight[:2] = 0
    x = torch.randn(1, 2, 5, 5)
    total, kept = mac_counts(m, x)
    assert total == 2 * 4 * 9 * 25 + 4 * 4 * 25 + 100 * 3
    assert kept == total - 2 * 2 * 9 * 25
    layers = conv_layers(m, x)
    assert [(n, s) for n, _, s in layers] == [("0", (1, 2, 5, 5))]


def test_target_ratios_from_rows() -> None:
    cfg = BenchConfig(threads=(1,), layer_model=("vgg16", 224))
    layers = []
    for name, scale in (("a", 1.0), ("b", 2.0)):
        for peer, w, ms in (("torch_eager", "dense", 8.0), ("onnxruntime", "dense", 4.0),
                            ("ncnn", "dense", 5.0), ("ours", "pruned", 1.0), ("ours", "dense", 9.0)):
            layers.append({"layer": name, "threads": 1, "weights": w, "peer": peer,
                           "ms": ms * scale, "note": "", "in": "4x8x8", "out_ch": 4,
                           "kept": 0.125, "dense_gflop": 1.0})
    e2e = [{"model": "resnet50-224", "threads": 1, "weights": w, "peer": p, "ms": ms, "note": "",
            "kept_macs": 0.5, "p10_ms": 0.9 * ms, "p90_ms": 1.2 * ms, "peak_rss_mb": 2 * ms}
           for p, w, ms in (("torch_eager", "dense", 30.0), ("openvino", "dense", 12.0),
                            ("openvino", "pruned", 11.0), ("ours", "pruned", 10.0),
                            ("ours", "dense", 20.0), ("csr", "pruned", 5.0))]
    fig = figure5_rows(e2e, all_peers(trials=1))
    assert fig[0]["fastest_dense_peer"] == "openvino"      # pruned-weight and CSR rows excluded
    assert fig[0]["ideal_ms"] == 6.0
    assert fig[0]["ours_rss_mb"] == 20.0 and fig[0]["fastest_dense_rss_mb"] == 24.0
    rows = {r["target"]: r for r in targets(fig, layers, cfg)}
    assert rows["vgg16-224 3x3 layers vs fastest dense layer peer"]["ratio"] == 4.0
    assert rows["vgg16-224 3x3 layers vs fastest dense layer peer"]["peer"] == "onnxruntime"
    r50 = rows["resnet50-224 end to end vs fastest dense peer"]
    assert r50["ratio"] == pytest.approx(1.2) and not r50["met"] and r50["required"] == 1.5
    assert r50["missed_by"] == "1.25x short"
    steady = rows["resnet50-224 ours steady: p10 / p90 of its timing"]
    assert steady["ratio"] == pytest.approx(0.75) and not steady["met"]
    lr = layer_rows(layers, peak=100.0)
    assert lr[0]["ours_useful_gflops"] == pytest.approx(125.0)
    assert lr[0]["ours_pct_of_peak"] == pytest.approx(125.0)
