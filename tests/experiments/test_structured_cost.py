"""The accuracy cost of pruning FC layers and 1x1 convs beside the 3x3s (quick mode, tiny budget)."""
from dataclasses import replace

import pandas as pd
import pytest
from torch import nn

from workbench.experiments import pruning as P
from workbench.experiments import structured_cost as S
from workbench.models import build_model

TINY = replace(P.QUICK, admm_epochs=1, retrain_epochs=1)


def test_variants_follow_the_layers_a_model_has():
    assert set(S.variants(build_model("small_cnn", input_size=8, in_channels=1), 8, 2)) == \
        {"base", "linear"}
    r50 = S.variants(build_model("resnet50"), 8, 2)
    assert r50["pointwise"] == (("pointwise", 2),) and set(r50) == {"base", "linear", "pointwise"}
    with pytest.raises(ValueError, match="no pointwise layers"):
        P.extra_config(build_model("vgg16"), (("pointwise", 2.0),))
    with pytest.raises(ValueError, match="must be one of"):
        P.extra_config(build_model("vgg16"), (("depthwise", 2.0),))


def test_extra_config_prunes_the_class_layer_and_dense_1x1s_only():
    r18 = build_model("resnet18")
    names = [g["tensor"] for g in P.extra_config(r18, (("linear", 8.0), ("pointwise", 2.0)))]
    ones = [f"{n}.weight" for n, m in r18.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert names == ["fc.weight", *ones] and len(ones) == 3


def test_keys_of_runs_without_extras_are_unchanged():
    d = P.Dense("m", nn.Linear(1, 1), None, "id", {})
    plain = P._run_key(d, "admm", "pattern", 8.0, TINY, None)
    assert P._run_key(d, "admm", "pattern", 8.0, TINY, None, ()) == plain
    extra = P._run_key(d, "admm", "pattern", 8.0, TINY, None, (("linear", 8.0),))
    assert extra.startswith("m-admm-pattern-8x-linear8x-") and extra[-10:] != plain[-10:]


@pytest.mark.slow
def test_quick_table_prunes_the_classifier_at_its_rate_and_caches(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    df = S.structured_cost(True, out, settings=TINY, work_dir=work, progress=False)
    assert df["pruned"].tolist() == ["3x3 convs", "3x3 convs + linear 8x"]
    assert df["conv_compression"].tolist() == pytest.approx([8, 8], rel=0.01)
    assert df["extra_compression"][1] == pytest.approx(8, rel=0.05)
    assert df["extra_weights"][1] == 64 * 4 * 10   # SmallCNN's classifier: 256 -> 10
    assert df["cost_vs_3x3_only"][1] == pytest.approx(df["final_acc"][0] - df["final_acc"][1])
    assert "Regenerate: `python -m workbench.experiments.structured_cost --quick" in \
        (out / "structured_cost.md").read_text()
    again = S.structured_cost(True, out, settings=TINY, work_dir=work, progress=False,
                              cached_only=True)
    pd.testing.assert_frame_equal(again, df)
