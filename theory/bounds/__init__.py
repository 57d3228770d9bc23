"""Bound calculators with one signature and one result type (SPEC T2, T4).

Every calculator takes keyword arguments and returns :class:`BoundResult`. ``REGISTRY`` maps
each calculator's name to its :class:`BoundSpec` (function, sympy form, parameter domains and
the monotonicity theory predicts); ``tests/theory/test_bounds_conformance.py`` runs one
conformance check over all of them. Torch-based measures live in
:mod:`robmem.empirics.measures` (torch).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

from robmem.theory.bounds import capacity, flatness, pacbayes, rademacher, spectral, vc
from robmem.theory.bounds.result import BoundResult, BoundSpec, Param

INF = math.inf

# Shared by the upper and lower adversarial Rademacher bounds of linear classes.
_LINEAR_ARC_PARAMS = (
    Param("n", 1.0, 1e6, -1, log_scale=True),
    Param("dim", 1.0, 1e4, +1, log_scale=True),
    Param("eps", 0.0, 1.0, +1),
    Param("w_norm", 0.01, 100.0, +1, log_scale=True),
    Param("rademacher_clean", 0.0, 10.0, +1),
    Param("p", choices=(1.0, 2.0, 4.0, INF), monotone=0),
    Param("r", choices=(1.0, 2.0, INF), monotone=0),
)

# Shared by the PAC-Bayes-kl bound and its Pinsker relaxation.
_PAC_BAYES_PARAMS = (
    Param("n", 1.0, 1e6, -1, log_scale=True),
    Param("empirical_risk", 0.0, 1.0, +1),
    Param("kl", 0.0, 1e4, +1),
    Param("confidence", 1e-4, 0.999, -1, log_scale=True),
)


def _spec(func: Callable[..., BoundResult], params, **kw) -> BoundSpec:
    """The registry entry of ``func``, named after it (the name its results carry), with the
    sympy form ``<name>_expr`` defined next to it in its module."""
    expr = getattr(sys.modules[func.__module__], f"{func.__name__}_expr")
    return BoundSpec(func.__name__, func, expr, params, **kw)


REGISTRY: dict[str, BoundSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            flatness.global_flatness_gap,
            (
                Param("n", 1.0, 1e6, -1, log_scale=True),
                Param("dim", 1.0, 100.0, +1),
                Param("grad_term", 0.0, 10.0, +1),
                Param("c_dl", 0.0, 10.0, +1),
                Param("confidence", 1e-4, 0.999, -1, log_scale=True),
                Param("C", 0.01, 100.0, +1, log_scale=True),
            ),
            # N^(-1/(d+2)) grows with d only for N > 1
            constraint=lambda kw: kw["n"] > 1.0,
        ),
        _spec(
            flatness.first_order_robust_gap,
            (Param("delta", 0.0, 1.0, +1), Param("grad_dual_sup", 0.0, 100.0, +1)),
        ),
        _spec(
            flatness.prop64_gap_lower,
            (
                Param("delta", 0.0, 1.0, +1),
                Param("grad_l1_mean", 0.0, 100.0, +1),
                Param("C", 0.01, 100.0, +1, log_scale=True),
            ),
        ),
        _spec(
            vc.vc_dimension_upper_bhlm,
            (
                Param("input_dim", 1, 1000, +1, integer=True, log_scale=True),
                Param("width", 1, 1000, +1, integer=True, log_scale=True),
                Param("hidden_layers", 0, 20, +1, integer=True),
                Param("pieces", 1, 4, +1, integer=True),
            ),
        ),
        _spec(
            vc.vc_generalization_gap,
            (
                Param("n", 1.0, 1e7, -1, log_scale=True),
                Param("vc", 1.0, 1e6, +1, log_scale=True),
                Param("confidence", 1e-4, 0.999, -1, log_scale=True),
            ),
        ),
        _spec(
            vc.clean_gap_sqrt_complexity,
            (
                Param("n", 1.0, 1e7, -1, log_scale=True),
                Param("complexity", 0.0, 1e6, +1),
                Param("C", 0.01, 100.0, +1, log_scale=True),
            ),
        ),
        _spec(
            rademacher.adversarial_rademacher_linear_upper,
            _LINEAR_ARC_PARAMS,
        ),
        _spec(
            rademacher.adversarial_rademacher_linear_lower,
            _LINEAR_ARC_PARAMS,
        ),
        _spec(
            rademacher.rademacher_margin_generalization,
            (
                Param("n", 1.0, 1e6, -1, log_scale=True),
                Param("rademacher", 0.0, 10.0, +1),
                Param("margin", 0.01, 10.0, -1, log_scale=True),
                Param("confidence", 1e-4, 0.999, -1, log_scale=True),
            ),
        ),
        _spec(
            pacbayes.pac_bayes_kl_bound,
            _PAC_BAYES_PARAMS,
            implicit=True,
        ),
        _spec(
            pacbayes.pac_bayes_classic_bound,
            _PAC_BAYES_PARAMS,
        ),
        _spec(
            spectral.bartlett2017_spectral_bound,
            (
                Param("n", spectral.BARTLETT_MIN_N, 1e7, -1, log_scale=True),
                Param("n_params", 2.0, 1e8, +1, log_scale=True),
                Param("spec_product", 1e-3, 1e6, +1, log_scale=True),
                Param("margin", 1e-3, 100.0, -1, log_scale=True),
                Param("bartlett_sum", 0.0, 100.0, +1),
                Param("C", 0.01, 100.0, +1, log_scale=True),
            ),
        ),
        _spec(
            spectral.neyshabur2018_spectral_bound,
            (
                Param("n", 1.0, 1e7, -1, log_scale=True),
                Param("depth", 1.0, 100.0, +1),
                Param("spec_product", 1e-3, 1e6, +1, log_scale=True),
                Param("margin", 1e-3, 100.0, -1, log_scale=True),
                Param("neyshabur_sum", 0.0, 1e4, +1),
                Param("C", 0.01, 100.0, +1, log_scale=True),
            ),
        ),
        _spec(
            capacity.memorization_lower_bound,
            (
                Param("n_points", 1.0, 1e6, +1, log_scale=True),
                Param("dim", 1.0, 1e4, +1, log_scale=True),
                Param("C", 0.01, 100.0, +1, log_scale=True),
            ),
        ),
        _spec(
            capacity.robust_generalization_lower_bound,
            (
                Param("dim", 1.0, 200.0, +1),
                Param("eps", 1e-3, 0.499, -1, log_scale=True),
                Param("C", 0.01, 100.0, +1, log_scale=True),
            ),
        ),
        _spec(
            capacity.grid_vc_lower_bound,
            (
                Param("dim", 1, 12, +1, integer=True),
                Param("eps", 0.01, 0.499, -1, log_scale=True),
            ),
        ),
    )
}

__all__ = ["REGISTRY", "BoundResult", "BoundSpec", "Param"]
