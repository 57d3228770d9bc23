"""Tests of the linear-classifier facts (SPEC T3): closed forms vs brute force, cvxpy vs grid."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robmem.theory.linear import (
    NotRobustlySeparableError,
    project_onto_lp_ball,
    robust_margin,
    robust_max_margin_direction,
    worst_case_perturbation,
)


def _pga_min_margin(w, x, y, delta, p, steps=500):
    """Projected gradient descent on y w'(x + xi) over the l_p ball (p in {2, inf})."""
    xi = np.zeros_like(x)
    for _ in range(steps):
        xi = project_onto_lp_ball(xi - 0.05 * delta * y * w, delta, p)
    return y * w @ (x + xi)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    delta=st.floats(0.0, 2.0),
    p=st.sampled_from([1.0, 2.0, math.inf, 3.0]),
)
def test_closed_form_worst_perturbation_attains_robust_margin(seed, delta, p) -> None:
    rng = np.random.default_rng(seed)
    w, x, y = rng.normal(size=4), rng.normal(size=4), float(rng.choice([-1, 1]))
    xi = worst_case_perturbation(w, y, delta=delta, p=p)
    assert np.linalg.norm(xi, p) <= delta * (1 + 1e-9) + 1e-12
    closed = robust_margin(w, x[None], [y], delta=delta, p=p)[0]
    assert y * w @ (x + xi) == pytest.approx(closed, abs=1e-9)
    # brute-force oracles: vertices of the l1 / l_inf balls; PGD for l2
    if p == 1.0:
        cands = np.vstack([delta * np.eye(4), -delta * np.eye(4)])
    elif math.isinf(p):
        cands = delta * np.array(list(itertools.product((-1.0, 1.0), repeat=4)))
    elif p == 2.0:
        assert _pga_min_margin(w, x, y, delta, 2.0) == pytest.approx(closed, abs=1e-6)
        return
    else:
        samples = rng.normal(size=(20000, 4))
        cands = delta * samples / np.linalg.norm(samples, p, axis=1, keepdims=True)
        assert (y * (x + cands) @ w).min() >= closed - 1e-9
        return
    assert (y * (x + cands) @ w).min() == pytest.approx(closed, abs=1e-9)


def _grid_max_margin(x, y, delta, p, n_angles=20000):
    theta = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    ws = np.c_[np.cos(theta), np.sin(theta)]
    q = 1.0 if math.isinf(p) else (math.inf if p == 1 else p / (p - 1))
    vals = (ws @ (y[:, None] * x).T).min(axis=1) - delta * np.linalg.norm(ws, q, axis=1)
    k = int(np.argmax(vals))
    return vals[k], ws[k]


@pytest.mark.parametrize("p", [2.0, math.inf, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cvxpy_max_margin_matches_grid_search_in_2d(p, seed) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    y = rng.choice([-1.0, 1.0], size=n)
    x = y[:, None] * (np.array([1.0, 0.4]) + 0.6 * rng.uniform(-1, 1, size=(n, 2)))
    delta = 0.1
    best, w_grid = _grid_max_margin(x, y, delta, p)
    res = robust_max_margin_direction(x, y, delta=delta, p=p)
    assert res.margin == pytest.approx(best, abs=1e-3)
    assert res.margin >= best - 1e-7  # the convex optimum is at least the grid's best
    assert res.direction @ w_grid > 0.999
    assert 0 <= res.gap < 1e-6
    assert res.dual_value >= best - 1e-9


def test_non_separable_data_report_lp_evidence() -> None:
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = np.array([1.0, 1.0, -1.0, -1.0])  # XOR-like through the origin: not separable
    with pytest.raises(NotRobustlySeparableError, match="LP evidence") as info:
        robust_max_margin_direction(x, y, delta=0.0, p="inf")
    ev = info.value.evidence
    assert np.all(ev.weights >= 0) and ev.weights.sum() == pytest.approx(1.0)
    assert np.linalg.norm((ev.weights * y) @ x, np.inf) <= 1e-9
    # separable clean, but not at a radius larger than the margin
    x2, y2 = np.array([[1.0, 0.2], [-1.0, 0.3]]), np.array([1.0, -1.0])
    robust_max_margin_direction(x2, y2, delta=0.5, p=2)
    with pytest.raises(NotRobustlySeparableError) as info:
        robust_max_margin_direction(x2, y2, delta=1.5, p=2)
    comb = info.value.evidence.combination
    assert np.linalg.norm(comb, 2) <= 1.5 + 1e-6


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        robust_max_margin_direction(np.zeros((0, 2)), np.zeros(0), delta=0.1)
    with pytest.raises(ValueError, match="delta"):
        robust_max_margin_direction(np.ones((2, 2)), [1, -1], delta=-0.1)
    with pytest.raises(ValueError, match="y must have entries"):
        robust_margin(np.ones(2), np.ones((2, 2)), [1, 0], delta=0.1)
    with pytest.raises(ValueError, match="p must be a norm exponent"):
        worst_case_perturbation(np.ones(2), 1.0, delta=0.1, p=0.5)


def test_projection_matches_brute_force() -> None:
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    v = rng.normal(size=5) * 2
    for p in (1.0, 2.0, math.inf):
        z = project_onto_lp_ball(v, 1.0, p)
        cons = {"type": "ineq", "fun": lambda u, p=p: 1.0 - np.linalg.norm(u, p)}
        ref = minimize(lambda u: ((u - v) ** 2).sum(), np.zeros(5), constraints=[cons]).x
        assert np.linalg.norm(z - v) <= np.linalg.norm(ref - v) + 1e-6
        assert np.linalg.norm(z, p) <= 1 + 1e-9
