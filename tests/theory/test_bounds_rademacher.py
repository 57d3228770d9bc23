"""Oracle tests of the adversarial Rademacher bounds for linear classes (SPEC T4)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robmem.theory.bounds.rademacher import (
    adversarial_rademacher_linear_lower,
    adversarial_rademacher_linear_upper,
    linear_rademacher_estimate,
    rademacher_margin_generalization,
)


def _brute_sup(u: np.ndarray, s: float, eps: float, w_norm: float, p: float) -> tuple[float, float]:
    """sup of <w,u> - eps s ||w||_1 and of <w,u> over the p-ball, by enumerating the points
    where a piecewise-linear function on the ball attains its max: {-W, 0, W}^d for p = inf,
    {0} u {+-W e_j} for p = 1."""
    d = u.shape[0]
    if math.isinf(p):
        cands = np.array(list(itertools.product((-w_norm, 0.0, w_norm), repeat=d)))
    else:
        cands = np.vstack([np.zeros(d), w_norm * np.eye(d), -w_norm * np.eye(d)])
    adv = cands @ u - eps * s * np.abs(cands).sum(axis=1)
    return float(adv.max()), float((cands @ u).max())


@pytest.mark.parametrize("p", [math.inf, 1.0])
def test_exact_estimator_matches_brute_force_suprema(p: float) -> None:
    rng = np.random.default_rng(3)
    n, d, eps, w_norm = 6, 3, 0.3, 1.5
    x, y = rng.normal(size=(n, d)), rng.choice([-1.0, 1.0], size=n)
    adv_vals, clean_vals = [], []
    for sigma in itertools.product((-1.0, 1.0), repeat=n):
        sigma = np.array(sigma)
        u = (sigma * y) @ x / n
        a, c = _brute_sup(u, sigma.mean(), eps, w_norm, p)
        adv_vals.append(a)
        clean_vals.append(c)
    est = linear_rademacher_estimate(x, y, eps=eps, w_norm=w_norm, p=p)
    assert est.exact
    assert est.adversarial == pytest.approx(np.mean(adv_vals), rel=1e-12)
    assert est.clean == pytest.approx(np.mean(clean_vals), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 10),
    d=st.integers(1, 6),
    eps=st.floats(0.0, 2.0),
    p=st.sampled_from([math.inf, 1.0]),
)
def test_exact_value_lies_between_the_bounds(seed, n, d, eps, p) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, d)), rng.choice([-1.0, 1.0], size=n)
    est = linear_rademacher_estimate(x, y, eps=eps, w_norm=1.0, p=p)
    kw = dict(n=n, dim=d, eps=eps, w_norm=1.0, rademacher_clean=est.clean, p=p, r=math.inf)
    lower = adversarial_rademacher_linear_lower(**kw).value
    upper = adversarial_rademacher_linear_upper(**kw).value
    assert lower - 1e-12 <= est.adversarial <= upper + 1e-12


def test_monte_carlo_agrees_with_enumeration_within_its_confidence_interval() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 4)), rng.choice([-1.0, 1.0], size=12)
    exact = linear_rademacher_estimate(x, y, eps=0.4, p=math.inf)
    mc = linear_rademacher_estimate(x, y, eps=0.4, p=math.inf, n_samples=20000, seed=1)
    assert not mc.exact
    assert abs(mc.adversarial - exact.adversarial) <= 4 * mc.adversarial_stderr
    assert abs(mc.clean - exact.clean) <= 4 * mc.clean_stderr


def test_dimension_dependence_unavoidable_unless_p_is_one() -> None:
    # Yin et al.: the lower bound grows like d^{1/q}; for p = 1 (q = inf) it does not.
    kw = dict(n=100, eps=0.1, w_norm=1.0, rademacher_clean=0.0, r=math.inf)
    lo_inf = [adversarial_rademacher_linear_lower(dim=d, p=math.inf, **kw).value for d in (1, 100)]
    lo_one = [adversarial_rademacher_linear_lower(dim=d, p=1.0, **kw).value for d in (1, 100)]
    assert lo_inf[1] == pytest.approx(100 * lo_inf[0])
    assert lo_one[1] == pytest.approx(lo_one[0])


def test_margin_generalization_bound_holds_in_simulation() -> None:
    # Oracle: Monte Carlo over training sets. For a fixed w (a class of one function, whose
    # Rademacher complexity is <= E|sum sigma_i f_i|/n <= 1/sqrt(n)), the ramp-loss gap must
    # exceed the bound in at most a fraction `confidence` of the draws.
    rng = np.random.default_rng(0)
    n, margin, conf = 50, 0.5, 0.1
    w = np.array([1.0, -0.5]) / np.linalg.norm([1.0, -0.5])

    def ramp(m):
        return np.clip(1 - m / margin, 0, 1)

    xb = rng.normal(size=(200000, 2))
    yb = np.sign(xb[:, 0] + 0.3 * rng.normal(size=200000))
    population = ramp(yb * (xb @ w)).mean()
    bound = rademacher_margin_generalization(
        n=n, rademacher=margin / math.sqrt(n), margin=margin, confidence=conf
    ).value
    failures = 0
    for _ in range(300):
        idx = rng.integers(0, xb.shape[0], size=n)
        empirical = ramp(yb[idx] * (xb[idx] @ w)).mean()
        failures += population - empirical > bound
    assert failures / 300 <= conf


def test_estimator_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="p must be 1 or inf"):
        linear_rademacher_estimate(np.ones((2, 2)), [1, -1], eps=0.1, p=2)
    with pytest.raises(ValueError, match="at least one sample"):
        linear_rademacher_estimate(np.ones((0, 2)), [], eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        linear_rademacher_estimate(np.ones((2, 2)), [1, -1], eps=-0.1)
