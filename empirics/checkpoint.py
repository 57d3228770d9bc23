"""Atomic, checksummed checkpoints that load with ``torch.load(..., weights_only=True)``.

File format: the bytes of ``torch.save(payload)`` followed by a trailer
``b"\\nROBMEM-SHA256:" + hexdigest(payload bytes)``. Writing goes to a temporary file in the
same folder, is flushed and fsynced, then moved over the target with ``os.replace``, so a
reader (or a run killed mid-write) sees either the old file or the new one, never a torn one.
:func:`load_checkpoint` checks the digest before unpickling, with ``weights_only=True``.

The payload holds only tensors, numbers, strings, lists, tuples and dicts, so random-number
states are converted: numpy's Mersenne-Twister key to a list of ints, Python's ``random``
state to nested tuples of ints.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import pickle
import random
from typing import Any

import numpy as np
import torch

_TRAILER_TAG = b"\nROBMEM-SHA256:"
_DIGEST_HEX_LEN = 64


class CheckpointError(RuntimeError):
    """A checkpoint file is missing its trailer or fails its checksum."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: pathlib.Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> str:
    """Atomically write ``payload`` with a SHA-256 trailer; return the hex digest."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    digest = hashlib.sha256(body).hexdigest()
    atomic_write_bytes(path, body + _TRAILER_TAG + digest.encode("ascii"))
    return digest


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Verify the checksum of ``path`` and return its payload (``weights_only=True``)."""
    raw = pathlib.Path(path).read_bytes()
    tail = len(_TRAILER_TAG) + _DIGEST_HEX_LEN
    if len(raw) < tail or raw[-tail:-_DIGEST_HEX_LEN] != _TRAILER_TAG:
        raise CheckpointError(f"path={path}: no checksum trailer (not a robmem checkpoint)")
    body, digest = raw[:-tail], raw[-_DIGEST_HEX_LEN:].decode("ascii")
    if hashlib.sha256(body).hexdigest() != digest:
        raise CheckpointError(f"path={path}: checksum mismatch (file corrupted)")
    try:
        return torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"path={path}: refused to load: it holds objects other than tensors and plain "
            f"containers, which weights_only=True never unpickles ({first})"
        ) from exc


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Capture torch (CPU and CUDA), numpy, Python and the given generators' states."""
    # The legacy global numpy RNG is captured on purpose: third-party code may draw from it.
    np_state = np.random.get_state()  # noqa: NPY002
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "key": [int(v) for v in np_state[1]],
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def restore_rng_state(
    state: dict[str, Any], generators: dict[str, torch.Generator] | None = None
) -> None:
    """Restore what :func:`rng_state` captured (generators are restored in place)."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            np.asarray(npst["key"], dtype=np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    for name, gen in (generators or {}).items():
        if name not in state["generators"]:
            raise KeyError(f"generators: checkpoint has no state for {name!r}")
        gen.set_state(state["generators"][name].cpu())
