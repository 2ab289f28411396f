"""The steadiness bench: interleaved call timings, spreads and their correlation with ours."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.bench.steadiness import interleaved, probes, spread_rows


def test_interleaving_gives_every_subject_the_same_rounds() -> None:
    calls = {"ours": 0, "other": 0}

    def bump(k: str):
        return lambda: calls.__setitem__(k, calls[k] + 1)

    ms = interleaved({"ours": bump("ours"), "other": bump("other")}, seconds=0.0, min_calls=7,
                     warmup=2)
    assert len(ms["ours"]) == len(ms["other"]) == 7
    assert calls == {"ours": 9, "other": 9}          # warm-up rounds run but are not kept


def test_spreads_and_correlation_follow_the_call_times() -> None:
    ours = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    ms = {"ours": ours, "twin": 2 * ours, "against": ours[::-1].copy()}
    rows = {r["subject"]: r for r in spread_rows("m-1", 1, ms)}
    assert rows["ours"]["corr_with_ours"] == pytest.approx(1.0)
    assert rows["twin"]["corr_with_ours"] == pytest.approx(1.0)
    assert rows["against"]["corr_with_ours"] == pytest.approx(-1.0)
    assert rows["ours"]["ms"] == 6.0
    assert rows["ours"]["p90_over_p10"] == pytest.approx(10.0 / 2.0)
    assert rows["twin"]["p90_over_p10"] == pytest.approx(rows["ours"]["p90_over_p10"])


def test_the_probes_do_fixed_work() -> None:
    p = probes()
    assert set(p) == {"compute_probe", "memory_probe"}
    for fn in p.values():
        assert fn() is None
