"""ADMM and one-shot pipelines: phases, masks kept through retraining, resume from every phase."""
import pytest
import torch

from workbench.data import load_digits
from workbench.models import build_model
from workbench.pruning.admm import ADMM
from workbench.pruning.patterns import PatternSet, candidate_patterns
from workbench.pruning.pipeline import admm_prune, oneshot_prune
from workbench.pruning.sparsifier import Sparsifier, conv_config, rate_config
from workbench.train import TrainConfig


@pytest.fixture(scope="module")
def digits():
    s = load_digits()
    return s.train.subset(256), s.val.subset(64), s.test.subset(64)


def _model(width: int = 8) -> torch.nn.Module:
    torch.manual_seed(0)
    from workbench.models.small_cnn import SmallCNN
    return SmallCNN(10, in_channels=1, width=width)


CFG = TrainConfig(epochs=2, batch_size=64, lr=0.01, device="cpu", schedule="constant")
PS = PatternSet(patterns=candidate_patterns()[:8])


def _admm(model):
    return ADMM(conv_config(model), {"scheme": "pattern_connectivity", "rate": 4, "patterns": PS},
                rho=0.1, rho_growth=1.5, rho_max=10)


def _run(tmp, data, **kw):
    model = _model()
    result = admm_prune(model, _admm(model), *data, CFG, CFG, tmp, progress=False,
                        keep_checkpoints=True, **kw)
    return model, result


def test_admm_phases_masks_and_resume_from_every_phase(tmp_path, digits):
    model, res = _run(tmp_path / "a", digits)
    assert [p["phase"] for p in res.phases] == ["dense", "admm", "projected", "retrained"]
    assert len(res.admm_history) == 2 and len(res.admm_epochs) == 2 and len(res.retrain_history) == 2
    assert res.compression == pytest.approx(4.0, rel=0.02)
    assert {f.name for f in (tmp_path / "a").iterdir()} == {
        "dense.json", "admm.pt", "admm_state_0.pt", "admm_state_1.pt", "projected.pt", "retrain.pt",
        "final.pt"}
    params = dict(model.named_parameters())
    for name, m in res.masks.items():
        assert (params[name][~m] == 0).all() and (m.flatten(2).sum(2) % 4 == 0).all()
    final = {k: v.clone() for k, v in model.state_dict().items()}
    # A finished run is read back, not recomputed.
    model2, res2 = _run(tmp_path / "a", digits)
    assert res2.phases == res.phases
    assert all(torch.equal(final[k], v) for k, v in model2.state_dict().items())
    # Interrupted during retraining (projected.pt is there): resumes and gets the same weights.
    for f in ("final.pt", "retrain.pt"):
        (tmp_path / "a" / f).unlink()
    model3, res3 = _run(tmp_path / "a", digits)
    assert res3.phases == res.phases
    assert all(torch.equal(final[k], v) for k, v in model3.state_dict().items())
    # Interrupted after the ADMM epochs (admm.pt + states there): same masks, same result.
    for f in ("final.pt", "retrain.pt", "projected.pt"):
        (tmp_path / "a" / f).unlink()
    model4, res4 = _run(tmp_path / "a", digits)
    assert all(torch.equal(res.masks[n], res4.masks[n].cpu()) for n in res.masks)
    assert res4.admm_history == res.admm_history and res4.phases == res.phases


class _CrashingADMM(ADMM):
    """Dies at the first step of the second epoch, after epoch 0 was checkpointed."""

    def penalty(self, model=None):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 256 // 64 + 1:
            raise RuntimeError("power cut")
        return super().penalty(model)


def test_admm_resumes_mid_phase_to_the_same_result(tmp_path, digits):
    _, whole = _run(tmp_path / "whole", digits)
    model = _model()
    crashing = _CrashingADMM(conv_config(model), {"scheme": "pattern_connectivity", "rate": 4,
                                                  "patterns": PS}, rho=0.1, rho_growth=1.5, rho_max=10)
    with pytest.raises(RuntimeError, match="power cut"):
        admm_prune(model, crashing, *digits, CFG, CFG, tmp_path / "cut", progress=False)
    cut = tmp_path / "cut"
    assert (cut / "admm_state_0.pt").exists() and not (cut / "projected.pt").exists()
    _, resumed = _run(tmp_path / "cut", digits)
    assert resumed.admm_history == whole.admm_history and resumed.phases == whole.phases


def test_admm_stops_at_the_tolerance(tmp_path, digits):
    model = _model()
    admm = ADMM(conv_config(model), {"scheme": "irregular", "rate": 2}, tol=10.0)
    cfg = TrainConfig(epochs=5, batch_size=64, lr=0.01, device="cpu", schedule="constant")
    res = admm_prune(model, admm, *digits, cfg, CFG, tmp_path, progress=False)
    assert len(res.admm_epochs) == 1 and len(res.admm_history) == 1   # converged at once


def test_oneshot_prunes_then_retrains_with_masks(tmp_path, digits):
    model = _model()
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.01, device="cpu")
    res = oneshot_prune(model, Sparsifier(rate_config(model, "irregular", 8)), *digits, cfg,
                        tmp_path, progress=False)
    assert [p["phase"] for p in res.phases] == ["dense", "projected", "retrained"]
    assert "features.0.weight" not in res.masks and len(res.retrain_history) == 3
    params = dict(model.named_parameters())
    assert all((params[n][~m] == 0).all() for n, m in res.masks.items())
    rec = res.record()
    assert rec["compression"] == pytest.approx(res.compression) and "masks" not in rec
    assert sorted(f.name for f in tmp_path.iterdir()) == ["dense.json", "final.pt"]


def test_rate_config_counts_the_dense_first_conv():
    model = build_model("small_cnn", 10, 8, in_channels=1)
    sizes = {n: p.numel() for n, p in model.named_parameters() if n in
             {g["tensor"] for g in conv_config(model)}}
    for scheme, rate in [("irregular", 8), ("connectivity", 12)]:
        masks = Sparsifier(rate_config(model, scheme, rate)).prepare(model).step()
        kept = sum(int(m.sum()) for m in masks.values()) + sizes["features.0.weight"]
        assert sum(sizes.values()) / kept == pytest.approx(rate, rel=0.01)
    assert all(g["scheme"] == PS for g in rate_config(model, "pattern", 8, PS))
    with pytest.raises(ValueError, match="cannot leave the first conv"):
        rate_config(model, "irregular", 1000)
