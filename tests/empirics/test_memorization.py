"""Tests of empirics.memorization (SPEC E6): bookkeeping checked by brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from empirics.memorization import (
    NEVER,
    RobustFitTracker,
    memorization_callback,
    per_example_robust_loss,
)


def _brute_first(corr: np.ndarray, epochs: list[int]) -> np.ndarray:
    out = []
    for j in range(corr.shape[1]):
        hits = [epochs[k] for k in range(corr.shape[0]) if corr[k, j]]
        out.append(hits[0] if hits else NEVER)
    return np.array(out)


def _brute_stable(corr: np.ndarray, epochs: list[int]) -> np.ndarray:
    out = []
    for j in range(corr.shape[1]):
        val = NEVER
        for k in range(corr.shape[0]):
            if all(corr[k:, j]):
                val = epochs[k]
                break
        out.append(val)
    return np.array(out)


@given(arrays(np.bool_, st.tuples(st.integers(1, 6), st.integers(1, 8))))
def test_fit_epochs_match_brute_force(corr: np.ndarray) -> None:
    n_rec, n = corr.shape
    epochs = [2 * k + 1 for k in range(n_rec)]
    tr = RobustFitTracker(n)
    for k in range(n_rec):
        tr.record(epochs[k], np.full(n, float(k)), corr[k])
    np.testing.assert_array_equal(tr.first_fitted_epoch(), _brute_first(corr, epochs))
    stable = _brute_stable(corr, epochs)
    np.testing.assert_array_equal(tr.stably_fitted_epoch(), stable)
    np.testing.assert_array_equal(tr.late_fitted(epochs[-1]), stable >= epochs[-1])


def test_summary_and_bad_records() -> None:
    tr = RobustFitTracker(3)
    tr.record(1, np.array([2.0, 0.1, 3.0]), np.array([False, True, False]))
    tr.record(2, np.array([1.0, 0.1, 3.0]), np.array([True, True, False]))
    s = tr.summary(late_epoch=2, reference_epoch=1)
    assert s["n_late_fitted"] == 1
    assert s["late_loss_at_reference"] == pytest.approx(2.0)
    assert s["other_loss_at_reference"] == pytest.approx(1.55)
    assert s["fraction_never_stably_fitted"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="epoch"):
        tr.record(2, np.zeros(3), np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        tr.record(3, np.zeros(2), np.zeros(2, dtype=bool))
    with pytest.raises(ValueError, match="reference_epoch"):
        tr.summary(late_epoch=1, reference_epoch=7)
    with pytest.raises(ValueError, match="n_examples"):
        RobustFitTracker(0)
    with pytest.raises(ValueError, match="at least one record"):
        RobustFitTracker(2).summary(late_epoch=1)


def test_per_example_loss_with_identity_attack_is_cross_entropy() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.rand(11, 4), torch.randint(0, 3, (11,))
    loss, correct = per_example_robust_loss(net, x, y, lambda m, a, b: a, batch_size=4)
    with torch.no_grad():
        logits = net(x)
    want = torch.nn.functional.cross_entropy(logits, y, reduction="none").numpy()
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_array_equal(correct, (logits.argmax(1) == y).numpy())
    with pytest.raises(ValueError, match="batch_size"):
        per_example_robust_loss(net, x, y, lambda m, a, b: a, batch_size=0)


def test_callback_records_into_tracker() -> None:
    net = torch.nn.Linear(4, 3)
    x, y = torch.rand(6, 4), torch.randint(0, 3, (6,))
    tr = RobustFitTracker(6)
    cb = memorization_callback(x, y, lambda m, a, b: a, tr, epochs=[1, 3])

    class Ctx:
        model = net
        epoch = 1

    out = cb(Ctx())
    assert 0.0 <= out["memorization/robust_train_acc"] <= 1.0
    Ctx.epoch = 2
    assert cb(Ctx()) == {}
    assert tr.epochs == [1]
