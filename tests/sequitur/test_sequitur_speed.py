"""The speed experiment (workbench/experiments/sequitur_speed.py) on tiny sizes: files, inputs.

Nothing here is timed; only that the artifacts are written whole and say how to remake them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.experiments import sequitur_speed as speed


def test_inputs_are_seeded_and_sized() -> None:
    nets = speed.networks_input(1234, seed=1)
    assert sum(map(len, nets)) == 1234 and len(nets) == 25
    assert all(len(n) == speed.LAYERS for n in nets[:-1]) and len(nets[-1]) == 34
    assert all(layer == i and rate in speed.RATES
               for net in nets for i, (layer, rate) in enumerate(net))
    assert nets == speed.networks_input(1234, seed=1) != speed.networks_input(1234, seed=2)
    letters = speed.random_input(500)
    assert len(letters) == 500 and set(letters) <= set(speed.ALPHABET)
    with pytest.raises(ValueError, match="unknown input kind 'x'"):
        speed.make_input("x", 10, 0)


def test_loglog_slope_of_linear_times_is_one() -> None:
    df = pd.DataFrame({"input": ["a"] * 3, "symbols": [10, 100, 1000],
                       "median_s": [0.01, 0.1, 1.0]})
    assert speed.loglog_slope(df)["a"] == pytest.approx(1.0)


def test_run_writes_csv_md_png_with_provenance(tmp_path: Path) -> None:
    df = speed.run(quick=True, out_dir=tmp_path, sizes=(300, 600), repeats=1)
    assert list(df["input"]) == ["networks", "networks", "random", "random"]
    assert list(df["symbols"]) == [300, 600, 300, 600]
    assert (df["median_s"] > 0).all() and (df["rules"] >= 1).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speed.csv", "speed.md", "speed.png"]
    csv = (tmp_path / "speed.csv").read_text()
    cmd = f"python -m workbench.experiments.sequitur_speed --quick --out {tmp_path}"
    assert f'# command: "{cmd}"' in csv and "# git:" in csv and "# machine:" in csv
    assert pd.read_csv(tmp_path / "speed.csv", comment="#").shape == (4, 8)
    md = (tmp_path / "speed.md").read_text()
    assert f"Regenerate: `{cmd}`" in md and "log-log slope" in md
    assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="positive"):
        speed.run(quick=True, out_dir=tmp_path, sizes=(0,))


def test_command_names_paths_inside_the_repo_relatively() -> None:
    assert speed.command(False, speed.RESULTS / "sequitur") == (
        "python -m workbench.experiments.sequitur_speed --out results/sequitur")
