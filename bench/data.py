"""Datasets as uint8 tensors in memory: loading, caching, splits, batches, batched augmentation.

A dataset is decoded once into a uint8 array cache (`<cache>/datasets/*.npz`) and loaded
from there afterwards. Batches are index slices of the in-memory tensors; augmentation
(random crop with 4-pixel padding + horizontal flip) is applied to the whole batch at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from bench.spec import DatasetSpec
from bench.errors import UserError
from bench.image_folder import decode_imagefolder_dir, decode_imagefolder_tar
from bench.files import npz_writer, read_checked, read_npz, sha256_file, write_checked
from bench.policy import DevicePolicy
from bench.registry import Registry

dataset_registry = Registry("dataset")
DATA_ROOT_ENV = "UNLEARN_BENCH_DATA"
CACHE_ENV = "UNLEARN_BENCH_CACHE"


def data_root_or_env(given: Path | None) -> Path | None:
    """`given` (--data-root), else $UNLEARN_BENCH_DATA, else None (torchvision's default places)."""
    return given or (Path(os.environ[DATA_ROOT_ENV]) if os.environ.get(DATA_ROOT_ENV) else None)


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "unlearn-bench")


@dataclass(frozen=True)
class RawDataset:
    """A whole dataset as numpy arrays: images uint8 (N, C, H, W), labels int64."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None  # None when the dataset has no separate test part
    test_y: np.ndarray | None
    classes: tuple[str, ...]
    source: str  # where the images came from, recorded in every run


@dataclass(frozen=True)
class LoadOptions:
    data_root: Path | None
    download: bool
    cache_dir: Path


def load_dataset(name: str, opts: LoadOptions) -> RawDataset:
    """The dataset, its arrays C-contiguous whatever the loader built: a freshly decoded copy came
    in NHWC strides (stacked transposed images) and its read-back cache in NCHW, so the same images
    took different CPU conv kernels on a first and a later run and trained different models."""
    raw = dataset_registry.get(name).fn(opts)
    contiguous = {f: None if getattr(raw, f) is None else np.ascontiguousarray(getattr(raw, f))
                  for f in ("train_x", "train_y", "test_x", "test_y")}
    return dataclasses.replace(raw, **contiguous)


@dataclass(frozen=True)
class Split:
    """Images, labels, and their indices into the dataset part, on the workspace's device."""

    x: torch.Tensor  # uint8 (n, C, H, W), pixel values 0..255
    y: torch.Tensor  # int64 (n,) class labels
    index: np.ndarray  # int (n,) positions in the dataset part (train or test images)

    def __len__(self) -> int:
        return len(self.y)

    @staticmethod
    def concat(*splits: "Split") -> "Split":
        return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]),
                     np.concatenate([s.index for s in splits]))

    def subset(self, positions: np.ndarray) -> "Split":
        pos = torch.as_tensor(positions, device=self.x.device)
        return Split(self.x[pos], self.y[pos], self.index[positions])


class Batcher:
    """Turns uint8 splits into normalised float batches, with optional batched augmentation."""

    def __init__(self, mean, std, num_channels: int, policy: DevicePolicy):
        mean = mean or (0.0,) * num_channels
        std = std or (1.0,) * num_channels
        self.mean = torch.tensor(mean, device=policy.torch_device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=policy.torch_device).view(1, -1, 1, 1)
        self.policy = policy

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, C, H, W) -> float32 (x / 255 - mean) / std, in the policy's memory format."""
        return self.policy.batch_format((x.float() / 255.0 - self.mean) / self.std)

    def batches(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of `split` as (x, y): x float32 (b, C, H, W) normalised (`to_float`), y int64 (b,)
        labels, b = batch_size except for the last batch; on the split's device. `shuffle` draws one
        order from `generator`; `augment` crops and flips each batch (`augment_batch`, same generator)."""
        n = len(split)
        if shuffle:
            order = torch.randperm(n, generator=generator).to(split.x.device)
        for start in range(0, n, batch_size):
            if shuffle:
                idx = order[start : start + batch_size]
                x, y = split.x[idx], split.y[idx]
            else:
                x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
            if augment:
                x = augment_batch(x, generator)
            yield self.to_float(x), y


def augment_batch(x: torch.Tensor, generator: torch.Generator | None, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, for a whole uint8 batch."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)[None, :]
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


@dataclass(frozen=True)
class Splits:
    """Indices of the training pool (into train_x) and of val/test (into the held-out part)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    holdout_from_train: bool  # True when val/test were carved out of the training images


def make_splits(raw: RawDataset, spec: DatasetSpec) -> Splits:
    """Deterministic train/val/test split from `spec.split_seed`."""
    rng = np.random.default_rng(spec.split_seed)
    n_train = len(raw.train_y)
    if raw.test_y is None:
        perm = rng.permutation(n_train)
        n_hold = int(round(n_train * spec.holdout_fraction))
        holdout, pool = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    else:
        holdout, pool = np.arange(len(raw.test_y)), np.arange(n_train)
    if spec.train_size is not None:
        if not 0 < spec.train_size <= len(pool):
            raise UserError(f"dataset.train_size: {spec.train_size} is not in 1..{len(pool)} "
                            f"(the training images of '{spec.name}'); lower it.")
        pool = np.sort(rng.choice(pool, spec.train_size, replace=False))
    shuffled = rng.permutation(holdout)
    n_val = int(round(len(holdout) * spec.val_fraction))
    return Splits(pool, np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:]), raw.test_y is None)


# ---------------------------------------------------------------- loaders


def _cached(cache_dir: Path, key: str, build) -> dict[str, np.ndarray]:
    """Load arrays from `<cache>/datasets/<key>.npz`, building and writing them atomically once."""
    path = cache_dir / "datasets" / f"{key}.npz"
    arrays = read_checked(path, read_npz, key)
    if arrays is None:
        arrays = build()
        write_checked(path, npz_writer(arrays), key)
    return arrays


@dataset_registry.register("digits")
def load_digits(opts: LoadOptions) -> RawDataset:
    """scikit-learn's handwritten digits: 1,797 8x8 grey images, 10 classes, bundled (no download)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    classes = tuple(str(c) for c in range(10))
    return RawDataset(images, d.target.astype(np.int64), None, None, classes, "sklearn.datasets.load_digits")


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MISSING_CIFAR = (
    "CIFAR-10 not found{where}. Pass --data-root (or set {env}) to a folder holding "
    "cifar-10-batches-py, an ImageFolder copy (train/<class>/*.jpg, test/<class>/*.jpg) or "
    "cifar10-jpeg.tar.gz, or add --download to fetch it with torchvision."
)


@dataset_registry.register("cifar10")
def load_cifar10(opts: LoadOptions) -> RawDataset:
    """CIFAR-10: 50,000 train + 10,000 test 32x32 colour images, from torchvision or an ImageFolder copy."""
    root = opts.data_root
    if root is None and not opts.download:
        raise UserError(MISSING_CIFAR.format(where="", env=DATA_ROOT_ENV))
    root = Path(root) if root is not None else opts.cache_dir / "downloads"
    if (root / "cifar-10-batches-py").is_dir() or (opts.download and not _imagefolder_source(root)):
        return _cifar10_torchvision(root, opts)
    source = _imagefolder_source(root)
    if source is None:
        raise UserError(MISSING_CIFAR.format(where=f" under '{root}'", env=DATA_ROOT_ENV))
    if source.is_file():
        key, label = f"cifar10-tar-{sha256_file(source)[:16]}", f"imagefolder-tar:{source.name}"
        build = lambda: decode_imagefolder_tar(source, CIFAR10_CLASSES)  # noqa: E731
    else:
        listing = sorted(str(p.relative_to(source)) for p in source.glob("*/*/*"))
        key = "cifar10-dir-" + hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]
        label = f"imagefolder-dir:{source.name}"
        build = lambda: decode_imagefolder_dir(source, CIFAR10_CLASSES)  # noqa: E731
    arrays = _cached(opts.cache_dir, key, build)
    return RawDataset(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"],
                      CIFAR10_CLASSES, f"{label} ({key})")


CIFAR100_FOLDER = "cifar-100-python"
MISSING_CIFAR100 = (
    "CIFAR-100 not found{where}. Pass --data-root (or set {env}) to the folder holding "
    "cifar-100-python (torchvision's copy: train, test, meta), or add --download to fetch it with torchvision."
)


@dataset_registry.register("cifar100")
def load_cifar100(opts: LoadOptions) -> RawDataset:
    """CIFAR-100 with its 100 fine labels: 50,000 train + 10,000 test 32x32 colour images, read from
    torchvision's `cifar-100-python` pickles (downloaded by torchvision with --download)."""
    root = opts.data_root
    if root is None and not opts.download:
        raise UserError(MISSING_CIFAR100.format(where="", env=DATA_ROOT_ENV))
    root = Path(root) if root is not None else opts.cache_dir / "downloads"
    folder = root if root.name == CIFAR100_FOLDER else root / CIFAR100_FOLDER
    if not folder.is_dir() and opts.download:
        from torchvision.datasets import CIFAR100

        CIFAR100(str(folder.parent), train=True, download=True)
    if not all((folder / part).is_file() for part in ("train", "test", "meta")):
        raise UserError(MISSING_CIFAR100.format(where=f" under '{root}'", env=DATA_ROOT_ENV))
    (train_x, train_y), (test_x, test_y) = (_cifar_pickle(folder / part) for part in ("train", "test"))
    classes = tuple(_unpickle(folder / "meta")["fine_label_names"])
    return RawDataset(train_x, train_y, test_x, test_y, classes, f"torchvision:{CIFAR100_FOLDER}")


def _unpickle(path: Path) -> dict:
    """A CIFAR pickle, read as torchvision reads it (the dataset's own format)."""
    import pickle

    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file raises several kinds
        raise UserError(f"'{path}' is not a CIFAR pickle ({type(e).__name__}); replace the copy or use --download.") \
            from None


def _cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return np.ascontiguousarray(x), np.asarray(d["fine_labels"], dtype=np.int64)


def _imagefolder_source(root: Path) -> Path | None:
    """The ImageFolder copy at `root`: a .tar.gz, a folder with train/ and test/, or a .tar.gz in it."""
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz", ".tar")):
        return root
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root
    tars = sorted(root.glob("cifar10*.tar.gz")) if root.is_dir() else []
    return tars[0] if tars else None


def _cifar10_torchvision(root: Path, opts: LoadOptions) -> RawDataset:
    from torchvision.datasets import CIFAR10

    try:
        parts = [CIFAR10(str(root), train=t, download=opts.download) for t in (True, False)]
    except RuntimeError as e:  # torchvision's "Dataset not found or corrupted"
        raise UserError(f"{e} (under '{root}'); pass --download or fix --data-root.")
    to_nchw = lambda d: np.ascontiguousarray(d.data.transpose(0, 3, 1, 2))  # noqa: E731
    (tr, te) = parts
    return RawDataset(to_nchw(tr), np.array(tr.targets, dtype=np.int64), to_nchw(te),
                      np.array(te.targets, dtype=np.int64), CIFAR10_CLASSES,
                      "torchvision:cifar-10-batches-py")
