import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench import data
from workbench.apps import pairs, quality
from workbench.data import DataError, load_photos


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return load_photos(None, max_side=128)


def test_sr_pairs_shapes_range_and_lr_is_bicubic_of_hr(photos):
    ds = pairs.SRPairs(photos, scale=3, patch=8, n=5, seed=0)
    assert len(ds) == 5
    for lr, hr in ds:
        assert lr.shape == (3, 8, 8) and hr.shape == (3, 24, 24)
        assert lr.dtype == hr.dtype == torch.float32
        assert 0 <= lr.min() and lr.max() <= 1 and 0 <= hr.min() and hr.max() <= 1
        expected = F.interpolate(hr[None], size=(8, 8), mode="bicubic", antialias=True,
                                 align_corners=False).clamp(0, 1)[0]
        torch.testing.assert_close(lr, expected)


def test_sr_pairs_without_augment_are_plain_crops(photos):
    ds = pairs.SRPairs(photos, scale=2, patch=10, n=4, seed=1, augment=False)
    for i, (k, y, x, flip, rot) in enumerate(ds.crops_):
        assert not flip and rot == 0
        crop = photos[k][y : y + 20, x : x + 20].transpose(2, 0, 1) / 255.0
        np.testing.assert_allclose(ds[i][1].numpy(), crop, atol=1e-7)


def test_sr_pairs_are_seeded(photos):
    def items(seed: int) -> torch.Tensor:
        return torch.stack([hr for _, hr in pairs.SRPairs(photos, 2, 8, n=6, seed=seed)])

    assert torch.equal(items(7), items(7))
    assert not torch.equal(items(7), items(8))
    # The augmentation draws do not shift the crops: augment on and off pick the same windows.
    on = pairs.SRPairs(photos, 2, 8, n=6, seed=7)
    off = pairs.SRPairs(photos, 2, 8, n=6, seed=7, augment=False)
    assert [c[:3] for c in on.crops_] == [c[:3] for c in off.crops_]
    assert any(c[3] or c[4] for c in on.crops_)


def test_sr_pairs_errors(photos):
    with pytest.raises(DataError, match="smaller than the high-res patch"):
        pairs.SRPairs(photos, scale=4, patch=40)               # 160 > 128
    for scale in (0, 1, 1.5, True):
        with pytest.raises(DataError, match="scale must be an integer"):
            pairs.SRPairs(photos, scale=scale, patch=8)
    with pytest.raises(DataError, match="uint8"):
        pairs.SRPairs([photos[0].astype(np.float32)], scale=2, patch=8)
    with pytest.raises(DataError, match="no photos"):
        pairs.SRPairs([], scale=2, patch=8)


def test_sr_eval_pair_modcrop_and_bicubic_baseline(photos):
    for photo in photos:
        photo = photo[:-1, :-2]                                 # 127 rows and 126 columns for the 128 side
        h, w = photo.shape[0] // 3 * 3, photo.shape[1] // 3 * 3
        lr, hr, bicubic = pairs.sr_eval_pair(photo, scale=3)
        assert hr.shape == bicubic.shape == (1, 3, h, w) and lr.shape == (1, 3, h // 3, w // 3)
        expected = torch.from_numpy(photo[:h, :w].transpose(2, 0, 1) / 255.0).float()
        torch.testing.assert_close(hr[0], expected)
        value = quality.psnr_y(bicubic, hr, border=3)
        assert np.isfinite(value) and value > 20


def test_color_pairs_shapes_ranges_and_colours(photos):
    ds = pairs.ColorPairs(photos, patch=16, n=6, seed=2)
    assert len(ds) == 6
    for i, (l_norm, ab_norm) in enumerate(ds):
        assert l_norm.shape == (1, 16, 16) and ab_norm.shape == (2, 16, 16)
        assert 0 <= l_norm.min() and l_norm.max() <= 1 and ab_norm.abs().max() <= 1
        k, y, x, flip = ds.crops_[i]
        crop = photos[k][y : y + 16, x : x + 16]
        rgb = quality.merge_lab(l_norm[None], ab_norm[None])[0].numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(rgb, (crop[:, ::-1] if flip else crop) / 255.0, atol=1e-4)
    same = pairs.ColorPairs(photos, patch=16, n=6, seed=2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(ds, same))
    with pytest.raises(DataError, match="smaller than the patch"):
        pairs.ColorPairs(photos, patch=200)


def test_image_folder_finds_sets_and_explains_misses(tmp_path, monkeypatch):
    (tmp_path / "env" / "images" / "CSet5").mkdir(parents=True)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "env"))
    assert pairs.image_folder("CSet5") == tmp_path / "env" / "images" / "CSet5"
    with pytest.raises(DataError, match="WORKBENCH_DATA"):
        pairs.image_folder("NoSuchSet")
    # No images/ folder anywhere: the message still says where to put one.
    monkeypatch.delenv(data.DATA_ENV)
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "repo")
    with pytest.raises(DataError, match="not found.*WORKBENCH_DATA"):
        pairs.image_folder("CSet5")


@pytest.mark.needs_shared_data
def test_bicubic_baseline_on_cset5_if_present():
    if data.find_data("images/CSet5") is None:
        pytest.skip("images/CSet5 not found in $WORKBENCH_DATA, data/ or ../shared/data")
    scores = [quality.psnr_y(bic, hr, border=2)
              for lr, hr, bic in (pairs.sr_eval_pair(p, 2) for p in load_photos(pairs.image_folder("CSet5")))]
    # Bicubic x2 on Set5 is 33.66 dB (Y, MATLAB imresize) in the SR papers; torch's kernel is close.
    assert 32.5 < np.mean(scores) < 34.5
