"""Certifier soundness: MILP cross-checks, broken nets refuted with verified counterexamples."""

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from robmem.theory.certificates import Status, certify_network
from robmem.theory.certify import certify, certify_outside_balls
from robmem.theory.construction import BumpBlock, OutputBlock, build_construction
from robmem.theory.intervals import ball_box, ibp_margin_lower, margins, small_margin_mask
from robmem.theory.milp import MILP_MARGIN_TOLERANCE, milp_min_margin
from robmem.theory.network import ReLUNetwork
from robmem.theory.strategies import clean_relu_networks, datasets_with_radius


def _independent_margin(net, pt, label, binary):
    """Margin of one input by plain numpy on the lowered weights (no robmem.theory.certify code)."""
    h = np.asarray(pt, dtype=np.float64)[None, :]
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        h = h @ (w.toarray() if hasattr(w, "toarray") else np.asarray(w)).T + np.asarray(b)
        h = np.maximum(h, 0.0) if k < len(net.weights) - 1 else h
    if binary:
        return float((1.0 if label == 1 else -1.0) * h[0, 0])
    return float(h[0, label] - np.delete(h[0], label).max())


def _assert_counterexamples_verified(net_or_model, res, x, y, radius, norm, binary):
    net = getattr(net_or_model, "network", lambda: net_or_model)()
    for i, cx in res.counterexamples.items():
        assert res.status[i] is Status.REFUTED
        dist = np.abs(cx - x[i]).max() if norm == "inf" else np.linalg.norm(cx - x[i])
        # ulps of the projection onto the ball (one scaling per coordinate)
        assert dist <= radius * (1 + 1e-12) + 1e-12
        assert cx.min() >= 0 and cx.max() <= 1
        lab = (y[i] == 1) if binary else y[i]
        assert _independent_margin(net, cx, int(lab), binary) <= 0
    for i, s in enumerate(res.status):
        if s is Status.REFUTED:
            assert i in res.counterexamples


#: HiGHS' default mip_feasibility_tolerance: a binary may sit this far from 0 or 1. That
#: relaxes a bump unit σ(β − r) by up to τ·max(1, β) (its pre-activation bound: distances
#: in [0, 1]^d), amplified by the bump's ramp slope 1/(β − α). Relaxing only lowers the
#: MILP minimum, so the MILP value may lie this far *below* the exact minimum (at δ near
#: λ/2 the ramp is ~2^-30 and the MILP value is meaningless: the bound is then vacuous).
HIGHS_INTEGRALITY_TOL = 1e-6


def _milp_underestimate(model) -> float:
    ramp = np.abs(model.bump.beta - model.bump.alpha)
    slopes = 2 * np.maximum(1.0, np.abs(model.bump.beta)) / ramp
    return MILP_MARGIN_TOLERANCE + HIGHS_INTEGRALITY_TOL * float(slopes.sum())


def _milp_margin(model, x, y, i, radius):
    net = model.network()
    dense = ReLUNetwork(net.dense_weights(), net.biases)
    lo, hi = ball_box(x[i : i + 1], radius, (0.0, 1.0))
    lab = int(y[i] == 1) if model.output.binary else int(y[i])
    value, arg, optimal = milp_min_margin(dense, lo[0], hi[0], lab, model.output.binary)
    assert optimal
    return value, arg


@settings(max_examples=12)
@given(datasets_with_radius(n_points=st.integers(2, 4), dim=st.integers(1, 3), min_separation=0.25))
def test_structural_agrees_with_milp_on_valid_constructions(case):
    d, delta = case
    x, y = d.points, d.labels
    event("non-trivial: ≥ 2 labels" if len(np.unique(y)) >= 2 else "trivial: one label")
    model = build_construction(x, y, delta, "inf")
    res = certify(model, x, y, delta, "inf")
    assert res.certified_fraction == 1.0
    slack = _milp_underestimate(model)
    event("MILP cross-check informative" if slack < 0.5 else "MILP ill-conditioned (δ ≈ λ/2)")
    net = model.network()
    for i in range(len(x)):
        value, arg = _milp_margin(model, x, y, i, delta)
        # the true minimum margin is ≥ 1 (y_i F ≥ 1 on the ball); the MILP value is at most
        # the gap above it and at most `slack` below it (relaxation, see above)
        assert value >= 1 - slack
        # the structural bound is below the margin of a genuine ball point (the argmin)
        at_arg = _independent_margin(net, arg, int(y[i] == 1), True)
        assert res.margin_lower[i] <= at_arg + 1e-12


@settings(max_examples=15)
@given(
    datasets_with_radius(n_points=st.integers(2, 5), dim=st.integers(1, 3), min_separation=0.25),
    st.data(),
)
def test_flipped_label_weight(case, data):
    d, delta = case
    x, y = d.points, d.labels
    event("non-trivial: ≥ 2 labels" if len(np.unique(y)) >= 2 else "trivial: one label")
    model = build_construction(x, y, delta, "inf")
    i = data.draw(st.integers(0, len(x) - 1))
    labels = model.output.labels.copy()
    labels[i] = 1 - labels[i]
    broken = model.replace(output=OutputBlock(labels, 2, True))
    res = certify(broken, x, y, delta, "inf", use_milp=True)
    _assert_counterexamples_verified(broken, res, x, y, delta, "inf", True)
    for j in range(len(x)):
        value, arg = _milp_margin(broken, x, y, j, delta)
        slack = _milp_underestimate(broken)
        if res.status[j] is Status.CERTIFIED:
            # soundness: the MILP's argmin is a genuine ball point, so it must be robust
            assert _independent_margin(broken.network(), arg, int(y[j] == 1), True) > 0
            assert value > -slack  # and the (relaxed) MILP agrees up to its relaxation
        else:
            # with the MILP the answer is decided: refuted (verified above) when the
            # exact minimum is ≤ 0; at most UNKNOWN inside the solver's tolerance band
            assert value <= MILP_MARGIN_TOLERANCE
            assert res.status[j] is Status.REFUTED or abs(value) <= slack
        event(f"point {res.status[j].value}")


def test_flipped_label_isolated_point_is_refuted_structurally():
    x = np.array([[0.1, 0.1], [0.9, 0.9], [0.1, 0.9]])
    y = np.array([1, -1, 1])
    model = build_construction(x, y, 0.2, "inf")
    labels = model.output.labels.copy()
    labels[0] = 0
    broken = model.replace(output=OutputBlock(labels, 2, True))
    res = certify(broken, x, y, 0.2, "inf")  # no MILP: structural + candidates only
    assert res.status[0] is Status.REFUTED and res.method[0] == "structural"
    assert res.status[1] is Status.CERTIFIED
    _assert_counterexamples_verified(broken, res, x, y, 0.2, "inf", True)


def test_delta_just_above_half_separation_is_refuted():
    x = np.array([[0.2, 0.5], [0.6, 0.5], [0.9, 0.1]])
    y = np.array([1, -1, 1])
    model = build_construction(x, y, 0.1, "inf")
    lam = model.separation.distance
    bad = lam / 2 * (1 + 1e-3)
    n = model.n_centres
    broken = model.replace(bump=BumpBlock(np.full(n, bad), np.full(n, lam - bad)))
    res = certify(broken, x, y, bad, "inf")
    i, j = model.separation.i, model.separation.j
    assert Status.REFUTED in (res.status[i], res.status[j])
    _assert_counterexamples_verified(broken, res, x, y, bad, "inf", True)
    # and a valid model certified at a radius above λ/2 is refuted as well
    res2 = certify(model, x, y, bad, "inf")
    assert Status.REFUTED in (res2.status[i], res2.status[j])


def test_bump_with_beta_below_alpha_is_refuted_and_breaks_b():
    x = np.array([[0.2, 0.2], [0.8, 0.8]])
    y = np.array([1, -1])
    model = build_construction(x, y, 0.15, "inf")
    a = model.bump.alpha
    broken = model.replace(bump=BumpBlock(a, a / 2))
    res = certify(broken, x, y, 0.15, "inf")
    assert all(s is Status.REFUTED for s in res.status)
    _assert_counterexamples_verified(broken, res, x, y, 0.15, "inf", True)
    outside = certify_outside_balls(broken, n_samples=16)
    assert not outside.holds and not outside.blocks_ok
    assert outside.counterexample is not None
    # the witness really differs from f_clean (= 0 here) and lies outside every β-ball
    cx = outside.counterexample
    assert abs(broken.network().forward(cx[None, :])[0, 0]) > 1e-9
    assert np.all(np.abs(cx - broken.distance.centres).max(axis=1) >= broken.bump.beta)


@settings(max_examples=25)
@given(
    st.integers(1, 3).flatmap(lambda d: st.tuples(st.just(d), clean_relu_networks(d, 1))), st.data()
)
def test_generic_network_ibp_sound_and_milp_exact(dn, data):
    dim, net = dn
    rng = np.random.default_rng(0)
    x = rng.random((3, dim))
    y = np.array(data.draw(st.lists(st.sampled_from([-1, 1]), min_size=3, max_size=3)))
    radius = data.draw(st.floats(1e-3, 0.3))  # > 0: radius 0 only re-checks the centre
    res = certify_network(net, x, y, radius, "inf")
    _assert_counterexamples_verified(net, res, x, y, radius, "inf", True)
    for status in res.status:
        event(f"{status.value}")
    lo, hi = ball_box(x, radius, (0.0, 1.0))
    ibp = ibp_margin_lower(net, lo, hi, (y == 1).astype(int), True)
    for i in range(3):
        value, arg, optimal = milp_min_margin(net, lo[i], hi[i], int(y[i] == 1), True)
        assert optimal
        samples = rng.uniform(lo[i], hi[i], size=(200, dim))
        sampled = margins(net.forward(samples), np.full(200, int(y[i] == 1)), True)
        # a true lower bound up to HiGHS' tolerances (seen: 6.4e-7 above a sampled margin);
        # certify_network subtracts MILP_MARGIN_TOLERANCE before it certifies
        assert value <= sampled.min() + MILP_MARGIN_TOLERANCE
        # IBP is sound (never above the exact minimum, which the MILP value approximates
        # within MILP_MARGIN_TOLERANCE)
        assert ibp[i] <= value + MILP_MARGIN_TOLERANCE
        at_arg = margins(net.forward(arg[None, :]), np.array([int(y[i] == 1)]), True)[0]
        assert at_arg == pytest.approx(value, abs=MILP_MARGIN_TOLERANCE)  # attained
        # decided outside the MILP's tolerance band (inside it UNKNOWN is the contract)
        if abs(value) > MILP_MARGIN_TOLERANCE:
            assert (res.status[i] is Status.CERTIFIED) == (value > 0)


def test_multiclass_generic_milp():
    rng = np.random.default_rng(4)
    net = ReLUNetwork(
        [rng.normal(size=(5, 2)), rng.normal(size=(3, 5))], [rng.normal(size=5), rng.normal(size=3)]
    )
    x = rng.random((4, 2))
    y = net.forward(x).argmax(axis=1)
    res = certify_network(net, x, y, 0.05)
    assert all(s is not Status.UNKNOWN for s in res.status)
    _assert_counterexamples_verified(net, res, x, y, 0.05, "inf", False)
    grid = np.stack(
        np.meshgrid(np.linspace(-0.05, 0.05, 21), np.linspace(-0.05, 0.05, 21)), -1
    ).reshape(-1, 2)
    for i in range(4):
        pts = np.clip(x[i] + grid, 0, 1)
        robust = np.all(net.forward(pts).argmax(axis=1) == y[i])
        if res.status[i] is Status.CERTIFIED:
            assert robust


def test_small_margin_mask_linear_is_exact_l2():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(1, 3))
    net = ReLUNetwork([w], [np.array([0.1])])
    x = rng.random((50, 3))
    y = np.where(rng.random(50) < 0.5, 1, 0)
    mask = small_margin_mask(net, x, y, 0.1, "2", True, (0.0, 1.0))
    dist_to_boundary = np.abs(x @ w[0] + 0.1) / np.linalg.norm(w[0])
    correct = np.sign(x @ w[0] + 0.1) == np.where(y == 1, 1, -1)
    expected_large = correct & (dist_to_boundary > 0.1)
    np.testing.assert_array_equal(~mask, expected_large)


def test_certify_bad_input():
    model = build_construction(np.array([[0.0], [1.0]]), np.array([1, -1]), 0.1)
    with pytest.raises(TypeError, match="net"):
        certify(object(), np.zeros((1, 1)), np.array([1]), 0.1)
    with pytest.raises(ValueError, match="radius"):
        certify(model, np.array([[0.0]]), np.array([1]), -0.1)
    with pytest.raises(ValueError, match="labels"):
        certify(model, np.array([[0.0]]), np.array([3]), 0.1)
    with pytest.raises(ValueError, match="dimension"):
        certify(model, np.zeros((1, 2)), np.array([1]), 0.1)
    with pytest.raises(ValueError, match="norm"):
        certify(model, np.array([[0.0]]), np.array([1]), 0.1, "7")


def test_flipped_weight_in_lowered_network_is_refuted_by_milp():
    # break the *lowered* network (not the blocks): the generic IBP + MILP path must refute
    x = np.array([[0.2, 0.3], [0.7, 0.8]])
    y = np.array([1, -1])
    model = build_construction(x, y, 0.1, "inf")
    net = model.network()
    weights = net.dense_weights()
    weights[-1][0, :2] *= -1  # output weights of point 0's bump: its label is flipped
    broken = ReLUNetwork(weights, net.biases)
    res = certify_network(broken, x, y, 0.1, "inf")
    assert res.status[0] is Status.REFUTED and res.status[1] is Status.CERTIFIED
    _assert_counterexamples_verified(broken, res, x, y, 0.1, "inf", True)
    ok = certify_network(ReLUNetwork(net.dense_weights(), net.biases), x, y, 0.1, "inf")
    assert ok.certified_fraction == 1.0


@settings(max_examples=20)
@given(
    datasets_with_radius(n_points=st.integers(2, 5), dim=st.integers(1, 3), min_separation=0.25),
    st.floats(1e-6, 0.2),
)
def test_radius_above_half_separation_always_refutes_closest_pair(case, excess):
    d, delta = case
    x, y = d.points, d.labels
    event("non-trivial: ≥ 2 labels" if len(np.unique(y)) >= 2 else "trivial: one label")
    assert d.separation.i >= 0  # the strategy draws two labels: a closest pair exists
    model = build_construction(x, y, delta, "inf")
    lam = model.separation.distance
    bad = lam / 2 * (1 + excess)
    n = model.n_centres
    broken = model.replace(bump=BumpBlock(np.full(n, bad), np.full(n, lam - bad)))
    for candidate in (broken, model):
        res = certify(candidate, x, y, bad, "inf")
        i, j = model.separation.i, model.separation.j
        # the midpoint of the closest pair lies in both balls: one of them must fail
        assert Status.REFUTED in (res.status[i], res.status[j])
        _assert_counterexamples_verified(candidate, res, x, y, bad, "inf", True)


@settings(max_examples=12)
@given(
    datasets_with_radius(n_points=st.integers(2, 4), dim=st.integers(1, 3), min_separation=0.25),
    st.floats(0.0, 0.99),
)
def test_beta_at_or_below_alpha_is_never_certified_wrongly(case, ratio):
    d, delta = case
    x, y = d.points, d.labels
    event("non-trivial: ≥ 2 labels" if len(np.unique(y)) >= 2 else "trivial: one label")
    model = build_construction(x, y, delta, "inf")
    a = model.bump.alpha
    broken = model.replace(bump=BumpBlock(a, a * ratio))
    res = certify(broken, x, y, delta, "inf", use_milp=True)
    _assert_counterexamples_verified(broken, res, x, y, delta, "inf", True)
    assert not certify_outside_balls(broken, n_samples=8).holds
    for i in range(len(x)):
        value, arg = _milp_margin(broken, x, y, i, delta)
        if res.status[i] is Status.CERTIFIED:
            assert _independent_margin(broken.network(), arg, int(y[i] == 1), True) > 0
        # an isolated point's own bump is 0 at distance α = δ, so F = 0 there
        assert value <= MILP_MARGIN_TOLERANCE or res.status[i] is Status.CERTIFIED
        event(f"point {res.status[i].value}")


@settings(max_examples=20)
@given(
    datasets_with_radius(n_points=st.integers(2, 6), dim=st.integers(1, 4), n_classes=3),
    st.floats(0.0, 0.45),
    st.data(),
)
def test_balls_inside_memorized_balls_are_certified(case, shift, data):
    # a query p with ‖p − x_i‖ ≤ δ/2, radius δ/2: B(p, δ/2) ⊂ B(x_i, δ), so it is certified
    d, delta = case
    x, y = d.points, d.labels
    event("non-trivial: ≥ 2 labels" if len(np.unique(y)) >= 2 else "trivial: one label")
    n_cls = max(int(y.max()) + 1, 2)
    model = build_construction(x, y, delta, n_classes=n_cls)
    direction = np.array(
        data.draw(st.lists(st.floats(-1, 1), min_size=x.shape[1], max_size=x.shape[1]))
    )
    q = np.clip(x + shift * delta * direction[None, :], 0, 1)
    q = np.clip(q, x - delta / 2, x + delta / 2)
    res = certify(model, q, y, delta / 2)
    assert res.certified_fraction == 1.0
    # and far outside every ball (radius larger than the separation) nothing is certified
    # wrongly: every certified point survives the MILP-free candidate check
    _assert_counterexamples_verified(model, res, q, y, delta / 2, "inf", False)


def test_certify_network_rejects_points_outside_domain():
    net = ReLUNetwork([np.ones((1, 2))], [[0.0]])
    with pytest.raises(ValueError, match="domain"):
        certify_network(net, np.array([[2.0, 0.0]]), np.array([1]), 0.1)


def test_pgd_from_torchattacks_agrees_with_certificates():
    # independent oracle: torchattacks' PGD on the torch conversion of the lowered network
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    from robmem.empirics.network_torch import to_torch

    x = np.array([[0.2, 0.3, 0.5], [0.6, 0.8, 0.4], [0.9, 0.1, 0.2], [0.3, 0.9, 0.9]])
    y = np.array([0, 1, 2, 1])
    delta = 0.15
    model = build_construction(x, y, delta, "inf")
    labels = model.output.labels.copy()
    labels[0] = 2  # break point 0
    broken = model.replace(output=OutputBlock(labels, 3, False))
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for candidate, expect_robust in ((model, [True] * 4), (broken, [False, True, True, True])):
        res = certify(candidate, x, y, delta, "inf")
        seq = to_torch(candidate.network()).eval()
        attack = torchattacks.PGD(seq, eps=delta, alpha=delta / 4, steps=40, random_start=True)
        adv = attack(xt, yt)
        assert float((adv - xt).abs().max()) <= delta + 1e-6
        with torch.no_grad():
            fooled = (seq(adv).argmax(1) != yt).numpy()
        for i in range(4):
            assert (res.status[i] is Status.CERTIFIED) == expect_robust[i]
            if res.status[i] is Status.CERTIFIED:
                assert not fooled[i]  # PGD can never beat a certificate
            else:
                assert fooled[i] and res.status[i] is Status.REFUTED


@pytest.mark.parametrize("scale", [1.0, 2.0**40], ids=["plain", "steep"])
@pytest.mark.parametrize("multiclass", [False, True], ids=["binary", "3-class"])
def test_linear_network_l2_balls_use_the_closed_form_margin(multiclass, scale):
    """A one-layer network's ℓ2 margin is closed-form (SPEC T3): f = K(x₁ + x₂ − ½) at
    (½, ½) with δ = 0.3 has ball margin K(½ − 0.3√2) ≈ 0.076K > 0, while the box corner
    (0.2, 0.2) has −0.1K, so IBP and the box MILP cannot certify it. certify_network must
    certify it, with margin_lower at most the exact value (checked in Fractions:
    ((K/2 − m)/(0.3K))² ≥ 2), not far below it, and at most the closed form less the
    forward error bound (K = 2^40 makes that bound ~1e-4, so it matters). The 3-class twin
    adds a class whose logit difference is the same f, and one that is never close."""
    from fractions import Fraction

    from robmem.theory.intervals import clean_margin_lower, margin_error_bound

    if multiclass:
        w = np.array([[1.0, 1.0], [0.0, 0.0], [-1.0, -1.0]]) * scale
        net = ReLUNetwork([w], [np.array([-0.5, 0.0, 0.0]) * scale])
        labels = np.array([0])
    else:
        net = ReLUNetwork([np.array([[1.0, 1.0]]) * scale], [np.array([-0.5]) * scale])
        labels = np.array([1])
    enc = labels if multiclass else (labels == 1).astype(int)
    x = np.array([[0.5, 0.5]])
    box = certify_network(net, x, labels, 0.3, "inf")
    assert box.status[0] is Status.REFUTED  # the ℓ∞ ball does cross the boundary
    res = certify_network(net, x, labels, 0.3, "2")
    assert res.status[0] is Status.CERTIFIED and res.method[0] == "linear"
    m = Fraction(float(res.margin_lower[0]))
    k = Fraction(scale)
    assert ((k / 2 - m) / (Fraction(0.3) * k)) ** 2 >= 2
    assert float(m) > scale * (0.5 - 0.3 * np.sqrt(2) - 1e-12)
    err = margin_error_bound(
        net, np.array([[0.2, 0.2]]), np.array([[0.8, 0.8]]), enc, not multiclass
    )
    closed = clean_margin_lower(net, x, enc, 0.3, "2", not multiclass, (0.0, 1.0))
    assert scale == 1.0 or err[0] > 1e-5
    assert res.margin_lower[0] <= closed[0] - err[0]


def test_only_one_layer_l2_balls_take_the_linear_closed_form():
    """The documented method: "linear" only for a one-layer network on ℓ2 balls; a deeper
    network on ℓ2 balls and a linear one on ℓ∞ balls keep IBP ("ibp")."""
    x, labels = np.array([[0.5, 0.5]]), np.array([1])
    linear = ReLUNetwork([np.array([[1.0, 1.0]])], [np.array([-0.5])])
    deep = ReLUNetwork([np.eye(2), np.array([[1.0, 1.0]])], [np.zeros(2), np.array([-0.5])])
    assert certify_network(linear, x, labels, 0.1, "inf").method == ["ibp"]
    assert certify_network(deep, x, labels, 0.1, "2").method == ["ibp"]
    assert certify_network(linear, x, labels, 0.1, "2").method == ["linear"]
