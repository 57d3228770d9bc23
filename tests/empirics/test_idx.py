import gzip
import hashlib
import shutil

import numpy as np
import pytest

from robmem.empirics.idx import (
    MNIST_TEST_MD5,
    default_mnist_test_dir,
    load_mnist_test_idx,
    read_idx,
)


def _write_idx(path, array: np.ndarray, code: int = 0x08, compress: bool = True) -> None:
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(raw)
    else:
        path.write_bytes(raw)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    _write_idx(path, arr, compress=compress)
    np.testing.assert_array_equal(read_idx(path), arr)


def test_read_idx_int32_big_endian(tmp_path):
    arr = np.array([1, -2, 70000], dtype=np.int32)
    _write_idx(tmp_path / "b.idx", arr, code=0x0C, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx"), arr)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(ValueError, match="payload"):
        read_idx(tmp_path / "short")


def test_md5_mismatch_is_refused(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.full((1, 2, 2), 255, dtype=np.uint8))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([7], dtype=np.uint8))
    with pytest.raises(ValueError, match="md5"):
        load_mnist_test_idx(tmp_path)
    images, labels = load_mnist_test_idx(tmp_path, check_md5=False)
    assert images.shape == (1, 2, 2) and np.all(images == 1.0)
    assert labels.tolist() == [7]


def test_missing_folder_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k"):
        load_mnist_test_idx(tmp_path)


def test_real_mnist_test_set(tmp_path):
    folder = default_mnist_test_dir()
    if folder is None:
        pytest.skip("MNIST test idx files not present (set ROBMEM_MNIST_DIR)")
    images, labels = load_mnist_test_idx(folder)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels).tolist()[:2] == [980, 1135]  # official class counts
    # A corrupted copy is detected by its md5.
    for name in MNIST_TEST_MD5:
        shutil.copy(folder / name, tmp_path / name)
    data = bytearray((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(data))
    assert hashlib.md5(bytes(data)).hexdigest() != MNIST_TEST_MD5["t10k-labels-idx1-ubyte.gz"]
    with pytest.raises(ValueError, match="md5"):
        load_mnist_test_idx(tmp_path)
