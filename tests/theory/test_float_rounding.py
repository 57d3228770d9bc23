"""Float64 rounding in the certifier: the a-priori bounds are upper bounds, and they matter.

The oracle here is exact rational arithmetic (:class:`fractions.Fraction`: every float64 is
a rational, so the exact-arithmetic network on float64 weights and inputs is computed with
no error), written in the tests (here and ``numpy_lowered.exact_forward``) and sharing no
code with :mod:`robmem.theory.intervals`.
Float64 margins of ball points come from the plain-numpy evaluator ``numpy_lowered``.

Each soundness check is paired with its teeth: the same check with the rounding allowance
removed (monkeypatched to 0, or the plain float64 formula) fails on the steep instances,
so the allowance is what makes the check pass.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sps
from numpy_lowered import exact_forward
from numpy_lowered import forward as np_forward
from numpy_lowered import margin as np_margin

import robmem.theory.certificates as certificates_module
import robmem.theory.certify as certify_module
from robmem.theory.certificates import Status, certify_network
from robmem.theory.certify import _bump, certify
from robmem.theory.construction import build_construction
from robmem.theory.gadgets import trapezoid
from robmem.theory.intervals import (
    UNIT_ROUNDOFF,
    clean_margin_lower,
    forward_error_bound,
    ibp_margin_lower,
    interval_bounds,
    margin_error_bound,
)
from robmem.theory.milp import MILP_MARGIN_TOLERANCE, milp_min_margin
from robmem.theory.network import ReLUNetwork


# ----------------------------------------------------------------------- exact oracle
def exact_margin(out: list[Fraction], label: int, binary: bool) -> Fraction:
    if binary:
        return out[0] if label == 1 else -out[0]
    return out[label] - max(v for c, v in enumerate(out) if c != label)


def _steep_net(rng: np.random.Generator, sparse: bool) -> ReLUNetwork:
    """Random ReLU net whose layers pair near-cancelling units under huge weights: the
    kind of amplification a steep bump ramp makes (weights up to ~1e9)."""
    d = int(rng.integers(1, 4))
    widths = [d] + [int(rng.integers(2, 6)) for _ in range(int(rng.integers(1, 4)))]
    widths.append(int(rng.integers(1, 4)))
    ws, bs = [], []
    for i, o in zip(widths[:-1], widths[1:], strict=True):
        scale = 10.0 ** rng.uniform(-1, 9, size=(o, 1))
        w = rng.normal(size=(o, i)) * scale * (rng.random((o, i)) < 0.8)
        if o >= 2:
            w[1] = -w[0] * (1 + 1e-9 * rng.normal())  # a near-cancelling pair
        ws.append(sps.csr_matrix(w) if sparse else w)
        bs.append(rng.normal(size=o) * scale[:, 0] * 0.3 + rng.uniform(0.1, 0.9, size=o))
    return ReLUNetwork(ws, bs)


# ----------------------------------------------------------------------- forward error
@pytest.mark.parametrize("sparse", [False, True])
def test_forward_error_bound_holds_against_exact_arithmetic(sparse):
    """|forward(x) − f(x)| ≤ forward_error_bound on every sampled float64 point of the box
    (corners included), f evaluated exactly with Fractions; on these steep nets the
    observed error is far above MARGIN_TOLERANCE-sized slack, so a zero bound would fail."""
    rng = np.random.default_rng(5 + sparse)
    worst_ratio, biggest = 0.0, 0.0
    for _ in range(25):
        net = _steep_net(rng, sparse)
        d = net.input_dim
        lo = rng.uniform(0, 0.6, size=d)
        hi = lo + rng.uniform(0, 0.4, size=d)
        bound = forward_error_bound(net, lo[None, :], hi[None, :])[0]
        corners = np.array(
            [[lo[i] if (m >> i) & 1 else hi[i] for i in range(d)] for m in range(2**d)]
        )
        pts = np.vstack([rng.uniform(lo, hi, size=(6, d)), corners])
        got = net.forward(pts)
        assert np.array_equal(got, net.forward(pts))  # deterministic
        for p, g in zip(pts, got, strict=True):
            exact = exact_forward(net, p)
            for c in range(net.output_dim):
                diff = abs(Fraction(float(g[c])) - exact[c])
                assert diff <= Fraction(float(bound[c])), (float(diff), bound[c])
                biggest = max(biggest, float(diff))
                if bound[c] > 0:
                    worst_ratio = max(worst_ratio, float(diff) / bound[c])
    assert biggest > 1e-7  # the errors are real: dropping the bound breaks the check
    assert worst_ratio > 1e-4  # and the bound is not astronomically loose


def test_forward_error_of_the_numpy_oracle_is_bounded_too():
    """The bound holds for any summation order: also for numpy_lowered's dense BLAS
    products, on the lowered steep construction of the fuzz case."""
    x, y, delta = _fuzz_case()
    net = build_construction(x, y, delta).network()
    lo, hi = np.clip(x - delta, 0, 1), np.clip(x + delta, 0, 1)
    bound = forward_error_bound(net, lo, hi)
    rng = np.random.default_rng(0)
    for i in range(3):
        pts = rng.uniform(lo[i], hi[i], size=(5, 2))
        for p, g in zip(pts, np_forward(net, pts), strict=True):
            diff = abs(Fraction(float(g[0])) - exact_forward(net, p)[0])
            assert diff <= Fraction(float(bound[i, 0]))


def test_multiclass_margin_error_bound_covers_both_logits():
    """margin(forward) ≥ exact margin − margin_error_bound for 3 outputs: the errors of the
    own logit and of the largest other one add up."""
    rng = np.random.default_rng(9)
    hits = 0
    for _ in range(40):
        net = _steep_net(rng, False)
        if net.output_dim < 3:
            continue
        d = net.input_dim
        lo = rng.uniform(0, 0.5, size=(1, d))
        hi = lo + 0.3
        for label in range(3):
            bound = margin_error_bound(net, lo, hi, np.array([label]), False)[0]
            one = margin_error_bound(net, lo, hi, np.array([label, label]), False)
            assert one[0] == bound
            for p in rng.uniform(lo[0], hi[0], size=(4, d)):
                got = np_margin(net, p[None, :], label)[0]
                exact = exact_margin(exact_forward(net, p), label, False)
                assert Fraction(float(got)) >= exact - Fraction(float(bound))
                hits += 1
    assert hits >= 60


# ----------------------------------------------------------------------- IBP's own rounding
def test_interval_bounds_contain_exact_values_plain_formula_does_not():
    """f(x) = x₁ + x₂ and x₁ − x₂ at x = (1, 2^-60): the exact values 1 ± 2^-60 round to 1,
    so the plain float64 IBP (rounding=False) excludes them; the widened bounds contain them."""
    net = ReLUNetwork([np.array([[1.0, 1.0], [1.0, -1.0]])], [np.zeros(2)])
    box = np.array([[1.0, 2.0**-60]])
    exact = exact_forward(net, box[0])
    plain_lo, plain_hi = interval_bounds(net, box, box, rounding=False)
    assert Fraction(float(plain_hi[0, 0])) < exact[0]  # the plain formula is unsound
    assert Fraction(float(plain_lo[0, 1])) > exact[1]
    lo, hi = interval_bounds(net, box, box)
    for c in range(2):
        assert Fraction(float(lo[0, c])) <= exact[c] <= Fraction(float(hi[0, c]))
    assert hi[0, 0] - lo[0, 0] < 1e-14  # widened by ulps, not more


def test_ibp_margin_lower_is_below_the_exact_margin():
    """Binary margin x₁ − x₂ at (1, 2^-60) is 1 − 2^-60 exactly; a plain float64 sum says
    1. Also through a hidden layer (the trunk's widened bounds), and multi-class."""
    box = np.array([[1.0, 2.0**-60]])
    flat = ReLUNetwork([np.array([[1.0, -1.0]])], [np.zeros(1)])
    deep = ReLUNetwork([np.eye(2), np.array([[1.0, -1.0]])], [np.zeros(2), np.zeros(1)])
    multi = ReLUNetwork([np.eye(2), np.array([[1.0, 0.0], [0.0, 1.0]])], [np.zeros(2), np.zeros(2)])
    for net, binary in ((flat, True), (deep, True), (multi, False)):
        exact = exact_margin(exact_forward(net, box[0]), 1 if binary else 0, binary)
        assert exact == 1 - Fraction(2) ** -60
        got = ibp_margin_lower(net, box, box, np.array([1 if binary else 0]), binary)[0]
        assert got < 1.0 and Fraction(float(got)) <= exact
        assert got > 1 - 1e-14


# ----------------------------------------------------------------------- bump values
def test_bump_values_are_within_gamma3_where_the_plain_trapezoid_cancels():
    """_bump (used by the structural certificate) vs the exact trapezoid (Fractions): within
    relative 3u·(1 + 3u); the plain σ(β − r) − σ(α − r) over a ramp of 2^-30 is off by
    u·r/(β − α) ≈ 1e-8 on the flat top. Broken bumps (α > β) follow the same trapezoid."""
    rng = np.random.default_rng(4)
    alpha = rng.uniform(0.1, 0.4, size=200)
    steep = 2.0**-30 * rng.uniform(1.0, 3.0, size=200)  # not dyadic: roundings differ
    beta = alpha + np.where(rng.random(200) < 0.5, steep, rng.uniform(0.01, 0.3, size=200))
    swap = rng.random(200) < 0.2
    alpha, beta = np.where(swap, beta, alpha), np.where(swap, alpha, beta)
    r = np.concatenate([rng.uniform(0, 0.8, size=150), np.minimum(alpha, beta)[:25],
                        np.maximum(alpha, beta)[:25]])  # fmt: skip
    # flat tops far below α (no Sterbenz-exact subtraction there)
    top = rng.uniform(0, np.minimum(alpha, beta)[:100] / 2.5)
    r[:100] = np.where(rng.random(100) < 0.5, top, r[:100])
    got = _bump(r, alpha, beta)
    plain = trapezoid(r, alpha, beta)
    plain_worst = 0.0
    for k in range(200):
        a, b, t = Fraction(float(alpha[k])), Fraction(float(beta[k])), Fraction(float(r[k]))
        low, high = min(a, b), max(a, b)
        exact = Fraction(1) if t <= low else Fraction(0) if t >= high else (high - t) / (high - low)
        tol = exact * Fraction(3 * UNIT_ROUNDOFF) * (1 + Fraction(3 * UNIT_ROUNDOFF))
        assert abs(Fraction(float(got[k])) - exact) <= tol, (k, float(got[k]), float(exact))
        plain_worst = max(plain_worst, float(abs(Fraction(float(plain[k])) - exact)))
    assert plain_worst > 1e-9  # the cancellation _bump avoids is real


# ----------------------------------------------------------------------- the certificates
def _fuzz_case():
    """Found by ``pytest -m fuzz``: δ = λ/2 − 9.3e-10, ramp ~1.9e-9, weights up to 5.4e8."""
    x = np.array(
        [[0.5625, 0.0982635], [1.0, 0.0982635 + 0.48279119165006606], [0.0078125, 0.11914062]]
    )
    return x, np.array([-1, 1, -1]), 0.24139559489371046


def _grid_min(model, centre, radius, label, n=41):
    lo, hi = np.clip(centre - radius, 0, 1), np.clip(centre + radius, 0, 1)
    axes = [np.linspace(a, b, n) for a, b in zip(lo, hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes), -1).reshape(-1, centre.size)
    return float(np_margin(model, grid, label).min())


def _steep_constructions():
    """1-D and 2-D constructions with δ just above the construction's floor below λ/2
    (ramps 2^-30·λ to 2^-28), non-dyadic coordinates: the float64 network loses ~1e-8."""
    rng = np.random.default_rng(12)
    out = [_fuzz_case()]
    for _ in range(6):
        d = int(rng.integers(1, 3))
        x = rng.uniform(0, 1, size=(3, d))
        y = np.array([-1, 1, -1])
        lam = min(np.abs(x[i] - x[j]).max() for i in range(3) for j in range(3) if y[i] != y[j])
        delta = lam / 2 - float(rng.uniform(1.2, 4.0)) * 2.0**-30 * max(1.0, lam)
        out.append((x, y, delta))
    return out


@pytest.mark.parametrize("removed", ["none", "outward-rounding", "both"])
def test_structural_margin_lower_is_below_the_float_network(monkeypatch, removed):
    """margin_lower ≤ the float64 network's margin (numpy_lowered on a grid of each ball)
    for steep constructions, every ball CERTIFIED (margin ≈ 1). The certificate has two
    rounding allowances: its distances are rounded outward by an ulp (which a ramp of
    ~2^-30 turns into ~1e-8 of bump height) and the forward pass's a-priori error bound
    (margin_error_bound). Either one alone covers the deficits seen here; with both removed
    (the code before the fix) the bound is 1 up to ~1e-13 and exceeds the float network's
    margin (which loses ~1e-8) on some ball: the teeth of this test."""
    if removed in ("outward-rounding", "both"):
        monkeypatch.setattr(certify_module, "_up", lambda v: v)
        monkeypatch.setattr(certify_module, "_down", lambda v: v)
    if removed == "both":
        monkeypatch.setattr(
            certify_module, "margin_error_bound", lambda net, lo, hi, y, b: np.zeros(len(y))
        )
    violated = 0
    for x, y, delta in _steep_constructions():
        model = build_construction(x, y, delta)
        res = certify(model, x, y, delta)
        assert all(s is Status.CERTIFIED for s in res.status)
        for i in range(3):
            found = _grid_min(model, x[i], delta, int(y[i]), n=11)
            assert found > 0.99
            if res.margin_lower[i] > found:
                violated += 1
    if removed == "both":
        assert violated >= 1
    else:
        assert violated == 0


def test_structural_bound_on_the_fuzz_case_is_small_and_sound():
    """The allowance on the fuzz case's ball 2 is ~1e-6 (of margin 1), above the observed
    deficit 1.49e-8 (numpy oracle, on the ball's edge)."""
    x, y, delta = _fuzz_case()
    model = build_construction(x, y, delta)
    res = certify(model, x, y, delta)
    assert res.status[2] is Status.CERTIFIED
    found = _grid_min(model, x[2], delta, -1, n=11)
    assert found < 1.0  # the float network really loses something here
    assert 1 - 1e-5 < res.margin_lower[2] <= found


def _plain_ibp_margin(net, lo, hi, labels, binary):
    """Textbook float64 IBP of a binary margin, with no allowance for rounding (the
    certifier before the fix), for the teeth below."""
    assert binary
    weights = net.dense_weights()
    for w, b in zip(weights[:-1], net.biases[:-1], strict=True):
        wp, wn = np.maximum(w, 0), np.minimum(w, 0)
        lo, hi = lo @ wp.T + hi @ wn.T + b, hi @ wp.T + lo @ wn.T + b
        lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
    sign = np.where(labels == 1, 1.0, -1.0)
    v = sign[:, None] * weights[-1][0][None, :]
    return np.where(v > 0, v * lo, v * hi).sum(axis=1) + sign * net.biases[-1][0]


@pytest.mark.parametrize("patched", [False, True], ids=["with-bound", "bound-dropped"])
def test_generic_certificate_is_below_the_exact_and_the_float_margin(monkeypatch, patched):
    """certify_network (IBP) on f(x) = K·(σ(x + b₁) − σ(x + b₂)) + c with K = 2^40 and
    radius 0 (the box is the point): margin_lower must be below both the exact margin
    (Fractions) and the float64 one (numpy_lowered), which differ by up to ~K·u ≈ 1e-4.
    Teeth: plain float64 IBP (no allowance for IBP's or the forward pass's rounding: the
    code before the fix) repeats the float computation and exceeds the exact margin at
    some points, so a rigorous claim about the exact network fails."""
    if patched:
        monkeypatch.setattr(
            certificates_module,
            "float_margin_lower",
            lambda net, lo, hi, y, b: (_plain_ibp_margin(net, lo, hi, y, b), np.zeros(len(y))),
        )
    k_scale = 2.0**40
    b1, b2 = 0.1, 0.1 + 3e-7
    net = ReLUNetwork(
        [np.array([[1.0], [1.0]]), np.array([[k_scale, -k_scale]])],
        [np.array([b1, b2]), np.array([k_scale * (b2 - b1) + 1e-2])],
    )
    pts = np.random.default_rng(2).uniform(0.3, 0.9, size=(40, 1))
    res = certify_network(net, pts, np.ones(40, dtype=int), 0.0, "inf", use_milp=False)
    found = np_margin(net, pts, 1)
    exact = np.array([float(exact_margin(exact_forward(net, p), 1, True)) for p in pts])
    assert exact.min() > 0.9e-2 and np.abs(found - exact).max() > 1e-5
    over_exact = int((res.margin_lower > exact).sum())
    over_float = int((res.margin_lower > found).sum())
    if patched:
        assert over_exact >= 1
    else:
        assert over_exact == 0 and over_float == 0
        assert res.n_certified == 40  # and not vacuous


# ----------------------------------------------------------------------- how the bounds compose
def test_generic_margin_lower_subtracts_the_forward_error_bound():
    """certify_network's documented composition: margin_lower ≤ ibp_margin_lower −
    margin_error_bound (IBP-certified balls) and ≤ MILP value − margin_error_bound −
    MILP_MARGIN_TOLERANCE (MILP balls). On the K = 2^40 net IBP's own allowance happens to
    cover the forward pass's observed error, so only this checks that the forward error
    bound is subtracted (and not added)."""
    k_scale = 2.0**40
    b1, b2 = 0.1, 0.1 + 3e-7
    net = ReLUNetwork(
        [np.array([[1.0], [1.0]]), np.array([[k_scale, -k_scale]])],
        [np.array([b1, b2]), np.array([k_scale * (b2 - b1) + 1e-2])],
    )
    pts = np.random.default_rng(2).uniform(0.3, 0.9, size=(10, 1))
    labels = np.ones(10, dtype=int)
    res = certify_network(net, pts, labels, 0.0, "inf", use_milp=False)
    err = margin_error_bound(net, pts, pts, labels, True)
    ibp = ibp_margin_lower(net, pts, pts, labels, True)
    assert err.min() > 1e-4  # the subtraction matters at this scale
    np.testing.assert_array_less(res.margin_lower, ibp - err + 1e-12 * np.abs(ibp))
    # the MILP path: a dip f = |x − 0.55| − 0.01 + 0.02 scaled by 2^30, IBP-loose on the box
    scale = 2.0**30
    dip = ReLUNetwork(
        [np.array([[1.0], [1.0]]), np.array([[2.0 * scale, -scale]])],
        [np.array([-0.55, 0.0]), np.array([scale * (0.55 + 0.01)])],
    )
    p, lo, hi = np.array([[0.5]]), np.array([[0.4]]), np.array([[0.6]])
    res = certify_network(dip, p, np.array([1]), 0.1, "inf")
    assert res.method[0] == "milp"
    value, _, _ = milp_min_margin(dip, lo[0], hi[0], 1, True)
    err = margin_error_bound(dip, lo, hi, np.array([1]), True)[0]
    assert err > 1e-9
    assert res.margin_lower[0] <= (value - err) - MILP_MARGIN_TOLERANCE


def test_structural_margin_lower_subtracts_the_forward_error_bound(monkeypatch):
    """certify_construction's composition: margin_lower = (structural bound) −
    margin_error_bound over each ball's box, on the steep constructions (where that bound
    is ~1e-6 while the structural bound's own outward rounding covers the deficits the
    grids find: only this checks the subtraction). Also with the MILP fallback."""
    for x, y, delta in _steep_constructions()[:3]:
        model = build_construction(x, y, delta)
        with_err = certify(model, x, y, delta)
        lo, hi = np.clip(x - delta, 0, 1), np.clip(x + delta, 0, 1)
        err = margin_error_bound(model.network(), lo, hi, (y == 1).astype(int), True)
        assert err.min() > 1e-8
        with monkeypatch.context() as m:
            m.setattr(
                certify_module, "margin_error_bound", lambda net, lo, hi, yy, b: np.zeros(len(yy))
            )
            without = certify(model, x, y, delta)
        np.testing.assert_allclose(with_err.margin_lower, without.margin_lower - err, rtol=0,
                                   atol=1e-12)  # fmt: skip
        # above FORWARD_ALL_BUDGET the bound is taken once over the hull of the boxes
        with monkeypatch.context() as m:
            m.setattr(certify_module, "FORWARD_ALL_BUDGET", 0)
            hull = certify(model, x, y, delta)
        e_hull = margin_error_bound(
            model.network(), lo.min(axis=0), hi.max(axis=0), (y == 1).astype(int), True
        )
        assert np.all(e_hull >= err)
        np.testing.assert_allclose(hull.margin_lower, without.margin_lower - e_hull, rtol=0,
                                   atol=1e-12)  # fmt: skip


# ----------------------------------------------------------------------- allowances, one by one
def _exact_sum_case():
    """x = (1, 2^-54 ×8): every float64 partial sum 1 ± 2^-54 rounds back to 1 (ties to
    even), so the float result is 1 while the exact one is 1 ± 2^-51: off by 4 ulps."""
    x = np.array([[1.0] + [2.0**-54] * 8])
    return x, Fraction(1) + 8 * Fraction(2) ** -54, Fraction(1) - 8 * Fraction(2) ** -54


def test_widening_covers_sums_that_are_off_by_several_ulps():
    """Output and hidden (keep_hidden) IBP bounds contain the exact values although the
    float sums are 4 ulps off (one ulp of outward rounding alone would not do); a
    bias-only row is computed exactly and is widened by exactly one ulp."""
    x, plus, minus = _exact_sum_case()
    rows = np.array([[1.0] * 9, [1.0] + [-1.0] * 8, [0.0] * 9])
    bias = np.array([0.0, 0.0, 0.3])
    flat = ReLUNetwork([rows], [bias])
    lo, hi = interval_bounds(flat, x, x)
    assert Fraction(float(hi[0, 0])) >= plus and Fraction(float(lo[0, 1])) <= minus
    assert lo[0, 2] == np.nextafter(0.3, -np.inf) and hi[0, 2] == np.nextafter(0.3, np.inf)
    deep = ReLUNetwork([rows, np.eye(3)], [bias, np.zeros(3)])
    *_, pre = interval_bounds(deep, x, x, keep_hidden=True)
    ((p_lo, p_hi),) = pre
    assert Fraction(float(p_hi[0, 0])) >= plus and Fraction(float(p_lo[0, 1])) <= minus
    assert Fraction(float(p_lo[0, 0])) <= plus and Fraction(float(p_hi[0, 1])) >= minus
    # a bias-only row is exact in the forward pass too: no error
    assert forward_error_bound(flat, x, x)[0, 2] == 0.0


def test_widening_covers_a_one_term_row_that_cancels():
    """w·x + b with x = w = 1 + 2^-52 and b = −(1 + 2^-51): the product's rounding (2^-104)
    is all that is left, and float64 gives 0. One-term rows need their ε too (one ulp of
    the result, 5e-324, is far too little); as output and as hidden pre-activation, both
    signs."""
    x = np.array([[1.0 + 2.0**-52]])
    w = np.array([[1.0 + 2.0**-52], [-(1.0 + 2.0**-52)]])
    b = np.array([-(1.0 + 2.0**-51), 1.0 + 2.0**-51])
    flat = ReLUNetwork([w], [b])
    exact = exact_forward(flat, x[0])
    assert exact == [Fraction(2) ** -104, -(Fraction(2) ** -104)]
    assert np.all(flat.forward(x) == 0.0)
    lo, hi = interval_bounds(flat, x, x)
    deep = ReLUNetwork([w, np.eye(2)], [b, np.zeros(2)])
    *_, ((p_lo, p_hi),) = interval_bounds(deep, x, x, keep_hidden=True)
    for low, high in ((lo, hi), (p_lo, p_hi)):
        for c in range(2):
            assert Fraction(float(low[0, c])) <= exact[c] <= Fraction(float(high[0, c]))
    err = forward_error_bound(flat, x, x)[0]
    assert all(Fraction(float(err[c])) >= abs(exact[c]) for c in range(2))


def test_multiclass_ibp_slack_covers_large_magnitudes_and_the_other_bias():
    """Multi-class IBP margins whose float sums are off by far more than an ulp of the
    result: (a) h = (2^20, 2^-34 ×8) (exact margin 2^20 − 2^-31, float 2^20): the slack
    must scale with |v|·m; (b) the other class's bias b_c = −2^60 and f_y = −0.75 (exact
    margin 2^60 − 0.75, float 2^60): the slack must include |b_c|."""
    h = np.array([[2.0**20] + [2.0**-34] * 8])
    w = np.vstack([np.array([1.0] + [-1.0] * 8), np.zeros(9)])
    net = ReLUNetwork([w], [np.zeros(2)])
    exact = exact_margin(exact_forward(net, h[0]), 0, False)
    assert exact == 2**20 - 8 * Fraction(2) ** -34
    got = ibp_margin_lower(net, h, h, np.array([0]), False)[0]
    assert Fraction(float(got)) <= exact
    net = ReLUNetwork([np.array([[-0.75], [0.0]])], [np.array([0.0, -(2.0**60)])])
    one = np.array([[1.0]])
    exact = exact_margin(exact_forward(net, one[0]), 0, False)
    assert exact == 2**60 - Fraction(3, 4)
    got = ibp_margin_lower(net, one, one, np.array([0]), False)[0]
    assert Fraction(float(got)) <= exact


def test_margin_error_bound_of_one_box_for_different_labels():
    """One box serving several labels: each label's bound is its own logit's error plus the
    largest other one, the same as with one box per label."""
    net = ReLUNetwork([np.array([[1e8, 0.0], [0.0, 1.0], [0.0, 1e4]])], [np.array([0.1, 0.2, 0.3])])
    lo, hi = np.array([[0.3, 0.3]]), np.array([[0.7, 0.7]])
    e = forward_error_bound(net, lo, hi)[0]
    for labels in (np.array([0, 1, 2, 1]), np.array([1, 2]), np.array([2, 0])):
        n = labels.size
        one = margin_error_bound(net, lo, hi, labels, False)
        many = margin_error_bound(net, np.repeat(lo, n, 0), np.repeat(hi, n, 0), labels, False)
        np.testing.assert_array_equal(one, many)
        for k, label in enumerate(labels):
            own, others = e[label], np.delete(e, label).max()
            assert own + others <= one[k] <= (own + others) * (1 + 1e-15)


def test_linear_l2_clean_margin_allows_for_the_norm_rounding():
    """ℓ2 clean margin of f(x) = w·x at x = 0, radius δ: exactly −δ‖w‖ (irrational: compared
    through squares with Fractions). The float64 value −fl(δ·fl(‖w‖)) is above it in some
    draws; the allowance must cover the δ‖w‖ term."""
    rng = np.random.default_rng(17)
    above = 0
    for _ in range(200):
        w = rng.normal(size=(1, 3)) * 10.0 ** rng.uniform(-3, 3)
        delta = float(rng.uniform(0.01, 1.0))
        net = ReLUNetwork([w], [np.zeros(1)])
        got = clean_margin_lower(net, np.zeros((1, 3)), np.array([1]), delta, "2", True, None)[0]
        norm_sq = sum(Fraction(float(v)) ** 2 for v in w[0])
        # got ≤ −δ‖w‖  ⟺  (got/δ)² ≥ ‖w‖² (got < 0)
        assert got < 0 and (Fraction(float(got)) / Fraction(delta)) ** 2 >= norm_sq
        plain = -delta * np.linalg.norm(w[0])
        above += (Fraction(float(plain)) / Fraction(delta)) ** 2 < norm_sq
    assert above >= 1  # the plain float value is not a bound in some draws


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_empty_small_margin_set_subtracts_the_forward_error_bound(norm):
    """With no centres f̂ = f_clean: certify_construction's margin_lower is at most the
    exact clean margin bound less the forward error bound (f = 2^40·(x − 0.2), so that
    bound is ~3e-4 and matters). For ℓ2 the bound is the larger of the linear closed form
    (certify_network's method "linear") and IBP over the box; for ℓ∞ IBP over the box."""
    k_scale = 2.0**40
    clean = ReLUNetwork([np.array([[k_scale]])], [np.array([-0.2 * k_scale])])
    x, y = np.array([[0.3], [0.6], [0.9]]), np.array([1, 1, 1])
    model = build_construction(x, y, 0.01, norm, clean=clean, subset="small-margin")
    assert model.n_centres == 0
    res = certify(model, x, y, 0.01, norm)
    assert res.method == (["linear"] * 3 if norm == "2" else ["ibp"] * 3)
    lo, hi = np.clip(x - 0.01, 0, 1), np.clip(x + 0.01, 0, 1)
    err = margin_error_bound(clean, lo, hi, y, True)
    bound = clean_margin_lower(clean, x, y, 0.01, "inf", True, (0.0, 1.0))
    if norm == "2":
        bound = np.maximum(bound, clean_margin_lower(clean, x, y, 0.01, "2", True, (0.0, 1.0)))
    assert err.min() > 1e-4 and res.certified_fraction == 1.0
    assert np.all(res.margin_lower <= bound - err)  # the same float64 operations


@pytest.mark.parametrize("gate", [False, True], ids=["no-gate", "gate"])
def test_structural_bound_alone_is_below_an_exact_margin(monkeypatch, gate):
    """Dyadic instance (x = ¼ (+1), ¾ (−1), δ = ⅛: α = ⅛, β = ⅜, every number exact):
    the exact network's margin at the ball point 0.375 is exactly 1 (own bump at r = α,
    the other at r = β; with the gate around f = ½ − x, M = 1, both gate units are 0
    there), and float64 computes it exactly. With the forward error bound removed, the
    structural bound's own allowances (outward ulps, γ_{N+20} of its magnitudes) must keep
    it ≤ 1; it is 1 up to ~1e-14."""
    monkeypatch.setattr(
        certify_module, "margin_error_bound", lambda net, lo, hi, yy, b: np.zeros(len(yy))
    )
    x, y = np.array([[0.25], [0.75]]), np.array([1, -1])
    clean = ReLUNetwork([np.array([[-1.0]])], [np.array([0.5])]) if gate else None
    model = build_construction(x, y, 0.125, clean=clean)
    assert model.bump.alpha[0] == 0.125 and model.bump.beta[0] == 0.375
    assert not gate or model.gate.scale == 1.0
    assert np_margin(model, np.array([[0.375]]), 1)[0] == 1.0
    res = certify(model, x, y, 0.125)
    assert res.status == [Status.CERTIFIED] * 2
    assert np.all(res.margin_lower <= 1.0) and np.all(res.margin_lower > 1 - 1e-14)
