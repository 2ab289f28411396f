"""python -m workbench phone bench: the dense and the pruned build of a model on a phone, through
the real adbutils client and the fake server (an emulated phone: its times are labelled so and
never reach results/)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.phone.commands import main as phone_main
from workbench.phone.fake_server import FakeAdbServer

pytestmark = [pytest.mark.needs_cc, pytest.mark.needs_arm64]


def test_bench_writes_dense_and_pruned_rows_at_1_and_4_threads_labelled_emulated(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with FakeAdbServer() as server:
        rc = phone_main(["--port", str(server.port), "bench", "--model", "small_cnn",
                         "--input-size", "16", "--reps", "3", "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    got = json.loads((tmp_path / "bench.json").read_text())
    rows = got["rows"]
    assert [(r["build"].split()[0], r["threads"]) for r in rows] == \
        [("dense", 1), ("dense", 4), ("pruned", 1), ("pruned", 4)]
    for r in rows:
        assert r["max_abs_err"] < 1e-4 and r["reps"] == 3
        assert 0 < r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
    assert {r["speedup_vs_dense"] for r in rows[:2]} == {1.0}
    assert got["meta"]["phone"]["serial"] == "emulator-qemu"
    assert got["meta"]["note"].startswith("EMULATED")
    assert "--input-size 16 --reps 3" in got["meta"]["command"]
    md = (tmp_path / "bench.md").read_text()
    assert "EMULATED" in md and md.count("\n| ") == 5     # header + 4 rows
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == rows
