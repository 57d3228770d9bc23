"""Tests of the T2 size table (SPEC T2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robmem.theory.counting import construction_parameter_count
from robmem.theory.sizes import (
    clean_classifier_size,
    construction_layers,
    format_size_table,
    size_table,
)


def test_extrapolated_layers_match_a_real_build() -> None:
    from robmem.theory.construction import build_construction

    rng = np.random.default_rng(0)
    pts = rng.uniform(0.05, 0.95, size=(7, 5))
    labels = np.array([1, -1, 1, -1, 1, 1, -1])
    net = build_construction(pts, labels, 0.01, "inf").network()
    units, params = construction_layers(7, 5)
    assert (units, params) == (net.widths[1:], net.layer_nonzero_counts())
    assert sum(params) == net.nonzero_parameter_count() == construction_parameter_count(7, 5)


def test_table_orders_sizes_and_shows_vacuity() -> None:
    table = size_table(1000, 784, 0.1, 0.05)
    v = table.as_dict()
    assert v["clean_size"] == clean_classifier_size(784) == 784 * 785 + 785
    assert v["clean_size"] < v["construction_size"]
    assert v["memorization_lower"] <= v["memorization_size"]
    assert v["construction_size"] < v["robust_generalization_lower"]
    assert v["vc_gap_at_n"] >= 1 and v["vc_gap_lower_vc"] >= 1
    assert v["construction_vc_upper"] >= 1000
    text = format_size_table(table)
    assert "vacuous at n = N: yes" in text and "~1e546" in text


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, 10, 0.1, 0.05), "n_points"),
        ((10, 0, 0.1, 0.05), "dim"),
        ((10, 10, 0.6, 0.05), "eps"),
        ((10, 10, 0.1, 0.1), "delta"),
        ((10, 10, 0.1, 0.0), "delta"),
    ],
)
def test_bad_input(args, name) -> None:
    with pytest.raises(ValueError, match=name):
        size_table(*args)
    assert math.isfinite(size_table(10, 10, 0.1, 0.05, confidence=0.5).as_dict()["vc_gap_at_n"])
