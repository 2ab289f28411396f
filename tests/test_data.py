"""Data loaders: deterministic stratified splits, shapes, clear errors for bad files."""
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench import data


def test_digits_splits_are_deterministic_disjoint_and_stratified():
    a, b = data.load_digits(seed=0), data.load_digits(seed=0)
    assert torch.equal(a.train.images, b.train.images)
    assert (len(a.train), len(a.val), len(a.test)) == (1259, 179, 359)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    keys = [set(map(lambda t: t.numpy().tobytes(), s.images)) for s in (a.train, a.val, a.test)]
    assert not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    counts = torch.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 33 and counts.max() <= 38  # 20% of each class (~180 per class)
    assert not torch.equal(data.load_digits(seed=1).train.labels, a.train.labels)


def test_digits_items_are_normalised_tensors():
    s = data.load_digits()
    x, y = s.train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    xs = torch.stack([s.train[i][0] for i in range(len(s.train))])
    assert abs(xs.mean().item()) < 0.1 and abs(xs.std().item() - 1) < 0.1
    assert s.num_classes == 10 and s.input_shape == (1, 8, 8)


def _fake_cifar(path: Path, n_train: int = 200, n_test: int = 50) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(n_train) % 10, x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(n_test) % 10)
    return path


def test_cifar_npz_loads_with_val_split(tmp_path):
    s = data.load_cifar10(_fake_cifar(tmp_path / "c.npz"), val_size=20)
    assert (len(s.train), len(s.val), len(s.test)) == (180, 20, 50)
    assert torch.bincount(s.val.labels, minlength=10).tolist() == [2] * 10
    x, _ = s.test[3]
    assert x.shape == (3, 32, 32)
    assert s.train.augment and not s.val.augment and not s.test.augment


def test_cifar_env_var_is_searched(tmp_path, monkeypatch):
    _fake_cifar(tmp_path / "cifar10.npz")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.find_data("cifar10.npz") == tmp_path / "cifar10.npz"
    assert len(data.load_cifar10(val_size=10).test) == 50


def test_cifar_missing_file_says_what_and_where(tmp_path):
    with pytest.raises(data.DataError, match="x_train .*uint8"):
        data.load_cifar10(tmp_path / "nope.npz")


@pytest.mark.parametrize("bad, message", [
    (dict(x_train=np.zeros((4, 32, 32, 3), np.float32)), "x_train is float32"),
    (dict(x_train=np.zeros((4, 3, 32, 32), np.uint8)), r"expected uint8 \(N, 32, 32, 3\)"),
    (dict(y_train=np.zeros(3, np.int64)), "y_train has shape"),
])
def test_cifar_malformed_arrays_are_named(tmp_path, bad, message):
    good = dict(x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.zeros(4, np.int64),
                x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, np.int64))
    np.savez(tmp_path / "c.npz", **{**good, **bad})
    with pytest.raises(data.DataError, match=message):
        data.load_cifar10(tmp_path / "c.npz", val_size=1)


def test_cifar_missing_key_and_garbage_file(tmp_path):
    np.savez(tmp_path / "c.npz", x_train=np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(data.DataError, match="missing key 'y_train'"):
        data.load_cifar10(tmp_path / "c.npz")
    (tmp_path / "g.npz").write_bytes(b"not a zip")
    with pytest.raises(data.DataError, match="cannot read"):
        data.load_cifar10(tmp_path / "g.npz")


def test_cifar_folder_without_download_explains(tmp_path):
    with pytest.raises(data.DataError, match="download=True"):
        data.load_cifar10_folder(tmp_path)


@pytest.mark.needs_shared_data
def test_real_cifar10_if_present():
    path = data.find_data("cifar10.npz")
    if path is None:
        pytest.skip("cifar10.npz not found in $WORKBENCH_DATA, data/ or ../shared/data")
    s = data.load_cifar10(path, train_subset=100, test_subset=100)
    assert len(s.train) == 100 and len(s.test) == 100 and s.classes[0] == "airplane"


def test_augment_batch_crops_and_flips_consistently():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = data.augment_batch(x, g1, pad=2), data.augment_batch(x, g2, pad=2)
    assert torch.equal(a, b) and a.shape == x.shape
    assert data.augment_batch(x, torch.Generator().manual_seed(0), pad=0).flip(-1).eq(x).logical_or(
        data.augment_batch(x, torch.Generator().manual_seed(0), pad=0).eq(x)).all()


def test_batch_loader_covers_each_example_once_per_epoch():
    s = data.load_digits()
    loader = data.make_loader(s.val, 32, shuffle=True, seed=3)
    ys = torch.cat([y for _, y in loader])
    assert len(loader) == 6 and torch.equal(ys.sort().values, s.val.labels.sort().values)
    loader.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in loader]), ys)


def test_photos_fallback_and_folder(tmp_path):
    photos = data.load_photos(max_side=64)
    assert len(photos) == len(data.SKIMAGE_PHOTOS)
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 and max(p.shape[:2]) <= 64
               for p in photos)
    from skimage import io
    io.imsave(tmp_path / "a.png", photos[0])
    assert np.array_equal(data.load_photos(tmp_path)[0], photos[0])
    patches = data.PhotoPatches(photos, patch=16, n=5)
    assert len(patches) == 5 and patches[0].shape == (3, 16, 16)
    with pytest.raises(data.DataError, match="no .png"):
        data.load_photos(tmp_path / "..")  # tmp_path's parent holds folders, not images
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_photos(tmp_path / "missing")


def test_a_transfer_task_keeps_n_labelled_images_per_target_class_and_pools_the_rest():
    from workbench.data import UNLABELED, load_digits, transfer_task
    full = load_digits()
    target, pool = transfer_task(full, (5, 6, 7, 8, 9), per_class=20, seed=3)
    assert target.num_classes == 5 and target.classes == ("5", "6", "7", "8", "9")
    assert len(target.train) == 100
    assert np.bincount(target.train.labels.numpy()).tolist() == [20] * 5
    # validation and test: every image of the target classes, relabelled 0..4 in order
    val_old = full.val.labels.numpy()
    assert len(target.val) == int(np.isin(val_old, [5, 6, 7, 8, 9]).sum())
    np.testing.assert_array_equal(target.val.labels.numpy(), val_old[val_old >= 5] - 5)
    # the pool: every other training image (source classes included), no labels
    assert len(pool) == len(full.train) - 100
    assert (pool.labels == UNLABELED).all()
    # same seed, same images; another seed, other images
    again, _ = transfer_task(full, (5, 6, 7, 8, 9), per_class=20, seed=3)
    other, _ = transfer_task(full, (5, 6, 7, 8, 9), per_class=20, seed=4)
    assert torch.equal(again.train.images, target.train.images)
    assert not torch.equal(other.train.images, target.train.images)
    # labelled images and the pool split the training set: together they are all of it, once
    both = sorted(bytes(im.numpy()) for im in torch.cat([target.train.images, pool.images]))
    assert both == sorted(bytes(im.numpy()) for im in full.train.images)


def test_a_transfer_task_refuses_unknown_classes_and_too_many_images():
    from workbench.data import load_digits, transfer_task
    full = load_digits()
    with pytest.raises(ValueError, match="distinct labels"):
        transfer_task(full, (3, 10), per_class=5)
    with pytest.raises(ValueError, match="distinct labels"):
        transfer_task(full, (3, 3), per_class=5)
    with pytest.raises(ValueError, match="has .* training images"):
        transfer_task(full, (0, 1), per_class=10_000)
