"""Oracle tests of the VC bounds (SPEC T2, T4)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from robmem.theory.bounds.vc import (
    clean_gap_sqrt_complexity,
    growth_function_log2_bhlm,
    vc_dimension_upper_bhlm,
    vc_dimension_upper_from_layers,
    vc_dimension_upper_from_widths,
    vc_generalization_gap,
)


def _dense_layers(widths):
    return widths[1:], [widths[i] * (widths[i - 1] + 1) for i in range(1, len(widths))]


@pytest.mark.parametrize("widths", [[2, 1], [3, 4, 1], [5, 8, 8, 1], [10, 3, 3, 3, 3, 1]])
def test_closed_form_dominates_growth_function_fixed_point(widths) -> None:
    # Oracle: VCdim <= largest m >= W with 2^m <= Pi(m) (the growth-function product the
    # theorem's proof bounds); scan m directly.
    units, params = _dense_layers(widths)
    closed = vc_dimension_upper_from_widths(widths).value
    n_params = sum(params)
    m = n_params
    while growth_function_log2_bhlm(units, params, m + 1) >= m + 1:
        m += 1
    assert m <= closed
    assert closed >= n_params  # the bound is at least W for nets with >= 1 layer


def test_halfspace_vc_dimension_is_below_bound() -> None:
    # A single linear threshold unit in R^d has VC dimension d + 1 (Radon).
    for d in (1, 3, 10):
        assert d + 1 <= vc_dimension_upper_from_widths([d, 1]).value


def test_shattered_set_of_small_relu_net_is_below_bound() -> None:
    # Oracle: exhibit shattering. f(x) = d + sum_k a_k relu(x - k + 1/2) (a [1, 3, 1] ReLU net)
    # interpolates any values at x = 0, 1, 2, 3 (a triangular system), so every labelling of
    # the 4 points is realized: VCdim >= 4.
    pts = np.array([0.0, 1.0, 2.0, 3.0])
    kinks = np.array([0.5, 1.5, 2.5])
    features = np.c_[np.ones(4), np.maximum(pts[:, None] - kinks[None, :], 0.0)]
    for labels in itertools.product((-1.0, 1.0), repeat=4):
        coef = np.linalg.solve(features, np.array(labels))
        f = features @ coef
        assert np.array_equal(np.sign(f), np.array(labels))
    assert 4 <= vc_dimension_upper_from_widths([1, 3, 1]).value


def test_uniform_architecture_matches_widths_and_layers() -> None:
    a = vc_dimension_upper_bhlm(input_dim=7, width=5, hidden_layers=3).value
    b = vc_dimension_upper_from_widths([7, 5, 5, 5, 1]).value
    c = vc_dimension_upper_from_layers(*_dense_layers([7, 5, 5, 5, 1])).value
    assert a == b == c


def test_mohri_gap_hand_values_and_vacuity() -> None:
    # n <= vc: log Pi = n log 2, so the complexity term is sqrt(2 log 2) > 1: vacuous.
    r = vc_generalization_gap(n=100, vc=1000, confidence=0.05)
    assert r.terms["complexity_term"] == pytest.approx(math.sqrt(2 * math.log(2)))
    assert r.vacuous
    # n >> vc: Sauer-Shelah
    r = vc_generalization_gap(n=10**6, vc=10, confidence=0.05)
    expected = math.sqrt(2 * 10 * math.log(math.e * 10**5) / 10**6) + math.sqrt(
        math.log(20) / (2 * 10**6)
    )
    assert r.value == pytest.approx(expected, rel=1e-12)
    assert not r.vacuous


def test_clean_gap_vacuous_at_construction_scale() -> None:
    from robmem.theory.counting import construction_parameter_count

    n, d = 1000, 784
    size = construction_parameter_count(n, d)
    r = clean_gap_sqrt_complexity(n=n, complexity=size)
    assert r.value >= math.sqrt(2 * d)  # size >= 2Nd first-layer weights


@pytest.mark.parametrize(
    "call",
    [
        lambda: vc_dimension_upper_from_widths([3]),
        lambda: vc_dimension_upper_from_widths([3, 0, 1]),
        lambda: vc_dimension_upper_from_layers([], []),
        lambda: vc_dimension_upper_bhlm(input_dim=0, width=2, hidden_layers=1),
    ],
)
def test_zero_layer_and_empty_architectures_are_rejected(call) -> None:
    with pytest.raises(ValueError, match=r"widths|units|input_dim"):
        call()


def test_mohri_bound_holds_uniformly_for_thresholds_in_simulation() -> None:
    # Oracle: Monte Carlo. Thresholds h_t(x) = sign(t - x) on [0, 1] (VC dimension 1), target
    # t* = 0.3, x uniform: R(h_t) = |t - t*|. The empirical risk is piecewise constant in t, so
    # sup_t R - R_hat is attained as t approaches a sample point or an end point; the bound
    # must hold uniformly in all but a `confidence` fraction of samples.
    rng = np.random.default_rng(0)
    n, conf, t_star = 30, 0.2, 0.3
    bound = vc_generalization_gap(n=n, vc=1, confidence=conf).value
    fails = 0
    for _ in range(500):
        x = np.sort(rng.uniform(size=n))
        cands = np.r_[0.0, 1.0, x - 1e-12, x + 1e-12]
        worst = 0.0
        for t in cands:
            lo, hi = min(t, t_star), max(t, t_star)
            emp = np.mean((x > lo) & (x <= hi))
            worst = max(worst, abs(t - t_star) - emp)
        fails += worst > bound
    assert fails / 500 <= conf
