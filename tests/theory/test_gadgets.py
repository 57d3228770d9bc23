"""Gadget networks against their numpy definitions (independent formulas)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robmem.theory import gadgets

GRID = np.linspace(-3, 3, 601)[:, None]


def test_abs_and_max():
    np.testing.assert_allclose(gadgets.abs_network().forward(GRID)[:, 0], np.abs(GRID[:, 0]))
    a, b = np.meshgrid(np.linspace(-2, 2, 41), np.linspace(-2, 2, 41))
    ab = np.column_stack([a.ravel(), b.ravel()])
    np.testing.assert_allclose(gadgets.max_network().forward(ab)[:, 0], ab.max(axis=1), atol=1e-15)


@pytest.mark.parametrize(("alpha", "beta"), [(0.1, 0.5), (0.0, 1.0), (0.3, 0.31)])
def test_trapezoid(alpha, beta):
    r = np.linspace(-1, 2, 3001)
    got = gadgets.trapezoid_network(alpha, beta).forward(r[:, None])[:, 0]
    expected = np.clip((beta - r) / (beta - alpha), 0.0, 1.0)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    with pytest.raises(ValueError, match="beta"):
        gadgets.trapezoid_network(0.2, 0.2)


def test_gate():
    net = gadgets.gate_network(3.0)
    f = np.linspace(-5, 5, 101)
    for g in (0.0, 0.5, 2.0):
        got = net.forward(np.column_stack([f, np.full_like(f, g)]))[:, 0]
        expected = np.sign(f) * np.maximum(np.abs(f) - 3.0 * g, 0)
        np.testing.assert_allclose(got, expected, atol=1e-12)
    with pytest.raises(ValueError, match="scale"):
        gadgets.gate_network(0.0)


@settings(max_examples=40)
@given(
    st.integers(1, 20).flatmap(
        lambda d: st.tuples(
            hnp.arrays(np.float64, (6, d), elements=st.floats(-2, 2)),
            hnp.arrays(np.float64, (d,), elements=st.floats(-2, 2)),
        )
    )
)
def test_distance_networks(case):
    x, c = case
    linf = gadgets.linf_distance_network(c)
    np.testing.assert_allclose(linf.forward(x)[:, 0], np.abs(x - c).max(axis=1), atol=1e-12)
    assert linf.depth == gadgets.linf_tree_depth(c.size) + 2
    l1 = gadgets.l1_distance_network(c)
    np.testing.assert_allclose(l1.forward(x)[:, 0], np.abs(x - c).sum(axis=1), atol=1e-12)


@pytest.mark.parametrize("teeth", [1, 2, 3, 5])
def test_sawtooth_error_and_grid(teeth):
    net = gadgets.sawtooth_square_network(teeth)
    t = np.linspace(0, 1, 4097)
    err = net.forward(t[:, None])[:, 0] - t**2
    bound = gadgets.sawtooth_error_bound(teeth)
    assert err.min() >= -1e-15 and err.max() <= bound + 1e-15
    # the bound is attained at the midpoints of the 2^-m grid
    assert err.max() == pytest.approx(bound, rel=1e-9)
    grid = np.arange(2**teeth + 1) / 2**teeth
    np.testing.assert_allclose(net.forward(grid[:, None])[:, 0], grid**2, atol=1e-15)
    # |t| inside: symmetric
    np.testing.assert_allclose(net.forward(-t[:, None]), net.forward(t[:, None]))


def test_teeth_for_gap():
    m = gadgets.sawtooth_teeth_for_gap(64, 0.01)
    assert 64 * gadgets.sawtooth_error_bound(m) <= 0.01 < 64 * gadgets.sawtooth_error_bound(m - 1)
    with pytest.raises(ValueError, match="gap"):
        gadgets.sawtooth_teeth_for_gap(3, 0.0)
    with pytest.raises(ValueError, match="teeth"):
        gadgets.sawtooth_square_network(0)
