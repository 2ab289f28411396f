"""The demo end to end, with few epochs: files written, kernels exact, numbers sane."""
import pandas as pd
import pytest

from workbench.experiments.demo import run_demo


@pytest.mark.slow
@pytest.mark.needs_numba
def test_demo_writes_summary(tmp_path):
    result = run_demo(out_dir=tmp_path, epochs=2, threads=1, progress=False)
    assert {"summary.md", "summary.csv", "summary.png"} <= {p.name for p in tmp_path.iterdir()}
    table = pd.read_csv(tmp_path / "summary.csv", comment="#")
    assert list(table["layer"]) == ["features.3", "features.7"]
    assert (table["max_rel_error"] < 1e-4).all()
    assert (table["speedup"] > 0).all() and (table["weights_kept"] - 4 / 9 * 0.3).abs().max() < 0.01
    assert abs(result.compression - 7.5) < 0.1
    assert set(result.accuracy) == {"dense", "pruned", "retrained"}
    text = (tmp_path / "summary.md").read_text()
    assert "Regenerate: `" in text and "accuracy (test): dense" in text
