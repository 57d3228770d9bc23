"""Data sets, label noise, index-returning wrapper and on-device augmentation (SPEC E1–E6).

All loaders return a :class:`DatasetSplit` of float32 tensors with values in [0, 1] (images
NCHW, vectors (n, d)) and int64 labels, so attacks work in pixel space and ε keeps its
meaning. Names (see :data:`DATASET_NAMES`):

- ``"digits"``: scikit-learn's bundled 8×8 digits (1797 images, values 0..16 divided by 16),
  split 80/20 by a seeded permutation. The embedded default image set (no download).
- ``"mnist10k"``: the real MNIST *test* set (10,000 images, read with :mod:`empirics.idx`),
  split 8000/2000 by a seeded permutation.
- ``"synthetic-separated"``: uniform points in [0,1]^d with random labels, thinned so that
  opposite-label points are at least ``separation`` apart in ℓ∞ (the regime of [P1] §3).
- ``"linear-separable"``: the data model of [P1] §5 / SPEC T3 from
  :func:`theory.data_models.linear_separable_data`, mapped into [0,1]^d by one global affine map.
- ``"mnist"``, ``"fashionmnist"``, ``"cifar10"``, ``"cifar100"``, ``"svhn"``: torchvision,
  with ``download`` passed through.
"""

from __future__ import annotations

import logging
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

DATASET_NAMES: tuple[str, ...] = (
    "digits",
    "mnist10k",
    "synthetic-separated",
    "linear-separable",
    "mnist",
    "fashionmnist",
    "cifar10",
    "cifar100",
    "svhn",
)

#: Fraction of scikit-learn digits used for training (the rest is the test split).
DIGITS_TRAIN_FRACTION = 0.8
#: Maximum pixel value of scikit-learn's digits (values are integers 0..16).
DIGITS_MAX_VALUE = 16.0
#: Train size of the MNIST-10k split (the remaining 2000 images are the test split).
MNIST10K_TRAIN_SIZE = 8000
#: Defaults of the separated-synthetic generator.
SEPARATED_DEFAULTS: dict[str, Any] = {"dim": 20, "separation": 0.2, "num_classes": 2}
#: Rejection-sampling budget of :func:`separated_points` (draws per requested point).
SEPARATED_MAX_DRAWS_PER_POINT = 100
#: Defaults of the linear-separable generator ([P1] §5 leaves the constants free).
LINEAR_SEPARABLE_DEFAULTS: dict[str, Any] = {
    "dim": 50,
    "alpha": 1.0,
    "beta": 0.1,
    "noise_std": 0.1,
    "small_fraction": 0.1,
}
#: Default sizes of the synthetic sets.
SYNTHETIC_DEFAULT_SIZES = (1000, 1000)
#: Largest synthetic split accepted (the separated generator is O(n²·d)).
SYNTHETIC_MAX_SIZE = 10**6
#: Maximum pixel value of 8-bit images.
UINT8_MAX = 255.0


@dataclass
class DatasetSplit:
    """A train/test split held as tensors.

    Attributes
    ----------
    train_x, test_x : torch.Tensor
        float32, values in [0, 1]; images are NCHW, vectors (n, d).
    train_y, test_y : torch.Tensor
        int64 labels in ``0 .. num_classes - 1``.
    num_classes : int
    name : str
    meta : dict
        Extra facts about the data (e.g. the affine map of the synthetic sets, ``w_star``,
        the small-margin mask), JSON-friendly.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    name: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def in_shape(self) -> tuple[int, ...]:
        """Shape of one input (without the batch dimension)."""
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device | str) -> DatasetSplit:
        """Return a copy with all tensors on ``device`` (data lives on the device when it fits)."""
        return DatasetSplit(
            self.train_x.to(device),
            self.train_y.to(device),
            self.test_x.to(device),
            self.test_y.to(device),
            self.num_classes,
            self.name,
            dict(self.meta),
        )


def _check_size(value: int | None, name: str, available: int) -> int:
    if value is None:
        return available
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    if value > available:
        raise ValueError(f"{name} must be <= {available} for this data set, got {value}")
    return int(value)


def _subsample(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, n: int, rng: np.random.Generator
) -> tuple[Any, Any]:
    if n >= len(y):
        return x, y
    idx = np.sort(rng.permutation(len(y))[:n])
    return x[idx], y[idx]


def _as_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
        torch.as_tensor(np.ascontiguousarray(y), dtype=torch.int64),
    )


def _split(
    x: np.ndarray, y: np.ndarray, n_train_total: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(len(y))
    tr, te = np.sort(perm[:n_train_total]), np.sort(perm[n_train_total:])
    return x[tr], y[tr], x[te], y[te]


def _digits(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float64) / DIGITS_MAX_VALUE)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    return _split(x, y, int(round(DIGITS_TRAIN_FRACTION * len(y))), seed)


def _mnist10k(root: str | os.PathLike[str] | None, seed: int) -> tuple[np.ndarray, ...]:
    from empirics.idx import load_mnist_test_idx

    images, labels = load_mnist_test_idx(root)
    return _split(images[:, None, :, :], labels, MNIST10K_TRAIN_SIZE, seed)


def separated_points(
    n: int, dim: int, separation: float, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` points in [0,1]^dim with random labels, opposite labels ≥ ``separation`` apart.

    Points are drawn uniformly, labels uniformly from ``num_classes``; a point is kept only if
    its ℓ∞ distance to every kept point of another label is at least ``separation`` (greedy
    rejection, chunked). So the set is 2R-separated with R = separation/2 in the sense of
    [P1] §3 (SPEC T1). Raises RuntimeError if the density makes that impossible.
    """
    if not 0 < separation < 1:
        raise ValueError(f"separation must be in (0, 1), got {separation}")
    if dim < 1 or num_classes < 2 or n < 1:
        raise ValueError(f"need dim >= 1, num_classes >= 2, n >= 1; got {dim}, {num_classes}, {n}")
    rng = np.random.default_rng(seed)
    xs = np.empty((n, dim))
    ys = np.empty(n, dtype=np.int64)
    kept = 0
    max_draws = SEPARATED_MAX_DRAWS_PER_POINT * n
    for _ in range(max_draws):
        if kept == n:
            break
        cand = rng.random(dim)
        lab = int(rng.integers(num_classes))
        other = ys[:kept] != lab
        if other.any() and np.abs(xs[:kept][other] - cand).max(axis=1).min() < separation:
            continue
        xs[kept], ys[kept] = cand, lab
        kept += 1
    if kept < n:
        raise RuntimeError(f"could not place {n} points with separation={separation} in dim={dim}")
    return xs, ys


def _synthetic_separated(n_train: int, n_test: int, seed: int, **options: Any):
    opts = {**SEPARATED_DEFAULTS, **options}
    unknown = set(opts) - set(SEPARATED_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; allowed {sorted(SEPARATED_DEFAULTS)}")
    x, y = separated_points(
        n_train + n_test,
        int(opts["dim"]),
        float(opts["separation"]),
        int(opts["num_classes"]),
        seed,
    )
    meta = {"separation": float(opts["separation"]), "norm": "inf"}
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], int(opts["num_classes"]), meta


def _linear_separable(n_train: int, n_test: int, seed: int, **options: Any):
    from theory.data_models import linear_separable_data

    opts = {**LINEAR_SEPARABLE_DEFAULTS, **options}
    unknown = set(opts) - set(LINEAR_SEPARABLE_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown options {sorted(unknown)}; allowed {sorted(LINEAR_SEPARABLE_DEFAULTS)}"
        )
    frac = float(opts["small_fraction"])
    if not 0 <= frac <= 1:
        raise ValueError(f"small_fraction must be in [0, 1], got {frac}")
    n = n_train + n_test
    n_small = int(round(frac * n))
    data = linear_separable_data(
        n - n_small,
        n_small,
        int(opts["dim"]),
        float(opts["alpha"]),
        float(opts["beta"]),
        float(opts["noise_std"]),
        seed,
    )
    x = np.asarray(data.x, dtype=np.float64)
    y_pm = np.asarray(data.y)
    is_small = np.asarray(data.is_small, dtype=bool)
    # The generator may order large then small points: shuffle before splitting.
    perm = np.random.default_rng(seed + 1).permutation(n)
    x, y_pm, is_small = x[perm], y_pm[perm], is_small[perm]
    # One global affine map into [0, 1]^d: x01 = 0.5 + scale * x keeps directions and ratios of
    # distances (every ℓp distance is multiplied by `scale`).
    scale = 0.5 / max(float(np.abs(x).max()), np.finfo(np.float64).tiny)
    x01 = 0.5 + scale * x
    y = (y_pm > 0).astype(np.int64)
    meta = {
        "scale": scale,
        "offset": 0.5,
        "w_star": np.asarray(data.w_star, dtype=np.float64).tolist(),
        "train_is_small": is_small[:n_train].tolist(),
        "test_is_small": is_small[n_train:].tolist(),
        "label_map": "y=+1 -> 1, y=-1 -> 0",
    }
    return x01[:n_train], y[:n_train], x01[n_train:], y[n_train:], 2, meta


_TORCHVISION = {
    "mnist": ("MNIST", 10),
    "fashionmnist": ("FashionMNIST", 10),
    "cifar10": ("CIFAR10", 10),
    "cifar100": ("CIFAR100", 100),
    "svhn": ("SVHN", 10),
}


def _torchvision_arrays(name: str, root: str | os.PathLike[str], train: bool, download: bool):
    import torchvision

    cls_name, _ = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    if name == "svhn":
        ds = cls(str(root), split="train" if train else "test", download=download)
        x = np.asarray(ds.data)  # (n, 3, 32, 32) uint8
        y = np.asarray(ds.labels, dtype=np.int64)
    else:
        ds = cls(str(root), train=train, download=download)
        data = ds.data
        x = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        x = x[:, None, :, :] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
        targets = ds.targets
        y = (targets.numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)).astype(
            np.int64
        )
    return x, y


def default_data_root() -> pathlib.Path:
    """Return ``$ROBMEM_DATA`` or ``../shared/data`` next to the checkout (torchvision root)."""
    env = os.environ.get("ROBMEM_DATA")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    **options: Any,
) -> DatasetSplit:
    """Return the named data set as a :class:`DatasetSplit` (float32 in [0, 1], int64 labels).

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES`.
    root : path, optional
        torchvision root (default :func:`default_data_root`); for ``"mnist10k"`` the folder
        holding the idx files (default :func:`empirics.idx.default_mnist_test_dir`).
    download : bool
        Passed through to torchvision.
    n_train, n_test : int, optional
        Subsample the train/test split to this size (seeded, order kept). For the synthetic
        sets these are the generated sizes (default 1000 each).
    seed : int
        Seed of every split, subsample and generator; the same seed gives the same tensors.
    **options
        Generator options of the synthetic sets: ``dim``, ``separation``, ``num_classes``
        (synthetic-separated); ``dim``, ``alpha``, ``beta``, ``noise_std``, ``small_fraction``
        (linear-separable).
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}")
    if options and name not in ("synthetic-separated", "linear-separable"):
        raise ValueError(f"options {sorted(options)} are only accepted by the synthetic data sets")
    meta: dict[str, Any] = {"seed": seed}
    if name in ("synthetic-separated", "linear-separable"):
        ntr = _check_size(n_train, "n_train", SYNTHETIC_MAX_SIZE)
        nte = _check_size(n_test, "n_test", SYNTHETIC_MAX_SIZE)
        ntr = SYNTHETIC_DEFAULT_SIZES[0] if n_train is None else ntr
        nte = SYNTHETIC_DEFAULT_SIZES[1] if n_test is None else nte
        gen = _synthetic_separated if name == "synthetic-separated" else _linear_separable
        xtr, ytr, xte, yte, num_classes, extra = gen(ntr, nte, seed, **options)
        meta.update(extra)
    else:
        if name == "digits":
            xtr, ytr, xte, yte = _digits(seed)
            num_classes = 10
        elif name == "mnist10k":
            xtr, ytr, xte, yte = _mnist10k(root, seed)
            num_classes = 10
        else:
            tv_root = pathlib.Path(root) if root is not None else default_data_root()
            xtr, ytr = _torchvision_arrays(name, tv_root, True, download)
            xte, yte = _torchvision_arrays(name, tv_root, False, download)
            num_classes = _TORCHVISION[name][1]
        rng = np.random.default_rng(seed)
        xtr, ytr = _subsample(xtr, ytr, _check_size(n_train, "n_train", len(ytr)), rng)
        xte, yte = _subsample(xte, yte, _check_size(n_test, "n_test", len(yte)), rng)
        if xtr.dtype == np.uint8:
            xtr = xtr.astype(np.float32) / UINT8_MAX
            xte = xte.astype(np.float32) / UINT8_MAX
    train_x, train_y = _as_tensors(xtr, ytr)
    test_x, test_y = _as_tensors(xte, yte)
    return DatasetSplit(train_x, train_y, test_x, test_y, int(num_classes), name, meta)


def with_label_noise(
    labels: torch.Tensor | np.ndarray,
    rate: float,
    num_classes: int,
    seed: int,
    *,
    exclude_true: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(noisy_labels, flipped_mask)`` under seeded symmetric label noise.

    Exactly ``round(rate * n)`` samples, chosen by a permutation drawn from ``seed``, get a
    label drawn uniformly from all ``num_classes`` classes (as [P2]'s ``label_symmetric``
    corruption, so ``rate = 1`` gives fully random labels; the expected fraction of changed
    labels is then ``rate * (C - 1) / C``). With ``exclude_true=True`` the new label is drawn
    from the other C − 1 classes, so exactly ``round(rate * n)`` labels change.
    ``flipped_mask[i]`` is True iff ``noisy_labels[i] != labels[i]``. Unlike [P2]'s code the
    RNG is seeded (``notes/paper-dong-memorization-at.md`` §6 item 3); save ``seed`` or the
    returned labels with the run.

    Parameters
    ----------
    labels : tensor or array of int, shape (n,)
    rate : float in [0, 1]
    num_classes : int >= 2
    seed : int
    exclude_true : bool
    """
    if not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"rate must be a float in [0, 1], got {rate!r}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    y = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels)
    if y.ndim != 1 or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be a 1-D integer array, got shape {tuple(y.shape)}")
    y = y.to(torch.int64)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, num_classes={num_classes}), got range "
            f"[{int(y.min())}, {int(y.max())}]"
        )
    n = y.numel()
    rng = np.random.default_rng(seed)
    k = int(round(float(rate) * n))
    chosen = rng.permutation(n)[:k]
    if exclude_true:
        shift = rng.integers(1, num_classes, size=k)
        new = (y.cpu().numpy()[chosen] + shift) % num_classes
    else:
        new = rng.integers(0, num_classes, size=k)
    noisy_np = y.cpu().numpy().copy()
    noisy_np[chosen] = new
    noisy = torch.as_tensor(noisy_np, dtype=torch.int64, device=y.device)
    return noisy, noisy != y


class IndexedTensorDataset(torch.utils.data.Dataset):
    """A tensor data set whose items are ``(x[i], y[i], i)`` (TE needs per-sample ids)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}"
            )
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.x[i], self.y[i], i


def augment_crop_flip(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return a batch randomly cropped (zero padding ``padding``) and horizontally flipped.

    Batched on x's device: per sample one offset pair uniform in ``0..2·padding`` and one
    fair coin for the flip — the distribution of torchvision's
    ``RandomCrop(size, padding)`` + ``RandomHorizontalFlip()`` used by [P2] and Rice et al.

    Parameters
    ----------
    x : tensor (n, C, H, W)
        NCHW or channels_last; the result has the same memory format.
    padding : int >= 0
    generator : torch.Generator, optional
        On x's device type (ValueError otherwise); the global RNG when omitted.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (n, C, H, W), got shape {tuple(x.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"generator must be on x's device type {x.device.type!r} (or None for the global "
            f"RNG), got a generator on {str(generator.device)!r}"
        )
    n, _, h, w = x.shape
    dev = x.device
    offs = torch.randint(0, 2 * padding + 1, (2, n), device=dev, generator=generator)
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    return crop_flip(x, offs[0], offs[1], flip, padding)


def crop_flip(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    """Return the crops ``pad(x)[i, :, top_i:top_i+H, left_i:left_i+W]``, flipped where ``flip``.

    The deterministic half of :func:`augment_crop_flip` (offsets given), one gather for the
    whole batch. The gather produces NHWC, so a channels_last ``x`` gets a channels_last result
    without a copy; an NCHW ``x`` gets an NCHW (contiguous) one.
    """
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = top.view(n, 1) + torch.arange(h, device=x.device).view(1, h)  # (n, H)
    cols = left.view(n, 1) + torch.arange(w, device=x.device).view(1, w)  # (n, W)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]  # (n,H,W,C)
    out = out.permute(0, 3, 1, 2)  # channels_last layout
    if x.is_contiguous(memory_format=torch.channels_last):
        return out
    return out.contiguous()
