"""Tests of empirics.complexity (SPEC E5): Kendall tau against a brute-force pair count."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from empirics.complexity import kendall_tau_table


def _tau_a(a: list[float], b: list[float]) -> float:
    conc = disc = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
        conc += s > 0
        disc += s < 0
    return (conc - disc) / math.comb(len(a), 2)


@given(st.permutations(list(range(6))), st.permutations(list(range(6))))
def test_tau_matches_pair_count_without_ties(p: list[int], q: list[int]) -> None:
    measures = [{"m": float(v), "const": 1.0} for v in p]
    rows = kendall_tau_table(measures, [float(v) for v in q])
    by_name = {r.measure: r for r in rows}
    assert by_name["m"].tau == pytest.approx(_tau_a(p, q))
    assert math.isnan(by_name["const"].tau) and not by_name["const"].tracks_gap
    assert by_name["m"].tracks_gap == (by_name["m"].tau >= 0.6)


def test_only_common_measures_and_bad_inputs() -> None:
    rows = kendall_tau_table([{"a": 1.0, "b": 2.0}, {"a": 2.0}], [0.1, 0.2])
    assert [r.measure for r in rows] == ["a"]
    assert rows[0].tau == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same length"):
        kendall_tau_table([{"a": 1.0}], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 2"):
        kendall_tau_table([{"a": 1.0}], [0.1])
    with pytest.raises(ValueError, match="tracking_tau"):
        kendall_tau_table([{"a": 1.0}, {"a": 2.0}], [0.1, 0.2], tracking_tau=2.0)


def test_model_complexity_uses_theory_calculator() -> None:
    import torch

    import theory.bounds.measures_torch as measures_torch
    from empirics.complexity import model_complexity

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    got = model_complexity(net, x, y)
    want = measures_torch.complexity_measures(net, x, y)
    assert got
    for name, value in got.items():
        assert value == pytest.approx(float(want[name]))
