"""bridge.stats against independent computations; bridge.verdicts' rule on every branch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robmem.bridge.stats import (
    Estimate,
    bootstrap_ci,
    exact,
    fraction_ci,
    kendall_tau,
    kendall_tau_ci,
    mean_ci,
    paired_difference,
    partial_kendall_tau,
)
from robmem.bridge.verdicts import (
    ABOVE,
    BELOW,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    WITHIN,
    Amendment,
    Criterion,
    decide,
)


def test_mean_ci_matches_the_t_formula() -> None:
    # independent: t_{0.975, 4} = 2.7764451051977987 (tables), s computed by hand
    v = [1.0, 2.0, 4.0, 7.0, 11.0]
    m = sum(v) / 5
    s = math.sqrt(sum((x - m) ** 2 for x in v) / 4)
    half = 2.7764451051977987 * s / math.sqrt(5)
    e = mean_ci(v)
    assert e.mean == pytest.approx(m) and e.n == 5 and e.method == "t"
    assert (e.low, e.high) == (pytest.approx(m - half), pytest.approx(m + half))
    assert e.values == tuple(v)


def test_one_value_has_an_unbounded_interval() -> None:
    e = mean_ci([3.0])
    assert e.mean == 3.0 and math.isinf(e.low) and math.isinf(e.high)
    assert e.as_dict()["ci_low"] is None
    assert "−∞" in e.text()


def test_paired_difference_pairs_by_position() -> None:
    e = paired_difference([5.0, 6.0, 7.0], [1.0, 2.0, 3.0])
    assert e.mean == 4.0 and e.low == e.high == 4.0  # constant differences: zero width
    with pytest.raises(ValueError, match="pair up"):
        paired_difference([1.0], [1.0, 2.0])


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="values must be finite"):
        mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_ci([1, 2], lambda u: 0.0, resamples=5)
    with pytest.raises(ValueError, match="successes"):
        fraction_ci(5, 3)


def test_bootstrap_covers_a_known_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 1.0, size=200).tolist()
    e = bootstrap_ci(x, lambda u: float(np.mean(u)), seed=1)
    assert e.low < 10.0 < e.high and e.high - e.low < 0.5
    assert bootstrap_ci(x, lambda u: float(np.mean(u)), seed=1) == e  # seeded


def test_kendall_and_partial_kendall_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    x, y, z = (rng.normal(size=12) for _ in range(3))

    def tau(a, b):  # no ties: (concordant − discordant) / pairs
        n = len(a)
        s = sum(
            np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i in range(n) for j in range(i + 1, n)
        )
        return s / (n * (n - 1) / 2)

    assert kendall_tau(x, y) == pytest.approx(tau(x, y))
    txy, txz, tyz = tau(x, y), tau(x, z), tau(y, z)
    want = (txy - txz * tyz) / math.sqrt((1 - txz**2) * (1 - tyz**2))
    assert partial_kendall_tau(x, y, z) == pytest.approx(want)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_kendall_ci_separates_association_from_none() -> None:
    x = np.arange(30.0)
    assert kendall_tau_ci(x, x + 0.1 * np.sin(x)).low > 0.5
    rng = np.random.default_rng(0)
    e = kendall_tau_ci(rng.normal(size=30), rng.normal(size=30))
    assert e.low < 0 < e.high


def test_fraction_ci_is_wilson() -> None:
    # Wilson interval for 8/10 at 95 %: [0.4902, 0.9433] (Newcombe 1998, Table I method 3)
    e = fraction_ci(8, 10)
    assert e.low == pytest.approx(0.4902, abs=1e-4) and e.high == pytest.approx(0.9433, abs=1e-4)


def test_scaled_and_exact() -> None:
    e = mean_ci([0.1, 0.2, 0.3]).scaled(100.0)
    assert e.mean == pytest.approx(20.0) and e.values == pytest.approx((10.0, 20.0, 30.0))
    assert exact(3.0).low == exact(3.0).high == 3.0


# ---------------------------------------------------------------- verdict rule
def _est(low: float, high: float) -> Estimate:
    return Estimate((low + high) / 2, low, high, 3, "t")


C_ABOVE = Criterion("a", "stat a", ABOVE, 5.0, "pts", "src")
C_BELOW = Criterion("b", "stat b", BELOW, 0.0, "", "src")
C_WITHIN = Criterion("w", "stat w", WITHIN, -1.0, "", "src", upper=1.0)
PREMISE = Criterion("p", "premise p", ABOVE, 0.0, "", "src")


@pytest.mark.parametrize(
    ("crit", "low", "high", "reading"),
    [
        (C_ABOVE, 6, 9, "holds"), (C_ABOVE, 1, 4, "fails"), (C_ABOVE, 4, 6, "undecided"),
        (C_ABOVE, 5, 9, "undecided"),  # touching the threshold is not "wholly above"
        (C_BELOW, -3, -1, "holds"), (C_BELOW, 1, 3, "fails"), (C_BELOW, -1, 1, "undecided"),
        (C_WITHIN, -0.5, 0.5, "holds"), (C_WITHIN, 2, 3, "fails"), (C_WITHIN, -3, -2, "fails"),
        (C_WITHIN, 0.5, 1.5, "undecided"),
    ],
)  # fmt: skip
def test_criterion_reads_its_ci(crit, low, high, reading) -> None:
    assert crit.read(_est(low, high)) == reading


def test_decide_every_branch() -> None:
    ok = {"p": _est(1, 2), "a": _est(6, 9), "b": _est(-3, -1)}
    assert decide(ok, [C_ABOVE, C_BELOW], [PREMISE]).verdict == REPRODUCED
    assert decide({**ok, "a": _est(1, 4)}, [C_ABOVE, C_BELOW], [PREMISE]).verdict == NOT_REPRODUCED
    assert decide({**ok, "a": _est(4, 6)}, [C_ABOVE, C_BELOW], [PREMISE]).verdict == INCONCLUSIVE
    # a failed premise wins over everything
    d = decide({**ok, "p": _est(-2, -1)}, [C_ABOVE], [PREMISE])
    assert d.verdict == NOT_APPLICABLE and "premise fails" in d.reason
    assert decide({**ok, "p": _est(-1, 1)}, [C_ABOVE], [PREMISE]).verdict == INCONCLUSIVE
    # one failing criterion is enough for "not reproduced", even with another undecided
    mixed = {**ok, "a": _est(4, 6), "b": _est(1, 2)}
    assert decide(mixed, [C_ABOVE, C_BELOW], [PREMISE]).verdict == NOT_REPRODUCED
    # a missing statistic is undecided, never a pass
    assert decide({"p": _est(1, 2)}, [C_ABOVE], [PREMISE]).verdict == INCONCLUSIVE
    assert decide({"a": _est(float("nan"), float("nan"))}, [C_ABOVE]).verdict == INCONCLUSIVE
    with pytest.raises(ValueError, match="criteria"):
        decide(ok, [])


def test_criterion_and_amendment_inputs() -> None:
    with pytest.raises(ValueError, match="side"):
        Criterion("x", "x", "left", 0.0)
    with pytest.raises(ValueError, match="upper"):
        Criterion("x", "x", WITHIN, 1.0, upper=0.0)
    with pytest.raises(ValueError):
        Amendment("E1", "x", "a", "b", "yesterday", "r")


def test_text_flags_a_zero_width_interval_of_equal_values():
    """n equal seed values give a zero-width t-interval; the text says why, so a reader does
    not take it for a number without sampling error. Unequal values and one value do not."""
    assert mean_ci([0.9, 0.9, 0.9]).text().endswith("(n=3, t 95 % CI; all 3 values equal)")
    assert mean_ci([0.9, 0.8, 0.9]).text().endswith("(n=3, t 95 % CI)")
    assert "equal" not in mean_ci([0.9]).text()
