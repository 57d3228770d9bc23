"""Tests of the [P1] §5 data model (SPEC T3)."""

from __future__ import annotations

import numpy as np
import pytest

from robmem.theory.data_models import linear_separable_data


def test_structure_margins_and_orthogonality() -> None:
    d = linear_separable_data(30, 10, 8, alpha=2.0, beta=0.2, noise_std=0.5, seed=3)
    assert d.x.shape == (40, 8) and d.y.shape == (40,) and d.is_small.sum() == 10
    assert np.linalg.norm(d.w_star) == pytest.approx(1.0)
    np.testing.assert_allclose(d.noise @ d.w_star, 0.0, atol=1e-12)
    c = np.where(d.is_small, 0.2, 2.0)
    np.testing.assert_allclose(d.y * (d.x @ d.w_star), c, atol=1e-12)
    np.testing.assert_allclose(d.x, (c * d.y)[:, None] * d.w_star + d.noise, atol=1e-12)
    assert set(np.unique(d.y)) <= {-1, 1}


def test_noise_variance_and_reproducibility() -> None:
    a = linear_separable_data(4000, 0, 20, 1.0, 1.0, 0.3, seed=1)
    b = linear_separable_data(4000, 0, 20, 1.0, 1.0, 0.3, seed=1)
    np.testing.assert_array_equal(a.x, b.x)
    # projected Gaussian: E||xi||^2 = (d - 1) sigma^2
    assert np.mean((a.noise**2).sum(1)) == pytest.approx(19 * 0.09, rel=0.03)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(n_large=0, n_small=0), "empty"),
        (dict(n_large=-1), "n_large"),
        (dict(dim=1), "dim"),
        (dict(alpha=0.0), "alpha"),
        (dict(beta=2.0), "beta"),
        (dict(noise_std=-1.0), "noise_std"),
    ],
)
def test_bad_input(kwargs, name) -> None:
    base = dict(n_large=5, n_small=2, dim=3, alpha=1.0, beta=0.1, noise_std=0.1)
    with pytest.raises(ValueError, match=name):
        linear_separable_data(**(base | kwargs))
