import io
import tarfile

import numpy as np
import pytest
import torch

from bench.policy import CPU

from bench.spec import DatasetSpec
from bench.data import (CIFAR10_CLASSES, Batcher, LoadOptions, RawDataset, Split, augment_batch,
                        load_dataset, make_splits)
from bench.errors import UserError


def test_digits_load_as_uint8_images():
    raw = load_dataset("digits", LoadOptions(None, False, None))
    assert raw.train_x.dtype == np.uint8 and raw.train_x.shape == (1797, 1, 8, 8)
    assert raw.train_x.max() == 255 and raw.test_x is None and len(raw.classes) == 10


def test_splits_are_deterministic_disjoint_and_follow_the_seed():
    raw = load_dataset("digits", LoadOptions(None, False, None))
    spec = DatasetSpec("digits", holdout_fraction=0.3, val_fraction=0.5, split_seed=0)
    a, b = make_splits(raw, spec), make_splits(raw, spec)
    c = make_splits(raw, DatasetSpec("digits", split_seed=1))
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))
    assert not np.array_equal(a.train, c.train)
    everything = np.concatenate([a.train, a.val, a.test])
    assert len(np.unique(everything)) == 1797 == len(everything)
    assert (len(a.train), len(a.val), len(a.test)) == (1258, 270, 269)  # 539 held out, 50/50


def test_train_size_subsamples_the_pool_and_is_checked():
    raw = RawDataset(np.zeros((100, 3, 4, 4), np.uint8), np.arange(100) % 10,
                     np.zeros((20, 3, 4, 4), np.uint8), np.arange(20) % 10, CIFAR10_CLASSES, "test")
    s = make_splits(raw, DatasetSpec("x", train_size=30, val_fraction=0.5))
    assert len(s.train) == 30 and len(s.val) == len(s.test) == 10
    with pytest.raises(UserError, match="train_size: 300 is not in 1..100"):
        make_splits(raw, DatasetSpec("x", train_size=300))


def test_augmentation_crops_and_flips_a_whole_batch():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    again = augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    # with no padding and a forced flip the result is the mirror image
    gen = torch.Generator().manual_seed(0)
    flipped = [augment_batch(x, gen, pad=0) for _ in range(20)]
    assert any(torch.equal(f[0], x[0].flip(-1)) for f in flipped)
    assert any(torch.equal(f[0], x[0]) for f in flipped)
    # every output row is a window of the zero-padded input: pixel values come from x or are 0
    assert set(out.unique().tolist()) <= set(x.unique().tolist()) | {0}


def test_batcher_normalises_and_covers_every_example_once():
    split = Split(torch.full((10, 3, 2, 2), 255, dtype=torch.uint8), torch.arange(10), np.arange(10))
    batcher = Batcher((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 3, CPU)
    batches = list(batcher.batches(split, 4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(10))
    assert torch.allclose(batches[0][0], torch.full_like(batches[0][0], 2.0))


def _jpeg(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_cifar10_from_an_imagefolder_tarball(tmp_path):
    tar_path = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for part, n in (("train", 2), ("test", 1)):
            for label, cls in enumerate(CIFAR10_CLASSES):
                for i in range(n):
                    data = _jpeg(20 * label)
                    info = tarfile.TarInfo(f"{part}/{cls}/{i:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    opts = LoadOptions(tmp_path, False, tmp_path / "cache")
    raw = load_dataset("cifar10", opts)
    assert raw.train_x.shape == (20, 3, 32, 32) and raw.test_x.shape == (10, 3, 32, 32)
    assert raw.train_y.tolist() == [c for c in range(10) for _ in range(2)]
    assert abs(int(raw.train_x[4].mean()) - 40) <= 2  # the bird images (label 2) have value 40
    assert raw.source.startswith("imagefolder-tar:cifar10-jpeg.tar.gz")
    assert len(list((tmp_path / "cache" / "datasets").glob("*.npz"))) == 1
    again = load_dataset("cifar10", opts)  # from the decoded cache
    assert np.array_equal(again.train_x, raw.train_x)
    # and in the same memory layout: NHWC strides on a first run took other CPU conv kernels than
    # the cache's NCHW on later runs, so the same suite trained different models
    for a, b in ((raw.train_x, again.train_x), (raw.test_x, again.test_x)):
        assert a.flags["C_CONTIGUOUS"] and b.flags["C_CONTIGUOUS"] and a.strides == b.strides


def _fake_cifar100(folder, n_train=200, n_test=100):
    """A tiny copy in torchvision's cifar-100-python layout: each image filled with its label."""
    import pickle

    folder.mkdir(parents=True)
    for part, n in (("train", n_train), ("test", n_test)):
        labels = [i % 100 for i in range(n)]
        data = np.repeat(np.array(labels, dtype=np.uint8)[:, None], 3 * 32 * 32, axis=1)
        with open(folder / part, "wb") as f:
            pickle.dump({"data": data, "fine_labels": labels, "coarse_labels": [x // 5 for x in labels]}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{i:02d}" for i in range(100)]}, f)


def test_cifar100_from_a_torchvision_copy_feeds_a_suite(tmp_path):
    from bench.suites import load_suite

    _fake_cifar100(tmp_path / "cifar-100-python")
    raw = load_dataset("cifar100", LoadOptions(tmp_path, False, tmp_path / "cache"))
    assert raw.train_x.shape == (200, 3, 32, 32) and raw.test_x.shape == (100, 3, 32, 32)
    assert raw.train_y[:3].tolist() == [0, 1, 2] and len(raw.classes) == 100
    assert (raw.train_x[7] == 7).all() and raw.source == "torchvision:cifar-100-python"
    suite = load_suite("cifar100-resnet18", {"dataset": {"train_size": 150}})
    splits = make_splits(raw, suite.dataset)
    assert len(splits.train) == 150 and len(splits.val) == len(splits.test) == 50
    with pytest.raises(UserError, match="CIFAR-100 not found under"):
        load_dataset("cifar100", LoadOptions(tmp_path / "cache", False, tmp_path / "cache"))
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="is not a CIFAR pickle"):
        load_dataset("cifar100", LoadOptions(tmp_path, False, tmp_path / "cache"))
