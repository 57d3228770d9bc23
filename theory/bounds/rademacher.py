r"""Adversarial Rademacher complexity of linear classes (SPEC T4; notes §2.1).

For F = {x ↦ ⟨w, x⟩ : ‖w‖_p ≤ W} and an ℓ_r attack of radius ε, the adversarial class is
F̃ = {(x, y) ↦ min_{‖x'−x‖_r ≤ ε} y⟨w, x'⟩} = {(x, y) ↦ y⟨w, x⟩ − ε‖w‖_{r*}}. With
u = (1/n) Σ σ_i y_i x_i and s = (1/n) Σ σ_i,

    R_S(F̃) = E_σ sup_{‖w‖_p ≤ W} [⟨w, u⟩ − ε s ‖w‖_{r*}].

Let K = sup_{‖w‖_p≤W} ‖w‖_{r*} = W·max(1, d^{1 − 1/r − 1/p}). Derived in notes §2.1 (and in
the docstrings below) are the bounds

    max(R_S(F), εK/(2√(2n)))  ≤  R_S(F̃)  ≤  R_S(F) + εK/(2√n)

(Yin, Ramchandran & Bartlett 2019 Thm 2 for r = ∞; Awasthi, Frank & Mohri 2020 general r).
For p ∈ {1, ∞} and r = ∞ the supremum is separable and :func:`linear_rademacher_estimate`
computes R_S(F̃) exactly by enumerating σ (n ≤ ``MAX_ENUMERATION_N``) or by Monte Carlo.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass

import numpy as np
import sympy as sp

from robmem.theory.bounds.result import BoundResult
from robmem.theory.bounds.validation import (
    require_at_least,
    require_int_at_least,
    require_nonnegative,
    require_norm_exponent,
    require_open_interval,
    require_positive,
)

SOURCE_ARC = (
    "Yin, Ramchandran, Bartlett, ICML 2019, Thm 2 (r = inf); Awasthi, Frank, Mohri, ICML 2020 "
    "(general r); derivation in notes §2.1; SPEC T4"
)
SOURCE_RADEMACHER_GEN = (
    "Bartlett & Mendelson 2002 / Mohri et al. Thm 3.3 with Talagrand contraction "
    "(margin loss); Yin et al. 2019 Thm 1; SPEC T4"
)

#: Largest n for which σ ∈ {±1}^n is enumerated exactly (2^16 sign vectors).
MAX_ENUMERATION_N = 16


def dual_norm_growth(dim: float, p: float, r: float) -> float:
    """max(1, d^{1 − 1/r − 1/p}) = sup_{‖w‖_p ≤ 1} ‖w‖_{r*} (Hölder / norm comparison)."""
    exponent = 1.0 - 1.0 / r - 1.0 / p
    return max(1.0, dim**exponent)


def _linear_arc_bound(side, combine, n_factor, n, dim, eps, w_norm, rademacher_clean, p, r):
    """The ``side`` bound ``combine(R_S(F), εWK/(2√(n_factor·n)))``, inputs validated."""
    n = require_positive("n", n)
    dim = require_at_least("dim", dim, 1)
    eps = require_nonnegative("eps", eps)
    w_norm = require_positive("w_norm", w_norm)
    p = require_norm_exponent("p", p)
    r = require_norm_exponent("r", r)
    rademacher_clean = require_nonnegative("rademacher_clean", rademacher_clean)
    growth = dual_norm_growth(dim, p, r)
    adv_term = eps * w_norm * growth / (2.0 * math.sqrt(n_factor * n))
    return BoundResult(
        value=combine(rademacher_clean, adv_term),
        terms={"rademacher_clean": rademacher_clean, "adversarial_term": adv_term, "K": growth},
        assumptions=("linear class ||w||_p <= w_norm", "l_r attack of radius eps"),
        source=SOURCE_ARC,
        certified=True,
        name=f"adversarial_rademacher_linear_{side}",
    )


def adversarial_rademacher_linear_upper(
    *,
    n: float,
    dim: float,
    eps: float,
    w_norm: float,
    rademacher_clean: float,
    p: float | str = "inf",
    r: float | str = "inf",
) -> BoundResult:
    r"""Upper bound R_S(F̃) ≤ R_S(F) + ε W max(1, d^{1−1/r−1/p}) / (2√n).

    Derivation (notes §2.1): sup(A + B) ≤ sup A + sup B; sup_w(−ε s‖w‖_{r*}) = εK max(0, −s);
    E max(0, −s) = E|s|/2 ≤ 1/(2√n) (Jensen). For r = ∞ this is Yin et al. Thm 2's upper bound.

    Parameters
    ----------
    n : float
        Sample size (> 0).
    dim : float
        Input dimension d (>= 1).
    eps : float
        Attack radius ε (>= 0).
    w_norm : float
        Weight-norm budget W (> 0).
    rademacher_clean : float
        R_S(F) of the clean class (>= 0), e.g. from :func:`linear_rademacher_estimate`.
    p, r : float or "inf"
        Weight-constraint norm and attack norm.
    """
    return _linear_arc_bound(
        "upper", operator.add, 1.0, n, dim, eps, w_norm, rademacher_clean, p, r
    )


def adversarial_rademacher_linear_lower(
    *,
    n: float,
    dim: float,
    eps: float,
    w_norm: float,
    rademacher_clean: float,
    p: float | str = "inf",
    r: float | str = "inf",
) -> BoundResult:
    r"""Lower bound R_S(F̃) ≥ max(R_S(F), ε W max(1, d^{1−1/r−1/p}) / (2√(2n))).

    Derivation: σ and −σ are equally likely, and (u, s) ↦ (−u, −s) with w ↦ −w gives
    R_S(F̃) = E ½[sup_w(⟨w,u⟩ − εs‖w‖) + sup_w(⟨w,u⟩ + εs‖w‖)]. Using one w in both
    suprema gives ≥ R_S(F); using w = 0 in one and the norm-maximizing w (sign chosen so that
    ⟨w,u⟩ ≥ 0) in the other gives ≥ εK E|s|/2, and E|s| ≥ 1/√(2n) (Szarek's sharp Khintchine
    constant). Matches Yin et al. 2019 Thm 2 / Awasthi et al. 2020.

    Parameters are as in :func:`adversarial_rademacher_linear_upper`.
    """
    return _linear_arc_bound("lower", max, 2.0, n, dim, eps, w_norm, rademacher_clean, p, r)


def _arc_symbols():
    return sp.symbols("n dim eps w_norm rademacher_clean p r", positive=True)


def adversarial_rademacher_linear_upper_expr() -> sp.Expr:
    """Sympy form of :func:`adversarial_rademacher_linear_upper`."""
    n, d, eps, W, R, p, r = _arc_symbols()
    return R + eps * W * sp.Max(1, d ** (1 - 1 / r - 1 / p)) / (2 * sp.sqrt(n))


def adversarial_rademacher_linear_lower_expr() -> sp.Expr:
    """Sympy form of :func:`adversarial_rademacher_linear_lower`."""
    n, d, eps, W, R, p, r = _arc_symbols()
    return sp.Max(R, eps * W * sp.Max(1, d ** (1 - 1 / r - 1 / p)) / (2 * sp.sqrt(2 * n)))


@dataclass(frozen=True)
class RademacherEstimate:
    """Exact or Monte-Carlo value of R_S(F) and R_S(F̃) for a linear class.

    Attributes
    ----------
    adversarial, clean : float
        The estimates of R_S(F̃) and R_S(F) (same σ draws).
    adversarial_stderr, clean_stderr : float
        Standard errors (0 when ``exact``).
    exact : bool
        True when σ was enumerated over all 2^n sign vectors.
    n_sign_vectors : int
    """

    adversarial: float
    clean: float
    adversarial_stderr: float
    clean_stderr: float
    exact: bool
    n_sign_vectors: int


def _sup_values(
    u: np.ndarray, s: np.ndarray, eps: float, w_norm: float, p: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-σ suprema (adversarial, clean) for p ∈ {1, ∞}, r = ∞ (separable cases)."""
    abs_u = np.abs(u)
    if math.isinf(p):
        adv = w_norm * np.maximum(0.0, abs_u - eps * s[:, None]).sum(axis=1)
        clean = w_norm * abs_u.sum(axis=1)  # sup_{|w_j|<=W} <w,u> = W ||u||_1
    else:  # p == 1
        adv = w_norm * np.maximum(0.0, abs_u.max(axis=1) - eps * s)
        clean = w_norm * abs_u.max(axis=1)  # W ||u||_inf
    return adv, clean


def linear_rademacher_estimate(
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    w_norm: float = 1.0,
    p: float | str = "inf",
    n_samples: int | None = None,
    seed: int = 0,
) -> RademacherEstimate:
    r"""Exact (enumeration) or Monte-Carlo R_S(F) and R_S(F̃), ℓ∞ attack, p ∈ {1, ∞}.

    With r = ∞ (so r* = 1) the supremum separates (notes §2.1, derived):

    * p = ∞: sup_{‖w‖_∞≤W} ⟨w,u⟩ − εs‖w‖₁ = W Σ_j max(0, |u_j| − εs);
    * p = 1: sup_{‖w‖₁≤W} ⟨w,u⟩ − εs‖w‖₁ = W max(0, ‖u‖_∞ − εs).

    E_σ is computed exactly over all 2^n sign vectors when n ≤ ``MAX_ENUMERATION_N`` and
    ``n_samples`` is None, and by Monte Carlo with ``n_samples`` draws otherwise.

    Parameters
    ----------
    x : ndarray, shape (n, d)
    y : ndarray, shape (n,), entries ±1
    eps : float
        ℓ∞ attack radius (>= 0).
    w_norm : float
        W (> 0).
    p : 1 or "inf"
        Weight-constraint norm.
    n_samples : int, optional
        Monte-Carlo draws; default: enumerate if n ≤ 16, else 20000 draws.
    seed : int
        Seed of the Monte-Carlo draws.
    """
    p = require_norm_exponent("p", p)
    if p not in (1.0, math.inf):
        raise ValueError(f"p must be 1 or inf for the exact estimator, got {p!r}")
    eps = require_nonnegative("eps", eps)
    w_norm = require_positive("w_norm", w_norm)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = x.shape[0]
    if n == 0:
        raise ValueError("x must hold at least one sample (n in [1, inf)), got 0")
    if y.shape[0] != n:
        raise ValueError(f"y must have length n = {n}, got {y.shape[0]}")
    exact = n_samples is None and n <= MAX_ENUMERATION_N
    if exact:
        sigma = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
    else:
        draws = require_int_at_least("n_samples", n_samples if n_samples is not None else 20000, 2)
        rng = np.random.default_rng(seed)
        sigma = rng.choice((-1.0, 1.0), size=(draws, n))
    u = (sigma * y[None, :]) @ x / n
    s = sigma.mean(axis=1)
    adv, clean = _sup_values(u, s, eps, w_norm, p)
    m = sigma.shape[0]
    se = (lambda v: 0.0) if exact else (lambda v: float(v.std(ddof=1) / math.sqrt(m)))
    return RademacherEstimate(
        adversarial=float(adv.mean()),
        clean=float(clean.mean()),
        adversarial_stderr=se(adv),
        clean_stderr=se(clean),
        exact=exact,
        n_sign_vectors=m,
    )


def rademacher_margin_generalization(
    *, n: float, rademacher: float, margin: float, confidence: float
) -> BoundResult:
    r"""Margin-loss Rademacher generalization gap 2R_S/γ + 3√(log(2/Δ)/(2n)).

    Statement (Bartlett & Mendelson 2002; Mohri et al. Thm 3.3 with Talagrand's contraction
    lemma; Yin et al. 2019 Thm 1 for the adversarial class): for the γ-ramp loss with values in
    [0, 1], with probability ≥ 1 − Δ, E ℓ ≤ (1/n) Σ ℓ_i + 2R_S(F̃)/γ + 3√(log(2/Δ)/(2n)).
    Returns the gap term.

    Parameters
    ----------
    n : float
        Sample size (> 0).
    rademacher : float
        Empirical Rademacher complexity, e.g. R_S(F̃) (>= 0).
    margin : float
        Ramp margin γ (> 0).
    confidence : float
        Δ in (0, 1).
    """
    n = require_positive("n", n)
    rademacher = require_nonnegative("rademacher", rademacher)
    margin = require_positive("margin", margin)
    confidence = require_open_interval("confidence", confidence, 0.0, 1.0)
    complexity = 2.0 * rademacher / margin
    conf_term = 3.0 * math.sqrt(math.log(2.0 / confidence) / (2.0 * n))
    return BoundResult(
        value=complexity + conf_term,
        terms={"complexity_term": complexity, "confidence_term": conf_term},
        assumptions=("ramp loss with margin gamma, values in [0, 1]", "n i.i.d. samples"),
        source=SOURCE_RADEMACHER_GEN,
        certified=True,
        name="rademacher_margin_generalization",
    )


def rademacher_margin_generalization_expr() -> sp.Expr:
    """Sympy form of :func:`rademacher_margin_generalization`."""
    n, R, g, conf = sp.symbols("n rademacher margin confidence", positive=True)
    return 2 * R / g + 3 * sp.sqrt(sp.log(2 / conf) / (2 * n))
