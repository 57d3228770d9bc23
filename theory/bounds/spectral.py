r"""Spectrally-normalized margin bounds from norm statistics (SPEC T4, E5).

Both are given "up to constants and additive logarithmic factors", exactly as
bneyshabur/generalization-bounds ``measures.py`` codes them (notes §1.2); the dropped
constant is the explicit factor ``C`` and the results are not certified. The norm statistics
are computed from a torch model by :mod:`robmem.empirics.measures`.
"""

from __future__ import annotations

import math

import sympy as sp

from robmem.theory.bounds.result import BoundResult
from robmem.theory.bounds.validation import require_at_least, require_nonnegative, require_positive

SOURCE_BARTLETT = (
    "Bartlett, Foster, Telgarsky, NeurIPS 2017, Thm 1.1 (as coded in bneyshabur/"
    "generalization-bounds measures.py; notes §1.2); SPEC T4/E5"
)
SOURCE_NEYSHABUR = (
    "Neyshabur, Bhojanapalli, Srebro, ICLR 2018, Thm 1 (as coded in bneyshabur/"
    "generalization-bounds measures.py; notes §1.2); SPEC T4/E5"
)

#: Smallest sample size for which log(n)/√n is decreasing (n > e²), so the Bartlett form is
#: monotone in n.
BARTLETT_MIN_N = math.e**2


def bartlett2017_spectral_bound(
    *,
    n: float,
    n_params: float,
    spec_product: float,
    margin: float,
    bartlett_sum: float,
    C: float = 1.0,
) -> BoundResult:
    r"""Bartlett et al. (2017) spectral bound, up to the constant C.

    .. math:: C \frac{\log n \, \log P}{\sqrt n}\,\frac{\prod_i \|W_i\|_2}{γ}
              \Big(\sum_i \big(\|W_i − W_i^0\|_{2,1}/\|W_i\|_2\big)^{2/3}\Big)^{3/2}

    with ``bartlett_sum`` = Σ_i (‖W_i − W_i⁰‖_{2,1}/‖W_i‖_2)^{2/3}.

    Parameters
    ----------
    n : float
        Sample size (>= e²).
    n_params : float
        Number of parameters P (>= 2, so log P > 0).
    spec_product : float
        Π_i ‖W_i‖_2 (> 0).
    margin : float
        γ (> 0).
    bartlett_sum : float
        (>= 0).
    C : float
        Dropped constant (> 0).
    """
    n = require_positive("n", n)
    if n < BARTLETT_MIN_N:
        raise ValueError(f"n must lie in [e^2, inf) = [{BARTLETT_MIN_N:.3f}, inf), got {n!r}")
    n_params = require_at_least("n_params", n_params, 2)
    spec_product = require_positive("spec_product", spec_product)
    margin = require_positive("margin", margin)
    bartlett_sum = require_nonnegative("bartlett_sum", bartlett_sum)
    C = require_positive("C", C)
    log_factor = math.log(n) * math.log(n_params) / math.sqrt(n)
    # float ** raises OverflowError past ~1.8e308; the bound is then +inf (vacuous, still valid)
    try:
        complexity = spec_product / margin * bartlett_sum**1.5
    except OverflowError:
        complexity = math.inf
    return BoundResult(
        value=C * log_factor * complexity,
        terms={"log_factor": log_factor, "complexity": complexity, "C": C},
        assumptions=("constants and log factors dropped; C exposes them",),
        source=SOURCE_BARTLETT,
        certified=False,
        name="bartlett2017_spectral_bound",
    )


def bartlett2017_spectral_bound_expr() -> sp.Expr:
    """Sympy form of :func:`bartlett2017_spectral_bound`."""
    n, P, s, g, b, C = sp.symbols("n n_params spec_product margin bartlett_sum C", positive=True)
    return C * sp.log(n) * sp.log(P) / sp.sqrt(n) * s / g * b ** sp.Rational(3, 2)


def neyshabur2018_spectral_bound(
    *,
    n: float,
    depth: float,
    spec_product: float,
    margin: float,
    neyshabur_sum: float,
    C: float = 1.0,
) -> BoundResult:
    r"""Neyshabur et al. (2018) PAC-Bayes spectral bound, up to the constant C.

    .. math:: C\,\frac{d}{\sqrt n}\,\frac{\prod_i \|W_i\|_2}{γ}
              \sqrt{\sum_i h_i \|W_i − W_i^0\|_F^2/\|W_i\|_2^2}

    with ``neyshabur_sum`` = Σ_i h_i ‖W_i − W_i⁰‖_F²/‖W_i‖_2² (h_i = layer i's unit count).

    Parameters
    ----------
    n : float
        Sample size (> 0).
    depth : float
        Number of layers d (> 0).
    spec_product, margin : float
        Π‖W_i‖_2 and γ (> 0).
    neyshabur_sum : float
        (>= 0).
    C : float
        Dropped constant (> 0).
    """
    n = require_positive("n", n)
    depth = require_positive("depth", depth)
    spec_product = require_positive("spec_product", spec_product)
    margin = require_positive("margin", margin)
    neyshabur_sum = require_nonnegative("neyshabur_sum", neyshabur_sum)
    C = require_positive("C", C)
    complexity = depth * spec_product / margin * math.sqrt(neyshabur_sum)
    return BoundResult(
        value=C * complexity / math.sqrt(n),
        terms={"complexity": complexity, "C": C},
        assumptions=("constants and log factors dropped; C exposes them",),
        source=SOURCE_NEYSHABUR,
        certified=False,
        name="neyshabur2018_spectral_bound",
    )


def neyshabur2018_spectral_bound_expr() -> sp.Expr:
    """Sympy form of :func:`neyshabur2018_spectral_bound`."""
    n, d, s, g, ns, C = sp.symbols("n depth spec_product margin neyshabur_sum C", positive=True)
    return C * d * s / g * sp.sqrt(ns) / sp.sqrt(n)
