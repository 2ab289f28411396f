"""The apps experiment (demo paper Table 1) in quick mode: tables with every row, real
timings, quality before and after pruning, pictures; resumed runs reuse their checkpoints."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.apps.speed import ROWS, time_app
from workbench.experiments import apps as exp

pytestmark = [pytest.mark.needs_cc]


def test_quick_table1_has_every_row_and_checked_outputs(tmp_path):
    s = exp.QUICK
    out = exp.run(quick=True, out_dir=tmp_path / "out", work_dir=tmp_path / "work",
                  settings=s, progress=False)
    table = pd.read_csv(out / "table1.csv", comment="#")
    assert len(table) == len(exp.APPS) * len(s.threads)
    assert (table["pruned + compiler ms"] > 0).all() and (table["unpruned ms"] > 0).all()
    np.testing.assert_allclose(table["speedup"],
                               table["unpruned ms"] / table["pruned + compiler ms"])
    timings = pd.read_csv(out / "timings.csv", comment="#")
    # every timed row was checked against PyTorch on its own weights first
    assert (timings["rel_err"] < 1e-4).all()
    assert set(timings["row"]) == set(ROWS.values())
    quality = json.loads((out / "quality.json").read_text())["apps"]
    for app in exp.APPS:
        phases = [p["phase"] for p in quality[app]["phases"]]
        assert phases == ["dense", "admm", "projected", "retrained"]
        assert 0 < quality[app]["pruned_weights_kept"] < quality[app]["pruned_weights_total"]
    for f in ("table1.md", "table1.png", "pictures.png"):
        assert (out / f).stat().st_size > 0
    # a second run resumes from the checkpoints: same weights, so the same quality record
    dense, pruned, record = exp.train_and_prune("wdsr", s, tmp_path / "work", progress=False)
    assert record["phases"] == quality["wdsr"]["phases"]


def test_dense_weights_from_other_settings_are_refused(tmp_path):
    exp.train_and_prune("wdsr", exp.QUICK, tmp_path, progress=False)
    other = replace(exp.QUICK, epochs=2)
    with pytest.raises(ValueError, match="other settings"):
        exp.train_and_prune("wdsr", other, tmp_path, progress=False)


def test_a_peer_that_cannot_run_gets_a_note_not_a_crash(monkeypatch):
    from torch import nn

    from workbench.bench import peers
    dense = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)).eval()
    pruned = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)).eval()

    def broken(self, subject, threads):
        raise RuntimeError("cannot load this network\nsecond line")
    monkeypatch.setattr(peers.OnnxRuntime, "missing", lambda self: None)
    monkeypatch.setattr(peers.OnnxRuntime, "build", broken)
    rows = time_app("toy", dense, pruned, torch.rand(1, 3, 8, 8), thread_counts=(1,),
                    repeats=1, warmup=0, peers=("onnxruntime",))
    (peer,) = [r for r in rows if r["runtime"] == "onnxruntime"]
    assert np.isnan(peer["ms"]) and peer["note"] == "RuntimeError: cannot load this network"
    assert all(r["ms"] > 0 for r in rows if r["runtime"] in ("torch", "ours"))
