"""Checkpoints: atomic, checksummed, weights_only-loadable, RNG states restored exactly."""

# ruff: noqa: NPY002 - the legacy global numpy RNG is exactly what is being checkpointed

import fractions
import random

import numpy as np
import pytest
import torch

from robmem.empirics.checkpoint import (
    CheckpointError,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)


def _draws(gen):
    return (
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        [random.random() for _ in range(3)],
        torch.rand(3, generator=gen).tolist(),
        float(np.random.randn()),
    )


def test_rng_round_trip_through_a_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = rng_state({"g": gen})
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"rng": state, "w": torch.arange(4.0)})
    first = _draws(gen)
    loaded = load_checkpoint(path)  # weights_only=True inside
    restore_rng_state(loaded["rng"], {"g": gen})
    assert _draws(gen) == first
    assert torch.equal(loaded["w"], torch.arange(4.0))


def test_corruption_is_detected(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.ones(10)})
    raw = bytearray(path.read_bytes())
    raw[20] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="trailer"):
        load_checkpoint(path)


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"v": 1})
    save_checkpoint(path, {"v": 2})
    assert load_checkpoint(path)["v"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_unsafe_payload_is_refused_on_load(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"obj": fractions.Fraction(1, 3)})
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_checkpoint(path)


def test_missing_generator_state_is_an_error():
    state = rng_state({})
    with pytest.raises(KeyError, match="generators"):
        restore_rng_state(state, {"shuffle": torch.Generator()})


def _philox_like_state(seed: int, offset: int) -> torch.Tensor:
    """A 16-byte state as a CUDA generator stores it (seed and offset, little-endian)."""
    raw = seed.to_bytes(8, "little") + offset.to_bytes(8, "little")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).clone()


def test_generator_of_another_device_is_reseeded_deterministically(caplog):
    """A CUDA (Philox, 16-byte) state cannot be set into a CPU generator: a run resumed on
    another device re-seeds from the stored state, the same way every time, with a warning."""
    state = rng_state({})
    state["generators"] = {"augment": _philox_like_state(123, 64)}
    draws = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(0)
        with caplog.at_level("WARNING", logger="robmem.empirics.checkpoint"):
            restore_rng_state(state, {"augment": gen})
        draws.append(torch.rand(4, generator=gen))
    assert torch.equal(draws[0], draws[1])
    assert "re-seeded" in caplog.text and "augment" in caplog.text
    assert not torch.equal(draws[0], torch.rand(4, generator=torch.Generator().manual_seed(0)))
    state["generators"] = {"augment": _philox_like_state(123, 65)}
    other = torch.Generator()
    restore_rng_state(state, {"augment": other})
    assert not torch.equal(torch.rand(4, generator=other), draws[0])


def test_cuda_states_are_restored_only_for_visible_gpus(monkeypatch):
    """A checkpoint from a 2-GPU process resumed where 1 GPU is visible restores GPU 0 only
    (``set_rng_state_all`` would fail on the missing device)."""
    state = rng_state({})
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: calls.append((s.clone(), i)))
    cuda_states = [_philox_like_state(1, 0), _philox_like_state(2, 0)]
    state["cuda"] = cuda_states
    restore_rng_state(state)
    assert len(calls) == 1 and calls[0][1] == 0 and torch.equal(calls[0][0], cuda_states[0])
