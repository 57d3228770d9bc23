r"""PAC-Bayes bounds and the kl-inversion certificate (SPEC T4, E5).

* :func:`binary_kl` and :func:`kl_inverse_upper` — kl(q‖p) for Bernoulli means and its upper
  inverse sup{p ∈ [q, 1] : kl(q‖p) ≤ c}, by bisection.
* :func:`pac_bayes_kl_bound` — Maurer's (2004) PAC-Bayes-kl bound, certified.
* :func:`pac_bayes_classic_bound` — its Pinsker relaxation q̂ + √((KL + ln(2√n/Δ))/(2n)).
* :func:`gaussian_kl` — KL(N(μ_Q, σ_Q² I) ‖ N(μ_P, σ_P² I)).
* :func:`gaussian_posterior_certificate` — the full certificate for a Gaussian posterior
  whose empirical risk is itself estimated by Monte Carlo (Dziugaite & Roy 2017; Pérez-Ortiz
  et al. 2021), with a union bound over the prior-variance grid the σ search picks from.
"""

from __future__ import annotations

import math

import sympy as sp

from robmem.theory.bounds.result import BoundResult
from robmem.theory.bounds.validation import (
    require_at_least,
    require_closed_interval,
    require_int_at_least,
    require_nonnegative,
    require_open_interval,
    require_positive,
)

SOURCE_MAURER = (
    "Maurer 2004 / Seeger 2002 PAC-Bayes-kl bound, ln(2 sqrt(n)/delta) form; "
    "kl inversion as in Perez-Ortiz et al. JMLR 2021 (PBB inv_kl); SPEC T4"
)
SOURCE_MC = "Langford & Caruana 2002 / Dziugaite & Roy 2017 (sample-convergence bound); SPEC T4"

#: Bisection stops when the bracket is narrower than this (absolute, on a probability).
KL_INVERSE_TOLERANCE = 1e-12
#: Upper end of the bisection bracket (kl(q‖1) is infinite for q < 1).
KL_INVERSE_CAP = 1.0 - 1e-15


def binary_kl(q: float, p: float) -> float:
    """kl(q‖p) = q ln(q/p) + (1−q) ln((1−q)/(1−p)) for q, p ∈ [0, 1] (∞ where undefined)."""
    q = require_closed_interval("q", q, 0.0, 1.0)
    p = require_closed_interval("p", p, 0.0, 1.0)
    total = 0.0
    if q > 0:
        if p == 0:
            return math.inf
        total += q * math.log(q / p)
    if q < 1:
        if p == 1:
            return math.inf
        total += (1 - q) * math.log((1 - q) / (1 - p))
    return max(total, 0.0)


def kl_inverse_upper(q: float, c: float) -> float:
    """sup{p ∈ [q, 1] : kl(q‖p) ≤ c}, by bisection to ``KL_INVERSE_TOLERANCE``.

    Parameters
    ----------
    q : float
        Empirical mean in [0, 1].
    c : float
        Budget (>= 0).

    Returns
    -------
    float
        The upper inverse; 1.0 when even p → 1 stays within budget.
    """
    q = require_closed_interval("q", q, 0.0, 1.0)
    c = require_nonnegative("c", c)
    if q >= 1.0:
        return 1.0
    if binary_kl(q, KL_INVERSE_CAP) <= c:
        return 1.0
    lo, hi = q, KL_INVERSE_CAP
    while hi - lo > KL_INVERSE_TOLERANCE:
        mid = 0.5 * (lo + hi)
        if binary_kl(q, mid) <= c:
            lo = mid
        else:
            hi = mid
    return hi  # kl(q‖hi) >= c, so hi is a valid upper end


def _checked_risk_and_budget(
    n: float, empirical_risk: float, kl: float, confidence: float
) -> tuple[float, float]:
    """Validate the PAC-Bayes-kl inputs; return L̂(Q) and the budget (KL + ln(2√n/Δ))/n."""
    n = require_at_least("n", n, 1)
    empirical_risk = require_closed_interval("empirical_risk", empirical_risk, 0.0, 1.0)
    kl = require_nonnegative("kl", kl)
    confidence = require_open_interval("confidence", confidence, 0.0, 1.0)
    return empirical_risk, (kl + math.log(2.0 * math.sqrt(n) / confidence)) / n


def pac_bayes_kl_bound(
    *, n: float, empirical_risk: float, kl: float, confidence: float
) -> BoundResult:
    r"""Maurer's PAC-Bayes-kl bound: L(Q) ≤ kl⁻¹(L̂(Q), (KL(Q‖P) + ln(2√n/Δ))/n).

    Statement (Maurer 2004, Seeger 2002): for a prior P fixed before seeing the n i.i.d.
    samples and a loss in [0, 1], with probability ≥ 1 − Δ, for all posteriors Q,
    kl(L̂(Q)‖L(Q)) ≤ (KL(Q‖P) + ln(2√n/Δ))/n. Inverting gives the certificate.

    The sympy form is implicit: the residual kl(q̂‖value) − budget, which vanishes at the
    bound whenever the bound is below 1.

    Parameters
    ----------
    n : float
        Sample size (>= 1).
    empirical_risk : float
        L̂(Q) in [0, 1].
    kl : float
        KL(Q‖P) (>= 0).
    confidence : float
        Δ in (0, 1).
    """
    empirical_risk, budget = _checked_risk_and_budget(n, empirical_risk, kl, confidence)
    return BoundResult(
        value=kl_inverse_upper(empirical_risk, budget),
        terms={"budget": budget, "empirical_risk": empirical_risk},
        assumptions=(
            "prior independent of the sample",
            "loss bounded in [0, 1]",
            "n i.i.d. samples; holds with probability >= 1 - confidence",
        ),
        source=SOURCE_MAURER,
        certified=True,
        name="pac_bayes_kl_bound",
    )


def pac_bayes_kl_bound_expr() -> sp.Expr:
    """Implicit sympy form of :func:`pac_bayes_kl_bound`: residual in the symbol ``value``."""
    n, q, kl, conf, v = sp.symbols("n empirical_risk kl confidence value", positive=True)
    kl_qv = q * sp.log(q / v) + (1 - q) * sp.log((1 - q) / (1 - v))
    return kl_qv - (kl + sp.log(2 * sp.sqrt(n) / conf)) / n


def pac_bayes_classic_bound(
    *, n: float, empirical_risk: float, kl: float, confidence: float
) -> BoundResult:
    r"""Pinsker relaxation of the kl bound: L̂(Q) + √((KL + ln(2√n/Δ))/(2n)).

    Follows from :func:`pac_bayes_kl_bound` and Pinsker's inequality kl(q‖p) ≥ 2(q − p)²
    (PBB's ``fclassic``). Same parameters.
    """
    empirical_risk, budget = _checked_risk_and_budget(n, empirical_risk, kl, confidence)
    slack = math.sqrt(budget / 2.0)
    return BoundResult(
        value=empirical_risk + slack,
        terms={"empirical_risk": empirical_risk, "slack": slack},
        assumptions=("as pac_bayes_kl_bound",),
        source=SOURCE_MAURER + " + Pinsker",
        certified=True,
        name="pac_bayes_classic_bound",
    )


def pac_bayes_classic_bound_expr() -> sp.Expr:
    """Sympy form of :func:`pac_bayes_classic_bound`."""
    n, q, kl, conf = sp.symbols("n empirical_risk kl confidence", positive=True)
    return q + sp.sqrt((kl + sp.log(2 * sp.sqrt(n) / conf)) / (2 * n))


def gaussian_kl(
    *, dist_sq: float, sigma_posterior: float, sigma_prior: float, n_params: int
) -> float:
    r"""KL(N(μ_Q, σ_Q² I_k) ‖ N(μ_P, σ_P² I_k)).

    = ½[k σ_Q²/σ_P² + ‖μ_Q − μ_P‖²/σ_P² − k + 2k ln(σ_P/σ_Q)].
    """
    dist_sq = require_nonnegative("dist_sq", dist_sq)
    sq = require_positive("sigma_posterior", sigma_posterior)
    sp_ = require_positive("sigma_prior", sigma_prior)
    k = require_int_at_least("n_params", n_params, 1)
    ratio = (sq / sp_) ** 2
    return 0.5 * (k * ratio + dist_sq / sp_**2 - k + 2 * k * math.log(sp_ / sq))


def gaussian_posterior_certificate(
    *,
    n: int,
    mc_error_rate: float,
    mc_samples: int,
    dist_sq: float,
    sigma: float,
    n_params: int,
    confidence: float,
    mc_confidence: float,
    n_sigma_candidates: int = 1,
) -> BoundResult:
    r"""Certified test error of the Gaussian posterior Q = N(w, σ²I) with prior P = N(w₀, σ²I).

    Two steps (Dziugaite & Roy 2017; Pérez-Ortiz et al. 2021, ``compute_final_stats_risk``):

    1. the empirical risk L̂(Q) is estimated by ``mc_samples`` posterior draws, so with
       probability ≥ 1 − Δ', L̂(Q) ≤ q̄ = kl⁻¹(ê_MC, ln(2/Δ')/M);
    2. with probability ≥ 1 − Δ, L(Q) ≤ kl⁻¹(q̄, (KL(Q‖P) + ln(2√n/Δ) + ln N_σ)/n),
       where KL = ‖w − w₀‖²/(2σ²) and ln N_σ pays a union bound over the N_σ prior variances
       the σ search could have returned (the prior must not depend on the sample otherwise).

    The result holds with probability ≥ 1 − Δ − Δ'.

    Parameters
    ----------
    n : int
        Training-set size used for the empirical risk (>= 1).
    mc_error_rate : float
        Error rate averaged over posterior draws, in [0, 1].
    mc_samples : int
        Number of posterior draws M (>= 1).
    dist_sq : float
        ‖w − w₀‖² (>= 0).
    sigma : float
        Posterior and prior standard deviation (> 0).
    n_params : int
        Number of perturbed parameters (>= 1).
    confidence, mc_confidence : float
        Δ and Δ' in (0, 1).
    n_sigma_candidates : int
        Size of the grid σ was chosen from (>= 1).
    """
    n = require_int_at_least("n", n, 1)
    mc_error_rate = require_closed_interval("mc_error_rate", mc_error_rate, 0.0, 1.0)
    mc_samples = require_int_at_least("mc_samples", mc_samples, 1)
    confidence = require_open_interval("confidence", confidence, 0.0, 1.0)
    mc_confidence = require_open_interval("mc_confidence", mc_confidence, 0.0, 1.0)
    n_sigma_candidates = require_int_at_least("n_sigma_candidates", n_sigma_candidates, 1)
    kl = gaussian_kl(dist_sq=dist_sq, sigma_posterior=sigma, sigma_prior=sigma, n_params=n_params)
    risk_upper = kl_inverse_upper(mc_error_rate, math.log(2.0 / mc_confidence) / mc_samples)
    kl_total = kl + math.log(n_sigma_candidates)
    result = pac_bayes_kl_bound(n=n, empirical_risk=risk_upper, kl=kl_total, confidence=confidence)
    return BoundResult(
        value=result.value,
        terms={
            "kl": kl,
            "union_log": math.log(n_sigma_candidates),
            "empirical_risk_upper": risk_upper,
            "mc_error_rate": mc_error_rate,
            "budget": result.terms["budget"],
        },
        assumptions=result.assumptions
        + (
            "posterior N(w, sigma^2 I), prior N(w0, sigma^2 I) with w0 independent of the sample",
            "sigma chosen from a grid of n_sigma_candidates values",
            "holds with probability >= 1 - confidence - mc_confidence",
        ),
        source=SOURCE_MAURER + "; " + SOURCE_MC,
        certified=True,
        name="gaussian_posterior_certificate",
    )
