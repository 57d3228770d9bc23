"""Oracle tests of the flatness bounds (SPEC T4): brute force and first-order expansions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robmem.theory.bounds.flatness import (
    first_order_robust_gap,
    global_flatness_gap,
    linear_logistic_first_order_bound,
    prop64_gap_lower,
)


def _logistic(m: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, -m)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), delta=st.floats(0.01, 1.0))
def test_first_order_bound_dominates_brute_force_linf_gap(seed: int, delta: float) -> None:
    # Oracle: the loss is convex in x, so its max over the l_inf box is at one of the 2^d
    # vertices; enumerate them (d = 3) independently of the closed forms.
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=3), float(rng.normal())
    x, y = rng.normal(size=(6, 3)), rng.choice([-1.0, 1.0], size=6)
    corners = np.array(list(itertools.product((-1.0, 1.0), repeat=3))) * delta
    worst = np.array(
        [
            max(_logistic(yi * ((xi + c) @ w + b)) for c in corners)
            for xi, yi in zip(x, y, strict=True)
        ]
    )
    clean = _logistic(y * (x @ w + b))
    res = linear_logistic_first_order_bound(w, b, x, y, delta=delta, p="inf")
    assert res.terms["robust_loss"] == pytest.approx(worst.mean(), rel=1e-10)
    assert res.terms["clean_loss"] == pytest.approx(clean.mean(), rel=1e-10)
    assert worst.mean() - clean.mean() <= res.value + 1e-12
    # the sup of the gradient's l1 norm is also attained at a vertex
    grads = [
        max(np.abs(w).sum() / (1 + np.exp(yi * ((xi + c) @ w + b))) for c in corners)
        for xi, yi in zip(x, y, strict=True)
    ]
    assert res.terms["grad_dual_sup"] == pytest.approx(np.mean(grads), rel=1e-10)


@pytest.mark.parametrize("p", [2.0, "inf", 1.0])
def test_first_order_bound_is_tight_to_first_order(p) -> None:
    # Oracle: Taylor expansion; (robust - clean) / bound -> 1 as delta -> 0.
    rng = np.random.default_rng(0)
    w, x, y = rng.normal(size=4), rng.normal(size=(10, 4)), rng.choice([-1.0, 1.0], size=10)
    ratios = []
    for delta in (1e-2, 1e-3, 1e-4):
        r = linear_logistic_first_order_bound(w, 0.0, x, y, delta=delta, p=p)
        ratios.append(r.terms["robust_gap"] / r.value)
    assert all(ratio <= 1 + 1e-9 for ratio in ratios)
    assert abs(ratios[-1] - 1) < 1e-3 and abs(ratios[-1] - 1) < abs(ratios[0] - 1)


def test_prop64_form_matches_small_radius_gap_for_linear_models() -> None:
    # Oracle: for a linear model the robust - clean loss is delta * E||grad||_1 + O(delta^2),
    # so the Omega form with C = 1 is asymptotically exact.
    rng = np.random.default_rng(1)
    w, x, y = rng.normal(size=5), rng.normal(size=(50, 5)), rng.choice([-1.0, 1.0], size=50)
    delta = 1e-4
    margins = y * (x @ w)
    grad_l1 = np.abs(w).sum() / (1 + np.exp(margins))
    gap = np.mean(_logistic(margins - delta * np.abs(w).sum()) - _logistic(margins))
    lower = prop64_gap_lower(delta=delta, grad_l1_mean=float(grad_l1.mean()), C=1.0)
    assert lower.value == pytest.approx(gap, rel=1e-3)
    assert not lower.certified


def test_global_flatness_gap_hand_value_and_rate() -> None:
    r = global_flatness_gap(n=10**4, dim=2, grad_term=3.0, c_dl=1.0, confidence=0.25, C=2.0)
    # 2 * 10^(-4/4) * (3 + 1/0.5) = 2 * 0.1 * 5
    assert r.value == pytest.approx(1.0, rel=1e-12)
    assert not r.certified
    # rate N^{-1/(d+2)}: multiplying N by 2^(d+2) halves the bound
    r2 = global_flatness_gap(n=10**4 * 16, dim=2, grad_term=3.0, c_dl=1.0, confidence=0.25, C=2.0)
    assert r2.value == pytest.approx(0.5, rel=1e-12)


def test_first_order_gap_is_certified_and_rejects_bad_input() -> None:
    assert first_order_robust_gap(delta=0.5, grad_dual_sup=2.0).value == 1.0
    assert first_order_robust_gap(delta=0.5, grad_dual_sup=2.0).certified
    with pytest.raises(ValueError, match="delta"):
        first_order_robust_gap(delta=-1, grad_dual_sup=2.0)
    with pytest.raises(ValueError, match="p"):
        linear_logistic_first_order_bound(np.ones(2), 0.0, np.ones((1, 2)), [1], delta=0.1, p=0.5)
    with pytest.raises(ValueError, match="confidence"):
        global_flatness_gap(n=10, dim=2, grad_term=1, c_dl=1, confidence=1.0)
    assert math.isfinite(global_flatness_gap(n=1, dim=1, grad_term=0, c_dl=0, confidence=0.5).value)
