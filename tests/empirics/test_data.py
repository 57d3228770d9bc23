"""Tests of empirics.data: splits, torchvision formats (fake on-disk data), noise, augmentation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from empirics.data import (
    DATASET_NAMES,
    MNIST10K_TRAIN_SIZE,
    IndexedTensorDataset,
    augment_crop_flip,
    crop_flip,
    load_dataset,
    separated_points,
    with_label_noise,
)
from empirics.idx import default_mnist_test_dir

# ---------------------------------------------------------------------------- built-in sets


def _rows(x: torch.Tensor) -> list[bytes]:
    return sorted(r.numpy().tobytes() for r in x.reshape(len(x), -1))


def test_digits_split_is_a_seeded_partition():
    from sklearn.datasets import load_digits

    a = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=0)
    c = load_dataset("digits", seed=1)
    assert a.train_x.shape[1:] == (1, 8, 8) and a.train_x.dtype == torch.float32
    assert a.train_y.dtype == torch.int64 and a.num_classes == 10
    assert len(a.train_y) + len(a.test_y) == 1797
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_y, c.train_y)
    assert 0.0 <= float(a.train_x.min()) and float(a.train_x.max()) <= 1.0
    full = torch.as_tensor(load_digits().images / 16.0, dtype=torch.float32)[:, None]
    assert _rows(torch.cat([a.train_x, a.test_x])) == _rows(full)


def test_subsampling_is_seeded_and_in_range():
    a = load_dataset("digits", n_train=100, n_test=50, seed=3)
    b = load_dataset("digits", n_train=100, n_test=50, seed=3)
    assert a.train_x.shape[0] == 100 and a.test_x.shape[0] == 50
    assert torch.equal(a.train_x, b.train_x)
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("digits", n_train=10**6)
    with pytest.raises(ValueError, match="n_test"):
        load_dataset("digits", n_test=0)


def test_mnist10k_split():
    folder = default_mnist_test_dir()
    if folder is None:
        pytest.skip("real MNIST test set not available")
    from empirics.idx import load_mnist_test_idx

    a = load_dataset("mnist10k", seed=0)
    assert a.train_x.shape == (MNIST10K_TRAIN_SIZE, 1, 28, 28)
    assert a.test_x.shape == (10000 - MNIST10K_TRAIN_SIZE, 1, 28, 28)
    images, labels = load_mnist_test_idx(folder)
    assert _rows(torch.cat([a.train_x, a.test_x])) == _rows(
        torch.as_tensor(images, dtype=torch.float32)[:, None]
    )
    assert sorted(torch.cat([a.train_y, a.test_y]).tolist()) == sorted(labels.tolist())
    assert torch.equal(load_dataset("mnist10k", seed=0).test_y, a.test_y)


def test_unknown_name_and_options_raise():
    with pytest.raises(ValueError, match="name"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="options"):
        load_dataset("digits", dim=3)
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("synthetic-separated", n_train=0)
    with pytest.raises(ValueError, match="unknown options"):
        load_dataset("synthetic-separated", n_train=10, n_test=10, colour=1)


# ---------------------------------------------------------------------------- synthetic sets


def test_separated_points_are_separated_brute_force():
    x, y = separated_points(150, 4, 0.25, 3, seed=0)
    assert x.shape == (150, 4) and set(np.unique(y)) <= {0, 1, 2}
    dist = np.abs(x[:, None, :] - x[None, :, :]).max(axis=2)
    opposite = y[:, None] != y[None, :]
    assert dist[opposite].min() >= 0.25
    assert (x >= 0).all() and (x <= 1).all()
    with pytest.raises(ValueError, match="separation"):
        separated_points(10, 2, 1.5, 2, seed=0)


def test_synthetic_separated_dataset():
    d = load_dataset("synthetic-separated", n_train=80, n_test=40, seed=2, dim=5, separation=0.3)
    x = torch.cat([d.train_x, d.test_x]).double()
    y = torch.cat([d.train_y, d.test_y])
    dist = (x[:, None] - x[None]).abs().amax(dim=2)
    assert float(dist[y[:, None] != y[None, :]].min()) >= 0.3 - 1e-6
    assert d.in_shape == (5,) and d.num_classes == 2


def test_linear_separable_dataset():
    d = load_dataset("linear-separable", n_train=200, n_test=100, seed=0, dim=10)
    assert d.train_x.shape == (200, 10) and d.num_classes == 2
    assert float(d.train_x.min()) >= 0 and float(d.train_x.max()) <= 1
    assert set(d.train_y.unique().tolist()) <= {0, 1}
    # The affine map keeps linear separability by w*: sign(w*·(x01 − offset)) = label.
    w = torch.as_tensor(d.meta["w_star"], dtype=torch.float64)
    x = torch.cat([d.train_x, d.test_x]).double() - d.meta["offset"]
    y = torch.cat([d.train_y, d.test_y])
    assert torch.equal((x @ w > 0).long(), y)
    assert len(d.meta["train_is_small"]) == 200


# ------------------------------------------------------------- torchvision on-disk formats


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")])
def test_torchvision_mnist_formats(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    data = {}
    for prefix, n in (("train", 12), ("t10k", 7)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", imgs)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labs)
        data[prefix] = (imgs, labs)
    d = load_dataset(name, root=tmp_path)
    assert d.train_x.shape == (12, 1, 28, 28) and d.test_x.shape == (7, 1, 28, 28)
    assert torch.allclose(d.train_x[:, 0], torch.as_tensor(data["train"][0] / 255.0).float())
    assert d.test_y.tolist() == data["t10k"][1].tolist()


@pytest.fixture()
def no_md5(monkeypatch):
    """Fake files cannot match torchvision's md5 sums: accept them (the parsing stays real)."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.svhn as svhn

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(svhn, "check_integrity", lambda *a, **k: True)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_torchvision_cifar_formats(tmp_path, no_md5, name):
    rng = np.random.default_rng(1)
    if name == "cifar10":
        base = tmp_path / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        label_key, meta_name, meta = "labels", "batches.meta", {"label_names": list("abcdefghij")}
        classes = 10
    else:
        base = tmp_path / "cifar-100-python"
        files = ["train", "test"]
        label_key, meta_name = "fine_labels", "meta"
        meta = {"fine_label_names": [str(i) for i in range(100)]}
        classes = 100
    base.mkdir()
    written = {}
    for f in files:
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, 3).tolist()
        with open(base / f, "wb") as fh:
            pickle.dump({"data": data, label_key: labels}, fh)
        written[f] = (data, labels)
    with open(base / meta_name, "wb") as fh:
        pickle.dump(meta, fh)
    d = load_dataset(name, root=tmp_path)
    assert d.num_classes == classes
    n_train = 3 * (len(files) - 1)
    assert d.train_x.shape == (n_train, 3, 32, 32) and d.test_x.shape == (3, 3, 32, 32)
    test_data, test_labels = written[files[-1]]
    # CIFAR rows are channel-major 1024 R, 1024 G, 1024 B: NCHW after reshape.
    expected = torch.as_tensor(test_data.reshape(3, 3, 32, 32) / 255.0).float()
    assert torch.allclose(d.test_x, expected)
    assert d.test_y.tolist() == test_labels


def test_torchvision_svhn_format(tmp_path, no_md5):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    written = {}
    for split, n in (("train", 5), ("test", 4)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # SVHN stores digit 0 as label 10
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        written[split] = (x, y)
    d = load_dataset("svhn", root=tmp_path)
    x, y = written["test"]
    assert d.test_x.shape == (4, 3, 32, 32)
    assert torch.allclose(d.test_x, torch.as_tensor(x.transpose(3, 2, 0, 1) / 255.0).float())
    assert d.test_y.tolist() == [int(v) % 10 for v in y[:, 0]]
    assert d.train_x.shape == (5, 3, 32, 32)


def test_missing_torchvision_data_without_download_fails(tmp_path):
    with pytest.raises(RuntimeError):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_all_names_are_listed():
    assert set(DATASET_NAMES) >= {"digits", "mnist10k", "cifar10", "svhn", "linear-separable"}


# -------------------------------------------------------------------------------- noise


def test_label_noise_is_seeded_and_mask_is_exact():
    y = torch.arange(1000) % 10
    a, ma = with_label_noise(y, 0.4, 10, seed=5)
    b, mb = with_label_noise(y, 0.4, 10, seed=5)
    c, _ = with_label_noise(y, 0.4, 10, seed=6)
    assert torch.equal(a, b) and torch.equal(ma, mb) and not torch.equal(a, c)
    assert torch.equal(ma, a != y)
    # 400 labels redrawn uniformly from 10 classes: about 360 change (binomial sd ≈ 6).
    assert 320 <= int(ma.sum()) <= 400


def test_label_noise_edge_rates():
    y = torch.arange(500) % 5
    same, m0 = with_label_noise(y, 0.0, 5, seed=0)
    assert torch.equal(same, y) and not m0.any()
    rand, m1 = with_label_noise(y, 1.0, 5, seed=0)
    # Fully random labels: changed fraction ≈ 4/5, label histogram ≈ uniform.
    assert abs(float(m1.float().mean()) - 0.8) < 0.06
    counts = torch.bincount(rand, minlength=5).float()
    assert float(counts.min()) > 70
    excl, m2 = with_label_noise(y, 0.3, 5, seed=0, exclude_true=True)
    assert int(m2.sum()) == 150


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_label_noise_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        with_label_noise(torch.zeros(5, dtype=torch.long), rate, 2, seed=0)


def test_label_noise_bad_labels():
    with pytest.raises(ValueError, match="num_classes"):
        with_label_noise(torch.tensor([0, 3]), 0.5, 3, seed=0)


# ------------------------------------------------------------------- index & augmentation


def test_indexed_dataset_returns_indices():
    x = torch.rand(10, 1, 4, 4)
    y = torch.arange(10)
    ds = IndexedTensorDataset(x, y)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)
    seen = []
    for xb, yb, ib in loader:
        assert torch.equal(xb, x[ib]) and torch.equal(yb, y[ib])
        seen += ib.tolist()
    assert sorted(seen) == list(range(10))
    with pytest.raises(ValueError, match="same length"):
        IndexedTensorDataset(x, y[:3])


def test_crop_flip_matches_per_sample_torchvision():
    import torchvision.transforms.functional as TF

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 10, 12, generator=gen)
    pad = 3
    top = torch.randint(0, 2 * pad + 1, (16,), generator=gen)
    left = torch.randint(0, 2 * pad + 1, (16,), generator=gen)
    flip = torch.rand(16, generator=gen) < 0.5
    out = crop_flip(x, top, left, flip, pad)
    for i in range(16):
        ref = TF.crop(TF.pad(x[i], [pad]), int(top[i]), int(left[i]), 10, 12)
        if flip[i]:
            ref = TF.hflip(ref)
        assert torch.equal(out[i], ref)


def test_augment_crop_flip_distribution_and_seed():
    x = torch.rand(2000, 1, 8, 8)
    a = augment_crop_flip(x, 2, generator=torch.Generator().manual_seed(1))
    b = augment_crop_flip(x, 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    # With padding 0 only flips happen: each output is x or its mirror, about half flipped.
    c = augment_crop_flip(x, 0, generator=torch.Generator().manual_seed(2))
    same = (c == x).flatten(1).all(1)
    mirrored = (c == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert abs(float(mirrored.float().mean()) - 0.5) < 0.05
    with pytest.raises(ValueError, match="padding"):
        augment_crop_flip(x, -1)
    with pytest.raises(ValueError, match="x must be"):
        augment_crop_flip(torch.rand(3, 8), 1)


@pytest.mark.parametrize("channels_last", [False, True])
def test_augment_keeps_memory_format_and_device(channels_last):
    """Same values in either memory format, the input's format out; on ``meta`` (a stand-in
    for CUDA: CPU-created index tensors or host syncs would raise there) the batch stays on
    its device."""
    x = torch.rand(64, 3, 6, 6)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xf = x.contiguous(memory_format=fmt)
    a = augment_crop_flip(x, 2, generator=torch.Generator().manual_seed(3))
    b = augment_crop_flip(xf, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and b.is_contiguous(memory_format=fmt)
    xm = torch.empty(8, 3, 6, 6, device="meta").contiguous(memory_format=fmt)
    out = augment_crop_flip(xm, 2)
    assert out.device.type == "meta" and out.is_contiguous(memory_format=fmt)
    with pytest.raises(ValueError, match="generator"):
        augment_crop_flip(xm, 2, generator=torch.Generator())
