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


def test_code_fingerprint_follows_the_package_code_only(tmp_path, monkeypatch):
    import shutil
    import subprocess

    import pytest
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    monkeypatch.delenv("WORKBENCH_GIT_HASH", raising=False)
    monkeypatch.setattr(pv, "REPO_ROOT", tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    (tmp_path / "workbench").mkdir()
    (tmp_path / "workbench" / "a.py").write_text("x = 1\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "a"], check=True)
    clean = pv.code_fingerprint()
    assert "+" not in clean and len(clean) == 12
    (tmp_path / "results.txt").write_text("a benchmark's output\n")     # not the package
    assert pv.code_fingerprint() == clean
    (tmp_path / "workbench" / "b.py").write_text("y = 2\n")             # a new module
    with_new = pv.code_fingerprint()
    assert with_new.startswith(clean + "+")
    (tmp_path / "workbench" / "a.py").write_text("x = 2\n")             # an edited one
    assert pv.code_fingerprint() not in (clean, with_new)
