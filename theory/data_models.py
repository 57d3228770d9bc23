r"""The [P1] §5 data model for linearly separable data (SPEC T3), shared with :mod:`empirics`.

numpy only, so that ``empirics`` and ``theory`` can both import it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robmem.theory.bounds.validation import (
    require_int_at_least,
    require_nonnegative,
    require_positive,
)


@dataclass(frozen=True)
class LinearSeparableData:
    """Samples of the [P1] §5 model.

    Attributes
    ----------
    x : ndarray, shape (n, d), float64
        Inputs; the first ``n_large`` rows are large-margin points, the rest small-margin.
    y : ndarray, shape (n,), int64
        Labels in {−1, +1}.
    w_star : ndarray, shape (d,)
        Unit-norm target direction.
    is_small : ndarray, shape (n,), bool
        True for small-margin points (c = β).
    noise : ndarray, shape (n, d)
        The noise ξ_i (orthogonal to w_star); x = c·y·w* + ξ.
    """

    x: np.ndarray
    y: np.ndarray
    w_star: np.ndarray
    is_small: np.ndarray
    noise: np.ndarray


def linear_separable_data(
    n_large: int,
    n_small: int,
    dim: int,
    alpha: float,
    beta: float,
    noise_std: float,
    seed: int = 0,
) -> LinearSeparableData:
    r"""Draw x_i = c_i y_i w* + ξ_i, the [P1] §5 data model (SPEC T3).

    Statement ([P1] §5): x = c·y·w* + ξ with c = α (large margin) or c = β ≪ α (small margin)
    and ξ a Gaussian vector orthogonal to w*. Here w* is a uniformly random unit vector, the
    labels are i.i.d. uniform on {−1, +1}, and ξ = (I − w*w*ᵀ) g with g ~ N(0, noise_std² I_d),
    so w*ᵀx_i = c_i y_i exactly: the data are linearly separable by w* with margin min c_i.

    Parameters
    ----------
    n_large, n_small : int
        Numbers of large- and small-margin points (>= 0, sum >= 1).
    dim : int
        Dimension d (>= 2, so that the noise has a non-trivial subspace).
    alpha : float
        Large margin α (> 0).
    beta : float
        Small margin β, in (0, α].
    noise_std : float
        Per-coordinate standard deviation of g (>= 0).
    seed : int
        Seed of numpy's default generator.

    Returns
    -------
    LinearSeparableData
    """
    n_large = require_int_at_least("n_large", n_large, 0)
    n_small = require_int_at_least("n_small", n_small, 0)
    if n_large + n_small < 1:
        raise ValueError("n_large + n_small must lie in [1, inf), got 0 (empty data)")
    dim = require_int_at_least("dim", dim, 2)
    alpha = require_positive("alpha", alpha)
    beta = require_positive("beta", beta)
    if beta > alpha:
        raise ValueError(f"beta must lie in (0, alpha] = (0, {alpha}], got {beta!r}")
    noise_std = require_nonnegative("noise_std", noise_std)
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal(dim)
    w_star /= np.linalg.norm(w_star)
    n = n_large + n_small
    y = rng.choice(np.array([-1, 1], dtype=np.int64), size=n)
    g = noise_std * rng.standard_normal((n, dim))
    noise = g - np.outer(g @ w_star, w_star)
    is_small = np.zeros(n, dtype=bool)
    is_small[n_large:] = True
    c = np.where(is_small, beta, alpha)
    x = (c * y)[:, None] * w_star[None, :] + noise
    return LinearSeparableData(x=x, y=y, w_star=w_star, is_small=is_small, noise=noise)
