import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from workbench.apps.training import evaluate, fit, predict
from workbench.train import TrainConfig, load_checkpoint

CFG = TrainConfig(epochs=3, batch_size=4, lr=1e-2, optimizer="adam", weight_decay=0.0,
                  schedule="cosine", device="cpu", amp=False)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


def _pairs(n: int = 12) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, 8, 8, generator=g)
    # A target the net can learn: a blur of the input.
    return TensorDataset(x, F.avg_pool2d(x, 3, 1, 1))


def test_loss_decreases_on_a_fixed_batch():
    x, y = _pairs(4).tensors
    cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-2, optimizer="adam", weight_decay=0.0,
                      schedule="constant", device="cpu", amp=False)
    hist = fit(_net(), [(x, y)] * 10, F.l1_loss, cfg, progress=False)
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    straight = _net()
    fit(straight, _pairs(), F.mse_loss, CFG, progress=False)

    class Stop(Exception):
        pass

    def stop_in_third_epoch(model, calls=[0]):  # noqa: B006 - counts steps across calls
        calls[0] += 1
        if calls[0] == 7:                          # 3 steps an epoch: epochs 0 and 1 are saved
            raise Stop

    ck = tmp_path / "fit.pt"
    with pytest.raises(Stop):
        fit(_net(), _pairs(), F.mse_loss, CFG, checkpoint=ck, after_step=stop_in_third_epoch,
            progress=False)
    state = torch.load(ck, weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 2
    resumed = _net()
    hist = fit(resumed, _pairs(), F.mse_loss, CFG, checkpoint=ck, progress=False)
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert load_checkpoint(ck)["epoch"] == 2


def test_resume_with_another_config_is_refused(tmp_path):
    ck = tmp_path / "fit.pt"
    one = TrainConfig(**{**CFG.__dict__, "epochs": 1})
    fit(_net(), _pairs(), F.mse_loss, one, checkpoint=ck, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        fit(_net(), _pairs(), F.mse_loss, TrainConfig(**{**one.__dict__, "lr": 1e-3}),
            checkpoint=ck, progress=False)


def test_extra_loss_and_after_step_hooks():
    steps = []
    hist = fit(_net(), _pairs(), F.mse_loss, TrainConfig(**{**CFG.__dict__, "epochs": 2}),
               extra_loss=lambda m: 0.0 * sum(p.sum() for p in m.parameters()) + 0.25,
               after_step=lambda m: steps.append(m.training), progress=False)
    assert steps == [True] * 6
    assert all(h["extra_loss"] == pytest.approx(0.25) for h in hist)


def test_data_without_a_length_is_explained():
    with pytest.raises(TypeError, match="no length"):
        fit(_net(), iter([]), F.mse_loss, CFG, progress=False)


def test_evaluate_weights_batches_by_size_and_restores_mode():
    ds = _pairs(10)                                 # batches of 4, 4, 2
    net = _net().train()
    err = lambda out, y: (out - y).abs().mean()     # noqa: E731
    got = evaluate(net, ds, {"l1": err}, device="cpu", batch_size=4)
    x, y = ds.tensors
    with torch.no_grad():
        want = float((net(x) - y).abs().mean())
    assert got["l1"] == pytest.approx(want, rel=1e-5)
    assert net.training
    out = predict(net, x[:2], device="cpu")
    assert out.shape == (2, 3, 8, 8) and not out.requires_grad and net.training
    with pytest.raises(ValueError, match="empty"):
        evaluate(net, [], {"l1": err}, device="cpu")
