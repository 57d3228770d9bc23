"""SPEC T1 construction: certified on every ball, f̂ = f_clean outside, bad input, MNIST."""

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from robmem.empirics.idx import default_mnist_test_dir, load_mnist_test_idx
from robmem.theory.certificates import Status
from robmem.theory.certify import certify, certify_outside_balls
from robmem.theory.construction import build_construction
from robmem.theory.intervals import ball_box, margin_error_bound, margins
from robmem.theory.separation import opposite_label_separation
from robmem.theory.strategies import clean_relu_networks, datasets_with_radius


def _classify_draw(x, y, delta, separation) -> None:
    """Hypothesis events: is the draw non-trivial (two labels, δ near or far from λ/2)?"""
    event("non-trivial: ≥ 2 labels" if len(np.unique(y)) >= 2 else "trivial: one label")
    near = np.isfinite(separation) and separation / 2 - delta < 1e-6 * max(1.0, separation)
    event("δ within 1e-6 of λ/2" if near else "δ below λ/2")


def _float_slack(model) -> float:
    """How far float64 may move f̂ from its exact value (T1 (a): y·f̂ ≥ 1 exactly).

    Each bump computes (β − r) − (α − r) with two roundings of 2^-53·max(1, β) each (r ≤ 1
    in [0, 1]^d) and the difference is scaled by 1/(β − α), so a bump is off by at most
    4·2^-53·max(1, β)/(β − α) (robmem.theory.construction.FLOAT_RAMP_FLOOR); every centre's bump
    may be off at once, and the O(1) output sum adds a few ulps (1e-12 covers them).
    """
    ramp = model.bump.beta - model.bump.alpha
    per_bump = 4 * 2.0**-53 * np.maximum(1.0, np.abs(model.bump.beta)) / ramp
    return float(per_bump.sum()) + 1e-12


def _certified_slack(model, x, radius) -> float:
    """How far below 1 the certificate's margin_lower may be: :func:`_float_slack` plus the
    certifier's rigorous allowance for the float64 forward pass (``margin_error_bound``,
    largest over the hull of the balls, whose box contains each ball's box) and 1e-12 for
    the rounding of the structural sum. The allowance must leave the certificate meaningful:
    at most 1e-3 of T1's margin 1 (it is ~2e-6 with the steepest ramp the construction
    allows, 2^30, and ~1e-8 on the MNIST subset)."""
    labels = np.arange(model.output.n_outputs) if not model.output.binary else np.array([0, 1])
    lo, hi = ball_box(x, radius, model.domain)
    err = margin_error_bound(
        model.network(), lo.min(axis=0), hi.max(axis=0), labels, model.output.binary
    )
    assert err.max() <= 1e-3, err
    return _float_slack(model) + float(err.max()) + 1e-12


def _ball_samples(rng, x, radius, norm, count):
    """Random points, ball corners and axis extremes of B_p(x, radius) ∩ [0,1]^d."""
    d = x.size
    if norm == "inf":
        pts = [x + radius * rng.choice([-1.0, 1.0], size=(count, d))]
        pts.append(x + rng.uniform(-radius, radius, size=(count, d)))
    else:
        g = rng.normal(size=(count, d))
        pts = [x + radius * g / np.linalg.norm(g, axis=1, keepdims=True)]
    eye = np.eye(d) * radius
    pts += [x + eye, x - eye, x[None, :]]
    return np.clip(np.vstack(pts), 0.0, 1.0)


def _monte_carlo_min_margin(model, x, y, radius, norm, seed=0):
    rng = np.random.default_rng(seed)
    net = model.network()
    worst = np.inf
    labels = (y == 1).astype(int) if model.output.binary else y
    for i in range(x.shape[0]):
        pts = _ball_samples(rng, x[i], radius, norm, 40)
        m = margins(net.forward(pts), np.full(len(pts), labels[i]), model.output.binary)
        worst = min(worst, float(m.min()))
    return worst


@settings(max_examples=50)
@given(
    datasets_with_radius(n_points=st.integers(2, 8), dim=st.integers(1, 6), n_classes=2),
    st.booleans(),
    st.data(),
)
def test_linf_binary_certified_everywhere(case, with_clean, data):
    d, delta = case
    x, y = d.points, d.labels
    _classify_draw(x, y, delta, d.separation.distance)
    clean = data.draw(clean_relu_networks(x.shape[1], 1)) if with_clean else None
    model = build_construction(x, y, delta, "inf", clean=clean)
    res = certify(model, x, y, delta, "inf")
    assert all(s is Status.CERTIFIED for s in res.status)
    slack = _float_slack(model)
    assert res.worst_margin_lower >= 1 - _certified_slack(model, x, delta)
    # independent oracle: forward() on samples of every ball
    assert _monte_carlo_min_margin(model, x, y, delta, "inf") >= 1 - slack
    # the lowering equals the block definition
    probe = np.random.default_rng(1).random((30, x.shape[1]))
    np.testing.assert_allclose(
        model.network().forward(probe), model.forward_blocks(probe), rtol=0, atol=slack
    )
    outside = certify_outside_balls(model, n_samples=32, tolerance=_float_slack(model))
    assert outside.holds, outside


@settings(max_examples=30)
@given(
    datasets_with_radius(n_points=st.integers(2, 8), dim=st.integers(1, 5), n_classes=4),
    st.booleans(),
    st.data(),
)
def test_linf_multiclass_certified(case, with_clean, data):
    d, delta = case
    x, y = d.points, d.labels
    _classify_draw(x, y, delta, d.separation.distance)
    n_cls = int(y.max()) + 1
    if n_cls < 2:
        n_cls = 2
    # up to 4 hidden layers: a clean net deeper than the bump layer is lowered differently
    # (its last layer enters the gate directly, with its bias)
    clean = (
        data.draw(clean_relu_networks(x.shape[1], n_cls, max_hidden_layers=4))
        if with_clean
        else None
    )
    model = build_construction(x, y, delta, "inf", clean=clean, n_classes=n_cls)
    assert model.output.n_outputs == n_cls
    res = certify(model, x, y, delta, "inf")
    assert res.certified_fraction == 1.0
    assert _monte_carlo_min_margin(model, x, y, delta, "inf") >= 1 - _float_slack(model)
    assert certify_outside_balls(model, n_samples=16, tolerance=_float_slack(model)).holds
    # the multi-class lowering equals the block definition (gate, clean biases, padding)
    probe = np.vstack([np.random.default_rng(1).random((30, x.shape[1])), x])
    np.testing.assert_allclose(
        model.network().forward(probe), model.forward_blocks(probe), rtol=0,
        atol=_float_slack(model),
    )  # fmt: skip


@settings(max_examples=20)
@given(datasets_with_radius(n_points=st.integers(2, 6), dim=st.integers(1, 4), min_separation=0.3))
def test_l2_inclusion_and_sawtooth(case):
    d, delta = case
    x, y = d.points, d.labels
    _classify_draw(x, y, delta, d.separation.distance)
    inc = build_construction(x, y, delta, "2", l2_method="inclusion")
    assert certify(inc, x, y, delta, "2").certified_fraction == 1.0
    sep2 = opposite_label_separation(x, y, "2").distance
    delta2 = min(delta, 0.45 * sep2) if np.isfinite(sep2) else delta
    saw = build_construction(x, y, delta2, "2", l2_method="sawtooth")
    assert saw.distance.kind == "l2-sawtooth"
    res = certify(saw, x, y, delta2, "2")
    assert res.certified_fraction == 1.0
    assert _monte_carlo_min_margin(saw, x, y, delta2, "2") > 0
    assert certify_outside_balls(saw, n_samples=16).holds


def test_small_margin_subset_linear_clean():
    rng = np.random.default_rng(3)
    from robmem.theory.network import ReLUNetwork
    from robmem.theory.separation import synthetic_separated_points

    x, y = synthetic_separated_points(120, 4, 0.15, 2, seed=5)
    w = rng.normal(size=(1, 4))
    clean = ReLUNetwork([w], [np.array([-(x @ w[0]).mean()])])
    model = build_construction(x, y, 0.05, "inf", clean=clean, subset="small-margin")
    assert 0 < model.n_centres < len(x)
    res = certify(model, x, y, 0.05, "inf")
    assert res.certified_fraction == 1.0
    # non-memorized points are exactly those the linear f_clean classifies robustly
    lo, hi = np.clip(x - 0.05, 0, 1), np.clip(x + 0.05, 0, 1)
    worst = np.where(w[0] * y[:, None] > 0, lo, hi) @ w[0] + clean.biases[0][0]
    robust = y * worst > 0
    assert set(np.flatnonzero(~robust)) == set(model.memorized.tolist())
    assert _monte_carlo_min_margin(model, x, y, 0.05, "inf") > 0


@pytest.mark.parametrize(
    ("points", "labels", "delta", "kwargs", "match"),
    [
        (
            np.array([[0.1, 0.2], [0.1, 0.2]]),
            np.array([1, -1]),
            0.1,
            {},
            r"points 0 and 1 .* distance 0",
        ),
        (
            np.array([[0.0, 0.0], [0.5, 0.0]]),
            np.array([1, -1]),
            0.25,
            {},
            r"delta: must be < .*0\.25",
        ),
        (np.array([[0.0, np.nan]]), np.array([1]), 0.1, {}, "finite"),
        (np.zeros((2, 2)), np.array([1]), 0.1, {}, "labels"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), 0.1, {}, "N = 0"),
        (np.array([[0.0], [1.0]]), np.array([1, -1]), 0.1, {"norm": "3"}, "norm"),
        (np.array([[0.0], [1.0]]), np.array([1, -1]), 0.0, {}, "delta"),
        (np.array([[0.0], [1.0]]), np.array([1, -1]), np.inf, {}, "delta"),
        (np.array([[0.0], [1.0]]), np.array([1, -1]), 0.1, {"subset": "small-margin"}, "clean"),
        (np.array([[0.0], [1.0]]), np.array([1, -1]), 0.1, {"subset": "some"}, "subset"),
        (np.array([[0.0], [2.0]]), np.array([1, -1]), 0.1, {}, "domain"),
        (
            np.array([[0.0], [1.0]]),
            np.array([1, -1]),
            0.1,
            {"l2_method": "x", "norm": "2"},
            "l2_method",
        ),
    ],
)
def test_bad_input(points, labels, delta, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_construction(points, labels, delta, **kwargs)


def test_sawtooth_with_too_few_teeth_is_refused():
    x = np.array([[0.0] * 8, [0.3] * 8])
    with pytest.raises(ValueError, match="teeth"):
        build_construction(x, np.array([1, -1]), 0.3, "2", l2_method="sawtooth", teeth=1)


# ---------------------------------------------------------------- real MNIST (SPEC T1 "done when")

MNIST_SUBSET = 300


@pytest.fixture(scope="module")
def mnist():
    if default_mnist_test_dir() is None:
        pytest.skip("MNIST test idx files not found (../shared/data/mnist-test-10k)")
    images, labels = load_mnist_test_idx()
    return images.reshape(len(images), -1), labels


@pytest.mark.parametrize("delta", [0.1, 0.3])
def test_mnist_subset_certified(mnist, delta):
    x, y = mnist[0][:MNIST_SUBSET], mnist[1][:MNIST_SUBSET]
    model = build_construction(x, y, delta, "inf")
    res = certify(model, x, y, delta, "inf")
    slack = _float_slack(model)
    assert res.certified_fraction == 1.0
    assert res.worst_margin_lower >= 1 - _certified_slack(model, x, delta)
    # spot check the lowered network at a few ball corners
    pts = np.clip(x[:4] + delta * np.sign(np.random.default_rng(0).normal(size=(4, 784))), 0, 1)
    m = margins(model.network().forward(pts), y[:4], False)
    assert m.min() >= 1 - slack


@pytest.mark.slow
def test_mnist_full_separation_and_certificate(mnist):
    x, y = mnist
    sep = opposite_label_separation(x, y, "inf")
    # measured: λ∞ = 224/255 ≈ 0.878 (pair 471, 1401), so δ = 0.3 < λ/2 is admissible
    assert sep.distance == pytest.approx(224 / 255)
    for delta in (0.1, 0.3):
        model = build_construction(x, y, delta, "inf", separation=sep)
        res = certify(model, x, y, delta, "inf")
        assert res.certified_fraction == 1.0


def test_empty_small_margin_set_gives_f_clean():
    from robmem.theory.network import ReLUNetwork
    from robmem.theory.separation import synthetic_separated_points

    x, _ = synthetic_separated_points(30, 3, 0.15, 2, seed=1)
    y = np.where(x[:, 0] > 0.5, 1, -1)
    assert np.abs(x[:, 0] - 0.5).min() > 0.05
    clean = ReLUNetwork([np.array([[100.0, 0.0, 0.0]])], [np.array([-50.0])])
    model = build_construction(x, y, 0.01, clean=clean, subset="small-margin")
    assert model.n_centres == 0
    np.testing.assert_array_equal(model.network().forward(x), clean.forward(x))
    assert certify(model, x, y, 0.01).certified_fraction == 1.0
    # at a radius that crosses the boundary the same net is refuted, with verified witnesses
    res = certify(model, x, y, 0.2)
    assert res.n_refuted > 0
    for i, cx in res.counterexamples.items():
        assert y[i] * clean.forward(cx[None, :])[0, 0] <= 0


@settings(max_examples=15)
@given(
    datasets_with_radius(n_points=st.integers(2, 8), dim=st.integers(1, 4), n_classes=3),
    st.data(),
)
def test_small_margin_multiclass_deep_clean(case, data):
    d, delta = case
    x, y = d.points, d.labels
    _classify_draw(x, y, delta, d.separation.distance)
    clean = data.draw(clean_relu_networks(x.shape[1], 3, max_hidden_layers=3))
    model = build_construction(x, y, delta, clean=clean, subset="small-margin", n_classes=3)
    res = certify(model, x, y, delta)
    assert res.certified_fraction == 1.0
    assert _monte_carlo_min_margin(model, x, y, delta, "inf") > 0
    assert certify_outside_balls(model, n_samples=16, tolerance=_float_slack(model)).holds


def test_lowered_construction_converts_to_torch():
    torch = pytest.importorskip("torch")
    from robmem.empirics.network_torch import to_torch

    x = np.array([[0.1, 0.2, 0.3], [0.8, 0.7, 0.9], [0.4, 0.9, 0.1]])
    y = np.array([0, 1, 2])
    model = build_construction(x, y, 0.1, "inf")
    seq = to_torch(model.network())
    probe = np.random.default_rng(0).random((20, 3))
    with torch.no_grad():
        got = seq(torch.as_tensor(probe)).numpy()
    np.testing.assert_allclose(got, model.network().forward(probe), atol=1e-12)


@pytest.mark.fuzz
@settings(max_examples=400)
@given(
    datasets_with_radius(n_points=st.integers(2, 12), dim=st.integers(1, 8), n_classes=3),
    st.booleans(),
    st.sampled_from(["all", "small-margin"]),
    st.data(),
)
def test_fuzz_construction_certified_and_sound(case, with_clean, subset, data):
    d, delta = case
    x, y = d.points, d.labels
    _classify_draw(x, y, delta, d.separation.distance)
    n_cls = max(int(y.max()) + 1, 2)
    clean = data.draw(clean_relu_networks(x.shape[1], n_cls, max_hidden_layers=3))
    model = build_construction(
        x,
        y,
        delta,
        clean=clean if with_clean or subset != "all" else None,
        subset=subset,
        n_classes=n_cls,
    )
    res = certify(model, x, y, delta)
    assert res.certified_fraction == 1.0
    assert _monte_carlo_min_margin(model, x, y, delta, "inf") > 0
    assert certify_outside_balls(model, n_samples=16, tolerance=_float_slack(model)).holds
