"""The structural certificate's rounding allowances, value by value, against exact rationals.

``certify_construction`` (theory/certify.py, module docstring) computes the structural bound
S_y,lo − max_{c≠y} S_c,hi (and, with a gate, the gate slack and the gate bound
(Δ − kMε)·min(1, 1/(kM)) − ε) with rigorous allowances for its own float64 rounding:
distances rounded outward by one ulp, and γ_{N+STRUCTURAL_DEPTH}·Σ|terms| of each final
expression (the STRUCTURAL_DEPTH docstring); then it subtracts
:func:`~robmem.theory.intervals.margin_error_bound`. These allowances are ~1e-15 of a margin
of 1, so no end-to-end soundness check sees them. Here the instances are dyadic (centres,
points, radii, bump ends at multiples of powers of two, ℓ2 distances from Pythagorean
triples), so float64 computes the distances and bump values exactly and the only
differences from the exact formula are the documented allowances (plus a few roundings of
the final expression, bounded in each test). The oracle, written in the tests with
:class:`fractions.Fraction` (here and ``numpy_lowered.exact_forward``; no code shared with
theory/), evaluates the documented formula
exactly. The structural part of ``margin_lower`` is recovered as margin_lower +
margin_error_bound (public), exact up to one rounding of that difference.

Each test asserts soundness (the production value is not above the documented bound, the
exact margin of the lowered network, or the bound with the documented norm error γ_{d+3}
of the ℓ2 distances) and, where the documentation fixes the allowance, tightness (not
below the documented bound by more than the rounding of the final expression), so a
removed, shrunk or inflated allowance fails. The MILP-fallback tests and the milp
boundary test at the end check documented compositions the same way.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from numpy_lowered import exact_forward

import robmem.theory.certify as certify_module
from robmem.theory.certificates import Status
from robmem.theory.certify import certify_construction
from robmem.theory.construction import BumpBlock, build_construction
from robmem.theory.intervals import (
    clean_margin_lower,
    interval_bounds,
    margin_error_bound,
)
from robmem.theory.milp import MILP_MARGIN_TOLERANCE, milp_min_margin
from robmem.theory.network import ReLUNetwork

U = Fraction(1, 2**53)  # unit roundoff of float64


# ----------------------------------------------------------------------- exact oracle
def _gamma(k: int) -> Fraction:
    """Higham's γ_k = k·u/(1 − k·u), exactly."""
    return k * U / (1 - k * U)


def _trap(r: Fraction, alpha: float, beta: float) -> Fraction:
    """The trapezoid bump g(r) of the construction (1 up to min(α, β), 0 from max(α, β))."""
    low, high = Fraction(min(alpha, beta)), Fraction(max(alpha, beta))
    if r <= low:
        return Fraction(1)
    if r >= high:
        return Fraction(0)
    return (high - r) / (high - low)


def _up(v: float) -> Fraction:
    """One ulp towards +∞ (the documented outward rounding of a distance)."""
    return Fraction(math.nextafter(v, math.inf))


def _down(v: float) -> Fraction:
    return Fraction(math.nextafter(v, -math.inf))


def _structural(model, q, label, radius, norm="inf", **kwargs) -> tuple[Fraction, Fraction]:
    """certify_construction's structural bound for one binary query ball, recovered as
    margin_lower + margin_error_bound (over the ball's box ∩ [0, 1]), and the uncertainty of
    that recovery (one rounding of the difference: u·|margin_lower|)."""
    q = np.asarray(q, dtype=np.float64)[None, :]
    res = certify_construction(model, q, np.array([label]), radius, norm, **kwargs)
    lo, hi = np.clip(q - radius, 0.0, 1.0), np.clip(q + radius, 0.0, 1.0)
    err = margin_error_bound(model.network(), lo, hi, np.array([int(label == 1)]), True)
    ml = Fraction(float(res.margin_lower[0]))
    return ml + Fraction(float(err[0])), U * abs(ml)


def _slop(model) -> Fraction:
    return _gamma(model.n_centres + certify_module.STRUCTURAL_DEPTH)


def _two_centres(c_own: float, c_opp: float, own_bump, opp_bump, clean=None):
    """1-D binary construction: c_own (+1), c_opp (−1), with the given (α, β) per bump."""
    x, y = np.array([[c_own], [c_opp]]), np.array([1, -1])
    model = build_construction(x, y, 0.125, "inf", clean=clean)
    alpha = np.array([own_bump[0], opp_bump[0]])
    beta = np.array([own_bump[1], opp_bump[1]])
    return model.replace(bump=BumpBlock(alpha, beta))


E = 2.0**-11  # half a steep ramp: 1/(β − α) = 2^10 turns an ulp of a distance into 2^10 ulps


# ----------------------------------------------------------------------- ℓ∞, no gate
def test_linf_structural_bound_is_the_documented_formula_with_its_allowances():
    """Own centre ¼ (+1), opposite ¾ (−1), ball [⅛, ⅜] around ¼; the own bump is ½ at
    r = ⅛ and the opposite one ¼ at r = ⅜ (ramps 2^-10 and 2^-9), so the exact margin of the
    lowered network at the ball point ⅜ is exactly ¼ (Fractions) and float64 computes every
    distance exactly. Documented bound: g_own(up(⅛)) − g_opp(down(⅜)) −
    γ_{N+STRUCTURAL_DEPTH}·(S_own + S_opp), distances one ulp outward. The production value
    must be ≤ ¼ (sound; one ulp inward on the opposite distance makes it ¼ + 1.4e-14) and
    equal that formula up to the rounding of the final expression (an allowance dropped,
    shrunk, or taken of other magnitudes (here ¾) moves it by ≥ 1e-15 ≫ the 1e-28
    tolerance)."""
    own, opp = (0.125 - E, 0.125 + E), (0.375 - 3 * E, 0.375 + E)
    model = _two_centres(0.25, 0.75, own, opp)
    structural, recovery = _structural(model, [0.25], 1, 0.125)
    out = exact_forward(model.network(), np.array([0.375]))
    assert out[0] == Fraction(1, 4)  # the exact margin at the ball point nearest the opposite
    assert structural <= out[0] + recovery
    s_own, s_opp = _trap(_up(0.125), *own), _trap(_down(0.375), *opp)
    documented = s_own - s_opp - _slop(model) * (s_own + s_opp)
    tol = 4 * U * (abs(s_own - s_opp) + _slop(model) * (s_own + s_opp)) + recovery
    assert abs(structural - documented) <= tol, float(structural - documented)


# ----------------------------------------------------------------------- ℓ∞, with the gate
def _clean_two_minus_four_x() -> ReLUNetwork:
    """f_clean(x) = 2 − 4x: sup |f| on [0, 1] is 2, so the gate scale is M = 2."""
    return ReLUNetwork([np.array([[-4.0]])], [np.array([2.0])])


def _documented_gate_bound(model, q, radius, s_own: Fraction, eps: Fraction):
    """max(structural, gate) bound of the docstring for a binary label-+1 ball, with the
    allowances γ·Σ|terms| of each final expression, and the size of the chosen expression's
    terms (its float64 rounding is a few u of that):
    structural: S_own − ε − slack, slack = max(0, sup|f| − M·S_own), Σ|terms| = S_own + ε +
    (sup|f| + M·S_own); gate (Δ > 0): (Δ − Mε)·φ − ε, φ = min(1, 1/M), Σ|terms| =
    (|Δ| + Mε)·φ + ε. sup|f| over the box and Δ are the public rigorous bounds."""
    clean, m = model.gate.clean, Fraction(model.gate.scale)
    lo, hi = np.clip(q - radius, 0.0, 1.0)[None, :], np.clip(q + radius, 0.0, 1.0)[None, :]
    f_lo, f_hi = interval_bounds(clean, lo, hi)
    f_abs = max(abs(Fraction(float(f_lo[0, 0]))), abs(Fraction(float(f_hi[0, 0]))))
    delta = Fraction(
        float(clean_margin_lower(clean, q[None, :], np.array([1]), radius, "inf", True, (0, 1))[0])
    )
    slop = _slop(model)
    slack = max(Fraction(0), f_abs - m * s_own)
    structural = s_own - eps - slack - slop * (s_own + eps + (f_abs + m * s_own))
    if delta <= 0:
        return structural, abs(structural) + s_own + eps + f_abs + m * s_own
    phi = min(Fraction(1), 1 / m)
    via = (delta - m * eps) * phi - eps - slop * ((abs(delta) + m * eps) * phi + eps)
    assert via > structural  # this instance exercises the gate bound
    return via, (abs(delta) + m * eps) * phi + eps


def test_gate_bound_and_its_allowance_are_the_documented_ones():
    """Own centre ¼ whose bump is 0 on the ball edge (S_own = 0), opposite ¾ whose bump is ⅛
    at the ball point ⅜ (ε = ⅛ after the outward ulp), f_clean = 2 − 4x (M = 2, φ = ½,
    Δ ≈ ½): the gate bound (Δ − Mε)·φ − ε ≈ 0 is chosen, and its allowance
    γ_{N+20}·((|Δ| + Mε)·φ + ε) ≈ 11u must be subtracted as documented: each of the three
    terms moves it by ≥ 2.7u; the tolerance u·Σ|terms| ≈ u/2 covers the roundings of Δ − Mε
    and of the result (measured: ~1e-13 u)."""
    own, opp = (1 / 32, 1 / 16), (0.375 - 7 * 2.0**-10, 0.375 + 2.0**-10)
    model = _two_centres(0.25, 0.75, own, opp, clean=_clean_two_minus_four_x())
    assert model.gate.scale == 2.0
    q = np.array([0.25])
    structural, recovery = _structural(model, q, 1, 0.125)
    s_own = _trap(_up(0.125), *own)
    eps = _trap(_down(0.375), *opp)
    assert s_own == 0 and abs(eps - Fraction(1, 8)) < 2.0**-40
    documented, terms = _documented_gate_bound(model, q, 0.125, s_own, eps)
    assert abs(structural - documented) <= U * terms + recovery, float(structural - documented)


def test_structural_bound_with_gate_slack_and_its_allowance_are_the_documented_ones():
    """Own centre ¾ (bump ½ at the ball edge), opposite ¼ (bump ½ at ⅝), f_clean = 2 − 4x
    (M = 2) is negative on the ball (Δ < 0: no gate bound): the bound is S_own − ε − slack
    with slack = sup|f| − M·S_own ≈ ½, and its allowance γ_{N+20}·(S_own + ε + sup|f| +
    M·S_own) ≈ 77u; the gate terms sup|f| and M·S_own each move it by ≥ 22u; the tolerance
    2u·(|bound| + Σ|terms|) ≈ 8u covers the roundings of the slack and of the result
    (measured: ~5e-9 u)."""
    own, opp = (0.125 - E, 0.125 + E), (0.375 - E, 0.375 + E)
    model = _two_centres(0.75, 0.25, own, opp, clean=_clean_two_minus_four_x())
    q = np.array([0.75])
    structural, recovery = _structural(model, q, 1, 0.125)
    s_own, eps = _trap(_up(0.125), *own), _trap(_down(0.375), *opp)
    documented, magnitude = _documented_gate_bound(model, q, 0.125, s_own, eps)
    assert abs(structural - documented) <= 2 * U * magnitude + recovery, float(
        structural - documented
    )


# ----------------------------------------------------------------------- sawtooth (ℓ2)
#: 8-D query and centres: q − A = (9/16, 12/16, 0, …) has the exact norm 15/16, so
#: np.linalg.norm is exact here; B is far from q (its bump is out of reach).
_D = 8
_Q = np.array([9 / 16, 12 / 16] + [0.5] * (_D - 2))
_A = np.array([0.0, 0.0] + [0.5] * (_D - 2))
_B = np.array([1.0, 1.0] + [0.5] * (_D - 2))
_TEETH = 4


def _norm_error() -> Fraction:
    """The code comment's relative error of the computed ‖·‖₂ of a d-vector: γ_{d+3}."""
    return _gamma(_D + 3)


def _sawtooth(label_a: int, bump_a, bump_b):
    x, y = np.stack([_A, _B]), np.array([label_a, -label_a])
    model = build_construction(x, y, 0.125, "2", l2_method="sawtooth", teeth=_TEETH)
    alpha = np.array([bump_a[0], bump_b[0]])
    beta = np.array([bump_a[1], bump_b[1]])
    return model.replace(bump=BumpBlock(alpha, beta))


def test_sawtooth_opposite_distance_covers_the_norm_rounding():
    """Opposite centre A at ℓ2 distance 15/16 from q, radius ⅞: its bump over the ball is at
    most g(s_lo), s_lo = (‖q − A‖ − ⅞)² = 1/256 (s ≥ r²), ramp 2^-29 (an ulp of the distance
    moves the bump by ~7e-9). This instance's norm is exact, but the certificate must hold for
    any computed norm within relative γ_{d+3} of the exact one: the production bound must be
    ≤ −g(s_lo') − γ_{N+20}·g(s_lo') with the distance shrunk to ‖q − A‖/(1 + γ_{d+3})
    (a certificate that only covers an exact norm fails this by ≥ 1 ulp of the distance)."""
    level, ramp = 1 / 256, 2.0**-30
    model = _sawtooth(-1, (level - ramp, level + ramp), (1 / 64, 1 / 32))
    structural, recovery = _structural(model, _Q, 1, 0.875, "2")
    dist = Fraction(15, 16) / (1 + _norm_error())
    s_opp = _trap((dist - Fraction(7, 8)) ** 2, level - ramp, level + ramp)
    assert abs(s_opp - Fraction(1, 2)) < 2.0**-20  # the bump is on its ramp
    worst = -s_opp - _slop(model) * s_opp
    assert structural <= worst + recovery, float(structural - worst)


#: q − A = (9735, 11872)/2^14 has the exact norm 15353/2^14 (a Pythagorean triple), and
#: with δ = 2^-27 the later outward steps of s_hi (dist + δ, the square, + the sawtooth
#: error) happen to round down first, so they add only ~2 ulps: the norm's own allowance
#: has to cover γ_{d+3} (found by a search over scaled triples).
_Q_OWN = np.array([9735 / 2**14, 11872 / 2**14] + [0.5] * (_D - 2))
_OWN_NORM = Fraction(15353, 2**14)


def test_sawtooth_own_distance_covers_the_norm_rounding():
    """Own centre A at ℓ2 distance 15353/2^14 from q (q is not a centre: the same-label
    search finds A), radius 2^-27: the own bump over the ball is at least g(s_hi), s_hi =
    (‖q − A‖ + δ)² + d·2^(−2m−2) (the sawtooth's error, construction docstring), ramp 2^-19.
    The production bound must be ≤ g(s_hi') − γ_{N+20}·g(s_hi') with the distance grown to
    ‖q − A‖/(1 − γ_{d+3}) (any computed norm within γ_{d+3} is covered), and not far below
    the exact formula (within 1e-6: the allowances here are ~2e-9)."""
    assert Fraction(float(np.linalg.norm(_Q_OWN - _A))) == _OWN_NORM  # exact here
    radius, ramp = 2.0**-27, 2.0**-20
    saw = _D * Fraction(1, 2 ** (2 * _TEETH + 2))
    centre = float((_OWN_NORM + Fraction(radius)) ** 2 + saw)
    model = _sawtooth(1, (centre - ramp, centre + ramp), (1 / 64, 1 / 32))
    structural, recovery = _structural(model, _Q_OWN, 1, radius, "2")

    def own(dist: Fraction) -> Fraction:
        return _trap((dist + Fraction(radius)) ** 2 + saw, centre - ramp, centre + ramp)

    worst = own(_OWN_NORM / (1 - _norm_error()))
    assert abs(worst - Fraction(1, 2)) < 2.0**-20  # the bump is on its ramp
    assert structural <= worst - _slop(model) * worst + recovery, float(structural - worst)
    exact = own(_OWN_NORM)
    assert structural >= exact - Fraction(1, 10**6), float(structural - exact)


@pytest.mark.parametrize(
    "case",
    [
        # 1-D, ‖q − c‖ = ⅝ and √β + δ = ⅝ + 9e-14 < 1
        dict(q=[0.0], c=[0.625], radius=0.3125, hair=2.0**-44),
        # 2-D, q − c = (¾, 1), ‖q − c‖ = 5/4 and √β + δ = 5/4 + 8e-14 > 1
        dict(q=[1.0, 1.0], c=[0.25, 0.0], radius=0.5, hair=2.0**-43),
    ],
    ids=["threshold-below-1", "threshold-above-1"],
)
def test_sawtooth_opposite_bump_just_inside_its_reach_is_counted(case):
    """The opposite centre c is a hair η ≈ 1e-13 inside √β + δ of the query (its own centre,
    whose bump is 1 on the ball): at the nearest ball point s ≥ (‖q − c‖ − δ)² = s₀ < β, so
    the documented bound subtracts g(s₀) = hair/(β − α) ≈ 6e-8 (ramp 2^-20). Sound: the
    production bound must be ≤ 1 − g(s₀) − γ_{N+20}·(1 + g(s₀)). A pruning threshold that
    drops its relative-and-absolute slack below √β + δ (either side of 1) loses the pair."""
    q, c, radius = np.array(case["q"]), np.array(case["c"]), case["radius"]
    s0 = (Fraction(float(np.linalg.norm(q - c))) - Fraction(radius)) ** 2
    beta = float(s0) + case["hair"]
    assert Fraction(float(s0)) == s0 and Fraction(beta) - s0 == Fraction(case["hair"])
    alpha = beta - 2.0**-20
    x, y = np.stack([q, c]), np.array([1, -1])
    model = build_construction(x, y, 0.1, "2", l2_method="sawtooth", teeth=_TEETH)
    model = model.replace(bump=BumpBlock(np.array([0.5, alpha]), np.array([1.0, beta])))
    structural, recovery = _structural(model, q, 1, radius, "2")
    s_opp = _trap(s0, alpha, beta)
    assert 2.0**-24 <= s_opp <= 2.0**-22
    bound = 1 - s_opp - _slop(model) * (1 + s_opp)
    assert structural <= bound + recovery, float(structural - bound)


# ----------------------------------------------------------------------- the MILP fallback
def _dip_model():
    """Centres 0 (−1) and 0.2 (+1), δ = 0.05; f_clean = 100·(|x − 0.55| + 0.04) (minimum 4 at
    0.55), so the ball B(0.5, 0.1) is robust but neither the bumps nor IBP on f_clean certify
    it (the MILP does)."""
    dip = ReLUNetwork(
        [np.array([[1.0], [1.0]]), np.array([[200.0, -100.0]])],
        [np.array([-0.55, 0.0]), np.array([100.0 * (0.55 + 0.04)])],
    )
    x, y = np.array([[0.0], [0.2]]), np.array([-1, 1])
    return build_construction(x, y, 0.05, "inf", clean=dip)


def test_milp_fallback_value_is_lowered_by_the_error_bound_and_the_tolerance():
    """Docstring: the MILP's value (exact network, to HiGHS' tolerance
    MILP_MARGIN_TOLERANCE) is lowered by the forward error bound: margin_lower ≤ value −
    margin_error_bound − MILP_MARGIN_TOLERANCE, with value = milp_min_margin on the dense
    lowered network over the ball's box (err ≈ 5e-13 here, above an ulp of the value 4)."""
    model = _dip_model()
    q, lo, hi = np.array([[0.5]]), np.array([[0.4]]), np.array([[0.6]])
    res = certify_construction(model, q, np.array([1]), 0.1, use_milp=True)
    assert res.method[0] == "milp" and res.status[0] is Status.CERTIFIED
    net = model.network()
    value, _, _ = milp_min_margin(
        ReLUNetwork(net.dense_weights(), net.biases), lo[0], hi[0], 1, True
    )
    err = margin_error_bound(net, lo, hi, np.array([1]), True)[0]
    assert err > 4 * np.spacing(value)
    assert res.margin_lower[0] <= (value - err) - MILP_MARGIN_TOLERANCE


def test_no_milp_without_use_milp():
    """Docstring: ``use_milp`` adds the MILP; without it the same UNKNOWN ball stays with the
    structural method (and its structural bound)."""
    model = _dip_model()
    res = certify_construction(model, np.array([[0.5]]), np.array([1]), 0.1, use_milp=False)
    assert res.method == ["structural"] and res.status[0] is Status.UNKNOWN


# ----------------------------------------------------------------------- milp: bounds at 0
@pytest.mark.parametrize("tiny", [2.0**-1074, -(2.0**-1074)], ids=["l=0", "u=-0"])
def test_milp_units_whose_widened_bound_is_zero(tiny):
    """A hidden unit with no stored weight and bias ±2^-1074 (the smallest subnormal) gets the
    widened pre-activation bounds [0, 2^-1073] (stable active, l = 0) or [−2^-1073, −0.0]
    (dead, u = −0): neither is unstable, so the MILP must model it without a binary (the
    boundary cases of the l ≥ 0 and u ≤ 0 tests). f(x) = x + σ(tiny) on [¼, ½]: minimum ¼
    (+ tiny) at x = ¼."""
    net = ReLUNetwork(
        [np.array([[1.0], [0.0]]), np.array([[1.0, 1.0]])], [np.array([0.0, tiny]), np.zeros(1)]
    )
    _, _, pre = interval_bounds(net, np.array([[0.25]]), np.array([[0.5]]), keep_hidden=True)
    l_pre, u_pre = pre[0][0][0, 1], pre[0][1][0, 1]
    assert (l_pre == 0.0) if tiny > 0 else (u_pre == 0.0)
    value, arg, optimal = milp_min_margin(net, np.array([0.25]), np.array([0.5]), 1, True)
    assert optimal and value == pytest.approx(0.25, abs=1e-12) and arg[0] == pytest.approx(0.25)
