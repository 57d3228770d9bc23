"""Atomic, checksummed checkpoints that load with ``torch.load(..., weights_only=True)``.

File format: the bytes of ``torch.save(payload)`` followed by a trailer
``b"\\nROBMEM-SHA256:" + hexdigest(payload bytes)``. Writing goes to a temporary file in the
same folder, is flushed and fsynced, then moved over the target with ``os.replace``, so a
reader (or a run killed mid-write) sees either the old file or the new one, never a torn one.
:func:`load_checkpoint` checks the digest before unpickling, with ``weights_only=True``.

The payload holds only tensors, numbers, strings, lists, tuples and dicts, so random-number
states are converted: numpy's Mersenne-Twister key to a list of ints, Python's ``random``
state to nested tuples of ints.

A run may be resumed on another device (``device`` is a resume-mutable config field). A CPU
generator's state (Mersenne Twister, 5056 bytes) and a CUDA generator's state (Philox seed and
offset, 16 bytes) cannot be set into each other, so :func:`restore_rng_state` re-seeds such a
generator from a SHA-256 digest of the stored state (same checkpoint, same device → same
continuation; it cannot equal the uninterrupted run, whose draws came from the other kind of
generator) and logs a warning. Per-GPU global CUDA states are restored for the GPUs both runs
have; GPUs the checkpoint has no state for keep the state :func:`torch.manual_seed` gave them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pathlib
import pickle
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

_TRAILER_TAG = b"\nROBMEM-SHA256:"
_DIGEST_HEX_LEN = 64
#: Bytes of the state digest used as the re-seed of a generator of another kind (63 bits).
_RESEED_BYTES = 8


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
    return {
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


def reseed_from_state(saved: torch.Tensor) -> int:
    """Return the seed (63 bits) a generator of another kind gets from a stored ``saved`` state.

    The first bytes of the SHA-256 digest of the state's bytes: deterministic, and different
    stored states give (with overwhelming probability) different seeds.
    """
    raw = saved.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
    digest = hashlib.sha256(raw).digest()[:_RESEED_BYTES]
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _restore_generator(name: str, gen: torch.Generator, saved: torch.Tensor) -> None:
    saved = saved.cpu()
    if saved.numel() == gen.get_state().numel():
        gen.set_state(saved)
        return
    # Another kind of generator (CPU Mersenne Twister vs CUDA Philox): the run changed device.
    seed = reseed_from_state(saved)
    logger.warning(
        "generator %r: the checkpoint holds a %d-byte state, this %s generator needs %d "
        "bytes (the run changed device); re-seeded with %d from the stored state",
        name,
        saved.numel(),
        gen.device.type,
        gen.get_state().numel(),
        seed,
    )
    gen.manual_seed(seed)


def _restore_cuda_states(states: list[torch.Tensor]) -> None:
    if not states or not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    if len(states) != count:
        logger.warning(
            "the checkpoint holds CUDA RNG states of %d GPUs, this process sees %d: restoring "
            "the first %d",
            len(states),
            count,
            min(len(states), count),
        )
    for index, saved in enumerate(states[:count]):
        torch.cuda.set_rng_state(saved.cpu(), index)


def restore_rng_state(
    state: dict[str, Any], generators: dict[str, torch.Generator] | None = None
) -> None:
    """Restore what :func:`rng_state` captured (generators are restored in place).

    A generator whose stored state is of another kind (the run changed between CPU and CUDA)
    is re-seeded from that state (:func:`reseed_from_state`, with a warning); CUDA states are
    restored for the GPUs this process and the checkpoint both have.
    """
    torch.set_rng_state(state["torch"].cpu())
    _restore_cuda_states(list(state.get("cuda") or []))
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
        _restore_generator(name, gen, state["generators"][name])
