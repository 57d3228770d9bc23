"""The public strategies (SPEC T5) produce what they promise (brute-force checks)."""

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from robmem.theory.construction import FLOAT_RAMP_FLOOR, build_construction
from robmem.theory.network import ReLUNetwork
from robmem.theory.strategies import (
    _probe_points,
    admissible_radii,
    clean_relu_networks,
    datasets_with_radius,
    largest_admissible_radius,
    separated_datasets,
)


@settings(max_examples=60)
@given(separated_datasets(min_separation=0.15, n_classes=3, norm="2"))
def test_separated_datasets(data):
    x, y = data.points, data.labels
    assert x.min() >= 0 and x.max() <= 1 and set(np.unique(y)) <= {0, 1, 2}
    assert len(x) >= 2 and len(np.unique(y)) >= 2  # at least two labels by default
    d = cdist(x, x, "chebyshev") + 10 * np.eye(len(x))
    # the grid guarantee 1/(2k) ≥ 0.15 (k = 3), up to the rounding of c/k + j/(4k)
    assert d.min() >= 1 / 6 - 1e-15
    opp = cdist(x, x, "euclidean")
    opp[y[:, None] == y[None, :]] = np.inf
    assert data.separation.distance == pytest.approx(opp.min(), rel=1e-15)
    tight = bool(np.isclose(opp.min(), 1 / 6, rtol=0, atol=1e-15))
    event("closest opposite pair at exactly 1/(2k)" if tight else "closest pair farther")


def test_separated_datasets_draw_the_boundary_pair_often():
    seen = {"tight": 0, "all": 0}

    @settings(max_examples=100)
    @given(separated_datasets(min_separation=0.25, dim=st.integers(1, 3)))
    def run(data):
        seen["all"] += 1
        # 1/(2k) = 0.25 exactly (k = 2: dyadic coordinates, no rounding)
        seen["tight"] += data.separation.distance == 0.25
        assert data.separation.distance >= 0.25

    run()
    assert seen["tight"] >= seen["all"] // 4, seen


#: RADIUS_FLOOR of robmem.theory.strategies: the smallest radius drawn, as a fraction of R/2.
RADIUS_LOW = 0.01


@pytest.mark.parametrize("r", [0.25, 1 / 3, 0.8, 3.0])
def test_radii_reach_the_float_limit_below_half_separation(r):
    top = largest_admissible_radius(r)
    assert 0 < r / 2 - top <= 2 * FLOAT_RAMP_FLOOR * max(1.0, r)  # within 2^-29 of R/2
    drawn = []

    @settings(max_examples=50)
    @given(admissible_radii(r))
    def run(delta):
        assert RADIUS_LOW * r / 2 <= delta <= top < r / 2
        drawn.append(delta)

    run()
    assert max(drawn) == top and min(drawn) < r / 4  # both ends are explored


@settings(max_examples=40)
@given(datasets_with_radius())
def test_radius_is_admissible_and_constructible(case):
    data, delta = case
    assert 0 < delta < data.separation.distance / 2
    # the construction accepts every drawn radius, however close to R/2
    build_construction(data.points, data.labels, delta, "inf")
    event("δ within 1e-6 of R/2" if data.separation.distance / 2 - delta < 1e-6 else "δ < R/2")


def test_construction_refuses_a_ramp_below_float_resolution():
    x, y = np.array([[0.25], [0.75]]), np.array([1, -1])
    with pytest.raises(ValueError, match="delta: the bump ramp"):
        build_construction(x, y, np.nextafter(0.25, 0.0), "inf")
    build_construction(x, y, largest_admissible_radius(0.5), "inf")


@settings(max_examples=20)
@given(st.data())
def test_clean_networks(data):
    net = data.draw(clean_relu_networks(3, 2, max_hidden_layers=2, max_width=5))
    assert isinstance(net, ReLUNetwork) and net.input_dim == 3 and net.output_dim == 2
    assert 1 <= net.depth <= 3 and max(net.widths[1:-1], default=1) <= 5
    out = net.forward(_probe_points(3))
    assert np.all(out.max(axis=0) > out.min(axis=0))  # non-constant


def test_strategy_argument_errors():
    with pytest.raises(ValueError, match="separation"):
        admissible_radii(0.0)

    @given(separated_datasets(min_separation=0.9))
    def draw_invalid(data):
        pass

    with pytest.raises(ValueError, match="min_separation"):
        draw_invalid()
