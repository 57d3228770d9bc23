"""Tests of the [C22] Thm 4.3 grid instance (SPEC T2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from robmem.theory.grid_instance import check_grid_instance, grid_instance, linear_separability_lp


@pytest.mark.parametrize(("dim", "eps"), [(2, 0.1), (3, 0.1), (4, 0.2), (3, 0.3)])
def test_grid_is_separated_and_linearly_separable(dim, eps) -> None:
    inst = grid_instance(dim, eps, seed=dim)
    k = int(np.floor(1 / (2 * eps)))
    assert inst.K == k and inst.points.shape == (k ** (dim - 1), dim)
    assert inst.points.min() >= 0 and inst.points.max() <= 1
    checks = check_grid_instance(inst, "inf")
    assert checks.separated and checks.linear.separable
    assert checks.linear.margin >= inst.eps0 - 1e-9
    # independent oracle for the separation: full pairwise distances
    pos, neg = inst.points[inst.labels > 0], inst.points[inst.labels < 0]
    if len(pos) and len(neg):
        brute = cdist(pos, neg, "chebyshev").min()
        assert checks.separation == pytest.approx(brute)
        assert brute >= 2 * eps - 1e-12
        assert cdist(pos, neg).min() >= 2 * eps - 1e-12


def test_labelling_callable_and_array() -> None:
    inst = grid_instance(3, 0.25, labelling=lambda idx: np.where(idx[:, 0] % 2 == 0, 1, -1))
    assert inst.labels.tolist() == [-1, -1, 1, 1]
    inst2 = grid_instance(3, 0.25, labelling=np.array([1, -1, -1, 1]), eps0=0.1)
    np.testing.assert_allclose(inst2.points[:, 2], 0.5 + 0.1 * inst2.labels)


def test_lp_detects_non_separable_data() -> None:
    x = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    res = linear_separability_lp(x, np.array([1, 1, -1, -1]))
    assert not res.separable and res.margin <= 1e-9


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="eps"):
        grid_instance(3, 0.5)
    with pytest.raises(ValueError, match="max_points"):
        grid_instance(10, 0.01)
    with pytest.raises(ValueError, match="labelling"):
        grid_instance(3, 0.25, labelling=np.array([1, 0, 1, 1]))
