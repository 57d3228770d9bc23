"""Argument checks shared by the bound calculators.

Every check raises :class:`ValueError` whose message names the argument and the allowed
range, as the suite's bad-input convention requires.
"""

from __future__ import annotations

import math
import sys
from numbers import Integral, Real


def require_real(name: str, value: object) -> float:
    """Return ``value`` as a finite float, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:  # an int beyond float64's range
        out = math.inf
    if not math.isfinite(out):
        raise ValueError(
            f"{name} must be finite (|{name}| <= {sys.float_info.max!r}), got {value!r}"
        )
    return out


def require_positive(name: str, value: object) -> float:
    """Return ``value`` if it lies in (0, inf)."""
    out = require_real(name, value)
    if out <= 0:
        raise ValueError(f"{name} must lie in (0, inf), got {value!r}")
    return out


def require_at_least(name: str, value: object, low: float) -> float:
    """Return ``value`` if it lies in (0, inf) and in [low, inf) (low > 0)."""
    out = require_positive(name, value)
    if out < low:
        raise ValueError(f"{name} must lie in [{low:g}, inf), got {out!r}")
    return out


def require_nonnegative(name: str, value: object) -> float:
    """Return ``value`` if it lies in [0, inf)."""
    out = require_real(name, value)
    if out < 0:
        raise ValueError(f"{name} must lie in [0, inf), got {value!r}")
    return out


def require_open_interval(name: str, value: object, low: float, high: float) -> float:
    """Return ``value`` if it lies in the open interval (low, high)."""
    out = require_real(name, value)
    if not low < out < high:
        raise ValueError(f"{name} must lie in ({low}, {high}), got {value!r}")
    return out


def require_closed_interval(name: str, value: object, low: float, high: float) -> float:
    """Return ``value`` if it lies in the closed interval [low, high]."""
    out = require_real(name, value)
    if not low <= out <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return out


def require_int_at_least(name: str, value: object, low: int) -> int:
    """Return ``value`` as int if it is an integer >= low."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        if isinstance(value, Real) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    out = int(value)
    if out < low:
        raise ValueError(f"{name} must be an integer in [{low}, inf), got {value!r}")
    return out


def require_norm_exponent(name: str, value: object) -> float:
    """Return an ℓp exponent p in [1, inf] (``"inf"``, ``math.inf`` and numbers accepted)."""
    if isinstance(value, str):
        if value.lower() in {"inf", "infinity", "linf"}:
            return math.inf
        try:
            value = float(value)
        except ValueError as exc:
            raise ValueError(f"{name} must be a norm exponent in [1, inf], got {value!r}") from exc
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a norm exponent in [1, inf], got {value!r}")
    try:
        out = float(value)
    except OverflowError:  # an int beyond float64's range: as large as p = inf is not
        raise ValueError(f"{name} must be a norm exponent in [1, inf], got {value!r}") from None
    if math.isnan(out) or out < 1:
        raise ValueError(f"{name} must be a norm exponent in [1, inf], got {value!r}")
    return out


def dual_exponent(p: float | str) -> float:
    """Return q with 1/p + 1/q = 1 (q = inf for p = 1, q = 1 for p = inf)."""
    p = require_norm_exponent("p", p)
    if p == 1:
        return math.inf
    if math.isinf(p):
        return 1.0
    return p / (p - 1.0)
