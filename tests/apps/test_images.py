import numpy as np
import pytest
import torch

from workbench import data
from workbench.apps import images


def test_photo_batch_round_trip_and_errors():
    photo = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x, is_photo = images.to_batch(photo)
    assert is_photo and x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    np.testing.assert_array_equal(images.from_batch(x, True), photo)
    t = torch.rand(2, 3, 4, 4) * 2 - 0.5
    y, is_photo = images.to_batch(t)
    assert y is t and not is_photo
    assert images.from_batch(y, False).min() >= 0 and images.from_batch(y, False).max() <= 1
    for bad in (photo[..., :2], photo.astype(np.float32), torch.zeros(3, 4, 4),
                torch.zeros(1, 3, 4, 4, dtype=torch.uint8)):
        with pytest.raises(ValueError, match="expected"):
            images.to_batch(bad)


def test_quantize_pad_and_crop():
    q = images.quantize(torch.tensor([-0.1, 0.5, 0.3, 1.2]))
    torch.testing.assert_close(q * 255, (q * 255).round())
    assert q.min() == 0 and q.max() == 1
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    p = images.pad_to_multiple(x, 4)
    assert p.shape == (1, 2, 8, 8) and torch.equal(p[..., :5, :6], x)
    assert torch.equal(p[..., 7, :6], x[..., 4, :])              # edges replicated
    assert images.pad_to_multiple(x[..., :4, :4], 4).shape == (1, 2, 4, 4)
    photo = np.zeros((13, 17, 3), np.uint8)
    assert images.crop_to_multiple(photo, 8).shape == (8, 16, 3)
    with pytest.raises(data.DataError, match="smaller"):
        images.crop_to_multiple(photo, 16)


def test_eval_photos_fall_back_to_the_held_out_bundled_photo(monkeypatch, tmp_path):
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "repo")   # no data folder anywhere
    name, held = images.eval_photos(max_side=64)
    train, held_too = images.bundled_split(max_side=64)
    assert name == "bundled:chelsea" and len(held) == 1 and len(train) == 5
    np.testing.assert_array_equal(held[0], held_too[0])
    assert not any(p.shape == held[0].shape and np.array_equal(p, held[0]) for p in train)
    with pytest.raises(ValueError, match="no bundled photo"):
        images.bundled_split(("mona_lisa",))


@pytest.mark.needs_shared_data
def test_eval_photos_use_cset5_when_present():
    if data.find_data("images/CSet5") is None:
        pytest.skip("images/CSet5 not found in $WORKBENCH_DATA, data/ or ../shared/data")
    name, photos = images.eval_photos()
    assert name == "CSet5" and len(photos) == 5
