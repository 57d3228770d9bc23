r"""Exact robustness facts for linear classifiers (SPEC T3; [P1] §5).

* :func:`worst_case_perturbation` — argmin_{‖ξ‖_p≤δ} y wᵀ(x+ξ) = −δ·y·∂‖w‖_q (closed form).
* :func:`robust_margin` — min_{‖ξ‖_p≤δ} y (wᵀ(x+ξ) + b) = y(wᵀx + b) − δ‖w‖_q.
* :func:`robust_max_margin_direction` — argmax_{‖w‖₂≤1} min_i y_i wᵀx_i − δ‖w‖_q as a convex
  program in cvxpy, returned with a dual certificate (an upper bound on the optimum) and the
  optimality gap; non-separable data raise :class:`NotRobustlySeparableError` carrying the
  LP evidence.

cvxpy is imported lazily (the GPU image lacks it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from robmem.theory.bounds.validation import (
    dual_exponent,
    require_nonnegative,
    require_norm_exponent,
)

logger = logging.getLogger(__name__)

#: Optimal margins at or below this (relative to max_i ‖x_i‖₂) count as "not separable";
#: it is well above the interior-point solvers' default accuracy (~1e-8).
SEPARABILITY_TOLERANCE = 1e-6


def _as_data(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one sample (n in [1, inf)), got empty data")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have length n = {x.shape[0]}, got {y.shape[0]}")
    if not np.all(np.isin(y, (-1.0, 1.0))):
        raise ValueError("y must have entries in {-1, +1}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    return x, y


def dual_norm_subgradient(w: np.ndarray, p: float | str) -> np.ndarray:
    r"""g with ‖g‖_p = 1 and gᵀw = ‖w‖_q (a subgradient of ‖·‖_q at w; 0 at w = 0).

    p = ∞: sign(w); p = 2: w/‖w‖₂; p = 1: sign(w_k) e_k at k = argmax|w_k|;
    1 < p < ∞: sign(w)|w|^{q−1}/‖w‖_q^{q−1} (equality case of Hölder's inequality).
    """
    p = require_norm_exponent("p", p)
    w = np.asarray(w, dtype=np.float64)
    if not np.any(w):
        return np.zeros_like(w)
    if math.isinf(p):
        return np.sign(w)
    if p == 1:
        g = np.zeros_like(w)
        k = int(np.argmax(np.abs(w)))
        g[k] = np.sign(w[k])
        return g
    q = dual_exponent(p)
    return np.sign(w) * np.abs(w) ** (q - 1) / np.linalg.norm(w, q) ** (q - 1)


def worst_case_perturbation(
    w: np.ndarray, y: np.ndarray | float, *, delta: float, p: float | str = "inf"
) -> np.ndarray:
    r"""The perturbation minimizing y·wᵀ(x+ξ) over ‖ξ‖_p ≤ δ: ξ* = −δ·y·∂‖w‖_q.

    Statement (SPEC T3; Hölder): min_{‖ξ‖_p≤δ} y wᵀξ = −δ‖w‖_q, attained at −δ y g with g
    from :func:`dual_norm_subgradient`. Independent of x.

    Parameters
    ----------
    w : ndarray, shape (d,)
    y : float or ndarray, shape (n,)
        Labels ±1.
    delta : float
        Radius (>= 0).
    p : float or "inf"
        Attack norm.

    Returns
    -------
    ndarray, shape (d,) or (n, d)
    """
    delta = require_nonnegative("delta", delta)
    g = dual_norm_subgradient(w, p)
    y_arr = np.asarray(y, dtype=np.float64)
    return -delta * y_arr[..., None] * g if y_arr.ndim else -delta * float(y_arr) * g


def robust_margin(
    w: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    delta: float,
    p: float | str = "inf",
    b: float = 0.0,
) -> np.ndarray:
    r"""Robust margin min_{‖ξ‖_p≤δ} y(wᵀ(x+ξ) + b) = y(wᵀx + b) − δ‖w‖_q (SPEC T3).

    Returns
    -------
    ndarray, shape (n,)
    """
    p = require_norm_exponent("p", p)
    delta = require_nonnegative("delta", delta)
    x, y = _as_data(x, y)
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (x.shape[1],):
        raise ValueError(f"w must have shape ({x.shape[1]},), got {w.shape}")
    return y * (x @ w + b) - delta * np.linalg.norm(w, dual_exponent(p))


def project_onto_lp_ball(v: np.ndarray, radius: float, p: float | str) -> np.ndarray:
    """Euclidean projection of v onto {z : ‖z‖_p ≤ radius} for p ∈ {1, 2, ∞} (exact).

    p = 1 uses the sort-based simplex projection (Duchi et al. 2008).
    """
    p = require_norm_exponent("p", p)
    radius = require_nonnegative("radius", radius)
    v = np.asarray(v, dtype=np.float64)
    if math.isinf(p):
        return np.clip(v, -radius, radius)
    if p == 2:
        norm = np.linalg.norm(v)
        return v if norm <= radius else v * (radius / norm)
    if p == 1:
        a = np.abs(v)
        if a.sum() <= radius:
            return v.copy()
        if radius == 0:
            return np.zeros_like(v)
        u = np.sort(a)[::-1]
        css = np.cumsum(u)
        k = np.arange(1, len(u) + 1)
        rho = np.nonzero(u * k > css - radius)[0][-1]
        theta = (css[rho] - radius) / (rho + 1.0)
        return np.sign(v) * np.maximum(a - theta, 0.0)
    raise ValueError(f"p must be 1, 2 or inf for the exact projection, got {p!r}")


@dataclass(frozen=True)
class MaxMarginResult:
    """Robust max-margin direction with its certificate.

    Attributes
    ----------
    direction : ndarray, shape (d,)
        Unit ℓ2-norm maximizer w.
    margin : float
        Primal value min_i y_i wᵀx_i − δ‖w‖_q at ``direction`` (a lower bound on the optimum).
    dual_value : float
        min_{‖z‖_p≤δ} ‖Σ_i λ_i y_i x_i − z‖₂ at the solver's dual weights λ (an upper bound).
    gap : float
        dual_value − margin (>= 0 up to round-off).
    dual_weights : ndarray, shape (n,)
        λ on the simplex; its support is the set of robust support vectors.
    status : str
        cvxpy's status.
    """

    direction: np.ndarray
    margin: float
    dual_value: float
    gap: float
    dual_weights: np.ndarray
    status: str


@dataclass(frozen=True)
class SeparabilityEvidence:
    """LP evidence that no w has positive robust margin.

    ``weights`` λ lie on the simplex and ``combination`` = Σ λ_i y_i x_i has
    ‖combination‖_p ≤ δ + ``excess`` with ``excess`` ≈ 0. Then for every w,
    min_i y_i wᵀx_i − δ‖w‖_q ≤ wᵀcombination − δ‖w‖_q ≤ excess·‖w‖_q.
    """

    weights: np.ndarray
    combination: np.ndarray
    excess: float
    p: float


class NotRobustlySeparableError(ValueError):
    """The data have no direction with positive robust margin; ``evidence`` holds the LP proof."""

    def __init__(self, message: str, evidence: SeparabilityEvidence) -> None:
        super().__init__(message)
        self.evidence = evidence


def separability_evidence(
    x: np.ndarray, y: np.ndarray, *, delta: float, p: float | str = "inf"
) -> SeparabilityEvidence:
    r"""Solve min_{λ∈Δ} (‖Σ_i λ_i y_i x_i‖_p − δ) as an LP (p ∈ {1, ∞}) or SOCP (otherwise).

    By LP duality (Gordan's alternative, robust version), a direction with positive robust
    margin exists iff the optimum ``excess`` is > 0: the convex hull of {y_i x_i} must stay out
    of the ℓp ball of radius δ.
    """
    p = require_norm_exponent("p", p)
    delta = require_nonnegative("delta", delta)
    x, y = _as_data(x, y)
    n, d = x.shape
    a = (y[:, None] * x).T  # (d, n): columns y_i x_i
    if math.isinf(p) or p == 1:
        from scipy.optimize import linprog

        # p = ∞: variables [λ (n), s]: minimize s s.t. -s <= (Aλ)_j <= s, Σλ = 1;
        # p = 1: variables [λ (n), t (d)]: minimize Σt s.t. -t <= Aλ <= t, Σλ = 1
        slack = np.ones((d, 1)) if math.isinf(p) else np.eye(d)
        k = slack.shape[1]
        c = np.r_[np.zeros(n), np.ones(k)]
        a_ub = np.block([[a, -slack], [-a, -slack]])
        a_eq = np.r_[np.ones(n), np.zeros(k)][None, :]
        b_ub = np.zeros(2 * d)
        bounds = [(0, None)] * (n + k)
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs")
        if res.status != 0:
            raise RuntimeError(f"separability LP failed: {res.message}")
        lam = np.maximum(res.x[:n], 0.0)
    else:
        import cvxpy as cp

        lam_var = cp.Variable(n, nonneg=True)
        prob = cp.Problem(cp.Minimize(cp.norm(a @ lam_var, p)), [cp.sum(lam_var) == 1])
        prob.solve()
        lam = np.maximum(np.asarray(lam_var.value, dtype=np.float64), 0.0)
    lam = lam / lam.sum()
    comb = a @ lam
    return SeparabilityEvidence(
        weights=lam,
        combination=comb,
        excess=float(np.linalg.norm(comb, p) - delta),
        p=p,
    )


def robust_max_margin_direction(
    x: np.ndarray, y: np.ndarray, *, delta: float, p: float | str = "inf"
) -> MaxMarginResult:
    r"""Robust max-margin direction: argmax_{‖w‖₂≤1} min_i y_i wᵀx_i − δ‖w‖_q (SPEC T3).

    Statement: the objective is concave (a minimum of affine functions minus a norm), so
    this is a convex program; by minimax its dual is
    min_{λ∈Δ, ‖z‖_p≤δ} ‖Σ_i λ_i y_i x_i − z‖₂ (the ℓ2 distance between the convex hull of
    {y_i x_i} and the ℓp ball of radius δ). Gradient-based adversarial training on
    separable data converges in direction to this maximizer (Li, Fang, Wang et al., ICLR 2020,
    "Implicit bias of gradient descent based adversarial training on separable data").

    Parameters
    ----------
    x : ndarray, shape (n, d)
    y : ndarray, shape (n,), entries ±1
    delta : float
        Attack radius (>= 0).
    p : float or "inf"
        Attack norm (q is its dual).

    Returns
    -------
    MaxMarginResult
        The direction, the primal value at it, the dual value at the solver's dual weights,
        and their gap.

    Raises
    ------
    NotRobustlySeparableError
        If the optimum is 0 (no direction has positive robust margin); the error carries the
        LP evidence λ with ‖Σλ_i y_i x_i‖_p ≤ δ.
    """
    import cvxpy as cp

    p = require_norm_exponent("p", p)
    q = dual_exponent(p)
    delta = require_nonnegative("delta", delta)
    x, y = _as_data(x, y)
    n, d = x.shape
    scale = float(np.max(np.linalg.norm(x, axis=1))) or 1.0
    a = y[:, None] * x
    w = cp.Variable(d)
    t = cp.Variable()
    margin_constraint = a @ w - delta * cp.norm(w, q) >= t
    prob = cp.Problem(cp.Maximize(t), [margin_constraint, cp.norm(w, 2) <= 1])
    prob.solve()
    if prob.status not in ("optimal", "optimal_inaccurate") or w.value is None:
        raise RuntimeError(f"max-margin program failed with status {prob.status}")
    w_val = np.asarray(w.value, dtype=np.float64)
    norm = np.linalg.norm(w_val)
    primal = (
        -math.inf
        if norm == 0
        else float(np.min(robust_margin(w_val / norm, x, y, delta=delta, p=p)))
    )
    if not primal > SEPARABILITY_TOLERANCE * scale:
        evidence = separability_evidence(x, y, delta=delta, p=p)
        if evidence.excess <= SEPARABILITY_TOLERANCE * scale:
            support = np.flatnonzero(evidence.weights > 1e-9)
            raise NotRobustlySeparableError(
                "data are not robustly separable at "
                f"delta={delta} in l_{p} (optimal robust margin {max(primal, 0.0):.3g}): "
                f"LP evidence: a convex combination of y_i x_i over {len(support)} points "
                f"(indices {support[:10].tolist()}{'...' if len(support) > 10 else ''}) has "
                f"l_{p} norm {np.linalg.norm(evidence.combination, p):.3g} <= delta",
                evidence,
            )
        logger.warning("robust margin %.3g is tiny but the LP finds no obstruction", primal)
    lam = np.asarray(margin_constraint.dual_value, dtype=np.float64).reshape(-1)
    lam = np.maximum(lam, 0.0)
    lam = lam / lam.sum() if lam.sum() > 0 else np.full(n, 1.0 / n)
    u = a.T @ lam
    if math.isinf(p) or p in (1.0, 2.0):
        dual_value = float(np.linalg.norm(u - project_onto_lp_ball(u, delta, p)))
    else:
        z = cp.Variable(d)
        dprob = cp.Problem(cp.Minimize(cp.norm(u - z, 2)), [cp.norm(z, p) <= delta])
        dprob.solve()
        dual_value = float(dprob.value)
    direction = w_val / norm
    return MaxMarginResult(
        direction=direction,
        margin=primal,
        dual_value=dual_value,
        gap=dual_value - primal,
        dual_weights=lam,
        status=str(prob.status),
    )
