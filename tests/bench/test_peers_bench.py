"""The peers benchmark's bookkeeping (its measurements run in tests/bench/test_peers.py)."""
from __future__ import annotations

from workbench.bench.peers_bench import skipped_peers


def test_a_peer_that_ran_on_some_weights_is_not_reported_skipped() -> None:
    rows = [{"peer": "csr", "note": "skipped: runs pruned weights only"},
            {"peer": "csr", "ms": 3.0, "note": ""},
            {"peer": "mnn", "note": "skipped: not installed"},
            {"peer": "mnn", "note": "skipped: not installed"}]
    assert skipped_peers(rows) == {"mnn": "skipped: not installed"}
