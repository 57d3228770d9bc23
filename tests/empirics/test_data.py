"""Tests of empirics.data: splits, torchvision formats (fake on-disk data), noise, augmentation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from robmem.empirics.data import (
    DATASET_NAMES,
    MNIST10K_TRAIN_SIZE,
    augment_crop_flip,
    crop_flip,
    load_dataset,
    separated_points,
    with_label_noise,
)
from robmem.empirics.idx import default_mnist_test_dir

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
    from robmem.empirics.idx import load_mnist_test_idx

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


# ------------------------------------------------------------------------------ augmentation


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


# ---------------------------------------------------------------------------- MNIST-1D
# The real generator (mnist1d.data.make_dataset) at a small size: about 0.2 s per call.
_M1D_N = 300


def test_mnist1d_generated_offline_shapes_range_and_meta():
    from mnist1d.data import get_dataset_args, make_dataset

    from robmem.empirics.data import MNIST1D_UNIT_PER_RAW, mnist1d_to_unit

    d = load_dataset("mnist1d", seed=5, num_samples=_M1D_N)
    assert d.name == "mnist1d" and d.num_classes == 10
    assert d.in_shape == (1, 40) and d.train_x.dtype == torch.float32
    assert len(d.train_y) == 240 and len(d.test_y) == 60  # the package's 80/20 split
    for x in (d.train_x, d.test_x):
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # Independent oracle: the package itself, with the documented affine map applied by hand.
    args = get_dataset_args()
    args.num_samples, args.seed = _M1D_N, 5
    raw = make_dataset(args)
    want = np.clip(0.5 + raw["x"] / 12.0, 0.0, 1.0)
    np.testing.assert_allclose(d.train_x[:, 0].numpy(), want, atol=1e-6)
    np.testing.assert_array_equal(d.test_y.numpy(), raw["y_test"])
    assert MNIST1D_UNIT_PER_RAW == pytest.approx(1 / 12)
    assert d.meta["epsilon_unit_per_raw"] * d.meta["epsilon_raw_per_unit"] == pytest.approx(1.0)
    assert d.meta["n_clipped"] == 0
    # The map is fixed: the same raw value maps to the same [0, 1] value for train and test.
    assert mnist1d_to_unit(np.array([-6.0, 0.0, 6.0, 9.0]))[0].tolist() == [0.0, 0.5, 1.0, 1.0]
    assert mnist1d_to_unit(np.array([9.0, -7.0]))[1] == 2


def test_mnist1d_is_deterministic_per_seed_and_seeds_differ():
    a = load_dataset("mnist1d", seed=1, num_samples=_M1D_N)
    b = load_dataset("mnist1d", seed=1, num_samples=_M1D_N)
    c = load_dataset("mnist1d", seed=2, num_samples=_M1D_N)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    # Generation must not disturb the caller's global numpy / Python RNG streams.
    import random

    np.random.seed(7)  # noqa: NPY002 - checking the legacy global state is preserved
    random.seed(7)
    load_dataset("mnist1d", seed=3, num_samples=_M1D_N)
    got = (np.random.rand(), random.random())  # noqa: NPY002
    np.random.seed(7)  # noqa: NPY002
    random.seed(7)
    assert got == (np.random.rand(), random.random())  # noqa: NPY002


def test_mnist1d_class_balance_subsample_and_bad_options():
    d = load_dataset("mnist1d", seed=0, num_samples=1000)
    counts = np.bincount(d.train_y.numpy(), minlength=10)
    assert counts.sum() == 800 and counts.min() >= 55 and counts.max() <= 105  # 80 expected
    sub = load_dataset("mnist1d", seed=0, num_samples=1000, n_train=100, n_test=30)
    assert sub.train_x.shape == (100, 1, 40) and sub.test_x.shape == (30, 1, 40)
    assert set(_rows(sub.train_x)) <= set(_rows(d.train_x))  # a subset of the same pool
    with pytest.raises(ValueError, match="num_samples"):
        load_dataset("mnist1d", num_samples=10)
    with pytest.raises(TypeError, match="num_samples"):
        load_dataset("mnist1d", num_samples=1000.0)
    with pytest.raises(ValueError, match="unknown options"):
        load_dataset("mnist1d", dim=3)


def test_mnist1d_default_size_is_the_package_split():
    d = load_dataset("mnist1d", seed=42)
    assert len(d.train_y) == 4000 and len(d.test_y) == 1000
    # Standardization inside the model undoes the map: the generator's output has mean 0, std 1.
    from robmem.empirics.data import model_normalization
    from robmem.empirics.models import Normalize

    norm = Normalize(**model_normalization("mnist1d"))
    z = norm(torch.cat([d.train_x, d.test_x]))
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(z.std()) == pytest.approx(1.0, abs=1e-3)
    assert model_normalization("digits") == {}


def test_mnist1d_prestandardization_std_constant():
    """The noise-unit constant matches the generator: t / xs.std() is what it returns."""
    from mnist1d.data import get_dataset_args, get_templates, make_dataset

    from robmem.empirics.data import MNIST1D_PRESTANDARDIZATION_STD

    args = get_dataset_args()
    args.num_samples, args.seed = 1000, 0
    ratio = get_templates()["t"].max() / make_dataset(args)["t"].max()
    assert ratio == pytest.approx(MNIST1D_PRESTANDARDIZATION_STD, rel=0.02)


def test_mnist1d_eps_conversion():
    from robmem.empirics.data import mnist1d_eps_to_raw, mnist1d_eps_to_unit, mnist1d_to_unit

    assert mnist1d_eps_to_unit(1.2) == pytest.approx(0.1)
    assert mnist1d_eps_to_raw(0.1) == pytest.approx(1.2)
    assert mnist1d_eps_to_raw(mnist1d_eps_to_unit(0.37)) == pytest.approx(0.37)
    # Distances between mapped points scale by exactly eps_to_unit (ℓ∞ and ℓ2).
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    (ua, _), (ub, _) = mnist1d_to_unit(a), mnist1d_to_unit(b)
    for order in (np.inf, 2):
        raw = float(np.linalg.norm(a - b, ord=order))
        assert np.linalg.norm(ua - ub, ord=order) == pytest.approx(mnist1d_eps_to_unit(raw))
    with pytest.raises(ValueError, match="eps_raw"):
        mnist1d_eps_to_unit(-1.0)
    with pytest.raises(TypeError, match="eps_unit"):
        mnist1d_eps_to_raw("0.1")


def test_mnist1d_shift_matches_numpy_roll():
    from robmem.empirics.data import mnist1d_shift

    x = torch.rand(5, 1, 40)
    shift = torch.tensor([0, 1, -3, 40, 7])
    got = mnist1d_shift(x, shift)
    for i in range(5):
        np.testing.assert_array_equal(got[i].numpy(), np.roll(x[i].numpy(), int(shift[i]), -1))
    with pytest.raises(ValueError, match="shift"):
        mnist1d_shift(x, shift[:2])


@pytest.mark.parametrize("sigma", [0.5, 2.0, 15.0])
def test_gaussian_smooth_matches_scipy(sigma):
    from scipy.ndimage import gaussian_filter1d

    from robmem.empirics.data import gaussian_smooth_circular

    noise = torch.randn(3, 1, 40, dtype=torch.float64)
    want = gaussian_filter1d(noise.numpy(), sigma, axis=-1, mode="wrap")
    np.testing.assert_allclose(gaussian_smooth_circular(noise, sigma).numpy(), want, atol=1e-12)


def test_augment_mnist1d_range_shape_seed_and_change():
    from robmem.empirics.data import augment_mnist1d

    d = load_dataset("mnist1d", seed=0, num_samples=_M1D_N)
    x = d.train_x[:64]
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = augment_mnist1d(x, generator=g1, corr_noise_raw=0.5)
    b = augment_mnist1d(x, generator=g2, corr_noise_raw=0.5)
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert not torch.equal(a, x) and torch.equal(x, d.train_x[:64])  # input untouched
    # Without noise the result is exactly a circular shift of each row by at most max_shift.
    shifted = augment_mnist1d(x, max_shift=3, noise_raw=0.0, generator=torch.Generator())
    for i in range(len(x)):
        rolls = [np.roll(x[i].numpy(), k, -1) for k in range(-3, 4)]
        assert any(np.array_equal(shifted[i].numpy(), r) for r in rolls)
    assert not torch.equal(shifted, x)  # 64 draws of 7 shifts: P(all zero) = 7^-64
    # The i.i.d. noise has the documented std in [0, 1] units (no shift, no clipping at 0.5).
    flat = torch.full((2000, 1, 40), 0.5)
    noisy = augment_mnist1d(flat, max_shift=0, noise_raw=1.2, generator=torch.Generator())
    assert float((noisy - 0.5).std()) == pytest.approx(0.1, rel=0.02)
    # At the box's edge the noise is clipped back into [0, 1].
    edge = augment_mnist1d(torch.ones(4, 1, 40), generator=torch.Generator().manual_seed(1))
    assert float(edge.max()) == 1.0 and float(edge.min()) < 1.0
    with pytest.raises(ValueError, match="max_shift"):
        augment_mnist1d(x, max_shift=-1)
    with pytest.raises(ValueError, match="x must be"):
        augment_mnist1d(torch.rand(2, 1, 4, 4))


def test_training_batch_uses_mnist1d_augmentation():
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.trainers import training_batch

    x = torch.full((8, 1, 40), 0.5)
    y = torch.zeros(8, dtype=torch.int64)
    idx = torch.arange(8)
    cfg = TrainConfig(dataset="mnist1d", augment=True)
    xb, yb = training_batch(x, y, idx, cfg, torch.Generator().manual_seed(0))
    assert xb.shape == (8, 1, 40) and not torch.equal(xb, x) and torch.equal(yb, y)
    plain = TrainConfig(dataset="mnist1d", augment=False)
    assert torch.equal(training_batch(x, y, idx, plain, None)[0], x)
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(dataset="synthetic-separated", augment=True)
