r"""Size lower bounds for robust memorization and robust generalization (SPEC T2).

* :func:`memorization_lower_bound` — [C22] Thm 2.3: Ω(√(Nd)) parameters (constant ``C``).
* :func:`robust_generalization_lower_bound` — [C22] Thm 4.3: N_d = Ω((2ε)^{−(d−1)/6})
  parameters (constant ``C``).
* :func:`grid_vc_lower_bound` — [C22] §4.1 step 6: the enveloping network of the grid
  instance has VC dimension ≥ 0.05·K^{d−1}, K = ⌊1/(2ε)⌋ (α = 0.1).
"""

from __future__ import annotations

import math
import sys

import sympy as sp

from robmem.theory.bounds.result import BoundResult
from robmem.theory.bounds.validation import (
    require_at_least,
    require_int_at_least,
    require_open_interval,
    require_positive,
    require_real,
)

SOURCE_MEM_LOWER = "[C22] Li, Jin, Zhong, Hopcroft, Wang, NeurIPS 2022, Thm 2.3; SPEC T2"
SOURCE_ROBUST_LOWER = (
    "[C22] Thm 4.3 (N_d = Omega((2 eps)^(-(d-1)/6))); [P1] Thm 3.5 (exp(Omega(d))); SPEC T2"
)
SOURCE_GRID_VC = "[C22] §4.1 proof of Thm 4.3, double counting with alpha = 0.1; SPEC T2"

#: [C22] §4.1: the VC fraction reached by the double-counting step for α = 0.1.
GRID_VC_FRACTION = 0.05
#: [C22] §4.1: accuracy slack α of the double-counting step (C_α = √(2(1−2α)) > 1).
GRID_ALPHA = 0.1


#: Largest base-10 exponent a float64 holds; larger sizes are reported as +inf with their
#: exact base-10 logarithm in ``terms["log10_value"]``.
FLOAT64_MAX_LOG10 = math.log10(1.7976931348623157e308)


def _power_of_ten(log10_value: float) -> float:
    return 10.0**log10_value if log10_value < FLOAT64_MAX_LOG10 else math.inf


def memorization_lower_bound(*, n_points: float, dim: float, C: float = 1.0) -> BoundResult:
    r"""C·√(N d): parameters any net needs to robustly memorize every 2ε-separated N-point set.

    Statement ([C22] Thm 2.3): if every 2ε-separated data set of N points in d dimensions is
    robustly memorized by some f ∈ F_n, then n = Ω(√(Nd)). The constant is hidden; ``C``.

    Parameters
    ----------
    n_points : float
        N (>= 1).
    dim : float
        d (>= 1).
    C : float
        Hidden constant (> 0).
    """
    n_points = require_at_least("n_points", n_points, 1)
    dim = require_at_least("dim", dim, 1)
    C = require_positive("C", C)
    return BoundResult(
        value=C * math.sqrt(n_points * dim),
        terms={"sqrt_Nd": math.sqrt(n_points * dim), "C": C},
        assumptions=("2eps-separated data, every labelling", "constant hidden; C"),
        source=SOURCE_MEM_LOWER,
        certified=False,
        name="memorization_lower_bound",
    )


def memorization_lower_bound_expr() -> sp.Expr:
    """Sympy form of :func:`memorization_lower_bound`."""
    N, d, C = sp.symbols("n_points dim C", positive=True)
    return C * sp.sqrt(N * d)


def robust_generalization_lower_bound(*, dim: float, eps: float, C: float = 1.0) -> BoundResult:
    r"""C·(2ε)^{−(d−1)/6}: parameters below which robust test error stays ≥ C₁μ₀.

    Statement ([C22] Thm 4.3): for linearly separable 2ε-separated A, B ⊂ [0,1]^d and any
    c ∈ (0,1), nets with at most N_d = Ω((2ε)^{−(d−1)/6}) parameters have robust test error
    ≥ C₁μ₀ at radius cε for every μ₀-balanced distribution. ``C`` is the hidden constant.

    Parameters
    ----------
    dim : float
        d (>= 1).
    eps : float
        Half the separation, in (0, 1/2).
    C : float
        Hidden constant (> 0).
    """
    dim = require_at_least("dim", dim, 1)
    eps = require_open_interval("eps", eps, 0.0, 0.5)
    C = require_positive("C", C)
    exponent = (dim - 1.0) / 6.0
    log10_value = math.log10(C) - exponent * math.log10(2.0 * eps)
    return BoundResult(
        value=_power_of_ten(log10_value),
        terms={"exponent": exponent, "log10_value": log10_value, "C": C},
        assumptions=(
            "linearly separable, 2eps-separated classes in [0,1]^d",
            "mu0-balanced distribution",
            "constant hidden; C",
        ),
        source=SOURCE_ROBUST_LOWER,
        certified=False,
        name="robust_generalization_lower_bound",
    )


def robust_generalization_lower_bound_expr() -> sp.Expr:
    """Sympy form of :func:`robust_generalization_lower_bound`."""
    d, eps, C = sp.symbols("dim eps C", positive=True)
    return C * (2 * eps) ** (-(d - 1) / 6)


def grid_side(eps: float) -> int:
    """K = ⌊1/(2ε)⌋ for ε ∈ [2.2e-308, 1/2) (below float64's smallest normal, 1/(2ε) overflows)."""
    eps = require_open_interval("eps", eps, 0.0, 0.5)
    if eps < sys.float_info.min:
        raise ValueError(f"eps must lie in [{sys.float_info.min!r}, 0.5), got {eps!r}")
    return int(math.floor(1.0 / (2.0 * eps) + 1e-12))


def grid_vc_lower_bound(*, dim: int, eps: float) -> BoundResult:
    r"""0.05·K^{d−1}: VC dimension forced by robustly classifying the [C22] grid instance.

    Statement ([C22] §4.1, step 6): if nets of M parameters reach accuracy 1 − α (α = 0.1)
    on every labelling of the K^{d−1}-point grid, their enveloping network has
    VCdim ≥ 0.05·K^{d−1}, K = ⌊1/(2ε)⌋. Certified given the paper's double-counting step.

    Parameters
    ----------
    dim : int
        d (>= 1).
    eps : float
        ε in (0, 1/2).
    """
    dim = require_int_at_least("dim", dim, 1)
    require_real("dim", dim)  # the exponent d − 1 is used as a float64
    k = grid_side(eps)
    log10_grid = (dim - 1) * math.log10(k)
    log10_value = math.log10(GRID_VC_FRACTION) + log10_grid
    return BoundResult(
        value=_power_of_ten(log10_value),
        terms={
            "K": float(k),
            "log10_grid_points": log10_grid,
            "log10_value": log10_value,
            "C_alpha": math.sqrt(2 * (1 - 2 * GRID_ALPHA)),
        },
        assumptions=("accuracy 1 - alpha on every labelling, alpha = 0.1",),
        source=SOURCE_GRID_VC,
        certified=True,
        name="grid_vc_lower_bound",
    )


def grid_vc_lower_bound_expr() -> sp.Expr:
    """Sympy form of :func:`grid_vc_lower_bound`."""
    d, eps = sp.symbols("dim eps", positive=True)
    return sp.Rational(1, 20) * sp.floor(1 / (2 * eps)) ** (d - 1)
