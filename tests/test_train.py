"""Training: learns, checkpoints load with weights_only, resume equals an uninterrupted run."""
import pytest
import torch

from workbench.data import load_digits
from workbench.models import build_model
from workbench.train import TrainConfig, evaluate, load_checkpoint, train


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _model():
    torch.manual_seed(0)
    return build_model("small_cnn", 10, 8, in_channels=1)


def test_training_learns_digits(digits):
    m = _model()
    before = evaluate(m, digits.val)["accuracy"]
    hist = train(m, digits.train, digits.val, TrainConfig(epochs=3, batch_size=64), progress=False)
    assert len(hist) == 3 and hist[-1]["val_acc"] > 0.9 > before
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_checkpoint_loads_weights_only_and_resume_matches(digits, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05)
    straight = _model()
    train(straight, digits.train, None, cfg, progress=False)

    ck = tmp_path / "ck.pt"
    first = _model()
    train(first, digits.train, None, TrainConfig(epochs=2, batch_size=64, lr=0.05), checkpoint=ck,
          progress=False)
    state = torch.load(ck, weights_only=True)
    assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "scheduler", "rng"}

    # Interrupt after epoch 0: keep the epoch-0 checkpoint by training one epoch with the same config.
    ck0 = tmp_path / "ck0.pt"
    part = _model()

    class Stop(Exception):
        pass

    def stop_after_first_epoch(model, calls=[0]):  # noqa: B006 - counts steps across calls
        calls[0] += 1
        if calls[0] > len(digits.train) // 64 + 1:
            raise Stop

    with pytest.raises(Stop):
        train(part, digits.train, None, cfg, checkpoint=ck0, after_step=stop_after_first_epoch,
              progress=False)
    assert load_checkpoint(ck0)["epoch"] == 0
    resumed = _model()
    train(resumed, digits.train, None, cfg, checkpoint=ck0, progress=False)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_resume_with_another_config_is_refused(digits, tmp_path):
    ck = tmp_path / "ck.pt"
    train(_model(), digits.train, None, TrainConfig(epochs=1, batch_size=64), checkpoint=ck,
          progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        train(_model(), digits.train, None, TrainConfig(epochs=1, batch_size=32), checkpoint=ck,
              progress=False)


def test_extra_loss_and_after_step_hooks(digits):
    cfg = TrainConfig(epochs=1, batch_size=256, lr=0.01, schedule="constant")
    plain = _model()
    train(plain, digits.train, None, cfg, progress=False)
    pulled, seen = _model(), []
    train(pulled, digits.train, None, cfg,
          extra_loss=lambda mod: 10.0 * (mod.features[0].weight ** 2).sum(),
          after_step=lambda mod: seen.append(1), progress=False)
    assert len(seen) == 5  # ceil(1259 / 256) steps
    # The L2 term pulled the first layer towards zero, and only the first layer.
    assert pulled.features[0].weight.norm() < 0.8 * plain.features[0].weight.norm()
    assert pulled.features[3].weight.norm() > 0.8 * plain.features[3].weight.norm()


def test_bad_config_is_explained():
    with pytest.raises(ValueError, match="optimizer must be"):
        TrainConfig(optimizer="rmsprop")


def test_a_fresh_loader_shuffles_epoch_k_as_an_uninterrupted_one_does():
    # a resumed run makes a new loader and starts at epoch k: same batches as epoch k of the
    # run that never stopped (manual_seed changes initial_seed: reading it back would drift)
    from torch.utils.data import TensorDataset

    from workbench.data import make_loader
    from workbench.train import _set_epoch
    data = TensorDataset(torch.arange(64).float(), torch.zeros(64))
    first = make_loader(data, 8, shuffle=True, seed=3)
    for epoch in range(4):
        _set_epoch(first, epoch)
        order = torch.cat([x for x, _ in first])
    resumed = make_loader(data, 8, shuffle=True, seed=3)
    _set_epoch(resumed, 3)
    assert torch.equal(torch.cat([x for x, _ in resumed]), order)
