"""The public strategies (SPEC T5) produce what they promise (brute-force checks)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.network import ReLUNetwork
from theory.separation import pairwise_distances
from theory.strategies import (
    admissible_radii,
    clean_relu_networks,
    datasets_with_radius,
    separated_datasets,
)


@settings(max_examples=60)
@given(separated_datasets(min_separation=0.15, n_classes=3, norm="2"))
def test_separated_datasets(data):
    x, y = data.points, data.labels
    assert x.min() >= 0 and x.max() <= 1 and set(np.unique(y)) <= {0, 1, 2}
    if len(x) > 1:
        d = pairwise_distances(x, x, "inf") + 10 * np.eye(len(x))
        assert d.min() >= 0.15 - 1e-12
    opp = pairwise_distances(x, x, "2")
    opp[y[:, None] == y[None, :]] = np.inf
    assert data.separation.distance == pytest.approx(opp.min()) or not np.isfinite(opp.min())


@settings(max_examples=40)
@given(datasets_with_radius())
def test_radius_is_admissible(case):
    data, delta = case
    assert 0 < delta < data.separation.distance / 2 or not np.isfinite(data.separation.distance)


@settings(max_examples=20)
@given(st.data())
def test_clean_networks(data):
    net = data.draw(clean_relu_networks(3, 2, max_hidden_layers=2, max_width=5))
    assert isinstance(net, ReLUNetwork) and net.input_dim == 3 and net.output_dim == 2
    assert 1 <= net.depth <= 3 and max(net.widths[1:-1], default=1) <= 5


def test_strategy_argument_errors():
    with pytest.raises(ValueError, match="separation"):
        admissible_radii(0.0)

    @given(separated_datasets(min_separation=0.9))
    def draw_invalid(data):
        pass

    with pytest.raises(ValueError, match="min_separation"):
        draw_invalid()
