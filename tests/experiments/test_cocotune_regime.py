"""CoCo-Tune's small-data regime: a tiny quick run trains the source, adapts it to each target
size, writes Table 3 per N and pre-training data with the speedup plot, and resumes."""
from dataclasses import replace

import pandas as pd
import pytest

from workbench.experiments import cocotune, cocotune_regime
from workbench.train import TrainConfig


@pytest.fixture(scope="module")
def tiny():
    r = cocotune_regime.make_regime(quick=True, sizes=(10, 40), workers=(1,))
    s = r.setup
    s = replace(s, teacher=TrainConfig(epochs=3, batch_size=64, device="cpu"),
                pretrain=replace(s.pretrain, epochs=1),
                finetune=replace(s.finetune, epochs=2, evals_per_epoch=2), subspace=4,
                alphas=(0.0, 0.5), workers=(1,))
    return replace(r, setup=s, adapt=replace(r.adapt, epochs=3))


@pytest.mark.slow
def test_the_regime_writes_table3_per_size_and_pretraining_data_and_resumes(tiny, tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    df = cocotune_regime.run(quick=True, out=out, run_dir=runs, regime=tiny)
    assert sorted(set(df.per_class)) == [10, 40]
    assert set(df.unlabeled) == {False, True}
    assert len(df) == 2 * 2 * 2                      # sizes x pre-training data x alphas
    assert ((df.configs_base >= 1) & (df.configs_comp >= 1)).all()
    assert (out / "table3.md").exists() and (out / "speedup_vs_n.png").exists()
    # Figure 11 for the smallest N, once per pre-training data, curves over the budget
    for unl in (False, True):
        fig = out / cocotune_regime.figure_dir(10, unl)
        assert (fig / "figure11.png").exists()
        summary = pd.read_json(fig / "figure11.json", typ="series")
        assert len(summary["curve_default"]) >= 2 and len(summary["curve_block"]) >= 2
    assert not (out / cocotune_regime.figure_dir(40, False)).exists()
    # the adapted target models are the teachers: 5-way, and better than chance
    assert cocotune_regime.evaluate_adapted(tiny, 40, runs) > 0.3
    # blocks pre-trained with the pool saw more images than the 5 x N target images
    blocks = list((runs / "n10").rglob("bs*.json"))
    seen = sorted(pd.read_json(p, typ="series")["images"] for p in blocks)
    assert seen[0] == 50 and seen[-1] > 50
    again = cocotune_regime.run(quick=True, out=out, run_dir=runs, regime=tiny)
    pd.testing.assert_frame_equal(df, again)


def test_a_figure_for_a_size_not_run_is_refused(tiny, tmp_path):
    with pytest.raises(ValueError, match="figure_n 7"):
        cocotune_regime.regime_table3(replace(tiny, figure_n=7), tmp_path)


def test_the_cli_knows_the_regime():
    with pytest.raises(SystemExit):
        cocotune.main(["regime", "--sizes", "x"])
