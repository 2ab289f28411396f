"""Pruning experiments in quick mode with a tiny budget: tables, figures, provenance, run cache."""
from dataclasses import replace

import pandas as pd
import pytest

from workbench.data import DataError, load_cifar10
from workbench.experiments import pruning as P

TINY = replace(P.QUICK, admm_epochs=1, retrain_epochs=1)


@pytest.mark.slow
def test_quick_tables_figures_and_cache(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    cov = P.pattern_coverage(True, out, sizes=(4, 8), work_dir=work, progress=False)
    assert list(cov["patterns"]) == [4, 8] and 0 < cov["coverage"][0] < cov["coverage"][1] <= 1
    curve = P.compression_curve(True, out, rates=(4, 8), settings=TINY, work_dir=work,
                                progress=False)
    assert len(curve) == 4 and set(curve["method"]) == {"admm", "oneshot"}
    assert curve["conv_compression"].tolist() == pytest.approx([4, 4, 8, 8], rel=0.01)
    assert curve["final_acc"].between(0, 1).all()
    table = P.scheme_comparison(True, out, rate=4.5, schemes=("irregular", "filter", "pattern"),
                                settings=TINY, work_dir=work, progress=False)
    assert table["scheme"].tolist() == ["irregular", "filter", "pattern"]
    assert table["pattern_taps"].tolist() == ["-", "-", "2"]
    assert table["conv_compression"][0] == pytest.approx(4.5, rel=0.01)
    chars = P.characteristics_table(True, out, rate=8, settings=TINY, work_dir=work, progress=False)
    assert chars["patterns"][0] == 8 and chars["conv_compression"][0] == pytest.approx(8, rel=0.01)
    assert (out / chars["model_file"][0]).stat().st_size < 16 * 2**20
    for stem in ("pattern_coverage", "compression_curve", "scheme_comparison", "characteristics"):
        md = (out / f"{stem}.md").read_text()
        assert "Regenerate: `python -m workbench.experiments.pruning" in md and "Git:" in md
        assert pd.read_csv(out / f"{stem}.csv", comment="#").shape[0] > 0
    assert (out / "compression_curve.png").exists() and (out / "admm_residuals_small_cnn.png").exists()
    # The 8x ADMM run is shared between the curve and the characteristics table.
    runs = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert len(runs) == 4 + 3
    again = P.compression_curve(True, out, rates=(4, 8), settings=TINY, work_dir=work,
                                progress=False, cached_only=True)
    pd.testing.assert_frame_equal(again, curve)
    with pytest.raises(FileNotFoundError, match="cached_only"):
        P.compression_curve(True, out, rates=(12,), settings=TINY, work_dir=work, progress=False,
                            cached_only=True)


def test_command_records_non_default_budgets():
    cmd = P._command("curve", False, replace(P.FULL, admm_epochs=3), {"vgg16": "runs/v.npz"},
                     rates=(4, 8))
    assert cmd == ("python -m workbench.experiments.pruning curve --rates 4 8 --model vgg16 "
                   "--dense runs/v.npz --admm-epochs 3")
    assert P._command("table1", True, replace(P.QUICK, rho=5.0)).startswith("(from Python")


def test_full_mode_needs_a_dense_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m workbench train --model vgg16"):
        P.load_dense(False, "vgg16", tmp_path / "none.npz")


def test_full_mode_loads_a_baseline_checkpoint(tmp_path):
    try:
        load_cifar10(train_subset=64, test_subset=64)
    except DataError as e:
        pytest.skip(f"CIFAR-10 not available: {e}")
    from workbench.models import build_model
    from workbench.weights import save_state

    save_state(tmp_path / "r.npz", build_model("resnet18").state_dict(), half=True,
               meta={"model": "resnet18"})
    d = P.load_dense(False, "resnet18", tmp_path / "r.npz")
    assert d.identity.startswith("resnet18-") and d.splits.input_shape == (3, 32, 32)
    with pytest.raises(ValueError, match="holds a resnet18, not a vgg16"):
        P.load_dense(False, "vgg16", tmp_path / "r.npz")


@pytest.mark.slow
def test_command_line_runs_and_assembles(tmp_path):
    args = ["--quick", "--out", str(tmp_path / "o"), "--work-dir", str(tmp_path / "w"),
            "--admm-epochs", "1", "--retrain-epochs", "0", "--no-progress"]
    assert P.main(["curve", "--rates", "4", "--methods", "admm", *args]) == 0
    md = (tmp_path / "o" / "compression_curve.md").read_text()
    assert ("`python -m workbench.experiments.pruning curve --quick --rates 4.0 --methods admm "
            "--admm-epochs 1 --retrain-epochs 0`") in md
    assert P.main(["curve", "--rates", "4", "--methods", "admm", "--cached-only", *args]) == 0
    with pytest.raises(FileNotFoundError, match="cached_only"):
        P.main(["table1", "--schemes", "filter", "--cached-only", *args])


def test_extended_retraining_keeps_masks_and_reports_drops(tmp_path):
    import shutil

    from workbench.pruning.masks import load_pruned

    out = tmp_path / "out"
    shutil.copytree(P.QUICK_OUT / "models", out / "models")
    shutil.copytree(P.QUICK_OUT / "runs", out / "runs")
    df = P.extended_retraining(True, out, epochs=1, work_dir=tmp_path / "work", progress=False,
                               device="cpu")
    assert len(df) == 1 and df["extra_epochs"][0] == 1
    row = df.iloc[0]
    assert row["drop_extended"] == pytest.approx(row["acc_dense"] - row["acc_extended"])
    _, masks_before, _ = load_pruned(out / "models" / P._saved_models(out, 8.0)[0].name)
    _, masks_after, meta = load_pruned(out / row["model_file"])
    assert meta["extended_epochs"] == 1
    assert all((masks_before[n] == masks_after[n]).all() for n in masks_before)
    assert (out / "extended_retraining.md").read_text().count("--epochs 1") == 1


def test_extended_retraining_without_saved_models_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="characteristics"):
        P.extended_retraining(True, tmp_path, epochs=1, progress=False)
