"""Negative controls: every way the certifier can say CERTIFIED, fed a network that is wrong.

Each test builds a network (a construction with broken blocks, or a plain ReLUNetwork) that
is *not* robust on some ball, writes down a counterexample input by hand, and checks

1. the certifier does not certify that ball, and
2. the counterexample really lies in the ball ∩ [0, 1]^d and really has margin ≤ 0, as
   evaluated by :func:`_forward` / :func:`_margin` below: plain numpy written here, which
   shares no code with :mod:`robmem.theory.certify` (it reads only the lowered weights).

Most tests also certify the unbroken network (a positive control), so that a certifier
that certifies nothing cannot pass them. The certificate paths covered (see
``theory/certify.py``): structural ℓ∞ (own bump, opposite bumps, other classes, query
points off the centres), the gate with and without opposite-label bumps inside the ball,
the gate slack, ℓ2 by inclusion, ℓ2 sawtooth (own bump, approximation error, opposite-bump
pruning), the ℓ2 clean margin (no centres, small-margin subset, via the gate), IBP and the
MILP (generic and after the structural pass).

Float tolerances: every designed instance has dyadic or O(1) numbers whose margins are
sums of at most ~10 float64 terms of size ≤ 2, so rounding is below 1e-14; the margin
checks use exact comparisons (≤ 0, > 0) on margins chosen at least 1e-3 away from 0, except
where a margin is exactly 0 by symmetry (noted there) and in the MILP-threshold tests, whose
margins ±MILP_MARGIN_TOLERANCE/2 = ±5e-6 are still ten orders above that rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sps
from hypothesis import event, given, settings
from hypothesis import strategies as st
from numpy_lowered import forward as _forward
from numpy_lowered import margin as _margin

from robmem.theory.certificates import Status, certify_network
from robmem.theory.certify import certify, certify_construction
from robmem.theory.construction import BumpBlock, GateBlock, build_construction
from robmem.theory.gadgets import sawtooth_error_bound
from robmem.theory.intervals import (
    clean_margin_lower,
    ibp_margin_lower,
    interval_bounds,
    project_to_ball,
    small_margin_mask,
)
from robmem.theory.milp import MILP_MARGIN_TOLERANCE, milp_min_margin
from robmem.theory.network import ReLUNetwork

#: Slack on "the witness lies in the ball": the witnesses are computed in float64 from the
#: centre (one subtraction/division per coordinate), so they can overshoot by a few ulps.
BALL_SLACK = 1e-12
#: margin_lower is compared with margins of genuine ball points; both are float64 sums of
#: at most ~50 O(1) terms (bump units, gate units), each rounded to 2^-53 relative.
BOUND_SLACK = 1e-12


# ----------------------------------------------------------------- independent evaluation
def _assert_witness(obj, centre, label, radius, norm, witness) -> float:
    """The witness is in B_p(centre, radius) ∩ [0, 1]^d and has margin ≤ 0; returns it."""
    witness = np.asarray(witness, dtype=np.float64)
    diff = witness - np.asarray(centre, dtype=np.float64)
    dist = np.abs(diff).max() if norm == "inf" else np.sqrt((diff**2).sum())
    assert dist <= radius + BALL_SLACK, (dist, radius)
    assert witness.min() >= 0.0 and witness.max() <= 1.0
    m = float(_margin(obj, witness[None, :], label)[0])
    assert m <= 0.0, ("the designed witness is not a counterexample", m)
    return m


def _assert_not_certified(obj, x, y, radius, norm, i, witness, **kw):
    _assert_witness(obj, x[i], y[i], radius, norm, witness)
    res = certify(obj, x, y, radius, norm, **kw)
    assert res.status[i] is not Status.CERTIFIED, ("false certificate", i, res.margin_lower[i])
    # the reported lower bound may not exceed the witness's margin (soundness of the value)
    m = float(_margin(obj, np.asarray(witness)[None, :], y[i])[0])
    assert res.margin_lower[i] <= m + BOUND_SLACK
    for j, cx in res.counterexamples.items():  # every refutation is genuine, too
        m_cx = _assert_witness(obj, x[j], y[j], radius, norm, cx)
        assert res.margin_found[j] <= m_cx  # the smallest evaluated margin is reported
    return res


# ------------------------------------------------ structural ℓ∞ (and ℓ2 by inclusion)
def test_structural_opposite_bump_reaching_into_the_ball():
    # p0 = 0.2 (+1), p1 = 0.6 (−1), δ = 0.1. Broken: p0's bump is narrow (h0 = 0.09 at the
    # ball's edge) and p1's reaches to 0.35 (h1 = 1/6 at 0.3, the edge nearest p1), while
    # ‖p0 − p1‖ = 0.4 lies between p1's reach and reach + δ. At x = 0.3: 0.09 − 1/6 < 0.
    x, y = np.array([[0.2], [0.6]]), np.array([1, -1])
    model = build_construction(x, y, 0.1, "inf")
    assert certify(model, x, y, 0.1, "inf").certified_fraction == 1.0  # positive control
    broken = model.replace(bump=BumpBlock(np.array([0.0, 0.05]), np.array([0.11, 0.35])))
    res = _assert_not_certified(broken, x, y, 0.1, "inf", 0, [0.3])
    assert res.status[0] is Status.REFUTED
    # p1 itself stays certified: its own bump is 1 on [0.5, 0.7], p0's is 0 there
    assert res.status[1] is Status.CERTIFIED


def test_structural_multiclass_worst_other_class():
    # three classes; only class 2's broken bump reaches into p0's ball (class 1 is far).
    x = np.array([[0.2, 0.5], [0.9, 0.9], [0.6, 0.5]])
    y = np.array([0, 1, 2])
    model = build_construction(x, y, 0.1, "inf", n_classes=3)
    assert certify(model, x, y, 0.1).certified_fraction == 1.0
    alpha, beta = model.bump.alpha.copy(), model.bump.beta.copy()
    alpha[0], beta[0] = 0.0, 0.11  # own bump 0.09 at ℓ∞ distance 0.1
    alpha[2], beta[2] = 0.05, 0.35  # class 2 reaches p0's ball: 1/6 at distance 0.3
    broken = model.replace(bump=BumpBlock(alpha, beta))
    _assert_not_certified(broken, x, y, 0.1, "inf", 0, [0.3, 0.5])


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_structural_query_point_off_the_centre(norm):
    # query q = c + (0.3, 0) with radius 0.15: its ball reaches ℓ∞ distance 0.45 ≥ β = 0.4
    # from the only same-label centre c, where every bump is 0 and f̂ = 0 (margin 0). The
    # own-bump lower bound must use the *farthest* ball point in the *largest* coordinate.
    # norm "2" is the ℓ2-by-inclusion path (same ℓ∞ construction, ℓ2 ball).
    x, y = np.array([[0.5, 0.5], [0.0, 0.0]]), np.array([1, -1])
    model = build_construction(x, y, 0.1, norm)
    assert model.distance.kind == "linf"
    q = np.array([[0.8, 0.5]])
    assert certify(model, x, y, 0.1, norm).certified_fraction == 1.0
    ok = certify(model, np.array([[0.55, 0.5]]), np.array([1]), 0.05, norm)
    assert ok.status[0] is Status.CERTIFIED  # a ball inside c's ball is certified
    _assert_not_certified(model, q, np.array([1]), 0.15, norm, 0, [0.95, 0.5])


def test_inclusion_l2_ball_uses_its_box_not_a_shrunk_one():
    # ℓ2 inclusion: a broken opposite bump enters p0's ℓ2 ball only along the axis.
    x, y = np.array([[0.2, 0.5], [0.6, 0.5]]), np.array([1, -1])
    model = build_construction(x, y, 0.1, "2", l2_method="inclusion")
    assert certify(model, x, y, 0.1, "2").certified_fraction == 1.0
    broken = model.replace(bump=BumpBlock(np.array([0.0, 0.05]), np.array([0.11, 0.35])))
    _assert_not_certified(broken, x, y, 0.1, "2", 0, [0.3, 0.5])


# ----------------------------------------------------------------- gate
def test_gate_binary_opposite_bump_active_inside_the_ball():
    # f_clean = x − 1/2 (M = 1). p = 0.9 (+1) has a large clean margin and is not memorized;
    # q = 0.5 (−1) is. Broken: q's bump reaches p's ball, h_q(0.75) = 1/6. At x = 0.75:
    # f̂ = −h_q + σ(f − h_q) − σ(−f − h_q) = −1/6 + (1/4 − 1/6) = −1/12 < 0, although the
    # clean margin there is 1/4 > h_q (the gate certificate needs its "− ε" term).
    clean = ReLUNetwork([np.array([[1.0]])], [np.array([-0.5])])
    x, y = np.array([[0.9], [0.5]]), np.array([1, -1])
    model = build_construction(x, y, 0.15, "inf", clean=clean, subset="small-margin")
    assert model.memorized.tolist() == [1] and model.gate.scale == 1.0
    ok = certify(model, x, y, 0.15)
    assert ok.certified_fraction == 1.0 and ok.method[0] == "structural"
    broken = model.replace(bump=BumpBlock(np.array([0.15]), np.array([0.27])))
    res = _assert_not_certified(broken, x, y, 0.15, "inf", 0, [0.75])
    assert res.status[0] is Status.REFUTED


def test_gate_multiclass_opposite_and_own_bumps_active_inside_the_ball():
    # f_clean = (x − ½, ½ − x, −1), M = 1, three classes, all points memorized.
    # Broken: class-1 bump of q = 0.5 gives ε = 0.2 at x = 0.75 (p's ball edge) and p's own
    # bump is narrowed to 0.05 there. Margin at 0.75: s − ε + Δ − 2(s + ε) = −0.15, with
    # Δ = 0.5 the clean margin; the gate bound (Δ − 2Mε)/(2M) − ε = −0.15 is tight.
    clean = ReLUNetwork([np.array([[1.0], [-1.0], [0.0]])], [np.array([-0.5, 0.5, -1.0])])
    x, y = np.array([[0.9], [0.5], [0.05]]), np.array([0, 1, 2])
    model = build_construction(x, y, 0.15, "inf", clean=clean, n_classes=3)
    assert certify(model, x, y, 0.15).certified_fraction == 1.0
    beta_p = 0.145 / 0.95  # (β − 0.15)/(β − 0.1) = 0.05
    broken = model.replace(
        bump=BumpBlock(np.array([0.1, 0.15, 0.15]), np.array([beta_p, 0.275, 0.25]))
    )
    res = _assert_not_certified(broken, x, y, 0.15, "inf", 0, [0.75])
    assert res.status[0] is Status.REFUTED
    assert res.margin_lower[0] == pytest.approx(-0.15, abs=1e-12)  # the bound is exact here


@pytest.mark.parametrize("n_classes", [None, 3])
def test_gate_slack_weak_own_bump_and_wrong_clean(n_classes):
    # f_clean says the opposite class (|f| ≤ 1, M = 1) and p's own bump is broken to 0.1 at
    # the ball's edge: the gate then subtracts |f| − M·s_own from the bump margin.
    if n_classes is None:
        clean = ReLUNetwork([np.array([[0.0]])], [np.array([-1.0])])  # f ≡ −1
        x, y = np.array([[0.3], [0.9]]), np.array([1, -1])
    else:
        clean = ReLUNetwork([np.zeros((3, 1))], [np.array([-1.0, 1.0, -1.0])])  # class 1
        x, y = np.array([[0.3], [0.9], [0.0]]), np.array([0, 1, 2])
    model = build_construction(x, y, 0.1, "inf", clean=clean, n_classes=n_classes)
    assert certify(model, x, y, 0.1).certified_fraction == 1.0
    alpha, beta = model.bump.alpha.copy(), model.bump.beta.copy()
    alpha[0], beta[0] = 0.0, 0.1 / 0.9  # h = 0.1 at distance 0.1
    broken = model.replace(bump=BumpBlock(alpha, beta))
    res = _assert_not_certified(broken, x, y, 0.1, "inf", 0, [0.2])
    assert res.status[0] is Status.REFUTED


def test_gate_partial_own_bump_margin_lower_is_sound():
    # No opposite bump anywhere near; the query's same-label bump passes through the level
    # s = f/M at which the gate transfer is tight (M = 2). The certificate is true here,
    # but margin_lower must stay below the margins of genuine ball points.
    clean = ReLUNetwork([np.array([[4.0]])], [np.array([-2.0])])  # f = 4x − 2, M = 2
    x, y = np.array([[0.7], [0.05]]), np.array([1, -1])
    model = build_construction(x, y, 0.1, "inf", clean=clean)
    assert model.gate.scale == 2.0
    q, radius = np.array([[0.85]]), 0.1  # ball [0.75, 0.95]: own bump goes 1 → 0 at 0.7+β
    res = certify(model, q, np.array([1]), radius)
    grid = np.linspace(0.75, 0.95, 2001)[:, None]
    true_min = float(_margin(model.network(), grid, 1).min())
    assert res.margin_lower[0] <= true_min + BOUND_SLACK
    assert true_min > 0 and res.status[0] is Status.CERTIFIED


# ----------------------------------------------------------------- ℓ2 sawtooth
def _sawtooth_pair(delta: float, teeth: int | None = None):
    x, y = np.array([[0.25], [0.75]]), np.array([1, -1])
    model = build_construction(x, y, delta, "2", l2_method="sawtooth", teeth=teeth)
    assert model.distance.kind == "l2-sawtooth"
    return x, y, model


def test_sawtooth_own_bump_bound_uses_the_farthest_ball_point():
    # p0's own bump broken to vanish before δ² (β₀ = δ²/2): at x = p0 − δ the sawtooth
    # s ≥ δ² > β₀, so every bump is 0 and f̂ = 0 (margin 0: not robust).
    delta = 0.2
    x, y, model = _sawtooth_pair(delta, teeth=3)
    assert certify(model, x, y, delta, "2").certified_fraction == 1.0
    alpha, beta = model.bump.alpha.copy(), model.bump.beta.copy()
    alpha[0], beta[0] = delta**2 / 4, delta**2 / 2
    broken = model.replace(bump=BumpBlock(alpha, beta))
    _assert_not_certified(broken, x, y, delta, "2", 0, [0.25 - delta])


def test_sawtooth_own_bump_bound_includes_the_approximation_error():
    # d = 1, m = 2 teeth: f_2 interpolates t² at multiples of 1/4, so at the midpoint
    # t = δ = 3/8 it exceeds δ² by exactly the bound 2^(−2m−2) = 1/64 (all dyadic, exact).
    # Broken: α₀ = δ², β₀ = δ² + 1/128 < f_2(δ): the own bump is 0 at x = p0 + δ.
    x, y = np.array([[0.0], [1.0]]), np.array([1, -1])
    delta, err = 3 / 8, sawtooth_error_bound(2)
    assert err == 1 / 64
    model = build_construction(x, y, delta, "2", l2_method="sawtooth", teeth=2)
    assert certify(model, x, y, delta, "2").certified_fraction == 1.0
    alpha, beta = model.bump.alpha.copy(), model.bump.beta.copy()
    alpha[0], beta[0] = delta**2, delta**2 + err / 2
    broken = model.replace(bump=BumpBlock(alpha, beta))
    _assert_not_certified(broken, x, y, delta, "2", 0, [delta])


@pytest.mark.parametrize("dim", [1, 2])
def test_sawtooth_at_half_the_separation_is_not_certified(dim):
    # A valid sawtooth construction (δ = 0.2) certified at radius λ₂/2 = 0.25: the midpoint
    # of the pair lies in both balls, where by symmetry both bumps are equal and the margin
    # is exactly 0 (dyadic coordinates: the midpoint and the offsets are exact).
    x = np.array([[0.25] * dim, [0.75] + [0.25] * (dim - 1)])
    y = np.array([1, -1])
    model = build_construction(x, y, 0.2, "2", l2_method="sawtooth")
    assert certify(model, x, y, 0.2, "2").certified_fraction == 1.0
    mid = [0.5] + [0.25] * (dim - 1)
    for i in (0, 1):
        _assert_not_certified(model, x, y, 0.25, "2", i, mid)


# ----------------------------------------------------------------- ℓ2 clean margin
_W = np.array([[1.0, 0.1]])
_CLEAN_L2 = ReLUNetwork([_W], [np.array([-0.55])])  # f = x₀ + 0.1 x₁ − 0.55


def _l2_worst_point(p: np.ndarray, label: int, radius: float) -> np.ndarray:
    """argmin over the ℓ2 ball of label·(w·x + b): p − label·radius·w/‖w‖ (numpy here)."""
    w = _W[0]
    return p - label * radius * w / np.sqrt((w**2).sum())


def test_l2_clean_margin_without_centres_sees_the_full_radius():
    # All points have clean margin > δ‖w‖, so nothing is memorized and f̂ = f_clean.
    # At radius ρ = 0.4 point 0 (margin 0.36 < ρ‖w‖ ≈ 0.402) is not robust; its witness is
    # the ℓ2 worst point, which the box-corner candidates and the box MILP do not find.
    x = np.array([[0.86, 0.5], [0.2, 0.5]])
    y = np.array([1, -1])
    model = build_construction(x, y, 0.1, "2", clean=_CLEAN_L2, subset="small-margin")
    assert model.n_centres == 0
    assert certify(model, x, y, 0.1, "2").certified_fraction == 1.0
    witness = _l2_worst_point(x[0], 1, 0.4)
    _assert_not_certified(model, x, y, 0.4, "2", 0, witness)
    # point 1 (margin 0.3 < 0.4‖w‖) is not robust either
    _assert_not_certified(model, x, y, 0.4, "2", 1, _l2_worst_point(x[1], -1, 0.4))


def test_small_margin_l2_subset_sees_the_full_radius():
    # Point 0 is at ℓ2 distance 0.15/‖w‖ ≈ 0.149 from f_clean's boundary, inside δ = 0.2:
    # it must be memorized. If it were not, f̂ = f_clean at its ℓ2 worst point (no bump is
    # active there), a counterexample in a certified ball.
    x = np.array([[0.65, 0.5], [0.1, 0.5], [0.45, 0.0]])
    y = np.array([1, -1, -1])
    model = build_construction(x, y, 0.2, "2", clean=_CLEAN_L2, subset="small-margin")
    assert 0 in model.memorized.tolist()
    res = certify(model, x, y, 0.2, "2")
    assert res.certified_fraction == 1.0
    for i in range(len(x)):
        w_pt = _l2_worst_point(x[i], int(y[i]), 0.2)
        if w_pt.min() >= 0 and w_pt.max() <= 1:
            assert _margin(model.network(), w_pt[None, :], int(y[i]))[0] > 0, i


def test_small_margin_mask_l2_tracks_the_radius():
    # distances to the boundary spread over [0, 2δ]: points in (δ/2, δ) decide whether the
    # radius (not half of it, not twice it) is used; the exact rule is dist > δ.
    rng = np.random.default_rng(11)
    w = np.array([0.6, -0.8])  # unit norm: the ℓ2 distance is |w·x + b|
    b, delta = -0.1, 0.1
    base = rng.uniform(0.3, 0.7, size=(80, 2))
    dist = rng.uniform(0.0, 2 * delta, size=80)
    sign = np.where(rng.random(80) < 0.5, 1.0, -1.0)
    x = base - ((base @ w + b) - sign * dist)[:, None] * w[None, :]
    assert x.min() >= 0 and x.max() <= 1
    y01 = (sign > 0).astype(int)
    net = ReLUNetwork([w[None, :]], [np.array([b])])
    mask = small_margin_mask(net, x, y01, delta, "2", True, (0.0, 1.0))
    expected_small = ~(dist > delta)
    assert ((dist > delta / 2) & (dist < delta)).sum() >= 10  # the band that matters
    assert ((dist > delta) & (dist < 2 * delta)).sum() >= 10
    np.testing.assert_array_equal(mask, expected_small)


# ----------------------------------------------------------------- IBP and MILP (generic nets)
def _dip_net(depth_value: float) -> ReLUNetwork:
    """f(x) = 2σ(x − 0.55) − σ(x) + 0.55 + v = |x − 0.55| + v on [0, 1] (minimum v at 0.55).

    Written so that IBP is loose: over [0.4, 0.6] it bounds f below by v − 0.05.
    """
    return ReLUNetwork(
        [np.array([[1.0], [1.0]]), np.array([[2.0, -1.0]])],
        [np.array([-0.55, 0.0]), np.array([0.55 + depth_value])],
    )


def test_ibp_linear_and_hidden_layer_counterexamples_at_corners():
    # The margin is negative at a box corner; IBP must not certify (the candidates refute).
    lin = ReLUNetwork([np.array([[1.0]])], [np.array([-0.5])])
    _assert_not_certified(lin, np.array([[0.6]]), np.array([1]), 0.2, "inf", 0, [0.4])
    hidden = ReLUNetwork(
        [np.array([[1.0, -1.0], [-1.0, 0.5]]), np.array([[1.0, -2.0]])],
        [np.array([0.1, 0.2]), np.array([0.05])],
    )
    p = np.array([[0.5, 0.5]])
    corners = np.array([[a, b] for a in (0.3, 0.7) for b in (0.3, 0.7)])
    worst = corners[np.argmin(_margin(hidden, corners, 1))]
    _assert_not_certified(hidden, p, np.array([1]), 0.2, "inf", 0, worst, use_milp=False)
    # multi-class: class 0 wins at p but loses to class 2 at the corner x₀ = 0.7
    multi = ReLUNetwork(
        [np.array([[1.0], [0.5]]), np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])],
        [np.array([0.0, 0.0]), np.array([0.5, -1.0, -0.5])],
    )
    _assert_not_certified(multi, np.array([[0.45]]), np.array([0]), 0.1, "inf", 0, [0.55])


def test_ibp_certificates_hold_on_random_hidden_layer_nets():
    # soundness of the IBP value on 40 fixed random nets: margin_lower ≤ the margin of
    # every grid point of the ball, and CERTIFIED ⇒ the grid has no counterexample.
    rng = np.random.default_rng(7)
    n_certified = n_refuted = 0
    for _ in range(40):
        net = ReLUNetwork(
            [rng.normal(size=(4, 2)), rng.normal(size=(3, 4)), rng.normal(size=(1, 3))],
            [rng.normal(size=4) * 0.3, rng.normal(size=3) * 0.3, rng.normal(size=1) * 0.3],
        )
        p = rng.uniform(0.1, 0.9, size=(1, 2))
        radius = float(rng.uniform(0.01, 0.1))
        label = 1 if _forward(net, p)[0, 0] > 0 else -1
        res = certify_network(net, p, np.array([label]), radius, "inf", use_milp=False)
        axis = np.linspace(-radius, radius, 41)
        grid = np.clip(p + np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2), 0, 1)
        grid_min = float(_margin(net, grid, label).min())
        assert res.margin_lower[0] <= grid_min + BOUND_SLACK
        if res.status[0] is Status.CERTIFIED:
            n_certified += 1
            assert grid_min > 0
        n_refuted += res.status[0] is Status.REFUTED
    assert n_certified >= 5 and n_refuted >= 1  # both outcomes occur: the test can fail


def test_milp_certifies_only_above_its_tolerance():
    # f = |x − 0.55| + v on the ball [0.4, 0.6] around 0.5: IBP's bound is v − 0.05,
    # the centre and both corners have margin ≥ 0.05 + v, so only the MILP can decide.
    p, y = np.array([[0.5]]), np.array([1])
    below = -MILP_MARGIN_TOLERANCE / 2  # a real counterexample at 0.55, within the tolerance
    net = _dip_net(below)
    res = _assert_not_certified(net, p, y, 0.1, "inf", 0, [0.55])
    assert res.method[0] == "milp" and res.status[0] is Status.REFUTED
    # just above 0 but within the tolerance: documented as not certified (solver error)
    inside = certify_network(_dip_net(MILP_MARGIN_TOLERANCE / 2), p, y, 0.1, "inf")
    assert inside.status[0] is Status.UNKNOWN and inside.method[0] == "milp"
    # clearly above: certified by the MILP with a sound value
    above = certify_network(_dip_net(10 * MILP_MARGIN_TOLERANCE), p, y, 0.1, "inf")
    assert above.status[0] is Status.CERTIFIED and above.method[0] == "milp"
    assert above.margin_lower[0] <= 10 * MILP_MARGIN_TOLERANCE


def test_construction_milp_fallback_certifies_only_above_its_tolerance():
    # The gate's f_clean has a dip below 0 inside a query ball that no bump reaches, so
    # f̂ = f_clean there; structural bounds and candidates cannot decide, the MILP must.
    x, y = np.array([[0.0], [0.2]]), np.array([-1, 1])  # bumps vanish beyond 0.35
    q, qy = np.array([[0.5]]), np.array([1])
    for value, expect in ((-MILP_MARGIN_TOLERANCE / 2, Status.REFUTED), (0.01, Status.CERTIFIED)):
        model = build_construction(x, y, 0.05, "inf", clean=_dip_net(value))
        res = certify_construction(model, q, qy, 0.1, use_milp=True)
        assert res.method[0] == "milp" and res.status[0] is expect
        if expect is Status.REFUTED:
            _assert_witness(model, q[0], 1, 0.1, "inf", [0.55])
        else:
            grid = np.linspace(0.4, 0.6, 2001)[:, None]
            assert _margin(model.network(), grid, 1).min() > 0


# ----------------------------------------------------------------- random broken constructions
@st.composite
def _broken_1d(draw):
    """1-D constructions with a gate, at least two labels, and randomly rescaled bumps."""
    n = draw(st.integers(2, 4))
    cells = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n, unique=True))
    x = (np.array(sorted(cells), dtype=np.float64) / 5.0)[:, None]
    y = np.array(draw(st.permutations([1, -1] + [draw(st.sampled_from([1, -1]))] * (n - 2))))
    slope = draw(st.floats(-3.0, 3.0).filter(lambda s: abs(s) > 0.1))
    clean = ReLUNetwork([np.array([[slope]])], [np.array([-slope * draw(st.floats(0.1, 0.9))])])
    delta = draw(st.floats(0.02, 0.099))  # λ ≥ 0.2
    subset = draw(st.sampled_from(["all", "small-margin"]))
    model = build_construction(x, y, delta, "inf", clean=clean, subset=subset)
    k = model.n_centres
    if k:
        scale_a = np.array(draw(st.lists(st.floats(0.0, 2.0), min_size=k, max_size=k)))
        widen = np.array(draw(st.lists(st.floats(0.01, 3.0), min_size=k, max_size=k)))
        alpha = model.bump.alpha * scale_a
        model = model.replace(bump=BumpBlock(alpha, alpha + widen * (model.bump.beta - alpha)))
    radius = draw(st.floats(0.01, 0.2))
    return x, y, model, radius


@settings(max_examples=40, deadline=None)
@given(_broken_1d())
def test_random_broken_gated_constructions_never_certified_wrongly(case):
    x, y, model, radius = case
    res = certify(model, x, y, radius)
    net = model.network()
    for i in range(len(x)):
        lo, hi = max(0.0, x[i, 0] - radius), min(1.0, x[i, 0] + radius)
        grid = np.linspace(lo, hi, 801)[:, None]
        grid_min = float(_margin(net, grid, int(y[i])).min())
        assert res.margin_lower[i] <= grid_min + BOUND_SLACK, (i, res.margin_lower[i], grid_min)
        if res.status[i] is Status.CERTIFIED:
            assert grid_min > 0, i
        event(f"status {res.status[i].value}")
        event("counterexample in the ball" if grid_min <= 0 else "robust ball")


# ----------------------------------------------------------------- helpers the paths rely on
def test_project_to_ball_lands_in_the_ball_and_the_domain():
    # ℓ2: points outside go to the sphere along the ray from the centre; inside stay put;
    # ℓ∞: coordinate clipping; both then clipped to the domain (checked in numpy here).
    rng = np.random.default_rng(3)
    centre = np.array([0.5, 0.05, 0.95])
    pts = rng.uniform(-0.5, 1.5, size=(200, 3))
    r = 0.3
    got2 = project_to_ball(pts, centre, r, "2", None)
    diff = pts - centre
    norm = np.sqrt((diff**2).sum(axis=1, keepdims=True))
    expect = np.where(norm > r, centre + diff * (r / norm), pts)
    np.testing.assert_allclose(got2, expect, rtol=0, atol=1e-15)  # same formula, ulps only
    inside = norm[:, 0] <= r
    assert inside.sum() >= 1 and (~inside).sum() >= 100
    np.testing.assert_allclose(got2[inside], pts[inside], rtol=0, atol=1e-15)
    boxed = project_to_ball(pts, centre, r, "2", (0.0, 1.0))
    np.testing.assert_array_equal(boxed, np.clip(got2, 0.0, 1.0))
    got_inf = project_to_ball(pts, centre, r, "inf", (0.0, 1.0))
    np.testing.assert_array_equal(got_inf, np.clip(np.clip(pts, centre - r, centre + r), 0, 1))


def test_interval_bounds_of_sparse_and_dense_weights_agree():
    # the lowered construction is sparse; IBP must treat W⁺ and W⁻ the same way as dense
    x = np.array([[0.2, 0.3], [0.7, 0.8], [0.4, 0.9]])
    y = np.array([1, -1, 1])
    net = build_construction(x, y, 0.1, "inf").network()
    dense = ReLUNetwork(net.dense_weights(), net.biases)
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 0.5, size=(20, 2))
    hi = lo + rng.uniform(0, 0.5, size=(20, 2))
    s_lo, s_hi, s_pre = interval_bounds(net, lo, hi, keep_hidden=True)
    d_lo, d_hi, d_pre = interval_bounds(dense, lo, hi, keep_hidden=True)
    # sums of ≤ 8 O(1) products in another order: a few ulps
    np.testing.assert_allclose(s_lo, d_lo, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s_hi, d_hi, rtol=0, atol=1e-12)
    for (a, b), (c, d) in zip(s_pre, d_pre, strict=True):
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b, d, rtol=0, atol=1e-12)
    # and the bounds contain the outputs of sampled box points (soundness, numpy forward)
    for k in range(20):
        pts = rng.uniform(lo[k], hi[k], size=(200, 2))
        out = _forward(net, pts)[:, 0]
        assert out.min() >= s_lo[k, 0] - BOUND_SLACK and out.max() <= s_hi[k, 0] + BOUND_SLACK
    # the generic path gives the same answer on the sparse lowered net and its dense copy
    res_s = certify_network(net, x, y, 0.1, "inf", use_milp=False)
    res_d = certify_network(dense, x, y, 0.1, "inf", use_milp=False)
    assert res_s.status == res_d.status
    np.testing.assert_allclose(res_s.margin_lower, res_d.margin_lower, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [-1, 3])
def test_multiclass_labels_out_of_range_are_refused(bad):
    net = ReLUNetwork([np.eye(3)], [np.zeros(3)])
    pts = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    for labels in ([bad, 1], [1, bad]):  # the bad label next to a valid one, either order
        with pytest.raises(ValueError, match="labels"):
            certify_network(net, pts, np.array(labels), 0.1)
    with pytest.raises(ValueError, match="labels"):
        certify_network(ReLUNetwork([np.ones((1, 3))], [[0.0]]), np.zeros((1, 3)), [0], 0.1)


def _reference_ibp(ws, bs, lo, hi):
    """IBP as notes §4 states it, l' = W⁺l + W⁻u + b, u' = W⁺u + W⁻l + b (numpy here)."""
    pre = []
    for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
        wp, wn = np.clip(w, 0, None), np.clip(w, None, 0)
        lo, hi = lo @ wp.T + hi @ wn.T + b, hi @ wp.T + lo @ wn.T + b
        if k < len(ws) - 1:
            pre.append((lo, hi))
            lo, hi = np.clip(lo, 0, None), np.clip(hi, 0, None)
    return lo, hi, pre


def _reference_margin_lower(ws, bs, lo, hi, label, binary):
    """min over the box of the margin's last layer, given IBP bounds of its input."""
    if len(ws) > 1:
        *_, pre = _reference_ibp(ws, bs, lo, hi)
        lo, hi = np.clip(pre[-1][0], 0, None), np.clip(pre[-1][1], 0, None)
    w, b = ws[-1], bs[-1]
    rows = (
        [(1.0 if label == 1 else -1.0) * w[0]]
        if binary
        else [w[label] - w[c] for c in range(len(w)) if c != label]
    )
    consts = (
        [(1.0 if label == 1 else -1.0) * b[0]]
        if binary
        else [b[label] - b[c] for c in range(len(w)) if c != label]
    )
    return min(
        float(np.minimum(v * lo, v * hi).sum() + k) for v, k in zip(rows, consts, strict=True)
    )


@pytest.mark.parametrize("sparse", [False, True])
def test_interval_bounds_equal_the_reference_formula(sparse):
    # exact equality (up to the ulps of differently ordered sums) with the formula: every
    # term of IBP matters, also the ones whose loss would only make it looser
    rng = np.random.default_rng(21)
    for trial in range(30):
        depth = 1 + trial % 3
        widths = [3] + list(rng.integers(1, 5, size=depth - 1)) + [1 + trial % 3]
        ws = [
            rng.normal(size=(o, i)) * (rng.random((o, i)) < 0.7)
            for i, o in zip(widths[:-1], widths[1:], strict=True)
        ]
        bs = [rng.normal(size=o) for o in widths[1:]]
        net = ReLUNetwork([sps.csr_matrix(w) for w in ws] if sparse else ws, bs)
        lo = rng.uniform(-1, 1, size=(5, 3))
        hi = lo + rng.uniform(0, 1, size=(5, 3))
        got_lo, got_hi, got_pre = interval_bounds(net, lo, hi, keep_hidden=True)
        ref_lo, ref_hi, ref_pre = _reference_ibp(ws, bs, lo, hi)
        # sums of ≤ 5 products of O(1) numbers: ulps only
        np.testing.assert_allclose(got_lo, ref_lo, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got_hi, ref_hi, rtol=0, atol=1e-12)
        for (a, b), (c, d) in zip(got_pre, ref_pre, strict=True):
            np.testing.assert_allclose(a, c, rtol=0, atol=1e-12)
            np.testing.assert_allclose(b, d, rtol=0, atol=1e-12)
        binary = widths[-1] == 1
        labels = rng.integers(0, 2, size=5) if binary else rng.integers(0, widths[-1], size=5)
        got = ibp_margin_lower(net, lo, hi, labels, binary)
        for i in range(5):
            ref = _reference_margin_lower(ws, bs, lo[i : i + 1], hi[i : i + 1], labels[i], binary)
            assert got[i] == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("n_out", [1, 3])
def test_clean_margin_of_linear_classifiers_is_exact_and_attained(n_out):
    # ℓ2: min over c ≠ y of (w_y − w_c)·x + b_y − b_c − r‖w_y − w_c‖, attained at
    # x − r·(w_y − w_c)/‖w_y − w_c‖ (no domain); ℓ∞ on the box ∩ [0, 1]^d: attained at the
    # box corner picked by the signs (written in numpy here, checked by evaluation).
    rng = np.random.default_rng(8)
    w, b = rng.normal(size=(n_out, 4)), rng.normal(size=n_out)
    net = ReLUNetwork([w], [b])
    x = rng.uniform(0, 1, size=(25, 4))
    binary = n_out == 1
    labels = rng.integers(0, 2 if binary else n_out, size=25)
    r = 0.15
    got2 = clean_margin_lower(net, x, labels, r, "2", binary, None)
    got_inf = clean_margin_lower(net, x, labels, r, "inf", binary, (0.0, 1.0))
    for i in range(25):
        rows = (
            [(1.0 if labels[i] == 1 else -1.0) * w[0]]
            if binary
            else [w[labels[i]] - w[c] for c in range(n_out) if c != labels[i]]
        )
        consts = (
            [(1.0 if labels[i] == 1 else -1.0) * b[0]]
            if binary
            else [b[labels[i]] - b[c] for c in range(n_out) if c != labels[i]]
        )
        exact2 = min(v @ x[i] + k - r * np.sqrt(v @ v) for v, k in zip(rows, consts, strict=True))
        assert got2[i] == pytest.approx(exact2, abs=1e-12)
        worst = [x[i] - r * v / np.sqrt(v @ v) for v in rows]
        attained = min(
            float(_margin(net, p[None, :], labels[i] if not binary else 2 * labels[i] - 1)[0])
            for p in worst
        )
        assert attained == pytest.approx(exact2, abs=1e-12)
        lo, hi = np.clip(x[i] - r, 0, 1), np.clip(x[i] + r, 0, 1)
        corners = [np.where(v > 0, lo, hi) for v in rows]
        exact_inf = min(
            float(_margin(net, p[None, :], labels[i] if not binary else 2 * labels[i] - 1)[0])
            for p in corners
        )
        assert got_inf[i] == pytest.approx(exact_inf, abs=1e-12)


@pytest.mark.parametrize("n_classes", [None, 3])
def test_gate_with_a_scale_below_one(n_classes):
    # A gate scale M < 1 is valid whenever sup|f_clean| ≤ M; the transfer factor is then 1,
    # not 1/M (resp. 1/(2M)). Broken opposite bump h_q(0.75) = 0.2 inside p's ball:
    # binary (M = ½): margin −0.2 + (0.25 − 0.1) = −0.05; three classes (M = ¼): −0.05 too.
    if n_classes is None:
        clean = ReLUNetwork([np.array([[1.0]])], [np.array([-0.5])])  # sup|f| = ½
        x, y, scale = np.array([[0.9], [0.5]]), np.array([1, -1]), 0.5
    else:
        clean = ReLUNetwork([np.array([[0.5], [-0.5], [0.0]])], [np.array([-0.25, 0.25, -0.25])])
        x, y, scale = np.array([[0.9], [0.5], [0.05]]), np.array([0, 1, 2]), 0.25
    model = build_construction(
        x, y, 0.15, "inf", clean=clean, subset="small-margin", n_classes=n_classes
    )
    assert 0 not in model.memorized.tolist() and 1 in model.memorized.tolist()
    grid = np.linspace(0.0, 1.0, 1001)[:, None]
    assert np.abs(_forward(clean, grid)).max() <= scale  # M ≥ sup|f_clean|: a valid gate
    model = model.replace(gate=GateBlock(clean, scale))
    assert certify(model, x, y, 0.15).certified_fraction == 1.0  # unbroken: certified
    alpha, beta = model.bump.alpha.copy(), model.bump.beta.copy()
    beta[model.memorized.tolist().index(1)] = 0.275  # (β − 0.25)/(β − 0.15) = 0.2
    broken = model.replace(bump=BumpBlock(alpha, beta))
    res = _assert_not_certified(broken, x, y, 0.15, "inf", 0, [0.75])
    assert res.status[0] is Status.REFUTED


def test_small_margin_mask_uses_the_margin_tolerance_unscaled():
    # without a gate scale, a point is large-margin iff its exact clean margin exceeds
    # MARGIN_TOLERANCE (1e-9): margins of 0.75e-9 and 1.5e-9 (rounding ~1e-17) fall apart
    net = ReLUNetwork([np.array([[1.0, 0.0]])], [np.array([0.0])])
    x = np.array([[0.1 + 0.75e-9, 0.5], [0.1 + 1.5e-9, 0.5]])
    mask = small_margin_mask(net, x, np.array([1, 1]), 0.1, "2", True, (0.0, 1.0))
    np.testing.assert_array_equal(mask, [True, False])


def test_multiclass_milp_checks_every_other_class():
    # f₀ = |x − 0.55| − 0.01 (IBP-loose, as _dip_net), f₁ = f₂ = −1, f₃ = 0.005, written
    # with non-zero weights on h = (σ(x − 0.55), σ(x), σ(1 − x)): class 3 beats class 0 only
    # near 0.55, inside the ball [0.4, 0.6] but at none of the candidates; 3 hidden units
    # for 4 classes, the worst class last.
    w_out = np.array([[2.0, -1.0, 0.0], [0.0, -1.0, -1.0], [0.0, -1.0, -1.0], [0.0, 1.0, 1.0]])
    net = ReLUNetwork(
        [np.array([[1.0], [1.0], [-1.0]]), w_out],
        [np.array([-0.55, 0.0, 1.0]), np.array([0.55 - 0.01, 0.0, 0.0, -0.995])],
    )
    grid = np.linspace(0.0, 1.0, 101)[:, None]
    np.testing.assert_allclose(_forward(net, grid)[:, 1:], [[-1.0, -1.0, 0.005]] * 101, atol=1e-12)
    res = _assert_not_certified(net, np.array([[0.5]]), np.array([0]), 0.1, "inf", 0, [0.55])
    assert res.method[0] == "milp" and res.status[0] is Status.REFUTED
    # the MILP value is the exact minimum margin over all other classes (grid through 0.55)
    value, _, optimal = milp_min_margin(net, np.array([0.4]), np.array([0.6]), 0, False)
    exact = float(_margin(net, np.linspace(0.4, 0.6, 201)[:, None], 0).min())
    assert optimal and exact == pytest.approx(-0.015, abs=1e-12)
    assert value == pytest.approx(exact, abs=MILP_MARGIN_TOLERANCE)
    # for label 3 the worst class comes first: the argmin returned must attain the value
    value3, arg3, _ = milp_min_margin(net, np.array([0.4]), np.array([0.6]), 3, False)
    at_arg = float(_margin(net, arg3[None, :], 3)[0])
    assert at_arg == pytest.approx(value3, abs=MILP_MARGIN_TOLERANCE) and value3 < -0.1


def test_milp_time_out_returns_a_sound_value_and_says_so():
    # with no time to finish, the value is HiGHS' dual bound (or −inf) and never above any
    # margin actually attained in the box; `optimal` is False
    rng = np.random.default_rng(0)
    net = ReLUNetwork(
        [rng.normal(size=(40, 5)), rng.normal(size=(40, 40)), rng.normal(size=(1, 40))],
        [rng.normal(size=40) * 0.1, rng.normal(size=40) * 0.1, np.zeros(1)],
    )
    lo, hi = np.full(5, 0.2), np.full(5, 0.8)
    value, _, optimal = milp_min_margin(net, lo, hi, 1, True, time_limit=1e-3)
    assert not optimal
    sampled = _margin(net, rng.uniform(lo, hi, size=(2000, 5)), 1)
    assert value <= sampled.min()


def test_point_at_the_edge_of_the_small_margin_set_is_still_certified():
    # clean margin 1.5e-9 on the ball, gate M = 2 (f = 4x − 2): through the gate only
    # 1.5e-9/M = 7.5e-10 < MARGIN_TOLERANCE could be proved, so the point must be memorized
    clean = ReLUNetwork([np.array([[4.0]])], [np.array([-2.0])])
    delta = 0.1
    x = np.array([[0.5 + delta + 1.5e-9 / 4], [0.1]])
    y = np.array([1, -1])
    model = build_construction(x, y, delta, "inf", clean=clean, subset="small-margin")
    assert model.gate.scale == 2.0 and 0 in model.memorized.tolist()
    assert certify(model, x, y, delta).certified_fraction == 1.0


def test_gate_multiclass_scale_two():
    # as the multi-class gate test, with M = 2 (valid: sup|f| = 1): ε = 0.08 from class 1
    # and p's own bump s = 0.045 at x = 0.75 give s − ε + Δ − 2M(s + ε) = −0.035 < 0
    # (Δ = 0.5), while (Δ − 2Mε)·1 − ε > 0: the transfer factor must be 1/(2M), not 1.
    clean = ReLUNetwork([np.array([[1.0], [-1.0], [0.0]])], [np.array([-0.5, 0.5, -1.0])])
    x, y = np.array([[0.9], [0.5], [0.05]]), np.array([0, 1, 2])
    model = build_construction(x, y, 0.15, "inf", clean=clean, n_classes=3)
    model = model.replace(gate=GateBlock(clean, 2.0))
    assert certify(model, x, y, 0.15).certified_fraction == 1.0
    beta_p, beta_q = 0.1455 / 0.955, 0.238 / 0.92  # h_p(0.15) = 0.045, h_q(0.25) = 0.08
    broken = model.replace(
        bump=BumpBlock(np.array([0.1, 0.15, 0.15]), np.array([beta_p, beta_q, 0.25]))
    )
    res = _assert_not_certified(broken, x, y, 0.15, "inf", 0, [0.75])
    assert res.status[0] is Status.REFUTED


def test_milp_dual_bound_without_incumbent_includes_the_output_bias(monkeypatch):
    # HiGHS may stop (time limit) with a dual bound but no feasible point; the margin's
    # lower bound is then that bound on the objective plus the constant (output bias) term
    import types

    import scipy.optimize

    fake = types.SimpleNamespace(x=None, status=1, fun=None, mip_dual_bound=-0.3)
    monkeypatch.setattr(scipy.optimize, "milp", lambda *a, **k: fake)
    net = ReLUNetwork([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), [0.25]])
    for label, const in ((1, 0.25), (0, -0.25)):
        value, arg, optimal = milp_min_margin(net, np.array([0.2]), np.array([0.8]), label, True)
        assert value == pytest.approx(-0.3 + const, abs=1e-15) and arg is None and not optimal


def test_sawtooth_query_point_off_the_centre():
    # one centre c = 0.2 (single class: β = (2δ)², support |t| < 2δ = 0.2). A query
    # q = 0.35 with radius 0.1 reaches 0.45, where s ≥ 0.25² > β: f̂ = 0 (not robust). The
    # own-bump bound must use the farthest point, distance |q − c| + radius, not − radius.
    x, y = np.array([[0.2]]), np.array([1])
    model = build_construction(x, y, 0.1, "2", l2_method="sawtooth")
    assert model.distance.kind == "l2-sawtooth"
    inside = certify(model, np.array([[0.22]]), y, 0.05, "2")
    assert inside.status[0] is Status.CERTIFIED  # a ball inside c's ball: certified
    _assert_not_certified(model, np.array([[0.35]]), y, 0.1, "2", 0, [0.45])


@pytest.mark.parametrize("domain", [(-0.5, 1.0), (0.0, 1.5)])
def test_sawtooth_certificate_needs_a_unit_domain(domain):
    x, y, model = _sawtooth_pair(0.2)
    with pytest.raises(ValueError, match="domain"):
        certify(model, x, y, 0.2, "2", domain=domain)


@pytest.mark.parametrize("bad", [[[-0.1], [0.5]], [[0.5], [1.2]]])
def test_points_outside_the_domain_are_refused(bad):
    x, y = np.array([[0.2], [0.6]]), np.array([1, -1])
    model = build_construction(x, y, 0.1, "inf")
    with pytest.raises(ValueError, match="domain"):
        certify(model, np.array(bad), y, 0.1)
    net = ReLUNetwork([np.ones((1, 1))], [[0.0]])
    with pytest.raises(ValueError, match="domain"):
        certify_network(net, np.array(bad), y, 0.1)


@pytest.mark.parametrize("labels", [[-1, 0, 1], [0, 1, 3], [3, 1, 0]])
def test_multiclass_construction_labels_out_of_range_are_refused(labels):
    x, y = np.array([[0.1], [0.5], [0.9]]), np.array([0, 1, 2])
    model = build_construction(x, y, 0.1, "inf", n_classes=3)
    with pytest.raises(ValueError, match="labels"):
        certify(model, x, np.array(labels), 0.1)


def test_generic_path_without_milp_leaves_the_dip_undecided():
    # use_milp=False: IBP (bound v − 0.05) and the candidates cannot decide f = |x − 0.55| + v
    res = certify_network(_dip_net(0.01), np.array([[0.5]]), np.array([1]), 0.1, use_milp=False)
    assert res.status[0] is Status.UNKNOWN and res.method[0] == "ibp"
    with_milp = certify_network(_dip_net(0.01), np.array([[0.5]]), np.array([1]), 0.1)
    assert with_milp.status[0] is Status.CERTIFIED
    # the MILP's bound keeps its tolerance: at most v − tol (+ HiGHS' ~1e-9 error)
    assert with_milp.margin_lower[0] <= 0.01 - MILP_MARGIN_TOLERANCE / 2
