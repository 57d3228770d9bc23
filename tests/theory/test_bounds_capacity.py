"""Oracle tests of the T2 size lower bounds against the explicit grid instance (SPEC T2)."""

from __future__ import annotations

import math

import pytest

from robmem.theory.bounds.capacity import (
    grid_vc_lower_bound,
    memorization_lower_bound,
    robust_generalization_lower_bound,
)
from robmem.theory.grid_instance import grid_instance


@pytest.mark.parametrize(("dim", "eps"), [(2, 0.1), (3, 0.125), (4, 0.25), (3, 0.07)])
def test_grid_vc_bound_is_five_percent_of_the_built_grid(dim: int, eps: float) -> None:
    inst = grid_instance(dim, eps)
    assert grid_vc_lower_bound(dim=dim, eps=eps).value == pytest.approx(0.05 * len(inst.points))


@pytest.mark.parametrize(("dim", "k"), [(3, 5), (5, 2), (7, 4)])
def test_robust_lower_bound_sixth_power_counts_grid_points(dim: int, k: int) -> None:
    # With 1/(2 eps) an integer K, (2 eps)^{-(d-1)} = K^{d-1} = number of grid points, so
    # N_d^6 (C = 1) equals the size of the instance [C22] builds.
    eps = 1.0 / (2 * k)
    n_points = len(grid_instance(dim, eps).points)
    assert robust_generalization_lower_bound(dim=dim, eps=eps).value ** 6 == pytest.approx(n_points)


def test_memorization_lower_bound_values_and_overflow_handling() -> None:
    assert memorization_lower_bound(n_points=100, dim=4).value == pytest.approx(20.0)
    huge = grid_vc_lower_bound(dim=800, eps=0.1)
    assert math.isinf(huge.value)
    assert huge.terms["log10_value"] == pytest.approx(math.log10(0.05) + 799 * math.log10(5))
    with pytest.raises(ValueError, match="eps"):
        robust_generalization_lower_bound(dim=3, eps=0.5)
