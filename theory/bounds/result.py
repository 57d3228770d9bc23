"""The uniform result type and the registry entry type of every bound calculator.

Every calculator in :mod:`robmem.theory.bounds` is called with keyword arguments only and returns a
:class:`BoundResult`. Its :class:`BoundSpec` in ``robmem.theory.bounds.REGISTRY`` states the
parameters' domains, the direction in which theory says the bound moves with each of them,
and a sympy form of the same formula. One conformance test runs over all specs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BoundResult:
    """The value of one bound or measure, with everything needed to audit it.

    Parameters
    ----------
    value : float
        The bound. Never NaN, never negative.
    terms : Mapping[str, float]
        Named intermediate quantities (each additive or multiplicative piece of the formula).
    assumptions : tuple of str
        What must hold for the bound to be valid.
    source : str
        Paper, theorem or equation (and SPEC id).
    certified : bool
        True when the bound holds with the stated constants; False when it is an
        order-of-magnitude form whose hidden universal constant is the explicit parameter ``C``.
    name : str
        Registry name of the calculator that produced it.
    """

    value: float
    terms: Mapping[str, float]
    assumptions: tuple[str, ...]
    source: str
    certified: bool
    name: str = ""

    def __post_init__(self) -> None:
        value = float(self.value)
        if math.isnan(value):
            raise ValueError(f"bound {self.name!r} produced NaN; terms={dict(self.terms)}")
        if value < 0:
            raise ValueError(f"bound {self.name!r} produced a negative value {value}")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "terms", {k: float(v) for k, v in self.terms.items()})
        object.__setattr__(self, "assumptions", tuple(self.assumptions))

    @property
    def vacuous(self) -> bool:
        """True when the value is at least 1 (a bound on a probability or 0-1 error)."""
        return self.value >= 1.0


@dataclass(frozen=True)
class Param:
    """Domain and monotonicity of one calculator argument.

    Parameters
    ----------
    name : str
        Keyword name (also the sympy symbol's name).
    low, high : float
        Range from which the conformance test samples the argument.
    monotone : int
        +1 if theory says the bound is non-decreasing in this argument, -1 if non-increasing,
        0 if it makes no claim.
    integer : bool
        Sample integers.
    log_scale : bool
        Sample log-uniformly.
    choices : tuple, optional
        Sample from these values instead of a range.
    """

    name: str
    low: float = 0.0
    high: float = 1.0
    monotone: int = 0
    integer: bool = False
    log_scale: bool = False
    choices: tuple[Any, ...] | None = None

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one valid value."""
        if self.choices is not None:
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.log_scale:
            value = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        else:
            value = float(rng.uniform(self.low, self.high))
        if self.integer:
            return int(min(max(round(value), math.ceil(self.low)), math.floor(self.high)))
        return value

    def increased(self, value: Any) -> Any:
        """A strictly larger value inside the sampling range's closure, or None if at the top."""
        if self.choices is not None:
            bigger = [c for c in self.choices if float(c) > float(value)]
            return min(bigger, key=float) if bigger else None
        if self.integer:
            step = max(1, int(0.3 * value))
            new = value + step
            return new if new <= self.high else None
        new = value + 0.3 * (self.high - value)
        return new if new > value else None


@dataclass(frozen=True)
class BoundSpec:
    """A registry entry: the calculator, its sympy form and its parameter domains.

    Parameters
    ----------
    name : str
        Registry key.
    func : callable
        ``func(**kwargs) -> BoundResult``.
    expr : callable
        ``expr() -> sympy.Expr`` in symbols named after ``params`` (and, where stated, after
        entries of ``BoundResult.terms``). When ``implicit`` is True the expression is a
        residual in the extra symbol ``value`` that vanishes at the bound.
    params : tuple of Param
        The arguments the conformance test draws.
    constraint : callable, optional
        ``constraint(kwargs) -> bool``; draws that violate joint validity are rejected.
    implicit : bool
        See ``expr``.
    fixed : Mapping
        Extra keyword arguments passed unchanged.
    """

    name: str
    func: Callable[..., BoundResult]
    expr: Callable[[], Any]
    params: tuple[Param, ...]
    constraint: Callable[[Mapping[str, Any]], bool] | None = None
    implicit: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def sample_kwargs(self, rng: np.random.Generator, max_tries: int = 1000) -> dict[str, Any]:
        """Draw a valid keyword-argument set."""
        for _ in range(max_tries):
            kwargs = {p.name: p.sample(rng) for p in self.params}
            kwargs.update(self.fixed)
            if self.constraint is None or self.constraint(kwargs):
                return kwargs
        raise RuntimeError(f"could not sample valid arguments for {self.name}")

    def __call__(self, **kwargs: Any) -> BoundResult:
        return self.func(**kwargs)
