"""Closed-form parameter count (sympy) equals the counted non-zeros of the lowered net."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robmem.theory import counting
from robmem.theory.construction import build_construction
from robmem.theory.gadgets import sawtooth_teeth_for_gap
from robmem.theory.pipeline import closed_form_count
from robmem.theory.separation import opposite_label_separation
from robmem.theory.strategies import clean_relu_networks, datasets_with_radius


@settings(max_examples=60)
@given(
    datasets_with_radius(n_points=st.integers(2, 6), dim=st.integers(1, 9), min_separation=0.25),
    st.sampled_from([2, 3]),
    st.booleans(),
    st.data(),
)
def test_closed_form_equals_count_linf(case, n_classes, with_clean, data):
    d, delta = case
    y = d.labels if n_classes == 2 else (d.labels + 1) // 2 + (d.labels > 0)  # 0 or 2
    out_dim = 1 if n_classes == 2 else 3
    clean = (
        data.draw(clean_relu_networks(d.points.shape[1], out_dim, max_hidden_layers=6))
        if with_clean
        else None
    )
    if clean is not None and clean.nonzero_parameter_count() == 0:
        clean = None
    model = build_construction(
        d.points, y, delta, clean=clean, n_classes=None if n_classes == 2 else 3
    )
    assert model.network().nonzero_parameter_count() == closed_form_count(model, clean)


@settings(max_examples=15)
@given(
    datasets_with_radius(n_points=st.integers(2, 4), dim=st.integers(1, 4), min_separation=0.3),
    st.integers(1, 4),
    st.booleans(),
    st.data(),
)
def test_closed_form_equals_count_sawtooth(case, teeth, with_clean, data):
    d, delta = case
    delta = min(delta, 0.05)
    clean = (
        data.draw(clean_relu_networks(d.points.shape[1], 1, max_hidden_layers=7))
        if with_clean
        else None
    )
    if clean is not None and clean.nonzero_parameter_count() == 0:
        clean = None
    # teeth drawn above a number this gap admits (too few are refused, tested elsewhere);
    # half the gap keeps α = δ² + d·2^(−2m−2) strictly below β = (λ₂ − δ)²
    lam = opposite_label_separation(d.points, d.labels, "2").distance
    gap = (lam - delta) ** 2 - delta**2
    enough = sawtooth_teeth_for_gap(d.points.shape[1], gap / 2)
    model = build_construction(
        d.points, d.labels, delta, "2", clean=clean, l2_method="sawtooth", teeth=enough + teeth - 1
    )
    got = model.network().nonzero_parameter_count()
    assert got == closed_form_count(model, clean)


def test_tree_sum_matches_integer_formula():
    import sympy

    dsym = sympy.Symbol("d", integer=True, nonnegative=True)
    expr = counting.linf_tree_weight_expr()
    for dim in range(1, 70):
        assert int(expr.subs(dsym, dim).doit()) == counting.linf_tree_weight_count(dim)


def test_expression_is_symbolic():
    expr = counting.construction_parameter_count_expr()
    names = {s.name for s in expr.free_symbols}
    assert {"N", "d", "C", "Z", "P", "P_L", "L_c"} <= names
    # closed form without f_clean, d = 2: per point 2d + Tree(2) + 6 with Tree(2) = 6
    assert counting.construction_parameter_count(3, 2) == 3 * (4 + 6 + 6) + 2 * 6 + 2 * 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_points": 0, "dim": 2}, "n_points"),
        ({"n_points": 1, "dim": 0}, "dim"),
        ({"n_points": 1, "dim": 2, "n_classes": 1}, "n_classes"),
        ({"n_points": 1, "dim": 2, "zero_centre_coordinates": 3}, "zero_centre_coordinates"),
        ({"n_points": 1, "dim": 2, "norm": "1"}, "norm"),
        ({"n_points": 1, "dim": 2, "norm": "2", "l2_method": "x"}, "l2_method"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        counting.construction_parameter_count(**kwargs)
