"""Robust-gap bounds from input-space flatness ([P1] §6; SPEC T4).

Three calculators:

* :func:`global_flatness_gap` — [P1] Thm 6.3, an order-of-magnitude bound with its hidden
  constant exposed as ``C``.
* :func:`first_order_robust_gap` — the exact mean-value bound, which holds with no constant.
* :func:`prop64_gap_lower` — [P1] Prop 6.4, an order-of-magnitude lower bound (constant ``C``).

and :func:`linear_logistic_first_order_bound`, which evaluates the first-order bound exactly
for a linear classifier with the logistic loss (the supremum of the gradient norm over the ball
is closed-form there), so that it can be checked against the exact robust loss.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from robmem.theory.bounds.result import BoundResult
from robmem.theory.bounds.validation import (
    dual_exponent,
    require_at_least,
    require_int_at_least,
    require_nonnegative,
    require_norm_exponent,
    require_open_interval,
    require_positive,
)

SOURCE_THM63 = "[P1] Li & Li, Thm 6.3 (global flatness); SPEC T4"
SOURCE_FIRST_ORDER = "mean-value theorem with Hölder's inequality; notes §2.4; SPEC T4"
SOURCE_PROP64 = "[P1] Li & Li, Prop 6.4; SPEC T4"


def global_flatness_gap(
    *,
    n: float,
    dim: float,
    grad_term: float,
    c_dl: float,
    confidence: float,
    C: float = 1.0,
) -> BoundResult:
    r"""Robust generalization gap bound from global flatness, [P1] Thm 6.3 shape.

    Statement ([P1] Thm 6.3): if D has a smooth density and S holds N i.i.d. samples, then
    with probability at least 1 − Δ,

    .. math:: L^{adv,δ}_D(f) − L^{adv,δ}_S(f) \lesssim N^{-1/(d+2)}
              \big(E_D[\max_{\|ξ\|_∞≤δ} \|∇_x L(f(x+ξ),y)\|_1] + C(D,L)/\sqrt{Δ}\big).

    The paper hides an absolute constant in ≲; it is the explicit factor ``C`` here, so the
    result is *not* certified.

    Parameters
    ----------
    n : float
        Number of training samples N (> 0).
    dim : float
        Input dimension d (>= 1).
    grad_term : float
        Global flatness E_D[max_{‖ξ‖∞≤δ} ‖∇ₓL‖₁] (>= 0), measured by the caller.
    c_dl : float
        The distribution/loss constant C(D, L) (>= 0).
    confidence : float
        Failure probability Δ in (0, 1).
    C : float
        The hidden absolute constant (> 0).
    """
    n = require_positive("n", n)
    dim = require_at_least("dim", dim, 1)
    grad_term = require_nonnegative("grad_term", grad_term)
    c_dl = require_nonnegative("c_dl", c_dl)
    confidence = require_open_interval("confidence", confidence, 0.0, 1.0)
    C = require_positive("C", C)
    rate = n ** (-1.0 / (dim + 2.0))
    confidence_term = c_dl / math.sqrt(confidence)
    return BoundResult(
        value=C * rate * (grad_term + confidence_term),
        terms={"rate": rate, "grad_term": grad_term, "confidence_term": confidence_term, "C": C},
        assumptions=(
            "D has a smooth density (kernel-density argument, N^(-1/(d+2)) rate)",
            "S is N i.i.d. samples; holds with probability >= 1 - confidence",
            "L is a differentiable surrogate loss",
            "hidden absolute constant exposed as C (order of magnitude only)",
        ),
        source=SOURCE_THM63,
        certified=False,
        name="global_flatness_gap",
    )


def global_flatness_gap_expr() -> sp.Expr:
    """Sympy form of :func:`global_flatness_gap`."""
    n, dim, g, c, conf, C = sp.symbols("n dim grad_term c_dl confidence C", positive=True)
    return C * n ** (-1 / (dim + 2)) * (g + c / sp.sqrt(conf))


def first_order_robust_gap(*, delta: float, grad_dual_sup: float) -> BoundResult:
    r"""Exact first-order bound on the per-sample robust loss increase.

    Statement: if x ↦ L(x) is Lipschitz on the ℓp ball B_p(x, δ) (ReLU nets with CE are
    piecewise smooth and differentiable almost everywhere), then by the mean-value theorem
    and Hölder's inequality

    .. math:: \max_{\|ξ\|_p≤δ} L(x+ξ) − L(x) ≤ δ · \max_{\|ξ\|_p≤δ} \|∇_x L(x+ξ)\|_q,
              \quad 1/p + 1/q = 1.

    For ℓ∞ attacks the dual norm is ℓ1 (SPEC T4). Holds with no hidden constant; averaging
    over samples gives robust loss ≤ clean loss + δ·mean sup-gradient.

    Parameters
    ----------
    delta : float
        Radius δ (>= 0).
    grad_dual_sup : float
        max over the ball of the dual norm of ∇ₓL (>= 0). It must be the exact supremum
        (or an upper bound on it) for the result to be certified; a PGD estimate is a lower
        estimate of the supremum.
    """
    delta = require_nonnegative("delta", delta)
    grad_dual_sup = require_nonnegative("grad_dual_sup", grad_dual_sup)
    return BoundResult(
        value=delta * grad_dual_sup,
        terms={"delta": delta, "grad_dual_sup": grad_dual_sup},
        assumptions=(
            "x -> L(x) is Lipschitz on the ball (differentiable almost everywhere)",
            "grad_dual_sup is the exact supremum (or an upper bound) of the dual-norm gradient",
        ),
        source=SOURCE_FIRST_ORDER,
        certified=True,
        name="first_order_robust_gap",
    )


def first_order_robust_gap_expr() -> sp.Expr:
    """Sympy form of :func:`first_order_robust_gap`."""
    delta, g = sp.symbols("delta grad_dual_sup", nonnegative=True)
    return delta * g


def prop64_gap_lower(*, delta: float, grad_l1_mean: float, C: float = 1.0) -> BoundResult:
    r"""[P1] Prop 6.4 lower-bound form of the robust − clean test loss.

    Statement ([P1] Prop 6.4): if D has a smooth density,
    L^{adv,δ}_D(f) − L^{clean}_D(f) = Ω(δ · E_D ‖∇ₓL(f(x), y)‖₁).
    The Ω hides a constant, exposed as ``C``; the value is ``C·δ·E‖∇ₓL‖₁``. It is a lower
    bound, so it is plotted under the measured gap, never above it.

    Parameters
    ----------
    delta : float
        Radius δ (>= 0).
    grad_l1_mean : float
        E_D ‖∇ₓL(f(x), y)‖₁ at the clean points (>= 0).
    C : float
        Hidden constant (> 0).
    """
    delta = require_nonnegative("delta", delta)
    grad_l1_mean = require_nonnegative("grad_l1_mean", grad_l1_mean)
    C = require_positive("C", C)
    return BoundResult(
        value=C * delta * grad_l1_mean,
        terms={"delta": delta, "grad_l1_mean": grad_l1_mean, "C": C},
        assumptions=(
            "D has a smooth density",
            "lower bound (Omega form); hidden constant exposed as C",
        ),
        source=SOURCE_PROP64,
        certified=False,
        name="prop64_gap_lower",
    )


def prop64_gap_lower_expr() -> sp.Expr:
    """Sympy form of :func:`prop64_gap_lower`."""
    delta, g, C = sp.symbols("delta grad_l1_mean C", positive=True)
    return C * delta * g


def linear_logistic_first_order_bound(
    w: np.ndarray,
    b: float,
    x: np.ndarray,
    y: np.ndarray,
    *,
    delta: float,
    p: float | str = "inf",
) -> BoundResult:
    r"""First-order robust-gap bound of a linear classifier under the logistic loss, exactly.

    For f(x) = wᵀx + b and L = log(1 + exp(−y f(x))), ∇ₓL = −y·s(−y f(x))·w with s the
    logistic sigmoid, so ‖∇ₓL(x')‖_q = s(−y f(x'))·‖w‖_q. The sigmoid is decreasing in the
    margin, and the smallest margin over the ℓp ball is the robust margin y f(x) − δ‖w‖_q
    (:func:`robmem.theory.linear.robust_margin`). Hence the supremum is exact:

    .. math:: \max_{\|ξ\|_p≤δ}\|∇_x L(x+ξ)\|_q = s(−(y f(x) − δ\|w\|_q))\,\|w\|_q,

    and the mean over samples of δ times it bounds the mean robust minus clean loss
    (:func:`first_order_robust_gap`).

    Parameters
    ----------
    w : ndarray, shape (d,)
    b : float
    x : ndarray, shape (n, d)
    y : ndarray, shape (n,), entries ±1
    delta : float
        Radius (>= 0).
    p : float or "inf"
        Attack norm; the gradient is measured in the dual norm q.

    Returns
    -------
    BoundResult
        value = δ · mean_i sup-gradient; terms include the exact robust and clean mean losses.
    """
    p = require_norm_exponent("p", p)
    q = dual_exponent(p)
    delta = require_nonnegative("delta", delta)
    w = np.asarray(w, dtype=np.float64)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    require_int_at_least("len(x)", x.shape[0], 1)
    if x.shape[0] != y.shape[0] or x.shape[1] != w.shape[0]:
        raise ValueError(f"shapes must agree: x {x.shape}, y {y.shape}, w {w.shape}")
    w_dual = float(np.linalg.norm(w, ord=q, axis=-1))
    margin = y * (x @ w + b)
    robust = margin - delta * w_dual
    sup_grad = w_dual / (1.0 + np.exp(robust))  # s(-m) = 1 / (1 + e^m)
    clean_loss = float(np.mean(np.logaddexp(0.0, -margin)))
    robust_loss = float(np.mean(np.logaddexp(0.0, -robust)))
    result = first_order_robust_gap(delta=delta, grad_dual_sup=float(np.mean(sup_grad)))
    return BoundResult(
        value=result.value,
        terms={
            **result.terms,
            "clean_loss": clean_loss,
            "robust_loss": robust_loss,
            "robust_gap": robust_loss - clean_loss,
        },
        assumptions=result.assumptions + ("linear f, logistic loss (sup exact)",),
        source=SOURCE_FIRST_ORDER,
        certified=True,
        name="first_order_robust_gap",
    )
