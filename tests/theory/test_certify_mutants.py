"""Wrong answers that mutation testing of ``theory/certify.py`` showed the other tests miss.

Each test names the wrong answer it catches (a false certificate, a bound above a margin
that a ball point really has, a missed close pair, a missed refutation that the documented
candidates find) and checks it against code independent of the certifier: the lowered
network evaluated by plain numpy (:func:`_margin`), brute-force distances, or hand-derived
numbers. Instances with steep bump ramps use dyadic coordinates, so the lowered network
computes their distances and bump values exactly.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.optimize
from numpy_lowered import margin as _margin

from robmem.theory.certificates import Status, certify_network
from robmem.theory.certify import _l2_close_pairs, certify, certify_construction
from robmem.theory.construction import BumpBlock, build_construction
from robmem.theory.milp import MILP_MARGIN_TOLERANCE
from robmem.theory.network import ReLUNetwork

#: margin_lower vs margins of genuine ball points (float64 sums of a few O(1) terms)
BOUND_SLACK = 1e-12


def _assert_genuine(obj, centre, label, radius, norm, witness, domain=(0.0, 1.0)) -> float:
    """The witness lies in B_p(centre, radius) ∩ domain and has margin ≤ 0 (numpy)."""
    w = np.asarray(witness, dtype=np.float64)
    diff = w - np.asarray(centre, dtype=np.float64)
    dist = np.abs(diff).max() if norm == "inf" else np.sqrt((diff**2).sum())
    assert dist <= radius * (1 + 1e-12) + 1e-15, (dist, radius)
    if domain is not None:
        assert w.min() >= domain[0] and w.max() <= domain[1]
    m = float(_margin(obj, w[None, :], label)[0])
    assert m <= 0.0, ("not a counterexample", m)
    return m


# ----------------------------------------------------------------- ℓ2 pair search
def _brute_pairs(q: np.ndarray, c: np.ndarray, thr: np.ndarray) -> list[tuple[int, int]]:
    d = np.sqrt(((q[:, None, :] - c[None, :, :]) ** 2).sum(axis=2))
    r, k = np.nonzero(d < thr[None, :])
    return sorted(zip(r.tolist(), k.tolist(), strict=True))


def _found_pairs(q, c, thr) -> list[tuple[int, int]]:
    rows, cols, dists = _l2_close_pairs(q, c, thr)
    exact = np.sqrt(((q[rows] - c[cols]) ** 2).sum(axis=1))
    np.testing.assert_allclose(dists, exact, rtol=1e-12, atol=0)
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


def test_l2_close_pairs_equal_brute_force_beyond_one_chunk():
    """Catches missed or duplicated close pairs (queries past the first 256, wrong row
    offsets, a wrong squared-distance formula or threshold): 600 queries with coordinates of
    both signs and above 1, thresholds below and above 1 and 2, against brute force."""
    rng = np.random.default_rng(7)
    q = rng.uniform(-3.0, 3.0, size=(600, 3))
    c = rng.uniform(-3.0, 3.0, size=(40, 3))
    thr = rng.uniform(0.3, 4.0, size=40)
    d = np.sqrt(((q[:, None, :] - c[None, :, :]) ** 2).sum(axis=2))
    assert np.abs(d / thr[None, :] - 1).min() > 1e-9  # no pair is ambiguous in float64
    truth = _brute_pairs(q, c, thr)
    assert len(truth) > 1000 and max(r for r, _ in truth) >= 512  # every chunk has pairs
    assert _found_pairs(q, c, thr) == truth


def test_l2_close_pairs_near_the_threshold():
    """Catches close pairs lost by the candidate filter's rounding slack: pairs just inside
    their threshold (relative 1e-10 with O(1) coordinates; 4e-14 with coordinates ~100,
    where the Gram-matrix formula loses ~1e-11), identical points with thresholds 1e-7 and
    1e-9, and a pair exactly at its threshold (3-4-5, exact in float64: not a pair)."""
    rng = np.random.default_rng(3)
    # O(1): centres at (1 − 1e-10)·threshold from the origin
    dirs = rng.normal(size=(50, 4))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    thr = rng.uniform(0.5, 1.9, size=50)
    c = dirs * (thr * (1 - 1e-10))[:, None]
    q = np.zeros((1, 4))
    assert _found_pairs(q, c, thr) == _brute_pairs(q, c, thr) == [(0, j) for j in range(50)]
    # large coordinates: the exact distance is below the threshold by 4e-14 relative
    q = rng.uniform(90.0, 110.0, size=(1, 3))
    c = q + rng.uniform(-0.6, 0.6, size=(60, 3))
    dist = np.sqrt(((c - q) ** 2).sum(axis=1))
    thr = dist * (1 + 4e-14)
    assert _found_pairs(q, c, thr) == _brute_pairs(q, c, thr) == [(0, j) for j in range(60)]
    # identical points, tiny thresholds
    p = rng.uniform(0.0, 1.0, size=(40, 37))
    for t in (1e-7, 1e-9):
        thr = np.full(40, t)
        assert _found_pairs(p, p, thr) == _brute_pairs(p, p, thr) == [(j, j) for j in range(40)]
    # strictly below the threshold: distance exactly 5 is not a pair
    q, c = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [3.0, 3.0]])
    thr = np.array([5.0, 5.0])
    assert _found_pairs(q, c, thr) == _brute_pairs(q, c, thr) == [(0, 1)]


# ----------------------------------------------------------------- gate slack
def test_multiclass_gate_slack_uses_the_largest_clean_output():
    """Catches a false certificate: f_clean = (0, 1, 0) says class 1 everywhere and p's own
    bump is 0.1 at its ball's edge; f̂_0 − f̂_1 = 0.1 − (1 − 0.1) = −0.8 there. The gate
    slack must use the largest |f_c| (1), not the smallest (0)."""
    clean = ReLUNetwork([np.zeros((3, 1))], [np.array([0.0, 1.0, 0.0])])
    x, y = np.array([[0.3], [0.9], [0.0]]), np.array([0, 1, 2])
    model = build_construction(x, y, 0.1, "inf", clean=clean, n_classes=3)
    assert model.gate.scale == 1.0
    alpha, beta = model.bump.alpha.copy(), model.bump.beta.copy()
    alpha[0], beta[0] = 0.0, 0.1 / 0.9  # h = 0.1 at distance 0.1
    broken = model.replace(bump=BumpBlock(alpha, beta))
    m = _assert_genuine(broken, x[0], 0, 0.1, "inf", [0.2])
    res = certify(broken, x, y, 0.1, "inf")
    assert res.status[0] is not Status.CERTIFIED
    assert res.margin_lower[0] <= m + BOUND_SLACK


def test_multiclass_gate_slack_certifies_a_robust_ball():
    """Catches a missed certificate that the documented bound S_y − max S_c − 2·slack
    proves: f_clean = (−1, 1, −1) (M = 1) and p's own bump is 0.7 at its ball's edge, so
    f̂_0 − f̂_1 = s − 2(1 − s) = 3s − 2 ≥ 0.1 on the ball (numpy grid); with the factor 2
    the bound is exactly 0.1."""
    clean = ReLUNetwork([np.zeros((3, 1))], [np.array([-1.0, 1.0, -1.0])])
    x, y = np.array([[0.3], [0.9], [0.0]]), np.array([0, 1, 2])
    model = build_construction(x, y, 0.1, "inf", clean=clean, n_classes=3)
    assert model.gate.scale == 1.0
    alpha, beta = model.bump.alpha.copy(), model.bump.beta.copy()
    alpha[0], beta[0] = 0.0, 1.0 / 3.0  # h = 1 − 3r: 0.7 at distance 0.1
    broken = model.replace(bump=BumpBlock(alpha, beta))
    grid = np.linspace(0.2, 0.4, 2001)[:, None]
    true_min = float(_margin(broken, grid, 0).min())
    assert true_min == pytest.approx(0.1, abs=1e-9)
    res = certify(broken, x[:1], y[:1], 0.1, "inf")
    assert res.margin_lower[0] <= true_min + BOUND_SLACK
    assert res.status[0] is Status.CERTIFIED


def test_binary_gate_certificate_with_an_opposite_bump_in_the_ball():
    """Catches a missed certificate that the documented binary gate bound
    (Δ − M·ε)·min(1, 1/M) − ε proves: f_clean = x − ½ (M = 1), p = 0.9 (+1) not memorized,
    q = 0.5 (−1) whose bump is ε = 1/11 at p's ball edge 0.75; the margin there is
    ¼ − 2/11 > 0 and grows inward (numpy grid), and the bound is exactly that."""
    clean = ReLUNetwork([np.array([[1.0]])], [np.array([-0.5])])
    x, y = np.array([[0.9], [0.5]]), np.array([1, -1])
    model = build_construction(x, y, 0.15, "inf", clean=clean, subset="small-margin")
    assert model.memorized.tolist() == [1] and model.gate.scale == 1.0
    broken = model.replace(bump=BumpBlock(np.array([0.15]), np.array([0.26])))
    grid = np.linspace(0.75, 1.0, 2501)[:, None]
    true_min = float(_margin(broken, grid, 1).min())
    assert true_min == pytest.approx(0.25 - 2 / 11, abs=1e-9)
    res = certify(broken, x[:1], y[:1], 0.15, "inf")
    assert res.margin_lower[0] <= true_min + BOUND_SLACK
    assert res.status[0] is Status.CERTIFIED


# ----------------------------------------------------------------- opposite-bump pruning
# An opposite centre at exactly reach + δ minus a hair (5e-14 in the bump's units) from the
# query: its bump is 1 (flat top) at the ball point nearest to it, because the ramp β − α
# is 1e-14. Every number is dyadic up to that hair, so the lowered network sees it exactly.
_ETA, _RAMP = 5e-14, 1e-14


def _steep(model, own: tuple[float, float], opposite_level: float) -> object:
    beta_opp = opposite_level + _ETA
    alpha = np.array([own[0], beta_opp - _RAMP])
    beta = np.array([own[1], beta_opp])
    return model.replace(bump=BumpBlock(alpha, beta))


@pytest.mark.parametrize(
    "case",
    [
        # ℓ∞, reach + δ = 0.625 + η < 1
        dict(x=[[0.0], [0.625]], norm="inf", r=0.3125, z=[0.3125], level=0.3125, own=(0.2, 0.4)),
        # ℓ∞ without a domain, reach + δ = 1.25 + η > 1
        dict(
            x=[[0.0], [1.25]],
            norm="inf",
            r=0.625,
            z=[0.625],
            level=0.625,
            own=(0.5, 0.75),
            domain=None,
        ),
        # sawtooth, 1-D, √reach + δ ≈ 0.625 < 1 (s = (5/16)², exact with m = 4 teeth)
        dict(x=[[0.0], [0.625]], norm="2", r=0.3125, z=[0.3125], level=0.3125**2, own=(0.05, 0.15)),
        # sawtooth, 2-D, √reach + δ ≈ 1.25 > 1: z − c = (−3/8, −1/2), s = (5/8)²
        dict(
            x=[[0.0, 0.0], [0.75, 1.0]],
            norm="2",
            r=0.625,
            z=[0.375, 0.5],
            level=0.625**2,
            own=(0.3, 0.5),
        ),
    ],
    ids=["linf", "linf-no-domain", "sawtooth-1d", "sawtooth-2d"],
)
def test_opposite_bump_just_inside_reach_plus_radius_is_not_pruned(case):
    """Catches a false certificate: the opposite centre lies (η ≈ 5e-14) inside reach + δ of
    the query, so its bump is 1 at the ball point nearest to it while the own bump is about
    ½ there (margin < 0 by numpy). A pruning threshold shrunk by its relative slack drops
    the pair and certifies the ball."""
    x, y = np.array(case["x"]), np.array([1, -1])
    domain = case.get("domain", (0.0, 1.0))
    if case["norm"] == "inf":
        model = build_construction(x, y, 0.1, "inf", domain=domain)
    else:
        model = build_construction(x, y, 0.1, "2", l2_method="sawtooth", teeth=4)
    broken = _steep(model, case["own"], case["level"])
    m = _assert_genuine(broken, x[0], 1, case["r"], case["norm"], case["z"], domain)
    assert m < -0.4
    res = certify(broken, x[:1], y[:1], case["r"], case["norm"])
    assert res.status[0] is not Status.CERTIFIED, res.margin_lower[0]
    assert res.margin_lower[0] <= m + BOUND_SLACK


# ----------------------------------------------------------------- MILP value
def _scaled_dip(scale: float, v: float) -> ReLUNetwork:
    """f(x) = scale·(|x − 0.55| + v) on [0, 1], written so that IBP is loose on [0.4, 0.6]
    (bound scale·(v − 0.05)); minimum scale·v at x = 0.55."""
    return ReLUNetwork(
        [np.array([[1.0], [1.0]]), np.array([[2.0 * scale, -scale]])],
        [np.array([-0.55, 0.0]), np.array([scale * (0.55 + v)])],
    )


def _highs_at_its_gap(monkeypatch, rel_gap: float = 1e-4) -> None:
    """HiGHS reports status 0 ("optimal") once (fun − dual bound) ≤ mip_rel_gap·|fun|
    (default 1e-4): this wrapper solves exactly, then reports the worst case that rule
    allows: the incumbent's value that much above the minimum, the dual bound at it."""
    real = scipy.optimize.milp

    def at_gap(*args, **kwargs):
        res = real(*args, **kwargs)
        if res.status != 0 or res.mip_dual_bound is None:
            return res
        fun = res.fun + rel_gap * abs(res.fun)
        return types.SimpleNamespace(
            x=res.x, status=0, fun=fun, mip_dual_bound=res.fun, success=True
        )

    monkeypatch.setattr(scipy.optimize, "milp", at_gap)


def test_milp_margin_lower_is_below_the_true_minimum_at_the_solver_gap(monkeypatch):
    """Catches a bound above a real margin: f = 100·(|x − 0.55| + 0.04) has minimum 4 at
    x = 0.55 (numpy), IBP cannot certify [0.4, 0.6], the MILP does; with the incumbent
    value 4·(1 + 1e-4) that HiGHS may report as optimal, fun − 1e-5 = 4.0004 > 4."""
    net = _scaled_dip(100.0, 0.04)
    p, y = np.array([[0.5]]), np.array([1])
    true_min = float(_margin(net, np.array([[0.55]]), 1)[0])
    assert true_min == pytest.approx(4.0, abs=1e-12)
    exact = certify_network(net, p, y, 0.1, "inf")
    assert exact.method[0] == "milp" and exact.status[0] is Status.CERTIFIED
    assert exact.margin_lower[0] <= true_min
    _highs_at_its_gap(monkeypatch)
    res = certify_network(net, p, y, 0.1, "inf")
    assert res.method[0] == "milp" and res.status[0] is Status.CERTIFIED
    assert res.margin_lower[0] <= true_min


def test_construction_milp_margin_lower_is_below_the_true_minimum(monkeypatch):
    """Catches a bound above a real margin in the construction path's MILP fallback: the
    gate's f_clean is the dip scale·(|x − 0.55| + v), far from every bump, so f̂ = f near
    0.55 (numpy) and its exact minimum is scale·v. With v = 0.01, scale 1 the solver's value
    is 0.01 + 9e-18 (float64 sums): the tolerance must still be subtracted. With scale 100,
    v = 0.04 (minimum 4) the bound must stay ≤ 4 also when HiGHS stops at its gap."""
    x, y = np.array([[0.0], [0.2]]), np.array([-1, 1])
    q, qy = np.array([[0.5]]), np.array([1])
    for scale, v in ((1.0, 0.01), (100.0, 0.04)):
        model = build_construction(x, y, 0.05, "inf", clean=_scaled_dip(scale, v))
        true_min = scale * v  # |x − 0.55| + v ≥ v, attained at 0.55
        at_dip = float(_margin(model, np.array([[0.55]]), 1)[0])
        assert at_dip == pytest.approx(true_min, rel=1e-14)
        res = certify_construction(model, q, qy, 0.1, use_milp=True)
        assert res.method[0] == "milp" and res.status[0] is Status.CERTIFIED
        assert res.margin_lower[0] <= true_min
    _highs_at_its_gap(monkeypatch)
    res = certify_construction(model, q, qy, 0.1, use_milp=True)
    assert res.method[0] == "milp" and res.status[0] is Status.CERTIFIED
    assert res.margin_lower[0] <= true_min
    assert res.margin_lower[0] >= true_min - 2 * MILP_MARGIN_TOLERANCE  # not vacuous


# ----------------------------------------------------------------- refutation candidates
def _single_bump(centre: np.ndarray, alpha: float, beta: float, domain) -> object:
    model = build_construction(centre[None, :], np.array([1]), 0.05, "inf", domain=domain)
    return model.replace(bump=BumpBlock(np.array([alpha]), np.array([beta])))


def _farthest_linf(centre, radius, domain) -> float:
    """max over B_p(c, radius) ∩ box of ‖z − c‖_∞ for p ∈ {∞, 2}: attained on an axis."""
    lo = np.maximum(centre - radius, domain[0])
    hi = np.minimum(centre + radius, domain[1])
    return float(np.maximum(centre - lo, hi - centre).max())


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_ball_point_farthest_from_the_own_centre_is_tried(norm):
    """Catches a missed refutation that the documented candidate "the ball point farthest
    from its own centre" finds: a single centre c (+1) whose bump vanishes at ℓ∞ distance
    β just below the largest ℓ∞ distance from c within the ball ∩ domain (an axis point for
    both norms; the domain clips some coordinates, on both sides when δ > 1 in [−1, 1]),
    so f̂ = 0 there. Also checks that with
    β just above it the ball is not refuted (every margin > 0)."""
    rng = np.random.default_rng(11)
    n_refuted = 0
    for trial in range(40):
        domain = (0.0, 1.0) if trial % 2 else (-1.0, 1.0)
        d = 2 + trial % 3
        c = rng.uniform(domain[0], domain[1], size=d)
        radius = float(rng.uniform(0.15, 0.9 if domain[0] == 0.0 else 1.9))
        far = _farthest_linf(c, radius, domain)
        for beta, refutable in ((far * (1 - 1e-3), True), (far * (1 + 1e-3), False)):
            model = _single_bump(c, 0.5 * beta, beta, domain)
            res = certify(model, c[None, :], np.array([1]), radius, norm)
            if refutable:
                assert res.status[0] is Status.REFUTED, (trial, c, radius)
                _assert_genuine(model, c, 1, radius, norm, res.counterexamples[0], domain)
                n_refuted += 1
            else:
                assert res.status[0] is not Status.REFUTED
    assert n_refuted == 40


def test_farthest_point_on_a_domain_with_negative_coordinates():
    """Catches a missed refutation: c = −0.8 in the domain [−1, 1] with δ = 0.5; the ball
    point farthest from c is −0.3 (distance 0.5), not the clipped −1 (distance 0.2); the bump
    vanishes at 0.45."""
    c = np.array([-0.8])
    model = _single_bump(c, 0.2, 0.45, (-1.0, 1.0))
    _assert_genuine(model, c, 1, 0.5, "inf", [-0.3], (-1.0, 1.0))
    res = certify(model, c[None, :], np.array([1]), 0.5, "inf")
    assert res.status[0] is Status.REFUTED
    _assert_genuine(model, c, 1, 0.5, "inf", res.counterexamples[0], (-1.0, 1.0))


def test_sawtooth_ball_point_nearest_an_active_opposite_centre_is_tried():
    """Catches a missed refutation that the documented candidate "the nearest ball point to
    an active opposite centre" finds: ℓ2 (sawtooth) ball of radius ¼ around
    x = (0.3, 0.3, 0.5), opposite centre c = (0.66, 0.42, 0.5) at distance 0.38 (between δ
    and 2δ, off the axes; one coordinate equal, so c − x has a zero entry). c's
    bump is 1 only within a thin cap around z* = x + δ(c − x)/‖c − x‖ (s ≤ ‖z* − c‖² + 3e-5)
    and 0 beyond +8e-4, where the own bump is about ½: z* is a counterexample (numpy); the
    box-clipped c and the midpoint project outside the cap."""
    x = np.array([[0.3, 0.3, 0.5], [0.66, 0.42, 0.5]])
    y = np.array([1, -1])
    model = build_construction(x, y, 0.05, "2", l2_method="sawtooth", teeth=8)
    radius = 0.25
    direction = (x[1] - x[0]) / np.sqrt(((x[1] - x[0]) ** 2).sum())
    z_star = x[0] + radius * direction
    t_star = float(((z_star - x[1]) ** 2).sum())
    alpha = np.array([0.03, t_star + 3e-5])
    beta = np.array([0.09, t_star + 8e-4])
    broken = model.replace(bump=BumpBlock(alpha, beta))
    _assert_genuine(broken, x[0], 1, radius, "2", z_star)
    res = certify(broken, x[:1], y[:1], radius, "2")
    assert res.status[0] is Status.REFUTED
    _assert_genuine(broken, x[0], 1, radius, "2", res.counterexamples[0])


def test_structural_margin_lower_is_below_the_float_network_with_a_steep_ramp():
    """Catches a bound above a real margin (found by `pytest -m fuzz`): with a bump ramp of
    ~1.9e-9 (δ = λ/2 − 9.3e-10; weights up to 5.4e8) the float64 network loses ~1.5e-8 at
    ball 2's edge (numpy grid); margin_lower must allow for that rounding (the certifier's
    outward-rounded distances and its a-priori forward error bound; both are removed in
    test_float_rounding to show the failure), and stay near the margin 1."""
    x = np.array(
        [[0.5625, 0.0982635], [1.0, 0.0982635 + 0.48279119165006606], [0.0078125, 0.11914062]]
    )
    y = np.array([-1, 1, -1])
    delta = 0.24139559489371046  # λ/2 − 9.3e-10: the ramp is just above the construction's floor
    model = build_construction(x, y, delta)
    result = certify(model, x, y, delta)
    assert result.status[2] is Status.CERTIFIED  # right: the margin is about 1
    lo, hi = np.clip(x[2] - delta, 0, 1), np.clip(x[2] + delta, 0, 1)
    grid = np.stack(np.meshgrid(*(np.linspace(a, b, 11) for a, b in zip(lo, hi, strict=True))), -1)
    found = _margin(model, grid.reshape(-1, 2), -1).min()  # 1 − 1.49e-8 on the ball's edge
    assert result.margin_lower[2] <= found
    assert result.margin_lower[2] > 1 - 1e-4  # the allowance is small
