"""Fixtures shared by the attack tests (tests/empirics/test_attacks.py, test_cuda_paths.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robmem.empirics.data import load_dataset
from robmem.empirics.models import build_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def fit_plain(model: torch.nn.Module, x, y, epochs: int) -> torch.nn.Module:
    """Standard training (Adam 3e-3, batches of 128, no attack) for ``epochs``; eval mode."""
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(epochs):
        for i in range(0, len(y), 128):
            loss = F.cross_entropy(model(x[i : i + 128]), y[i : i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def plain_fit():
    """:func:`fit_plain`, for tests that train their own model."""
    return fit_plain


@pytest.fixture(scope="module")
def trained_mlp(digits):
    """An MLP trained without attacks on digits, 15 epochs of Adam, on the CPU, in eval mode."""
    torch.manual_seed(0)
    model = build_model("mlp", 10, digits.in_shape, hidden=(64,))
    return fit_plain(model, digits.train_x, digits.train_y, 15)
