"""CoCo-Tune experiment: a tiny quick run writes every table and figure, and resumes for free."""
from dataclasses import replace

import pandas as pd
import pytest

from workbench.experiments import cocotune
from workbench.train import TrainConfig


@pytest.fixture(scope="module")
def tiny():
    s = cocotune.make_setup(quick=True)
    return replace(s, teacher=TrainConfig(epochs=3, batch_size=64, device="cpu"),
                   pretrain=replace(s.pretrain, epochs=1),
                   finetune=replace(s.finetune, epochs=2, evals_per_epoch=2), subspace=4,
                   sizes=(2, 4), alphas=(0.0, 0.5), alphas4=(0.5,), alphas5=(0.5,),
                   workers=(1, 2), collection=4, repeats=1)


@pytest.mark.slow
def test_quick_all_writes_tables_and_resumes(tiny, tmp_path):
    out, run = tmp_path / "out", tmp_path / "run"
    done = cocotune.run_all("all", True, out, run, setup=tiny, command="test")
    for name in ("table3", "table4", "table5", "table5_summary"):
        assert (out / f"{name}.csv").exists() and (out / f"{name}.md").exists()
    assert (out / "figure11.png").exists() and (out / "figure11.json").exists()
    t3 = done["table3"]
    assert list(t3["nodes"]) == [1, 2, 1, 2] and (t3["subspace"] == 4).all()
    easy = t3[t3["alpha"] == 0.5]  # half the full accuracy: the smallest network meets it
    assert (easy["configs_base"] == easy["nodes"]).all() and easy["met_comp"].all()
    assert ((t3["overhead"] > 0) & (t3["overhead"] < 1)).all()
    assert (t3["time_comp_s"] > t3["pretrain_s"]).all()
    assert list(done["table4"]["subspace"]) == [2, 4]
    f = done["figure11"]
    assert f["networks"] == 4 and 0 <= f["init_acc_mean_default"] <= 1
    assert f["init_acc_mean_block"] > f["init_acc_mean_default"]  # block training helps at once
    # everything is cached in the run dir: a second call trains nothing and gives the same tables
    nets = sorted(p.name for p in (run / tiny.name / "nets").glob("*.json"))
    again = cocotune.run_all("table3", True, out, run, setup=tiny, command="test")
    assert sorted(p.name for p in (run / tiny.name / "nets").glob("*.json")) == nets
    pd.testing.assert_frame_equal(again["table3"], t3)
    assert "Regenerate: `test`" in (out / "table3.md").read_text()


@pytest.mark.slow
def test_fill_on_dask_trains_every_network_then_tables_read_them_back(tiny, tmp_path):
    pytest.importorskip("distributed", reason='needs dask.distributed: pip install "dask[distributed]"')
    small = replace(tiny, subspace=2, alphas=(0.0,), workers=(1,))
    ctx = cocotune.prepare(small, tmp_path / "run", dask="2")
    try:
        a = cocotune.arms(ctx, cocotune.sample_subspace(ctx.net, 2, seed=0))
        assert cocotune.fill(ctx, a.base + a.comp) == 4
        assert len(list(ctx.ws.nets.glob("*.json"))) == 4
        assert cocotune.fill(ctx, a.base + a.comp) == 0   # all cached
        row = cocotune.compare(ctx, a, 0.0, 1)
        e = cocotune.run(ctx, a.base, row["thr_acc"], 1)
        assert e.computed == 0 and e.configs >= 1
    finally:
        ctx.close()
    # in-process, fill leaves the training to the explorations
    ctx = cocotune.prepare(small, tmp_path / "run")
    assert cocotune.fill(ctx, a.base) == 0


def test_cli_rejects_unknown_what():
    with pytest.raises(SystemExit):
        cocotune.main(["table9"])
