"""Fuzzing the theory API (issue 7 §3): constructions, certifier and bounds.

Properties, each checked against an oracle that shares no code with what it checks:

- **Soundness of the certifier**: a ball is never "certified" when a counterexample exists.
  The oracle is an independent big-M MILP written here (scipy's HiGHS through
  ``scipy.optimize.milp``, with its own interval bounds), which computes the exact minimum
  margin over each ball on small nets. Checked for random ReLU nets (IBP + the certifier's
  own MILP), for the T1 construction, and for deliberately broken constructions (a flipped
  centre label; widened bumps), where counterexamples do exist.
- **Completeness where promised**: on nets small enough for the certifier's MILP, a ball whose
  exact minimum margin is clearly positive is certified, and one clearly negative is refuted
  with a genuine counterexample (inside the ball, wrong sign under ``forward``).
- **T1 (a)**: every construction built from a separated data set at an admissible radius is
  certified on every ball, and the lowered network agrees with the block definition.
- **Bounds never crash**: any argument either gives a finite-or-infinite non-negative
  :class:`BoundResult` or raises ``ValueError``/``TypeError`` naming an argument.

The default run uses a handful of examples per property; ``pytest -m fuzz`` runs the same
properties with a large budget (:data:`FUZZ_EXAMPLES`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy_lowered
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from robmem.theory.certificates import Status, certify_network
from robmem.theory.certify import certify
from robmem.theory.construction import OutputBlock, build_construction
from robmem.theory.milp import MILP_MARGIN_TOLERANCE
from robmem.theory.network import ReLUNetwork
from robmem.theory.strategies import clean_relu_networks, datasets_with_radius

#: Examples per property in the default (CI) run, and under the ``fuzz`` marker.
SMOKE_EXAMPLES = 25
FUZZ_EXAMPLES = 1000
#: Margins within this of 0 are too close to call for a float MILP, so both answers are
#: fine there. It is the certifier's own contract, not a fitted number: certify_network
#: certifies only when its MILP value exceeds MILP_MARGIN_TOLERANCE, and the MILP value and
#: its minimiser are accurate to HiGHS' feasibility/integrality tolerances (1e-7/1e-6) times
#: the big-M constants (|l|, u ≤ ~10 for these nets), which that tolerance bounds. The same
#: bound applies to this file's oracle (same solver, same tolerances, mip_rel_gap = 0).
UNDECIDED_BAND = MILP_MARGIN_TOLERANCE
_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


# ----------------------------------------------------------------------- the oracle
def _dense(m) -> np.ndarray:
    return m.toarray() if hasattr(m, "toarray") else np.asarray(m, dtype=np.float64)


def oracle_min_margin(
    net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, sign: float
) -> tuple[float, float]:
    """Bracket ``min_{x ∈ [lo, hi]} sign · f(x)`` for a one-output ReLU net: (lower, achieved).

    Independent of :mod:`robmem.theory.certify`: its own interval pre-activation bounds, its own
    big-M formulation (a = relu(z) as a ≥ z, a ≥ 0, a ≤ u·s, a ≤ z − l·(1 − s), s ∈ {0, 1}).
    HiGHS' integrality/feasibility tolerances (~1e-6) times the big-M constants can make the
    MILP objective a little optimistic, so the oracle returns ``sign · f(x*)`` evaluated by
    ``forward`` at the MILP's minimiser x*: a margin that really occurs in the box (a genuine
    counterexample when ≤ 0), together with the MILP value: the exact minimum lies in
    ``[lower − tolerance, achieved]``.
    """
    value, x_star = _oracle_milp(net, lo, hi, sign)
    achieved = sign * float(net.forward(np.clip(x_star, lo, hi)[None, :])[0, 0])
    return value, achieved


def _oracle_milp(
    net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, sign: float
) -> tuple[float, np.ndarray]:
    """The MILP's objective value and minimiser x* (see :func:`oracle_min_margin`)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    ws = [_dense(w) for w in net.weights]
    bs = [np.asarray(b, dtype=np.float64) for b in net.biases]
    d = ws[0].shape[1]
    var_lo, var_hi, integ = list(lo), list(hi), [0] * d
    rows, row_lo, row_hi = [], [], []
    prev = list(range(d))  # variable indices of the previous layer's outputs
    box_lo, box_hi = np.asarray(lo, float), np.asarray(hi, float)

    def new_var(a: float, b: float, integer: int) -> int:
        var_lo.append(a)
        var_hi.append(b)
        integ.append(integer)
        return len(var_lo) - 1

    cons = []
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        wp, wn = np.maximum(w, 0), np.minimum(w, 0)
        zl = wp @ box_lo + wn @ box_hi + b
        zu = wp @ box_hi + wn @ box_lo + b
        layer = []
        for j in range(w.shape[0]):
            a = new_var(0.0, max(zu[j], 0.0), 0)
            layer.append(a)
            coef = {prev[k]: -w[j, k] for k in range(w.shape[1]) if w[j, k] != 0}
            if zu[j] <= 0:
                var_hi[a] = 0.0
            elif zl[j] >= 0:  # a = z
                cons.append(({a: 1.0, **coef}, b[j], b[j]))
            else:
                s = new_var(0.0, 1.0, 1)
                cons.append(({a: 1.0, **coef}, b[j], math.inf))  # a >= z
                cons.append(({a: 1.0, s: -zu[j]}, -math.inf, 0.0))  # a <= u s
                cons.append(({a: 1.0, **coef, s: -zl[j]}, -math.inf, b[j] - zl[j]))
        prev = layer
        box_lo, box_hi = np.maximum(zl, 0.0), np.maximum(zu, 0.0)
    n = len(var_lo)
    for coef, a, b in cons:
        row = np.zeros(n)
        for k, v in coef.items():
            row[k] += v
        rows.append(row)
        row_lo.append(a)
        row_hi.append(b)
    c = np.zeros(n)
    w_out, b_out = ws[-1], bs[-1]
    assert w_out.shape[0] == 1, "the oracle handles one-output nets"
    for k, idx in enumerate(prev):
        c[idx] += sign * w_out[0, k]
    constraints = [LinearConstraint(np.array(rows), row_lo, row_hi)] if rows else []
    res = milp(
        c,
        constraints=constraints,
        integrality=np.array(integ),
        bounds=Bounds(np.array(var_lo), np.array(var_hi)),
        options={"mip_rel_gap": 0.0, "time_limit": 60.0},
    )
    assert res.success, res.message
    return float(res.fun + sign * b_out[0]), np.asarray(res.x[:d])


def _boxes(x: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    return np.clip(x - radius, 0.0, 1.0), np.clip(x + radius, 0.0, 1.0)


def _check_against_oracle(net, x, y, radius, result, *, complete: bool) -> None:
    lo, hi = _boxes(x, radius)
    for i in range(x.shape[0]):
        lower, achieved = oracle_min_margin(net, lo[i], hi[i], float(y[i]))
        status = result.status[i]
        if status is Status.CERTIFIED:
            # `achieved` really occurs in the ball: a sound certificate can't exceed it.
            assert achieved > 0, ("certified but a counterexample exists", i, achieved)
            # margin_lower ≤ exact minimum ≤ achieved; 1e-12 absorbs the float64 rounding
            # of IBP's and forward()'s differently ordered sums of ≤ ~20 O(1) terms
            assert result.margin_lower[i] <= achieved + 1e-12, (i, achieved)
        if status is Status.REFUTED:
            cex = result.counterexamples[i]
            # counterexamples are clipped into the box: no slack needed
            assert np.all(cex >= lo[i]) and np.all(cex <= hi[i])
            # a refutation is a genuine input with margin ≤ 0 (exactly: it was found so)
            assert float(y[i]) * float(net.forward(cex[None, :])[0, 0]) <= 0
            assert lower <= UNDECIDED_BAND, ("refuted but the ball is robust", i, lower)
        if complete and lower > UNDECIDED_BAND:
            assert status is Status.CERTIFIED, (i, lower, status)
        if complete and achieved < -UNDECIDED_BAND:
            assert status is Status.REFUTED, (i, achieved, status)


# ----------------------------------------------------------------------- strategies
@st.composite
def nets_points_radius(draw):
    d = draw(st.integers(1, 3))
    net = draw(clean_relu_networks(d, 1, max_hidden_layers=2, max_width=4))
    n = draw(st.integers(1, 3))
    coords = st.floats(0.0, 1.0, allow_nan=False)
    x = np.array(draw(st.lists(coords, min_size=n * d, max_size=n * d))).reshape(n, d)
    y = np.array(draw(st.lists(st.sampled_from([-1, 1]), min_size=n, max_size=n)))
    # radius > 0: a zero radius only re-checks the centre, which forward() decides exactly
    radius = draw(st.floats(1e-3, 0.4, allow_nan=False))
    return net, x, y, radius


def _prop_certifier_random_nets(case) -> None:
    net, x, y, radius = case
    result = certify_network(net, x, y, radius, "inf", domain=(0.0, 1.0))
    _check_against_oracle(net, x, y, radius, result, complete=True)
    for status, method in zip(result.status, result.method, strict=True):
        event(f"{status.value} by {method}")


def _prop_construction(case) -> None:
    data, delta = case
    model = build_construction(data.points, data.labels, delta)
    result = certify(model, data.points, data.labels, delta)
    assert result.certified_fraction == 1.0, result.status  # T1 (a)
    event("δ within 1e-6 of λ/2" if data.separation.distance / 2 - delta < 1e-6 else "δ < λ/2")
    net = model.network()
    probe = np.random.default_rng(0).uniform(0, 1, size=(64, model.dim))
    np.testing.assert_allclose(net.forward(probe), model.forward_blocks(probe), atol=1e-9)
    _check_against_oracle(net, data.points, data.labels, delta, result, complete=False)


def _prop_broken_construction(case, breakage: str) -> None:
    data, delta = case
    assert len(np.unique(data.labels)) >= 2  # the strategy draws two labels
    model = build_construction(data.points, data.labels, delta)
    if breakage == "flip-label":
        labels = model.output.labels.copy()
        labels[0] = 1 - labels[0] if model.output.binary else (labels[0] + 1) % 2
        broken = model.replace(output=OutputBlock(labels, model.output.n_classes, True))
    else:  # widen every bump far past the separation: opposite-label balls interfere
        bump = model.bump
        broken = model.replace(bump=type(bump)(bump.alpha * 4.0, bump.beta * 4.0 + 1.0))
    result = certify(broken, data.points, data.labels, delta)
    net = broken.network()
    _check_against_oracle(net, data.points, data.labels, delta, result, complete=False)
    if breakage == "flip-label":
        # The flipped centre is wrong at its own point unless a same-label neighbour's bump
        # covers it (found by the fuzz run: three points 1e-3 apart); only then is a
        # certificate unsound. The margin at the centre comes from the numpy oracle.
        centre = int(broken.memorized[0])
        label = int(data.labels[centre])
        if net.weights[-1].shape[0] == 1:  # binary: labels ±1 or {0, 1} with 1 ↔ +1
            label = 1 if label == 1 else -1
        if numpy_lowered.margin(net, data.points[centre], label)[0] <= 0:
            assert result.status[centre] is not Status.CERTIFIED
    event(f"{breakage}: {result.n_certified} of {len(result.status)} certified")
    event(f"{breakage}: some ball refuted" if result.n_refuted else f"{breakage}: none refuted")


def _prop_bounds_never_crash(name: str, values: dict) -> None:
    from robmem.theory.bounds import REGISTRY

    spec = REGISTRY[name]
    try:
        res = spec(**values)
    except (ValueError, TypeError) as exc:
        assert any(p.name in str(exc) for p in spec.params) or "bound" in str(exc), str(exc)
        return
    assert res.value >= 0 and not math.isnan(res.value)
    assert isinstance(res.certified, bool) and res.source


def _bound_strategy():
    from robmem.theory.bounds import REGISTRY

    wild = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(-2.0, 2.0),
        st.floats(1e-12, 1e12),
        st.integers(-5, 10**6),
    )

    @st.composite
    def draw_case(draw):
        name = draw(st.sampled_from(sorted(REGISTRY)))
        spec = REGISTRY[name]
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        values = spec.sample_kwargs(rng)
        for p in spec.params:
            if draw(st.booleans()):
                values[p.name] = draw(wild if p.choices is None else st.sampled_from(p.choices))
        return name, values

    return draw_case()


CONSTRUCTION_CASES = datasets_with_radius(
    n_points=st.integers(2, 5), dim=st.integers(1, 3), min_separation=0.25
)


# ----------------------------------------------------------------------- default (smoke) run
@settings(max_examples=SMOKE_EXAMPLES, **_SETTINGS)
@given(nets_points_radius())
def test_certifier_sound_and_complete_on_random_nets(case):
    _prop_certifier_random_nets(case)


@settings(max_examples=SMOKE_EXAMPLES, **_SETTINGS)
@given(CONSTRUCTION_CASES)
def test_construction_certified_and_oracle_agrees(case):
    _prop_construction(case)


@pytest.mark.parametrize("breakage", ["flip-label", "widen"])
@settings(max_examples=SMOKE_EXAMPLES, **_SETTINGS)
@given(case=CONSTRUCTION_CASES)
def test_broken_construction_never_certified_when_counterexample(case, breakage):
    _prop_broken_construction(case, breakage)


@settings(max_examples=50, **_SETTINGS)
@given(_bound_strategy())
# Found by the fuzz run: 1.8e10 hidden layers made the BHLM calculator list 1.8e10 widths.
@example(
    (
        "vc_dimension_upper_bhlm",
        {"input_dim": 81, "width": 6, "hidden_layers": 18386421772.0, "pieces": 1},
    )
)
# Found by the fuzz run: float ** 1.5 overflowed (OverflowError) for a huge bartlett_sum.
@example(
    (
        "bartlett2017_spectral_bound",
        {"n": 59437.8, "n_params": 238.8, "spec_product": 0.0023, "margin": 0.0012,
         "bartlett_sum": 3.2e205, "C": 44.8},
    )
)  # fmt: skip
def test_bounds_never_crash(case):
    _prop_bounds_never_crash(*case)


def test_oracle_matches_brute_force_on_a_known_net():
    """The oracle itself against a dense grid (f(x) = |x − 0.5| − 0.2 on [0, 1])."""
    net = ReLUNetwork(
        [np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.array([-0.5, 0.5]), [-0.2]]
    )
    grid = np.linspace(0.0, 1.0, 100001)[:, None]
    values = net.forward(grid)[:, 0]
    for lo, hi in [(0.0, 1.0), (0.4, 0.45), (0.6, 0.9)]:
        mask = (grid[:, 0] >= lo) & (grid[:, 0] <= hi)
        for sign in (1.0, -1.0):
            brute = float((sign * values[mask]).min())
            lower, achieved = oracle_min_margin(net, np.array([lo]), np.array([hi]), sign)
            assert lower == pytest.approx(brute, abs=1e-4)
            assert achieved == pytest.approx(brute, abs=1e-4)


# ----------------------------------------------------------------------- fuzz (large budget)
@pytest.mark.fuzz
@settings(max_examples=FUZZ_EXAMPLES, **{**_SETTINGS, "derandomize": False})
@given(nets_points_radius())
def test_fuzz_certifier_random_nets(case):
    _prop_certifier_random_nets(case)


@pytest.mark.fuzz
@settings(max_examples=FUZZ_EXAMPLES, **{**_SETTINGS, "derandomize": False})
@given(CONSTRUCTION_CASES)
def test_fuzz_construction(case):
    _prop_construction(case)


@pytest.mark.fuzz
@pytest.mark.parametrize("breakage", ["flip-label", "widen"])
@settings(max_examples=FUZZ_EXAMPLES, **{**_SETTINGS, "derandomize": False})
@given(case=CONSTRUCTION_CASES)
def test_fuzz_broken_construction(case, breakage):
    _prop_broken_construction(case, breakage)


@pytest.mark.fuzz
@settings(max_examples=10 * FUZZ_EXAMPLES, **{**_SETTINGS, "derandomize": False})
@given(_bound_strategy())
def test_fuzz_bounds_never_crash(case):
    _prop_bounds_never_crash(*case)
