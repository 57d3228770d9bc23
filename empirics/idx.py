"""Reading MNIST-style idx files with numpy only (no torch), md5-checked.

The official MNIST test set (10,000 images) ships as ``t10k-images-idx3-ubyte.gz`` and
``t10k-labels-idx1-ubyte.gz``; their md5 sums below are the ones torchvision checks.
This module is importable without torch so that theory-side tools and benchmarks can use
real images.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib

import numpy as np

#: md5 of the official MNIST test files (same values as ``torchvision.datasets.MNIST``).
MNIST_TEST_MD5: dict[str, str] = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: Where the shared copy of the MNIST test set lives relative to a checkout of this repo.
_DEFAULT_MNIST_DIRS = (
    pathlib.Path(__file__).resolve().parents[1] / "data_local" / "mnist-test-10k",
    pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-test-10k",
)

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Return the array stored in an idx file (optionally gzip-compressed)."""
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"path={path}: not an idx file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"path={path}: unknown idx type code 0x{code:02x}")
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"path={path}: idx payload has {len(raw) - header} bytes, header says {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def default_mnist_test_dir() -> pathlib.Path | None:
    """Return the first existing folder holding the MNIST test idx files, or None."""
    env = os.environ.get("ROBMEM_MNIST_DIR")
    candidates = ([pathlib.Path(env)] if env else []) + list(_DEFAULT_MNIST_DIRS)
    for folder in candidates:
        if all((folder / name).is_file() for name in MNIST_TEST_MD5):
            return folder
    return None


def load_mnist_test_idx(
    folder: str | os.PathLike[str] | None = None, *, check_md5: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` of the official MNIST test set.

    ``images`` is float64 of shape (10000, 28, 28) with values in [0, 1] (pixel/255);
    ``labels`` is int64 of shape (10000,). The folder defaults to ``$ROBMEM_MNIST_DIR``,
    then ``data_local/mnist-test-10k`` in the checkout, then ``../shared/data/mnist-test-10k``.
    """
    if folder is None:
        found = default_mnist_test_dir()
        if found is None:
            raise FileNotFoundError(
                "MNIST test idx files not found: set ROBMEM_MNIST_DIR or pass folder= "
                f"(looked for {sorted(MNIST_TEST_MD5)})"
            )
        folder = found
    folder = pathlib.Path(folder)
    for name, md5 in MNIST_TEST_MD5.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"folder={folder}: missing {name}")
        if check_md5:
            got = hashlib.md5(path.read_bytes()).hexdigest()
            if got != md5:
                raise ValueError(f"folder={folder}: {name} has md5 {got}, expected {md5}")
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz").astype(np.float64) / 255.0
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"folder={folder}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels
