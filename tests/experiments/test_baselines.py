"""Dense baselines: train (digits), portable weights, collected table."""
import pandas as pd
import torch

from workbench.experiments.baselines import collect_baselines, model_for, load_data
from workbench.weights import load_state


def test_quick_baseline_table(tmp_path):
    df = collect_baselines(quick=True, out_dir=tmp_path)
    assert df["model"].tolist() == ["small_cnn"] and df["test_top1_%"].iloc[0] > 80
    table = pd.read_csv(tmp_path / "dense.csv", comment="#")
    assert table["git"].notna().all() and table["epochs"].tolist() == [3]
    assert (tmp_path / "dense_curves.png").exists() and (tmp_path / "small_cnn.json").exists()
    net = model_for("small_cnn", load_data("digits"))
    net.load_state_dict(load_state(tmp_path / "runs" / "small_cnn.npz"))
    assert net(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
