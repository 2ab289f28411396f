"""Data sets with deterministic train/val/test splits: sklearn digits, CIFAR-10, colour photographs.

Everything here works offline. CIFAR-10 is read from a `.npz` file (keys x_train, y_train, x_test,
y_test; uint8 HWC images) or from torchvision's `cifar-10-batches-py` folder; it is downloaded only
when the caller asks for it. Photographs come from a folder of PNG/JPEG files, with the photos that
ship inside scikit-image as the fallback.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

DATA_ENV = "WORKBENCH_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class DataError(RuntimeError):
    """A data file is missing or malformed; the message says what was expected and where."""


def data_dirs() -> list[Path]:
    """Folders searched for data files, in order: $WORKBENCH_DATA, the repo's data/, ../shared/data."""
    dirs = []
    if os.environ.get(DATA_ENV):
        dirs.append(Path(os.environ[DATA_ENV]).expanduser())
    dirs += [REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"]
    return dirs


def find_data(name: str) -> Path | None:
    """First existing `name` (file or folder) under data_dirs(), or None."""
    for d in data_dirs():
        if (d / name).exists():
            return d / name
    return None


class ArrayDataset(Dataset):
    """Images held in memory as uint8 (N, C, H, W) or float; returns normalised float tensors.

    With `augment`, training images get a random crop (zero padding 4) and a horizontal flip;
    `BatchLoader` applies the same augmentation batch-wise on the training device.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: tuple[float, ...],
                 std: tuple[float, ...], augment: bool = False, scale: float = 255.0) -> None:
        self.images = images
        self.labels = labels.long()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.augment = augment
        self.scale = scale

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = normalize(self.images[i : i + 1], self.mean, self.std, self.scale)
        if self.augment:
            x = augment_batch(x, torch.Generator().manual_seed(int(torch.randint(1 << 30, ()))))
        return x[0], self.labels[i]

    def concat(self, other: "ArrayDataset") -> "ArrayDataset":
        """self's examples then other's (same normalisation and augmentation as self)."""
        return ArrayDataset(torch.cat([self.images, other.images]),
                            torch.cat([self.labels, other.labels]),
                            tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()),
                            self.augment, self.scale)

    def subset(self, n: int) -> "ArrayDataset":
        """The first n examples (the splits are already shuffled, so this is a random subset)."""
        return ArrayDataset(self.images[:n], self.labels[:n], tuple(self.mean.flatten().tolist()),
                            tuple(self.std.flatten().tolist()), self.augment, self.scale)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, scale: float) -> torch.Tensor:
    """x: (N, C, H, W) uint8 or float in [0, scale] -> float32 (x/scale - mean)/std."""
    x = x.float() / scale
    return (x - mean.to(x.device)) / std.to(x.device)


def augment_batch(x: torch.Tensor, gen: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding `pad`) and horizontal flip of x: (N, C, H, W) float, on x's device."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dev = x.device
    # Draw on the CPU generator so the crops are the same on CPU and GPU for one seed.
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(dev)
    flip = (torch.rand(n, generator=gen) < 0.5).to(dev)
    rows = (dy.view(n, 1) + torch.arange(h, device=dev).view(1, h))            # (N, H)
    cols = (dx.view(n, 1) + torch.arange(w, device=dev).view(1, w))            # (N, W)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    idx_n = torch.arange(n, device=dev).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@dataclass
class Splits:
    """Train, validation and test sets of one data set, with its class names and input shape."""
    train: Dataset
    val: Dataset
    test: Dataset
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]  # (C, H, W)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _split_indices(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Stratified, seeded split of range(len(labels)) into len(fractions)+1 shuffled parts."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.cumsum([int(round(f * len(idx))) for f in fractions])
        for p, chunk in enumerate(np.split(idx, cuts)):
            parts[p].extend(chunk.tolist())
    return [rng.permutation(np.array(p, dtype=np.int64)) for p in parts]


def load_digits(val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """sklearn's 1,797 8x8 digits as (1, 8, 8) images, stratified seeded train/val/test splits."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32)).unsqueeze(1)  # (N, 1, 8, 8) in 0..16
    y = torch.from_numpy(d.target.astype(np.int64))
    val_idx, test_idx, train_idx = _split_indices(d.target, (val_fraction, test_fraction), seed)
    mean, std = (float(x.mean() / 16),), (float(x.std() / 16),)

    def part(idx: np.ndarray) -> ArrayDataset:
        return ArrayDataset(x[idx], y[idx], mean, std, augment=False, scale=16.0)

    return Splits(part(train_idx), part(val_idx), part(test_idx),
                  tuple(str(i) for i in range(10)), (1, 8, 8))


UNLABELED = -1   # the label of an image whose label was dropped (an unlabelled pool)


def class_subset(ds: ArrayDataset, classes: tuple[int, ...]) -> ArrayDataset:
    """The examples of ds whose label is in `classes`, relabelled 0..k-1 in that order."""
    keep = torch.isin(ds.labels, torch.tensor(classes, dtype=torch.long))
    old = ds.labels[keep]
    new = torch.empty_like(old)
    for i, c in enumerate(classes):
        new[old == c] = i
    return ArrayDataset(ds.images[keep], new, _tuple(ds.mean), _tuple(ds.std), ds.augment,
                        ds.scale)


def _tuple(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(t.flatten().tolist())


def transfer_task(splits: Splits, classes: tuple[int, ...], per_class: int | None,
                  seed: int = 0) -> tuple[Splits, ArrayDataset]:
    """A small target task carved out of a data set (CoCo-Tune's small-data regime, issue 27).

    Returns (target, unlabelled): target keeps `classes` (relabelled 0..k-1 in that order) with
    `per_class` labelled training images of each (stratified, seeded; None keeps all), and
    every validation and test image of those classes; unlabelled holds every other training
    image of the data set, any class, its label set to UNLABELED (for teacher-student
    pre-training, which needs no labels)."""
    known = set(range(splits.num_classes))
    if not classes or not set(classes) <= known or len(set(classes)) != len(classes):
        raise ValueError(f"classes {classes} must be distinct labels of {splits.num_classes} "
                         f"classes (0..{splits.num_classes - 1})")
    train = splits.train
    labels = train.labels.numpy()
    rng = np.random.default_rng(seed)
    chosen = []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = len(idx) if per_class is None else per_class
        if per_class is not None and (per_class < 1 or per_class > len(idx)):
            raise ValueError(f"per_class {per_class}: class {c} has {len(idx)} training images")
        chosen.append(idx[:n])
    picked = rng.permutation(np.concatenate(chosen))
    rest = np.setdiff1d(np.arange(len(labels)), picked)
    sub = ArrayDataset(train.images[picked], train.labels[picked], _tuple(train.mean),
                       _tuple(train.std), train.augment, train.scale)
    target = Splits(class_subset(sub, classes), class_subset(splits.val, classes),
                    class_subset(splits.test, classes),
                    tuple(splits.classes[c] for c in classes), splits.input_shape)
    pool = ArrayDataset(train.images[rest], torch.full((len(rest),), UNLABELED, dtype=torch.long),
                        _tuple(train.mean), _tuple(train.std), train.augment, train.scale)
    return target, pool


CIFAR_NPZ_HELP = (
    "CIFAR-10 is expected as a .npz with keys x_train (50000, 32, 32, 3) uint8, y_train (50000,), "
    "x_test (10000, 32, 32, 3) uint8, y_test (10000,) — e.g. cifar10.npz in $WORKBENCH_DATA, in "
    "the repo's data/ folder, or given as `path`; or pass a torchvision folder with "
    "load_cifar10_folder(root, download=True) to fetch it once you have a network."
)


def _check_cifar_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Raise DataError naming the first key whose presence, dtype or shape is wrong."""
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in arrays:
            raise DataError(f"{path}: missing key {key!r}. {CIFAR_NPZ_HELP}")
    for key in ("x_train", "x_test"):
        a = arrays[key]
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[1:] != (32, 32, 3):
            raise DataError(f"{path}: {key} is {a.dtype} {a.shape}, expected uint8 (N, 32, 32, 3). "
                            f"{CIFAR_NPZ_HELP}")
    for xk, yk in (("x_train", "y_train"), ("x_test", "y_test")):
        y = arrays[yk]
        if y.ndim != 1 or len(y) != len(arrays[xk]):
            raise DataError(f"{path}: {yk} has shape {y.shape}, expected ({len(arrays[xk])},)")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{path}: {yk} has labels outside 0..9")


def load_cifar10(path: str | Path | None = None, val_size: int = 5000, seed: int = 0,
                 augment: bool = True, train_subset: int | None = None,
                 test_subset: int | None = None) -> Splits:
    """CIFAR-10 from a .npz (see CIFAR_NPZ_HELP); val is a seeded stratified part of train."""
    p = Path(path).expanduser() if path is not None else find_data("cifar10.npz")
    if p is None or not p.is_file():
        where = p if p is not None else " or ".join(str(d / "cifar10.npz") for d in data_dirs())
        raise DataError(f"CIFAR-10 file not found at {where}. {CIFAR_NPZ_HELP}")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in f.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: cannot read as .npz ({e}). {CIFAR_NPZ_HELP}") from e
    _check_cifar_arrays(arrays, p)
    return _cifar_splits(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                         val_size, seed, augment, train_subset, test_subset)


def load_cifar10_folder(root: str | Path, download: bool = False, val_size: int = 5000,
                        seed: int = 0, augment: bool = True) -> Splits:
    """CIFAR-10 from torchvision's layout (root/cifar-10-batches-py); downloads only if asked."""
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    try:
        tr = CIFAR10(str(root), train=True, download=download)
        te = CIFAR10(str(root), train=False, download=download)
    except RuntimeError as e:
        raise DataError(f"{root}: no CIFAR-10 in torchvision's layout (cifar-10-batches-py/) "
                        f"({e}). Pass download=True with a network, or use load_cifar10(npz).") from e
    return _cifar_splits(tr.data, np.asarray(tr.targets), te.data, np.asarray(te.targets),
                         val_size, seed, augment, None, None)


def _cifar_splits(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                  val_size: int, seed: int, augment: bool, train_subset: int | None,
                  test_subset: int | None) -> Splits:
    """Build Splits from HWC uint8 arrays; val is carved out of train, stratified and seeded."""
    y_train = y_train.astype(np.int64)
    val_idx, train_idx = _split_indices(y_train, (val_size / len(y_train),), seed)
    if train_subset is not None:
        train_idx = train_idx[:train_subset]
        val_idx = val_idx[: max(1, train_subset // 10)]
    test_n = len(y_test) if test_subset is None else test_subset

    def chw(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))

    def part(x: np.ndarray, y: np.ndarray, aug: bool) -> ArrayDataset:
        return ArrayDataset(chw(x), torch.from_numpy(y.astype(np.int64)), CIFAR10_MEAN, CIFAR10_STD,
                            augment=aug)

    return Splits(part(x_train[train_idx], y_train[train_idx], augment),
                  part(x_train[val_idx], y_train[val_idx], False),
                  part(x_test[:test_n], y_test[:test_n], False),
                  CIFAR10_CLASSES, (3, 32, 32))


SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def photo_paths(folder: str | Path) -> list[Path]:
    """Image files in `folder` (sorted by name); DataError if the folder has none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"photo folder {folder} does not exist; expected a folder of "
                        f"{'/'.join(IMAGE_SUFFIXES)} files such as ../shared/data/images/CSet14")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"photo folder {folder} has no {'/'.join(IMAGE_SUFFIXES)} files")
    return paths


def load_photos(folder: str | Path | None = None, max_side: int | None = None) -> list[np.ndarray]:
    """Colour photos as (H, W, 3) uint8 arrays from `folder`, else skimage's bundled photos."""
    from skimage import io, transform
    from skimage.color import gray2rgb, rgba2rgb

    if folder is not None:
        images = [io.imread(p) for p in photo_paths(folder)]
    else:
        from skimage import data as skdata
        images = [getattr(skdata, name)() for name in SKIMAGE_PHOTOS]
    out = []
    for img in images:
        if img.ndim == 2:
            img = gray2rgb(img)
        elif img.shape[-1] == 4:
            img = (rgba2rgb(img) * 255).round().astype(np.uint8)
        if max_side is not None and max(img.shape[:2]) > max_side:
            s = max_side / max(img.shape[:2])
            size = (round(img.shape[0] * s), round(img.shape[1] * s))
            img = (transform.resize(img, size, anti_aliasing=True) * 255).round().astype(np.uint8)
        out.append(np.ascontiguousarray(img.astype(np.uint8)))
    return out


class PhotoPatches(Dataset):
    """Seeded random (3, patch, patch) float crops in [0, 1] from a list of photos, `n` of them."""

    def __init__(self, photos: list[np.ndarray], patch: int = 64, n: int = 256, seed: int = 0) -> None:
        small = [p.shape for p in photos if min(p.shape[:2]) < patch]
        if small:
            raise DataError(f"photos smaller than the patch size {patch}: {small}")
        rng = np.random.default_rng(seed)
        self.photos = photos
        self.patch = patch
        self.crops = []
        for _ in range(n):
            k = int(rng.integers(len(photos)))
            h, w = photos[k].shape[:2]
            self.crops.append((k, int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))))

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> torch.Tensor:
        k, y, x = self.crops[i]
        crop = self.photos[k][y : y + self.patch, x : x + self.patch]
        return torch.from_numpy(crop.transpose(2, 0, 1).astype(np.float32) / 255.0)


def load_dataset(name: str, **kwargs: object) -> Splits:
    """Splits of a named data set: 'digits' or 'cifar10' (keyword arguments go to its loader)."""
    loaders = {"digits": load_digits, "cifar10": load_cifar10}
    if name not in loaders:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(loaders)}")
    return loaders[name](**kwargs)


class BatchLoader:
    """Batches (x (B, C, H, W) float32, y (B,) int64) of an ArrayDataset, built on `device`.

    The whole data set moves to the device once (CIFAR-10 train is 150 MB as uint8); each batch is
    gathered, normalised and, if the data set augments, cropped and flipped there. Shuffling and
    augmentation are seeded by (seed, epoch), so a resumed run sees the same batches.
    """

    def __init__(self, dataset: ArrayDataset, batch_size: int, shuffle: bool = False,
                 device: str | torch.device = "cpu", seed: int = 0, drop_last: bool = False) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.device = torch.device(device)
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self._images = dataset.images.to(self.device)
        self._labels = dataset.labels.to(self.device)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle order and augmentation draws of `epoch`."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        ds = self.dataset
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = normalize(self._images[idx], ds.mean, ds.std, ds.scale)
            if ds.augment:
                x = augment_batch(x, gen)
            yield x, self._labels[idx]


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False,
                device: str | torch.device = "cpu", seed: int = 0, drop_last: bool = False):
    """A BatchLoader for an ArrayDataset, else a seeded torch DataLoader."""
    if isinstance(dataset, ArrayDataset):
        return BatchLoader(dataset, batch_size, shuffle, device, seed, drop_last)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       drop_last=drop_last,
                                       generator=torch.Generator().manual_seed(seed))
