"""The linear benchmark's table: every runtime per layer and for the whole classifier, bytes
as the formats count them (no timing is checked)."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.bench.linear_bench import run

pytestmark = pytest.mark.needs_cc


def test_rows_cover_every_runtime_and_the_classifier(tmp_path: Path) -> None:
    rows = run(threads=(1,), rounds=1, out_dir=tmp_path, layers=((256, 64), (64, 32), (32, 10)))
    runtimes = {"torch dense", "ours dense", "torch block", "ours block", "torch irregular",
                "ours irregular"}
    by = {(r["layer"], r["runtime"]): r for r in rows}
    assert {k[1] for k in by} == runtimes
    assert {k[0] for k in by} == {"fc1 256->64", "fc2 64->32", "fc3 32->10", "classifier"}
    for name in runtimes:
        parts = sum(by[lay, name]["median_ms"] for lay in ("fc1 256->64", "fc2 64->32", "fc3 32->10"))
        assert by["classifier", name]["median_ms"] == pytest.approx(parts)
        assert by["classifier", "torch dense"]["vs_torch_dense"] == 1.0
    dense, block = by["fc1 256->64", "ours dense"], by["fc1 256->64", "ours block"]
    assert dense["mbytes"] == pytest.approx((256 * 64 * 4 + (256 + 64) * 4) / 1e6)
    assert block["mbytes"] < dense["mbytes"] / 5            # 1/8 of the weights, 16-bit indices
    assert by["fc3 32->10", "ours block"]["mbytes"] == by["fc3 32->10", "ours dense"]["mbytes"]
    assert all(r["p10_ms"] <= r["median_ms"] <= r["p90_ms"] for r in rows if "p10_ms" in r
               and r["layer"] != "classifier")
    assert (tmp_path / "linear.md").exists() and (tmp_path / "linear.json").exists()
