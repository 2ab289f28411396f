"""Provenance and atomic writers."""
import json

import matplotlib
import pandas as pd

from workbench import provenance as pv

matplotlib.use("Agg")


def test_table_files_carry_command_and_git(tmp_path):
    prov = pv.provenance("python -m workbench experiment x", {"a": 1})
    csv, md = pv.write_table(pd.DataFrame({"k": ["a", "b"], "v": [1.0, 2.5]}), tmp_path / "t", prov,
                             title="T")
    assert pd.read_csv(csv, comment="#")["v"].tolist() == [1.0, 2.5]
    text = md.read_text()
    assert "| k | v |" in text and "| b | 2.5 |" in text and "python -m workbench experiment x" in text
    assert json.loads(csv.read_text().splitlines()[1].split(": ", 1)[1]) == {"a": 1}
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_git_hash_override(monkeypatch):
    monkeypatch.setenv("WORKBENCH_GIT_HASH", "abc123")
    assert pv.git_hash() == "abc123"


def test_figure_written_atomically(tmp_path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    path = pv.write_figure(fig, tmp_path / "f.png", pv.provenance("cmd"))
    assert path.read_bytes()[:4] == b"\x89PNG"
