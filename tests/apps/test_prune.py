import numpy as np
import pytest
import torch
from torch import nn

from workbench.apps.coloring import color_data, color_loss, evaluate_coloring
from workbench.apps.prune import app_config, prune_app
from workbench.apps.style_transfer import ContentPairs, RandomFeatures, StyleLoss, evaluate_style
from workbench.apps.super_resolution import evaluate_sr, sr_data, sr_loss
from workbench.data import load_photos
from workbench.models.image_to_image import WDSR, ColorNet, TransformerNet
from workbench.pruning.patterns import num_kept
from workbench.pruning.schemes import make_scheme
from workbench.train import TrainConfig, load_checkpoint

CFG = TrainConfig(epochs=2, batch_size=4, lr=1e-3, optimizer="adam", weight_decay=0.0,
                  schedule="constant", device="cpu", amp=False)
RETRAIN = TrainConfig(**{**CFG.__dict__, "epochs": 1, "seed": 1})


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [p[:32, :32] for p in load_photos(None)[:3]]


def _wdsr() -> WDSR:
    torch.manual_seed(0)
    return WDSR(scale=2, channels=8, blocks=1)


def _sr_run(photos, work, model=None, loss=sr_loss, rate=4.0, **kw):
    model = model if model is not None else _wdsr()
    result = prune_app("super_resolution", model, rate, sr_data(photos, 2, patch=8, n=8),
                       loss, lambda m: evaluate_sr(m, photos[:1], device="cpu"), work,
                       admm_cfg=CFG, retrain_cfg=RETRAIN, progress=False, **kw)
    return model, result


def _check_pattern_connectivity(model: nn.Module, config: list[dict],
                                masks: dict[str, torch.Tensor]) -> None:
    """Every pruned 3x3 kernel is zero or one of the patterns; the kept kernel count matches."""
    params = dict(model.named_parameters())
    assert set(masks) == {g["tensor"] for g in config}
    for g in config:
        scheme = make_scheme("pattern_connectivity", rate=g["rate"], patterns=g["patterns"])
        m, w = masks[g["tensor"]].reshape(-1, 9), params[g["tensor"]].detach().reshape(-1, 9)
        pats = torch.from_numpy(scheme.masks.reshape(-1, 9))
        kept = m.any(1)
        assert (m[kept][:, None, :] == pats[None]).all(-1).any(-1).all()
        assert int(kept.sum()) == num_kept(scheme.keep_kernels, len(m))
        assert (w[~m] == 0).all()


def test_app_configs_follow_the_demo_paper():
    style = app_config("style_transfer", TransformerNet(width=8, blocks=1), 4.0)
    convs = [f"{n}.weight" for n, m in TransformerNet(width=8, blocks=1).named_modules()
             if isinstance(m, nn.Conv2d)]
    assert [g["tensor"] for g in style] == convs[1:]
    assert {g["scheme"] for g in style} == {"column"} and {g["rate"] for g in style} == {4.0}
    sr = app_config("wdsr", _wdsr(), 4.0)
    # head (first 3x3) dense; the 1x1s and the 5x5 skip are not pruned at all
    assert [g["tensor"] for g in sr] == ["body.0.body.3.weight", "tail.0.weight"]
    color = app_config("coloring", ColorNet(width=8, global_dim=16), 4.0)
    assert color[0]["tensor"] == "low.3.weight" and "fuse.0.weight" not in {g["tensor"] for g in color}
    assert all(g["scheme"] == "pattern_connectivity" and g["patterns"].num_patterns == 8
               for g in color)
    with pytest.raises(ValueError, match="unknown app"):
        app_config("deblur", _wdsr(), 4.0)
    # with pointwise_rate, WDSR's 1x1s get 16-filter connectivity groups as well
    sr1 = app_config("wdsr", _wdsr(), 4.0, pointwise_rate=2.0)
    ones = [f"{n}.weight" for n, m in _wdsr().named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert [g["tensor"] for g in sr1] == [g["tensor"] for g in sr] + ones
    with pytest.raises(ValueError, match="column pruned"):
        app_config("style_transfer", TransformerNet(width=8, blocks=1), 4.0, pointwise_rate=2.0)


def test_sr_pruning_satisfies_the_scheme_and_records_quality(photos, tmp_path):
    config = app_config("wdsr", _wdsr(), 4.0)
    model, result = _sr_run(photos, tmp_path / "sr", keep_checkpoints=True)
    _check_pattern_connectivity(model, config, result.masks)
    # The 3x3 convs together, the dense head included, shrink about 4 times.
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    threes = [f"{n}.weight" for n, m in model.named_modules()
              if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    kept = sum(int(result.masks[n].sum()) if n in result.masks else sizes[n] for n in threes)
    assert sum(sizes[n] for n in threes) / kept == pytest.approx(4.0, rel=0.15)
    assert [p["phase"] for p in result.phases] == ["dense", "admm", "projected", "retrained"]
    assert all(np.isfinite(p["psnr"]) and "bicubic_psnr" in p for p in result.phases)
    # Retraining moved the kept weights and kept the pruned ones at zero.
    projected = load_checkpoint(tmp_path / "sr" / "projected.pt")["model"]
    final = load_checkpoint(tmp_path / "sr" / "final.pt")
    assert final["record"]["weights_kept"] < final["record"]["weights_total"]
    for n, m in result.masks.items():
        assert not torch.equal(projected[n], final["model"][n])
        assert (final["model"][n][~m] == 0).all()


def test_sr_pruning_resumes_to_the_same_weights(photos, tmp_path):
    straight, _ = _sr_run(photos, tmp_path / "straight")

    class Stop(Exception):
        pass

    def stop_in_second_admm_epoch(out, target, calls=[0]):  # noqa: B006 - counts steps
        calls[0] += 1
        if calls[0] == 3:                                   # 2 steps an epoch
            raise Stop
        return sr_loss(out, target)

    with pytest.raises(Stop):
        _sr_run(photos, tmp_path / "resumed", loss=stop_in_second_admm_epoch)
    assert (tmp_path / "resumed" / "admm_state_0.pt").exists()
    resumed, result = _sr_run(photos, tmp_path / "resumed")
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=n)
    assert not (tmp_path / "resumed" / "admm.pt").exists()      # only final.pt is kept
    # A finished run loads from final.pt; another rate in the same work_dir is refused.
    again, same = _sr_run(photos, tmp_path / "resumed")
    assert same.phases == result.phases
    torch.testing.assert_close(again.state_dict(), resumed.state_dict())
    with pytest.raises(ValueError, match="another pruning spec.*rate"):
        _sr_run(photos, tmp_path / "resumed", rate=3.0)


def test_coloring_pruning_is_pattern_connectivity(photos, tmp_path):
    torch.manual_seed(0)
    model = ColorNet(width=8, global_dim=16)
    config = app_config("colornet", model, 4.0)
    result = prune_app("coloring", model, 4.0, color_data(photos, patch=16, n=8), color_loss("l1"),
                       lambda m: evaluate_coloring(m, photos[:1], device="cpu"), tmp_path,
                       admm_cfg=CFG, retrain_cfg=RETRAIN, progress=False)
    _check_pattern_connectivity(model, config, result.masks)
    assert all("psnr_ab" in p for p in result.phases)


def test_style_pruning_removes_whole_columns(photos, tmp_path):
    torch.manual_seed(0)
    model = TransformerNet(width=8, blocks=1)
    loss = StyleLoss(photos[2], RandomFeatures(widths=(8, 8), scales=2))
    data = ContentPairs(photos, patch=16, n=8)
    result = prune_app("style_transfer", model, 4.0, data, loss,
                       lambda m: evaluate_style(m, data, loss, device="cpu"), tmp_path,
                       admm_cfg=CFG, retrain_cfg=RETRAIN, progress=False)
    params = dict(model.named_parameters())
    for n, m in result.masks.items():
        cols = m.flatten(1)                                   # (O, I*kh*kw)
        assert (cols == cols[:1]).all()                       # a column is kept in every filter
        assert int(cols[0].sum()) == num_kept(0.25, cols.shape[1])
        assert (params[n].detach().flatten(1)[:, ~cols[0]] == 0).all()
    assert "encoder.0.weight" not in result.masks and "decoder.7.weight" not in result.masks
    assert result.phases[0]["loss"] > 0 and result.phases[-1]["loss"] > 0
