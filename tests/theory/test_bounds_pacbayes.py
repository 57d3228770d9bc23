"""Oracle tests of the PAC-Bayes bounds and the kl inversion (SPEC T4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from robmem.theory.bounds.pacbayes import (
    binary_kl,
    gaussian_kl,
    gaussian_posterior_certificate,
    kl_inverse_upper,
    pac_bayes_classic_bound,
    pac_bayes_kl_bound,
)


@settings(max_examples=60, deadline=None)
@given(q=st.floats(0.0, 0.99), c=st.floats(1e-4, 3.0))
def test_kl_inverse_matches_brentq_root(q: float, c: float) -> None:
    value = kl_inverse_upper(q, c)
    if binary_kl(q, 1 - 1e-15) <= c:
        assert value == 1.0
        return
    root = brentq(lambda p: binary_kl(q, p) - c, q, 1 - 1e-15, xtol=1e-14)
    assert value == pytest.approx(root, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 10**6),
    q=st.floats(0.0, 1.0),
    kl=st.floats(0.0, 100.0),
    conf=st.floats(1e-4, 0.99),
)
def test_kl_bound_is_never_looser_than_pinsker(n, q, kl, conf) -> None:
    tight = pac_bayes_kl_bound(n=n, empirical_risk=q, kl=kl, confidence=conf).value
    loose = pac_bayes_classic_bound(n=n, empirical_risk=q, kl=kl, confidence=conf).value
    assert q <= tight <= min(1.0, loose) + 1e-9


def test_kl_bound_holds_in_simulation() -> None:
    # Oracle: Monte Carlo. A posterior equal to the prior (KL = 0) with true risk p; the bound
    # computed from n Bernoulli(p) losses must fail in at most a `confidence` fraction of draws.
    rng = np.random.default_rng(0)
    p, n, conf = 0.3, 200, 0.1
    fails = sum(
        pac_bayes_kl_bound(
            n=n, empirical_risk=float(rng.binomial(n, p) / n), kl=0.0, confidence=conf
        ).value
        < p
        for _ in range(2000)
    )
    assert fails / 2000 <= conf


def test_gaussian_kl_matches_monte_carlo() -> None:
    rng = np.random.default_rng(1)
    k, mu_q, mu_p, sq, sp_ = 3, np.array([0.5, -1.0, 2.0]), np.zeros(3), 0.7, 1.3
    z = mu_q + sq * rng.normal(size=(400000, k))
    log_q = -0.5 * (((z - mu_q) / sq) ** 2).sum(1) - k * math.log(sq)
    log_p = -0.5 * (((z - mu_p) / sp_) ** 2).sum(1) - k * math.log(sp_)
    mc = float(np.mean(log_q - log_p))
    exact = gaussian_kl(
        dist_sq=float(((mu_q - mu_p) ** 2).sum()), sigma_posterior=sq, sigma_prior=sp_, n_params=k
    )
    assert mc == pytest.approx(exact, abs=0.02)


def test_certificate_composes_the_two_inversions() -> None:
    r = gaussian_posterior_certificate(
        n=1000,
        mc_error_rate=0.1,
        mc_samples=100,
        dist_sq=2.0,
        sigma=0.5,
        n_params=10,
        confidence=0.05,
        mc_confidence=0.01,
        n_sigma_candidates=2**15,
    )
    q_bar = kl_inverse_upper(0.1, math.log(2 / 0.01) / 100)
    kl = 2.0 / (2 * 0.25) + 15 * math.log(2)
    expected = kl_inverse_upper(q_bar, (kl + math.log(2 * math.sqrt(1000) / 0.05)) / 1000)
    assert r.value == pytest.approx(expected, rel=1e-12)
    assert 0.1 < q_bar < r.value < 1


@pytest.mark.parametrize("bad", [{"confidence": 0.0}, {"confidence": 1.0}, {"n": 0}, {"kl": -1}])
def test_bad_input(bad) -> None:
    kw = dict(n=10, empirical_risk=0.1, kl=1.0, confidence=0.05) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        pac_bayes_kl_bound(**kw)
