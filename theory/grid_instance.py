r"""The [C22] Thm 4.3 hard instance, built explicitly (SPEC T2).

For ε ∈ (0, 1/2), K = ⌊1/(2ε)⌋ and a labelling φ : {1..K}^{d−1} → {±1}, the instance is

    S_φ = {(i_1/K, …, i_{d−1}/K, 1/2 + ε₀·φ(i)) : i ∈ {1..K}^{d−1}},

K^{d−1} points in [0,1]^d labelled by φ. Distinct points differ by ≥ 1/K ≥ 2ε in some
coordinate, so the classes are 2ε-separated in ℓ∞ (hence in every ℓp, p ≥ 1), and the
hyperplane x_d = 1/2 separates them linearly with margin ε₀. [C22] §4.1 uses it to force
VC dimension ≥ 0.05·K^{d−1} on any net that is robust on every φ
(:func:`robmem.theory.bounds.capacity.grid_vc_lower_bound`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robmem.theory.bounds.capacity import grid_side
from robmem.theory.bounds.validation import (
    require_int_at_least,
    require_open_interval,
)

#: Default cap on K^{d−1} so that an instance fits comfortably in memory.
DEFAULT_MAX_POINTS = 200_000


@dataclass(frozen=True)
class GridInstance:
    """The points, labels and parameters of one [C22] grid instance."""

    points: np.ndarray
    labels: np.ndarray
    K: int
    eps: float
    eps0: float


def grid_instance(
    dim: int,
    eps: float,
    *,
    eps0: float | None = None,
    labelling: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
    max_points: int = DEFAULT_MAX_POINTS,
) -> GridInstance:
    r"""Build S_φ of [C22] Thm 4.3 (proof, §4.1).

    Parameters
    ----------
    dim : int
        d >= 1.
    eps : float
        ε in (0, 1/2); K = ⌊1/(2ε)⌋.
    eps0 : float, optional
        Height offset ε₀ in (0, 1/2) (default ε/4; [C22] takes it arbitrarily small).
    labelling : array of ±1 of length K^{d−1}, or callable, optional
        φ in lexicographic order of i, or ``labelling(index) -> ±1`` applied to the
        (K^{d−1}, d−1) integer index array. Default: i.i.d. uniform signs from ``seed``.
    seed : int
        Seed of the default labelling.
    max_points : int
        Refuse instances with more than this many points.

    Returns
    -------
    GridInstance
    """
    dim = require_int_at_least("dim", dim, 1)
    eps = require_open_interval("eps", eps, 0.0, 0.5)
    eps0 = eps / 4.0 if eps0 is None else require_open_interval("eps0", eps0, 0.0, 0.5)
    max_points = require_int_at_least("max_points", max_points, 1)
    k = grid_side(eps)
    n = k ** (dim - 1)
    if n > max_points:
        raise ValueError(
            f"the grid has K^(d-1) = {k}^{dim - 1} = {n} points; dim and eps must give at most "
            f"max_points = {max_points} (raise max_points or lower dim / raise eps)"
        )
    index = np.array(list(itertools.product(range(1, k + 1), repeat=dim - 1)), dtype=np.int64)
    index = index.reshape(n, dim - 1)
    if labelling is None:
        phi = np.random.default_rng(seed).choice(np.array([-1, 1]), size=n)
    elif callable(labelling):
        phi = np.asarray(labelling(index)).reshape(-1)
    else:
        phi = np.asarray(labelling).reshape(-1)
    if phi.shape[0] != n or not np.all(np.isin(phi, (-1, 1))):
        raise ValueError(f"labelling must give {n} labels in {{-1, +1}}")
    phi = phi.astype(np.int64)
    points = np.empty((n, dim), dtype=np.float64)
    points[:, : dim - 1] = index / k
    points[:, dim - 1] = 0.5 + eps0 * phi
    return GridInstance(points=points, labels=phi, K=k, eps=eps, eps0=eps0)


@dataclass(frozen=True)
class LinearSeparability:
    """LP result: max_{‖w‖∞≤1, |b|≤bias_bound} min_i y_i (wᵀx_i + b)."""

    separable: bool
    margin: float
    w: np.ndarray
    b: float


def linear_separability_lp(
    points: np.ndarray, labels: np.ndarray, *, bias_bound: float | None = None
) -> LinearSeparability:
    r"""Decide linear separability by the LP max t s.t. y_i(wᵀx_i + b) ≥ t, ‖w‖∞ ≤ 1.

    The data are (strictly) linearly separable iff the optimum t* > 0 (then (w, b) separates
    with ℓ∞-normalized margin t*). Solved with scipy's HiGHS.

    Parameters
    ----------
    points : ndarray (n, d)
    labels : ndarray (n,), ±1
    bias_bound : float, optional
        |b| ≤ bias_bound (default: 1 + d·max|x|, enough for any separator with ‖w‖∞ ≤ 1).
    """
    from scipy.optimize import linprog

    x = np.atleast_2d(np.asarray(points, dtype=np.float64))
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    n, d = x.shape
    if n == 0:
        raise ValueError("points must hold at least one point (n in [1, inf)), got 0")
    if y.shape[0] != n or not np.all(np.isin(y, (-1.0, 1.0))):
        raise ValueError(f"labels must be {n} values in {{-1, +1}}")
    bound = 1.0 + d * float(np.max(np.abs(x))) if bias_bound is None else float(bias_bound)
    # variables [w (d), b, t]; maximize t  <=>  minimize -t
    c = np.r_[np.zeros(d + 1), -1.0]
    a_ub = np.hstack([-(y[:, None] * x), -y[:, None], np.ones((n, 1))])
    res = linprog(
        c,
        A_ub=a_ub,
        b_ub=np.zeros(n),
        bounds=[(-1, 1)] * d + [(-bound, bound), (None, 1.0)],
        method="highs",
    )
    if res.status != 0:
        raise RuntimeError(f"separability LP failed: {res.message}")
    t = float(res.x[-1])
    return LinearSeparability(separable=t > 0, margin=t, w=res.x[:d].copy(), b=float(res.x[d]))


@dataclass(frozen=True)
class GridChecks:
    """Separation and linear separability of a grid instance."""

    separation: float
    required_separation: float
    separated: bool
    linear: LinearSeparability


def check_grid_instance(instance: GridInstance, norm: str = "inf") -> GridChecks:
    """Measure the instance's opposite-label separation and decide linear separability.

    Separation uses :func:`robmem.theory.separation.opposite_label_separation`; it must be
    ≥ 2ε ([C22] Def 1.1, 2ε-separated; equal to 1/K in ℓ∞ whenever both labels occur in
    adjacent cells). Linear separability uses :func:`linear_separability_lp`.
    """
    from robmem.theory.separation import opposite_label_separation

    sep = opposite_label_separation(instance.points, instance.labels, norm)
    required = 2.0 * instance.eps
    return GridChecks(
        separation=float(sep.distance),
        required_separation=required,
        separated=bool(sep.distance >= required * (1 - 1e-12)) or math.isinf(sep.distance),
        linear=linear_separability_lp(instance.points, instance.labels),
    )
