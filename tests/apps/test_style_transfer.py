import numpy as np
import pytest
import torch

from workbench.apps.style_transfer import (ContentPairs, RandomFeatures, StyleLoss, evaluate_style,
                                           gram, gram_loss, style_image, stylize, train_style)
from workbench.data import load_photos
from workbench.models.image_to_image import TransformerNet
from workbench.train import TrainConfig


def _features() -> RandomFeatures:
    return RandomFeatures(widths=(8, 16), kernels=(3, 5), scales=2, seed=0)


def _net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(width=8, blocks=1)


def test_random_features_are_fixed_by_the_seed_and_multiscale():
    a, b, c = (RandomFeatures(widths=(4, 6), scales=3, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.weight0, b.weight0) and not torch.equal(a.weight0, c.weight0)
    assert list(a.parameters()) == []                       # buffers: never trained
    maps = a(torch.rand(2, 3, 16, 16))
    assert [tuple(m.shape) for m in maps] == [(2, 4, 16, 16), (2, 6, 16, 16), (2, 4, 8, 8),
                                              (2, 6, 8, 8), (2, 4, 4, 4), (2, 6, 4, 4)]


def test_gram_is_the_normalised_channel_product():
    f = torch.randn(2, 3, 4, 5)
    g = gram(f)
    flat = f.reshape(2, 3, 20)
    torch.testing.assert_close(g[1], flat[1] @ flat[1].T / 60)
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_gram_loss_is_zero_for_identical_images_and_positive_otherwise():
    feats = _features()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    assert gram_loss(x, x, feats) == 0
    assert gram_loss(x, torch.rand(2, 3, 16, 16, generator=g) * 0.5, feats) > 0
    # Style is texture statistics, not layout: a shifted copy of a periodic texture is
    # closer in style than a flat grey image.
    stripes = (torch.arange(16) % 4 < 2).float().expand(1, 3, 16, 16)
    shifted = torch.roll(stripes, 1, dims=-1)
    grey = torch.full_like(stripes, 0.5)
    assert gram_loss(shifted, stripes, feats) < gram_loss(grey, stripes, feats)


def test_style_loss_terms():
    style = style_image(side=32)
    assert style.dtype == np.uint8 and max(style.shape[:2]) == 32
    loss = StyleLoss(style, _features(), style_weight=2.0, content_weight=1.0)
    s = torch.from_numpy(style.transpose(2, 0, 1) / 255.0).float()[None]
    assert loss.style_loss(s) < 1e-6                        # the style image has its own style
    x = torch.rand(2, 3, 16, 16)
    assert loss.content_loss(x, x) == 0 and loss.style_loss(x) > 0
    y = torch.rand(2, 3, 16, 16)
    total = loss(x, y)
    assert total.ndim == 0 and loss.content_loss(x, y) > 0
    assert float(total) == pytest.approx(float(loss.content_loss(x, y) + 2.0 * loss.style_loss(x)))
    with pytest.raises(ValueError, match="no bundled photo"):
        style_image("mona_lisa")


def test_training_lowers_the_style_loss_and_stylize_keeps_the_size():
    photos = [p[:32, :32] for p in load_photos(None)[:2]]
    ds = ContentPairs(photos, patch=16, n=8, seed=0)
    loss = StyleLoss(style_image(side=32), _features())
    cfg = TrainConfig(epochs=4, batch_size=4, lr=3e-3, optimizer="adam", weight_decay=0.0,
                      schedule="constant", device="cpu", amp=False)
    model = _net()
    before = evaluate_style(model, ds, loss, device="cpu")
    train_style(model, ds, loss, cfg, progress=False)
    after = evaluate_style(model, ds, loss, device="cpu")
    assert after["loss"] < 0.5 * before["loss"] and after["style"] < before["style"]
    assert after["loss"] == pytest.approx(after["content"] + 5.0 * after["style"], rel=1e-5)
    out = stylize(model, photos[0][:18, :22], device="cpu")       # padded to 20 x 24 inside
    assert out.shape == (18, 22, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="multiples of 4"):
        ContentPairs(photos, patch=18)
