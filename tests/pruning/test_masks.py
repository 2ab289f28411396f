"""Masked retraining keeps pruned weights at zero; pruned models save small and load back."""
import pytest
import torch

from workbench.data import load_digits
from workbench.pruning.masks import (MaskedRetraining, compression, load_pruned, load_pruned_model,
                                     mask_stats, save_pruned)
from workbench.pruning.sparsifier import conv_config, prune_model
from workbench.models import build_model
from workbench.train import TrainConfig, train


def test_masked_retraining_keeps_zeros_and_removes_hooks(tiny_cnn):
    masks = prune_model(tiny_cnn, conv_config(tiny_cnn), {"scheme": "connectivity", "rate": 4})
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 10, (32,))
    before = tiny_cnn.conv2.weight.detach().clone()
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, device="cpu", schedule="constant")
    with MaskedRetraining(tiny_cnn, masks) as keep:
        train(tiny_cnn, [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)], None, cfg,
              after_step=keep, progress=False)
        tiny_cnn.zero_grad()
        tiny_cnn(x).sum().backward()
        assert (tiny_cnn.conv2.weight.grad[~masks["conv2.weight"]] == 0).all()
    after = tiny_cnn.conv2.weight.detach()
    assert (after[~masks["conv2.weight"]] == 0).all() and not torch.equal(after, before)
    tiny_cnn.zero_grad()
    tiny_cnn(x).sum().backward()
    assert (tiny_cnn.conv2.weight.grad[~masks["conv2.weight"]] != 0).any()  # hooks are gone


def test_stats_and_compression():
    masks = {"a": torch.zeros(4, 2, 3, 3, dtype=torch.bool), "b": torch.ones(8, 9, dtype=torch.bool)}
    masks["a"][0, 0, :2, :2] = True
    rows = mask_stats(masks)
    assert rows[0]["kept"] == 4 and rows[0]["kept_kernels"] == 1 and rows[0]["total_kernels"] == 8
    assert compression(masks) == pytest.approx((72 + 72) / (4 + 72))


def test_save_load_round_trip_fp16_and_exact_zeros(tmp_path):
    model = build_model("small_cnn", 10, 8, in_channels=1)
    masks = prune_model(model, conv_config(model), {"scheme": "irregular", "rate": 8})
    files = save_pruned(tmp_path / "m.npz", model, masks, meta={
        "model": {"name": "small_cnn", "num_classes": 10, "input_size": 8, "in_channels": 1}})
    assert len(files) == 1 and files[0].stat().st_size < 16 * 2**20
    back, masks2, meta = load_pruned_model(tmp_path / "m.npz")
    assert sorted(meta["masks"]) == sorted(masks)
    assert all(torch.equal(masks[k], masks2[k]) for k in masks)
    for name, p in back.named_parameters():
        torch.testing.assert_close(p, dict(model.named_parameters())[name], rtol=1e-3, atol=1e-3)
        if name in masks:
            assert (p[~masks[name]] == 0).all()
    x = load_digits().test.images[:4].float()
    assert back(x).shape == (4, 10)
    state, _, _ = load_pruned(tmp_path / "m")
    assert set(state) == set(model.state_dict())


def test_load_rejects_plain_weights_and_unknown_masks(tmp_path, tiny_cnn):
    from workbench.weights import save_state

    save_state(tmp_path / "plain", tiny_cnn.state_dict())
    with pytest.raises(ValueError, match="not a workbench-pruned"):
        load_pruned(tmp_path / "plain")
    with pytest.raises(KeyError, match="names no tensor"):
        save_pruned(tmp_path / "x", tiny_cnn, {"nope.weight": torch.ones(1, dtype=torch.bool)})
