"""Peers measured in processes of their own: subjects cross by JSON + npz, errors come back named."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.bench.codegen_bench import prune_model
from workbench.bench.isolation import measure_isolated
from workbench.bench.peers import (DeepSparse, OnnxRuntime, Subject, TorchEager, build_module,
                                   peer_by_name)
from workbench.bench.peers_bench import (BenchConfig, conv_relu_spec, keep_fastest, main,
                                         measure_peers, measure_rounds, parse_models)

TINY = {"sequential": [["Conv2d", {"in_channels": 3, "out_channels": 8, "kernel_size": 3,
                                   "padding": 1}],
                       ["BatchNorm2d", {"num_features": 8}], ["ReLU", {}],
                       ["Conv2d", {"in_channels": 8, "out_channels": 16, "kernel_size": 3}],
                       ["ReLU", {}], ["AdaptiveAvgPool2d", {"output_size": 1}], ["Flatten", {}],
                       ["Linear", {"in_features": 16, "out_features": 5}]]}
CFG = BenchConfig(min_reps=2, max_reps=2)


def _subject(work, pruned: bool = False, x: torch.Tensor | None = None) -> Subject:
    torch.manual_seed(0)
    model = build_module(TINY).eval()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    if pruned:
        prune_model(model)
    return Subject(model, torch.randn(1, 3, 10, 10) if x is None else x, work, TINY)


def test_subject_round_trip(tmp_path) -> None:
    s = _subject(tmp_path / "s", pruned=True)
    s.save()
    back = Subject.load(tmp_path / "s")
    assert back.spec == TINY and not back.model.training
    np.testing.assert_array_equal(back.x.numpy(), s.x.numpy())
    np.testing.assert_array_equal(back.reference(), s.reference())
    for k, v in s.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[k], v), k


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="not a torch.nn module class: 'Module_'"):
        build_module({"sequential": [["Module_", {}]]})
    with pytest.raises(ValueError, match="want 'zoo' or 'sequential'"):
        build_module({"pickle": "x"})


def test_conv_relu_spec_rebuilds_the_layer() -> None:
    conv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
    m = build_module(conv_relu_spec(conv))
    assert (m[0].stride, m[0].padding, m[0].bias, m[0].out_channels) == ((2, 2), (1, 1), None, 6)
    assert isinstance(m[1], torch.nn.ReLU)


@pytest.mark.parametrize("peer", [TorchEager(), OnnxRuntime()], ids=lambda p: p.name)
def test_round_trip_in_a_child_process(peer, tmp_path) -> None:
    reason = peer.missing()
    if reason:
        pytest.skip(reason)
    subjects = [_subject(tmp_path / "dense"), _subject(tmp_path / "pruned", pruned=True)]
    rows = measure_peers(peer, subjects, 1, 0.01, CFG)
    for row in rows:
        assert row["peer"] == peer.name and row["note"] == ""
        assert row["rel_err"] < 1e-5 and row["ms"] > 0 and row["reps"] == 2
        assert row["version"].startswith(peer.version().split()[0])
    if peer.name == "onnxruntime":       # exported in the child, left for the next process
        assert (tmp_path / "dense" / ".model.onnx.done").exists()


def test_error_in_the_child_names_peer_and_message(tmp_path) -> None:
    wrong = _subject(tmp_path / "wrong", x=torch.randn(1, 5, 10, 10))   # 5 channels, not 3
    with pytest.raises(RuntimeError):
        wrong.reference()
    good = _subject(tmp_path / "good")
    (res_wrong, y_wrong), (res_good, y_good) = measure_isolated(TorchEager(), [wrong, good], 1,
                                                                0.01, 2, 2)
    assert res_wrong["note"].startswith("failed: RuntimeError: ")
    assert "expected input" in res_wrong["note"] and y_wrong is None
    assert "ms" in res_good and y_good.shape == (1, 5)     # the next subject still ran


def test_hung_child_is_killed_and_named(tmp_path) -> None:
    (res, y), = measure_isolated(TorchEager(), [_subject(tmp_path / "s")], 1, 0.01, 2, 2,
                                 timeout=0.2)
    assert res["note"].startswith("failed: torch_eager process killed after 0.2 s")
    assert y is None


def test_missing_peer_is_skipped_without_a_process(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WORKBENCH_DEEPSPARSE_PYTHON", str(tmp_path / "nope" / "python"))

    def no_process(*a, **k):
        raise AssertionError("a skipped peer must not start a process")
    monkeypatch.setattr(subprocess, "Popen", no_process)
    rows = measure_peers(DeepSparse(), [_subject(tmp_path / "a"), _subject(tmp_path / "b")], 1,
                         0.01, CFG)
    assert [r["note"][:45] for r in rows] == ["skipped: deepsparse 1.8.0 needs its own venv "] * 2
    assert all("ms" not in r for r in rows)
    rows = measure_peers(TorchEager(), [_subject(tmp_path / "c")], 1, 0.01,
                         BenchConfig(skip=("torch_eager",)))
    assert rows[0]["note"] == "skipped: left out by --skip"


def test_peer_by_name_keeps_config(tmp_path) -> None:
    ours = peer_by_name("ours", {"trials": 3, "log": str(tmp_path / "t.jsonl")})
    assert (ours.trials, ours.config()["log"]) == (3, str(tmp_path / "t.jsonl"))
    with pytest.raises(ValueError, match="unknown peer 'tvm'"):
        peer_by_name("tvm")


def test_model_filter() -> None:
    assert parse_models(["resnet50-224", "mobilenet_v2-32"]) == (("resnet50", 224),
                                                                 ("mobilenet_v2", 32))
    with pytest.raises(ValueError, match="want MODEL-SIZE"):
        parse_models(["resnet50"])
    with pytest.raises(SystemExit):
        main(["--models", "alexnet-224"])


def test_keep_fastest_takes_the_lowest_round_that_matched() -> None:
    rounds = [{"ms": 5.0, "note": ""}, {"ms": 3.0, "note": "OUTPUT MISMATCH vs eager"},
              {"ms": 4.0, "note": ""}, {"note": "failed: hung"}]
    best = keep_fastest(rounds)
    assert best["ms"] == 4.0 and best["round_ms"] == "5 / 3 / 4 / nan"
    assert keep_fastest([{"note": "failed: a"}, {"note": "failed: b"}])["note"] == "failed: a"
    assert keep_fastest([{"ms": 2.0, "note": "OUTPUT MISMATCH vs eager"}])["ms"] == 2.0
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        BenchConfig(rounds=0)
    with pytest.raises(SystemExit):
        main(["--rounds", "0"])


def test_rounds_restart_each_peer_and_skip_the_skipped(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WORKBENCH_DEEPSPARSE_PYTHON", str(tmp_path / "nope" / "python"))
    said: list[str] = []
    subjects = [_subject(tmp_path / "dense"), _subject(tmp_path / "pruned", pruned=True)]
    got = measure_rounds([TorchEager(), DeepSparse()], subjects, 1, 0.01,
                         BenchConfig(min_reps=2, max_reps=2, rounds=2), said.append,
                         ["dense", "pruned"])
    for i in (0, 1):
        row = got[i, "torch_eager"]
        medians = [float(t) for t in row["round_ms"].split(" / ")]
        assert len(medians) == 2 and row["ms"] == pytest.approx(min(medians), rel=1e-3)
        assert got[i, "deepsparse"]["note"].startswith("skipped")
        assert got[i, "deepsparse"]["round_ms"] == "nan"       # not started again in round 2
    assert sum("round 2/2 torch_eager" in s for s in said) == 2
    assert not any("round 2/2 deepsparse" in s for s in said)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_rss_counts_this_process_and_its_live_workers() -> None:
    import sys
    import time

    from workbench.bench.isolation import peak_rss_mb
    before = peak_rss_mb()
    worker = subprocess.Popen([sys.executable, "-c", "import sys, time; b = bytearray(200_000_000);"
                               " b[::4096] = b'x' * len(b[::4096]); print(1, flush=True);"
                               " time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        worker.stdout.readline()               # its 200 MB are resident
        time.sleep(0.1)
        assert peak_rss_mb() > before + 150
    finally:
        worker.kill()
        worker.wait()
