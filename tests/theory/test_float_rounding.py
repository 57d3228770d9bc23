"""Float64 rounding in the certifier: the a-priori bounds are upper bounds, and they matter.

The oracle here is exact rational arithmetic (:class:`fractions.Fraction`: every float64 is
a rational, so the exact-arithmetic network on float64 weights and inputs is computed with
no error), written in this file and sharing no code with :mod:`robmem.theory.intervals`.
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
from numpy_lowered import forward as np_forward
from numpy_lowered import margin as np_margin

import robmem.theory.certify as certify_module
import robmem.theory.intervals as intervals_module
from robmem.theory.certificates import Status, certify_network
from robmem.theory.certify import _bump, certify
from robmem.theory.construction import build_construction
from robmem.theory.gadgets import trapezoid
from robmem.theory.intervals import (
    UNIT_ROUNDOFF,
    forward_error_bound,
    ibp_margin_lower,
    interval_bounds,
    margin_error_bound,
)
from robmem.theory.network import ReLUNetwork


# ----------------------------------------------------------------------- exact oracle
def exact_forward(net: ReLUNetwork, point: np.ndarray) -> list[Fraction]:
    """The network in exact rational arithmetic at one float64 input."""
    h = [Fraction(float(v)) for v in point]
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        dense = w.toarray() if hasattr(w, "toarray") else np.asarray(w)
        out = []
        for j in range(dense.shape[0]):
            s = Fraction(float(b[j]))
            for i in np.flatnonzero(dense[j]):
                s += Fraction(float(dense[j, i])) * h[i]
            out.append(s if k == len(net.weights) - 1 or s > 0 else Fraction(0))
        h = out
    return h


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


@pytest.mark.parametrize("patched", [False, True], ids=["with-bound", "bound-dropped"])
def test_generic_certificate_is_below_the_exact_and_the_float_margin(monkeypatch, patched):
    """certify_network (IBP) on f(x) = K·(σ(x + b₁) − σ(x + b₂)) + c with K = 2^40 and
    radius 0 (the box is the point): margin_lower must be below both the exact margin
    (Fractions) and the float64 one (numpy_lowered), which differ by up to ~K·u ≈ 1e-4.
    Teeth: with γ ≡ 0 and the plain IBP output bounds (no allowance for IBP's or the
    forward pass's rounding: the code before the fix) IBP repeats the float computation
    and exceeds the exact margin at some points, so a rigorous claim about the exact
    network fails."""
    if patched:
        plain = intervals_module.interval_bounds
        monkeypatch.setattr(intervals_module, "gamma", lambda k: np.zeros(np.shape(k)))
        monkeypatch.setattr(
            intervals_module, "interval_bounds", lambda *a, **k: plain(*a, **k, rounding=False)
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
