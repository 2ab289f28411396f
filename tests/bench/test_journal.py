"""The benchmark journal: measurements survive an interruption, a changed run starts fresh, and
the peers benchmark's rounds measure only what the journal lacks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import workbench.bench.peers_bench as peers_bench
from workbench.bench.journal import Journal
from workbench.bench.peers_bench import BenchConfig, measure_rounds


def test_journal_resumes_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path, {"cfg": 1}, say=lambda *_: None)
    j.record("a", [{"ms": np.float64(1.5), "reps": np.int64(15), "x": float("nan")}])
    # the interruption cut the last line off mid-write
    with open(path, "a") as f:
        f.write('{"key": "b", "value": [{"ms"')
    again = Journal(path, {"cfg": 1}, say=lambda *_: None)
    got = again.get("a")
    assert got[0]["ms"] == 1.5 and got[0]["reps"] == 15 and np.isnan(got[0]["x"])
    assert again.get("b") is None
    again.finish()
    assert not path.exists()


def test_journal_of_another_run_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    Journal(path, {"cfg": 1}, say=lambda *_: None).record("a", 1)
    said: list[str] = []
    j = Journal(path, {"cfg": 2}, say=said.append)
    assert j.get("a") is None and "set aside" in said[0]
    assert (tmp_path / "journal.jsonl.stale").exists()


def test_measure_rounds_skips_what_the_journal_holds(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake(peer, subjects, threads, budget, cfg):  # noqa: ANN001, ANN202
        calls.append(peer.name)
        return [{"peer": peer.name, "ms": 2.0 + len(calls), "note": ""} for _ in subjects]
    monkeypatch.setattr(peers_bench, "measure_peers", fake)

    class P:
        def __init__(self, name: str) -> None:
            self.name = name
    peers, cfg = [P("a"), P("b")], BenchConfig(rounds=2)
    first = Journal(tmp_path / "j.jsonl", {"k": 0}, say=lambda *_: None)
    got = measure_rounds(peers, [None, None], 1, 0.1, cfg, lambda *_: None, ["s0", "s1"], first)
    assert calls == ["a", "b", "a", "b"] and got[1, "a"]["ms"] == 3.0
    # an interrupted run, started again: nothing is measured twice, the same rows come back
    calls.clear()
    again = Journal(tmp_path / "j.jsonl", {"k": 0}, say=lambda *_: None)
    assert measure_rounds(peers, [None, None], 1, 0.1, cfg, lambda *_: None, ["s0", "s1"],
                          again) == got
    assert calls == []

