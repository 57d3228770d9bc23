"""Opposite-label separation against brute force (oracle), pruning paths, generator."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial.distance import cdist

import robmem.theory.separation as separation
from robmem.theory.separation import (
    linf_close_pairs,
    opposite_label_separation,
    synthetic_separated_points,
)

METRIC = {"inf": "chebyshev", "2": "euclidean"}


def _brute(x, y, norm):
    d = cdist(x, x, METRIC[norm])
    d[y[:, None] == y[None, :]] = np.inf
    return d.min()


@settings(max_examples=60)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 12), st.integers(1, 6)),
        elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
    ),
    st.data(),
    st.sampled_from(["inf", "2"]),
)
def test_matches_brute_force_with_ties(x, data, norm):
    # coarse values make many ties and duplicates
    y = np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(x), max_size=len(x))))
    sep = opposite_label_separation(x, y, norm)
    expected = _brute(x, y, norm)
    if not np.isfinite(expected):
        assert sep.distance == np.inf and sep.i == -1
        return
    assert sep.distance == pytest.approx(expected, abs=1e-12)
    assert y[sep.i] != y[sep.j]
    assert cdist(x[[sep.i]], x[[sep.j]], METRIC[norm])[0, 0] == pytest.approx(expected, abs=1e-12)


def test_pruning_refinement_paths(monkeypatch):
    # small blocks force the refinement loop and the pair batching to run
    monkeypatch.setattr(separation, "FIRST_BLOCK", 2)
    monkeypatch.setattr(separation, "REFINE_BLOCK", 3)
    monkeypatch.setattr(separation, "REFINE_PAIRS", 7)
    monkeypatch.setattr(separation, "ROW_CHUNK", 5)
    monkeypatch.setattr(separation, "SEED_POINTS", 3)
    rng = np.random.default_rng(0)
    x = rng.random((60, 17))
    y = rng.integers(0, 3, 60)
    sep = opposite_label_separation(x, y, "inf")
    assert sep.distance == pytest.approx(_brute(x, y, "inf"), abs=1e-15)
    thr = rng.uniform(0.3, 0.9, size=40)
    q, c, d = linf_close_pairs(x[:20], x[20:], thr)
    brute = cdist(x[:20], x[20:], "chebyshev")
    expected = set(zip(*np.nonzero(brute < thr[None, :]), strict=True))
    assert set(zip(q.tolist(), c.tolist(), strict=True)) == expected
    np.testing.assert_allclose(d, brute[q, c])


def test_single_label_is_infinite():
    sep = opposite_label_separation(np.eye(3), np.ones(3, dtype=int))
    assert sep.distance == np.inf and (sep.i, sep.j) == (-1, -1)


@pytest.mark.parametrize(
    ("points", "labels", "match"),
    [
        (np.zeros((0, 2)), np.zeros(0, dtype=int), "N = 0"),
        (np.array([[np.nan, 0.0]]), np.array([1]), "finite"),
        (np.zeros((2, 2)), np.array([1]), "2 points"),
        (np.zeros(3), np.array([1, 1, 1]), "2-D"),
        (np.zeros((2, 2)), np.array([0.5, 1.0]), "integers"),
    ],
)
def test_bad_inputs(points, labels, match):
    with pytest.raises(ValueError, match=match):
        opposite_label_separation(points, labels)


def test_unknown_norm():
    with pytest.raises(ValueError, match="norm"):
        opposite_label_separation(np.eye(2), np.array([0, 1]), "3")


@settings(max_examples=30)
@given(st.integers(1, 40), st.integers(1, 5), st.floats(0.05, 0.5), st.integers(0, 10))
def test_synthetic_points_are_separated(n, dim, sep, seed):
    k = int(np.floor(1 / (2 * sep)))
    if (k + 1) ** dim < n:
        with pytest.raises(ValueError, match="n_points"):
            synthetic_separated_points(n, dim, sep, 2, seed)
        return
    x, y = synthetic_separated_points(n, dim, sep, 2, seed)
    assert x.min() >= 0 and x.max() <= 1 and set(np.unique(y)) <= {-1, 1}
    if n > 1:
        d = cdist(x, x, "chebyshev") + np.eye(n) * 10
        assert d.min() >= sep - 1e-12
