"""One conformance check over every registered bound (SPEC T2, T4).

For each calculator in ``robmem.theory.bounds.REGISTRY``, at random valid arguments: the value is
finite and non-negative, it moves in the direction theory says when one argument grows,
and the sympy form evaluates to the same number. Bad arguments raise a ValueError naming
the argument.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import sympy as sp

from robmem.theory.bounds import REGISTRY, BoundResult
from robmem.theory.bounds.pacbayes import KL_INVERSE_CAP

N_DRAWS = 25
#: Explicit closed forms only: the float64 value against sympy at 40 digits. The float64 side
#: is a few dozen roundings of 2^-53 through log/exp/sqrt/pow; the largest relative deviation
#: over all draws of all calculators is 1.2e-14 (robust_generalization_lower_bound, measured
#: 2026-12-02). 1e-9 keeps five decades of room for other platforms' libm, and is still far
#: below what a wrong constant, exponent or argument does to a bound.
REL_TOL = 1e-9


def _sympy_value(expr: sp.Expr, kwargs: dict, result: BoundResult, value=None) -> float:
    subs = {}
    for sym in expr.free_symbols:
        if sym.name == "value":
            subs[sym] = sp.Float(value, 40)
        elif sym.name in kwargs:
            v = kwargs[sym.name]
            if isinstance(v, float) and math.isinf(v):
                subs[sym] = sp.oo
            elif isinstance(v, int):
                subs[sym] = sp.Integer(v)
            else:
                subs[sym] = sp.Float(v, 40)
        elif sym.name in result.terms:
            subs[sym] = sp.Float(result.terms[sym.name], 40)
        else:
            raise AssertionError(f"symbol {sym} of the sympy form is not an argument or term")
    return float(expr.subs(subs).evalf(40))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_bound_conformance(name: str) -> None:
    spec = REGISTRY[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    expr = spec.expr()
    for _ in range(N_DRAWS):
        kwargs = spec.sample_kwargs(rng)
        result = spec(**kwargs)
        assert isinstance(result, BoundResult)
        assert result.name == name
        assert result.source and result.assumptions
        assert math.isfinite(result.value) and result.value >= 0, (kwargs, result)
        for key, val in result.terms.items():
            assert math.isfinite(val), (key, kwargs)

        if spec.implicit:
            if result.value < 1.0:
                # the bound is the root of the residual in `value`: >= 0 at it, <= 0 just below
                assert _sympy_value(expr, kwargs, result, value=result.value) >= -1e-12, kwargs
                below = result.value - 1e-10
                if below > kwargs["empirical_risk"]:
                    assert _sympy_value(expr, kwargs, result, value=below) <= 1e-12, kwargs
            else:
                assert _sympy_value(expr, kwargs, result, value=KL_INVERSE_CAP) <= 1e-9
        else:
            symbolic = _sympy_value(expr, kwargs, result)
            assert symbolic == pytest.approx(result.value, rel=REL_TOL, abs=1e-12), kwargs

        for param in spec.params:
            if param.monotone == 0:
                continue
            bigger = param.increased(kwargs[param.name])
            if bigger is None:
                continue
            moved = dict(kwargs, **{param.name: bigger})
            if spec.constraint is not None and not spec.constraint(moved):
                continue
            new = spec(**moved).value
            slack = 1e-9 * max(1.0, abs(result.value))
            if param.monotone > 0:
                assert new >= result.value - slack, (param.name, kwargs, bigger)
            else:
                assert new <= result.value + slack, (param.name, kwargs, bigger)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_bound_rejects_bad_arguments(name: str, bad: float) -> None:
    spec = REGISTRY[name]
    kwargs = spec.sample_kwargs(np.random.default_rng(0))
    for param in spec.params:
        broken = dict(kwargs, **{param.name: int(bad) if param.integer and bad == -1 else bad})
        if param.integer and math.isnan(bad):
            continue
        with pytest.raises((ValueError, TypeError)) as info:
            spec(**broken)
        assert param.name in str(info.value), (param.name, str(info.value))


#: Extreme but well-typed arguments: subnormal, at float64's limits, and Python ints beyond it.
EXTREMES = (5e-324, 2.2e-309, 2.2250738585072014e-308, 1e-300, 0.49999999999999994, 1e300,
            1.7976931348623157e308, math.inf, -0.0, 0, 10**18, 10**400)  # fmt: skip


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_bound_extreme_arguments_give_a_value_or_an_error_naming_the_argument(name: str) -> None:
    # Found by pytest -m fuzz: grid_vc_lower_bound(eps=2.2e-309) raised OverflowError (1/(2ε)
    # is inf), and every calculator did for an int beyond float64 (e.g. n=10**400).
    spec = REGISTRY[name]
    kwargs = spec.sample_kwargs(np.random.default_rng(0))
    for param in spec.params:
        if param.choices is not None:
            continue
        for value in EXTREMES:
            try:
                result = spec(**dict(kwargs, **{param.name: value}))
            except (ValueError, TypeError) as exc:
                assert any(p.name in str(exc) for p in spec.params), (param.name, value, exc)
                continue
            assert result.value >= 0 and not math.isnan(result.value), (param.name, value)


def test_grid_side_rejects_eps_below_the_smallest_normal_float() -> None:
    from robmem.theory.bounds.capacity import grid_side, grid_vc_lower_bound

    with pytest.raises(ValueError, match=r"eps must lie in \[2.2250738585072014e-308, 0.5\)"):
        grid_vc_lower_bound(dim=8, eps=2.2e-309)
    assert grid_side(2.2250738585072014e-308) == 2**1021  # 1/(2ε) exact: ε = 2^-1022
    with pytest.raises(ValueError, match="dim must be finite"):
        grid_vc_lower_bound(dim=10**400, eps=0.1)


def test_confidence_outside_unit_interval_is_rejected() -> None:
    for name, spec in REGISTRY.items():
        names = {p.name for p in spec.params}
        if "confidence" not in names:
            continue
        kwargs = spec.sample_kwargs(np.random.default_rng(1))
        for bad in (0.0, 1.0, 1.5):
            with pytest.raises(ValueError, match="confidence"):
                spec(**dict(kwargs, confidence=bad))
        assert name


def test_registry_is_not_empty_and_names_match() -> None:
    assert len(REGISTRY) >= 15
    for name, spec in REGISTRY.items():
        assert spec.name == name
        assert spec.func.__doc__ and len(spec.func.__doc__) > 80, name
        assert spec.expr.__doc__ and "ympy" in spec.expr.__doc__, name
