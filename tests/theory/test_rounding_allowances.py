"""The float64 rounding allowances of :mod:`robmem.theory.intervals` equal their documented
formulas.

These allowances are a few ulps wide, so removing or shrinking one rarely changes an end-to-end
result; here each is compared with an exact-rational (:class:`fractions.Fraction`) evaluation
of the formula its docstring states, written in this file and sharing no code with
:mod:`robmem.theory.intervals`:

* ``_propagate`` (per layer, k stored weights in the row, u = 2^-53, γ_k = k·u/(1 − k·u),
  m = max(|l|, |u|) of the computed input bounds):
  ε' = (|W| ε + γ_{k+2}(|W| m + |b|) + underflow) · (1 + 8(k_max + 8)·u),
  e' = (|W| e + γ_{k+1}(|W| a + |b|) + underflow) · (1 + 8(k_max + 8)·u), a = m + ε + e,
  underflow at least k·2^-1074 per row; a unit with u + ε < 0 passes ε = 0, one with
  u + ε + e < 0 passes e = 0 too.
* ``ibp_margin_lower``: subtracts γ_{n+5}(|v|·m + |b_y| + |b_c|).
* ``clean_margin_lower`` (linear, ℓ2): subtracts γ_{2d+10}(|w|·|x| + |b| + δ‖w‖).
* ``margin_error_bound`` (multi-class): at least the exact e_y + max_{c≠y} e_c.

Each layer of ``_propagate`` is checked on its own: the inputs of layer j (bounds, ε, e) are
the float64 values that ``_propagate`` of the network truncated after layer j − 1 returns,
with the documented zeroing applied here; so the only difference between production and the
exact formula is the float64 evaluation of one layer's formula, a relative error below
γ_{k+8} ≤ 2(k_max + 8)·u (non-negative terms, at most k + 8 roundings in a chain), a quarter
of the documented inflation. The test data put exact zeros where a plain float64 evaluation
would hide the allowance (margins that are exactly 0, so the subtracted slack is the result).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from robmem.theory.intervals import (
    _propagate,
    clean_margin_lower,
    forward_error_bound,
    gamma,
    ibp_margin_lower,
    interval_bounds,
    margin_error_bound,
)
from robmem.theory.network import ReLUNetwork

U = Fraction(1, 2**53)
SUBNORMAL = Fraction(1, 2**1074)


def gamma_exact(k: int) -> Fraction:
    """Higham's γ_k = k·u/(1 − k·u), exactly."""
    return k * U / (1 - k * U)


def _dense(w) -> np.ndarray:
    return w.toarray() if hasattr(w, "toarray") else np.asarray(w)


def _fr(values) -> list[Fraction]:
    return [Fraction(float(v)) for v in np.ravel(values)]


# ----------------------------------------------------------------------- _propagate
def _layer_inputs(net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, j: int):
    """Bounds, ε and e entering layer j as production computes them (one box), with the
    documented zeroing: u + ε < 0 ⇒ ε = 0; u + ε + e < 0 ⇒ e = 0 as well."""
    if j == 0:
        zero = [Fraction(0)] * lo.shape[1]
        return _fr(lo), _fr(hi), zero, zero
    trunk = ReLUNetwork(net.weights[:j], net.biases[:j])
    out_lo, out_hi, eps, _, err = _propagate(trunk, lo, hi, forward_error=True)
    l, u, ep, er = _fr(out_lo), _fr(out_hi), _fr(eps), _fr(err)
    ep_in = [Fraction(0) if ui + ei < 0 else ei for ui, ei in zip(u, ep, strict=True)]
    er_in = [Fraction(0) if ui + ei + ri < 0 else ri for ui, ei, ri in zip(u, ep, er, strict=True)]
    return [max(x, Fraction(0)) for x in l], [max(x, Fraction(0)) for x in u], ep_in, er_in


def _documented_layer(w, b, l, u, eps, err):
    """ε' and e' of one layer by the documented recursion, exactly, before the inflation
    (underflow term k·2^-1074), and the inflation factor 1 + 8(k_max + 8)·u."""
    w = _dense(w)
    mag = [max(abs(a), abs(c)) for a, c in zip(l, u, strict=True)]
    ks = [int(np.count_nonzero(row)) for row in w]
    new_eps, new_err = [], []
    for row, bias, k in zip(w, b, ks, strict=True):
        wa = [abs(Fraction(float(x))) for x in row]
        bb = abs(Fraction(float(bias)))
        g2 = gamma_exact(k + 2) if k else Fraction(0)
        g1 = gamma_exact(k + 1) if k else Fraction(0)
        spread = sum(a * m for a, m in zip(wa, mag, strict=True)) + bb
        act = sum(a * (m + e + r) for a, m, e, r in zip(wa, mag, eps, err, strict=True)) + bb
        new_eps.append(
            sum(a * e for a, e in zip(wa, eps, strict=True)) + g2 * spread + k * SUBNORMAL
        )
        new_err.append(sum(a * r for a, r in zip(wa, err, strict=True)) + g1 * act + k * SUBNORMAL)
    return new_eps, new_err, 1 + 8 * (max(ks, default=0) + 8) * U, max(ks, default=0)


def _check_layers(net, lo, hi, tight: bool) -> int:
    """Every layer's production ε and e against the documented formula: never below it
    (soundness); with ``tight`` also within 2(k_max + 8)·u of the inflated formula."""
    checked = 0
    for j in range(net.depth):
        l, u, eps, err = _layer_inputs(net, lo, hi, j)
        want_eps, want_err, inflate, kmax = _documented_layer(
            net.weights[j], net.biases[j], l, u, eps, err
        )
        sub = ReLUNetwork(net.weights[: j + 1], net.biases[: j + 1])
        _, _, got_eps, _, got_err = _propagate(sub, lo, hi, forward_error=True)
        tol = 2 * (kmax + 8) * U
        for name, got, want in (("eps", got_eps, want_eps), ("err", got_err, want_err)):
            for row, (g, w) in enumerate(zip(_fr(got), want, strict=True)):
                where = (name, j, row, float(g), float(w))
                assert g >= w, where  # the float64 value bounds the exact formula
                if tight:
                    assert g >= w * inflate * (1 - tol), where
                    assert g <= w * inflate * (1 + tol), where
                checked += 1
    return checked


def _mixed_net() -> tuple[ReLUNetwork, np.ndarray, np.ndarray]:
    """Hidden units of every kind at one box: ε zeroed but e kept (u = −2^-10 between
    −ε − e and −ε), both kept with u < 0 (u = −2^-12), certainly dead, live with u < 1, a
    dense one (k = 6); weights up to 2^40 make ε and e ≈ 1e-3, far above rounding."""
    big = 2.0**40
    w1 = np.array(
        [
            [big, 0, 0, 0, 0, 0],
            [big, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0.25, 0.25, 0, 0, 0, 0],
            [1, -2, 3, -1, 0.5, 1],
        ]
    )
    b1 = np.array([-(big + 2.0**-10), -(big + 2.0**-12), -8.0, 0.0, 1.0])
    w2 = np.array([[1, 1, 1, 1, 1], [1, -1, 2, -0.5, 0.25], [0, 0, 0, 0, 0.0]])
    b2 = np.array([0.5, -0.25, 0.0])
    w3 = np.array([[1, -1, 0.5], [0.5, 0.5, 0.5]])
    b3 = np.array([0.125, -0.5])
    lo = np.array([[1, 0.5, 0, 0.25, 1, 0]])
    hi = np.array([[1, 1, 0.5, 0.25, 2, 1.0]])
    return ReLUNetwork([w1, w2, w3], [b1, b2, b3]), lo, hi


def test_propagate_follows_its_documented_recursion_layer_by_layer():
    """ε and e of every layer are ≥ the exact documented formula and within 2(k_max + 8)·u
    of it times the documented inflation 1 + 8(k_max + 8)·u: pins γ_{k+2}/γ_{k+1}, the
    |b| and ε, e terms, the zeroing rule and the inflation. The hidden units are arranged
    so the zeroing decisions matter (checked here: unit 0 passes e but not ε)."""
    net, lo, hi = _mixed_net()
    l, u, eps, err = _layer_inputs(net, lo, hi, 1)
    assert eps[0] == 0 < err[0] and eps[1] > 0 and eps[2] == err[2] == 0  # the arrangement
    assert min(eps[1], err[0]) > Fraction(1, 10**4)  # ε, e far above float64 rounding
    assert 0 < u[3] < 1 and u[0] == u[1] == 0
    assert _check_layers(net, lo, hi, tight=True) == 2 * (5 + 3 + 2)


def test_underflow_allowance_is_all_that_remains_on_zero_data():
    """All-zero inputs and biases: every product is 0, so ε and e are the underflow
    allowance alone, which must be at least the documented k·2^-1074 per row (> 0)."""
    net = ReLUNetwork(
        [np.array([[1.0, 1.0], [1.0, 0.0]]), np.array([[1.0, -1.0]])], [np.zeros(2), np.zeros(1)]
    )
    zero = np.zeros((1, 2))
    _check_layers(net, zero, zero, tight=False)
    eps, err = _propagate(net, zero, zero, forward_error=True)[2::2]
    assert eps[0, 0] > 0 and err[0, 0] > 0


@pytest.mark.parametrize("with_err", [False, True])
def test_zeroing_rule_is_strict_at_the_boundary(with_err):
    """A hidden unit with u + ε = 0 (or u + ε + e = 0) exactly, in the subnormal range: the
    rule zeroes only on < 0, so the next layer still carries that unit's ε (resp. e) and
    must be ≥ the documented formula with it. The bias is minus the unit's own allowance
    at zero data (its γ·|b| term underflows to 0, so the allowance does not move)."""
    zero = np.zeros((1, 1))
    one = ReLUNetwork([np.array([[1.0]])], [np.zeros(1)])
    _, _, eps0, _, err0 = _propagate(one, zero, zero, forward_error=True)
    b1 = -(eps0[0] + err0[0]) if with_err else -eps0[0]
    net = ReLUNetwork([np.array([[1.0]]), np.array([[1.0]])], [b1, np.zeros(1)])
    _, hi, eps, _, err = _propagate(ReLUNetwork(net.weights[:1], net.biases[:1]), zero, zero, True)
    assert (eps[0, 0], err[0, 0]) == (eps0[0, 0], err0[0, 0]) and eps0[0, 0] > 0
    total = Fraction(float(hi[0, 0])) + Fraction(float(eps[0, 0]))
    if with_err:
        assert total < 0  # ε is zeroed, e is at the boundary
        total += Fraction(float(err[0, 0]))
    assert total == 0  # the boundary case
    _check_layers(net, zero, zero, tight=False)


def test_hidden_bounds_are_widened_outward():
    """interval_bounds(keep_hidden=True): each hidden bound is outside [l − ε, u + ε]
    (exact, from the truncated network's plain bounds and ε), by at most two ulps."""
    net, lo, hi = _mixed_net()
    pre = interval_bounds(net, lo, hi, keep_hidden=True)[2]
    assert len(pre) == 2
    for j, (pl, pu) in enumerate(pre):
        trunk = ReLUNetwork(net.weights[: j + 1], net.biases[: j + 1])
        out_lo, out_hi, eps, _, _ = _propagate(trunk, lo, hi, forward_error=False)
        for a, c, e, gl, gu in zip(*(_fr(x) for x in (out_lo, out_hi, eps, pl, pu)), strict=True):
            assert gl <= a - e and gu >= c + e
            assert a - e - gl <= 2 * abs(Fraction(float(np.spacing(float(a - e)))))
            assert gu - c - e <= 2 * abs(Fraction(float(np.spacing(float(c + e)))))


# ----------------------------------------------------------------------- gamma
def test_gamma_is_highams_gamma_to_one_rounding():
    """gamma(k) is k·u/(1 − k·u) within one rounding (relative u), for small and large k."""
    ks = [1, 3, 7, 1000, 2**40, 10**13]
    got = gamma(np.array(ks, dtype=np.float64))
    for k, g in zip(ks, got, strict=True):
        want = gamma_exact(k)
        assert abs(Fraction(float(g)) - want) <= U * want, k
    assert gamma(0) == 0


@pytest.mark.parametrize("ku", [0.01, 0.015])
def test_gamma_refuses_k_u_not_below_one_percent(ku):
    """k·u must stay below 0.01 (the error message's contract): k·u = 0.01 exactly, or
    above, raises, also when only one entry of an array is too big."""
    k = ku / float(U)
    assert k * float(U) == ku
    with pytest.raises(ValueError, match="gamma"):
        gamma(k)
    with pytest.raises(ValueError, match="gamma"):
        gamma(np.array([1.0, k]))
    assert np.isfinite(gamma(np.nextafter(0.01 / float(U), 0)))


# ----------------------------------------------------------------------- margins
def test_ibp_margin_lower_subtracts_documented_gamma():
    """One-layer nets whose IBP margin is exactly 0 on the box: the result is −slack, and
    the slack is γ_{n+5}(|v|·m + |b_y| + |b_c|), m = max(|l|, |u|), within 2u."""
    lo, hi = np.array([[1.0, 0.0]]), np.array([[2.0, 5.0]])  # m = (2, 5) ≠ min = (1, 0)
    flat = ReLUNetwork([np.array([[1.0, -1.0]])], [np.array([4.0])])  # 1 − 5 + 4 = 0
    got = ibp_margin_lower(flat, lo, hi, np.array([1]), True)[0]
    want = gamma_exact(2 + 5) * (2 + 5 + 4)
    assert got <= 0 and abs(-Fraction(float(got)) - want) <= 2 * U * want
    # three classes, label 0: v₁ = (1, −1), v₂ = (2, −2); b chosen so both margins are 0
    w = np.array([[1.0, -1.0], [0.0, 0.0], [-1.0, 1.0]])
    multi = ReLUNetwork([w], [np.array([4.0, 0.0, -4.0])])
    got = ibp_margin_lower(multi, lo, hi, np.array([0]), False)[0]
    slack = [(2 + 5) + 4 + 0, (4 + 10) + 4 + 4]
    want = gamma_exact(2 + 5) * max(slack)
    assert got <= 0 and abs(-Fraction(float(got)) - want) <= 2 * U * want


def test_clean_margin_lower_l2_subtracts_documented_gamma():
    """Linear f_clean, ℓ2: y(wᵀx + b) − δ‖w‖ is exactly 0 here (‖(3, 4)‖ = 5), so the result
    is −γ_{2d+10}(|w|·|x| + |b| + δ‖w‖), within 2u; multi-class with v = w_y − w_c."""
    x, r = np.array([[2.0, 1.0]]), 0.5
    binary = ReLUNetwork([np.array([[3.0, 4.0]])], [np.array([-7.5])])  # 10 − 7.5 − 2.5
    got = clean_margin_lower(binary, x, np.array([1]), r, "2", True, None)[0]
    want = gamma_exact(2 * 2 + 10) * (10 + Fraction(15, 2) + Fraction(5, 2))
    assert got <= 0 and abs(-Fraction(float(got)) - want) <= 2 * U * want
    # label 0: v₁ = (3, 4) (‖v₁‖ = 5), v₂ = (6, 8) (‖v₂‖ = 10); b makes both margins 0
    w = np.array([[3.0, 4.0], [0.0, 0.0], [-3.0, -4.0]])
    multi = ReLUNetwork([w], [np.array([-7.5, 0.0, 7.5])])
    got = clean_margin_lower(multi, x, np.array([0]), r, "2", False, None)[0]
    mags = [10 + Fraction(15, 2) + 0 + Fraction(5, 2), 20 + Fraction(15, 2) * 2 + 5]
    want = gamma_exact(2 * 2 + 10) * max(mags)
    assert got <= 0 and abs(-Fraction(float(got)) - want) <= 2 * U * want


def test_multiclass_margin_error_bound_is_at_least_the_exact_sum():
    """margin_error_bound ≥ e_y + max_{c≠y} e_c exactly (Fractions of forward_error_bound's
    floats). Teeth: on some of these boxes the plain float64 sum rounds below it."""
    rng = np.random.default_rng(3)
    w1, b1 = rng.normal(size=(4, 3)), rng.normal(size=4)
    w2, b2 = rng.normal(size=(3, 4)), rng.normal(size=3)
    net = ReLUNetwork([w1, w2], [b1, b2])
    lo = rng.uniform(-1, 0, size=(12, 3))
    hi = lo + rng.uniform(0, 1, size=(12, 3))
    labels = np.arange(12) % 3
    err = forward_error_bound(net, lo, hi)
    got = margin_error_bound(net, lo, hi, labels, False)
    below = 0
    for i, y in enumerate(labels):
        other = max(float(err[i, c]) for c in range(3) if c != y)
        exact = Fraction(float(err[i, y])) + Fraction(other)
        assert Fraction(float(got[i])) >= exact, i
        below += Fraction(float(err[i, y]) + other) < exact
    assert below > 0


def test_underflow_allowance_is_exactly_the_documented_2k_subnormals():
    """On all-zero data the allowance is the documented 2k·2^-1074 per row, exactly: every
    product is 0, and the inflation cannot move a subnormal (rows with k = 2 and k = 1)."""
    net = ReLUNetwork([np.array([[1.0, 1.0], [1.0, 0.0]])], [np.zeros(2)])
    zero = np.zeros((1, 2))
    eps, err = _propagate(net, zero, zero, forward_error=True)[2::2]
    expected = [Fraction(2 * k) * SUBNORMAL for k in (2, 1)]
    assert _fr(eps) == expected and _fr(err) == expected


def test_multiclass_margin_error_bound_factor_is_one_plus_4u():
    """The documented (e_y + max_{c≠y} e_c)·(1 + 4u), pinned where the sum is exact: two
    identical output rows have e_y = e_c = e, and 2e is exact, so the result lies in
    [2e(1 + 4u)(1 − u), 2e(1 + 4u)(1 + u)] (one rounding of the product); a factor of
    1 + 8u would land above it."""
    w1 = np.array([[1.5, -0.25], [0.75, 2.0]])
    w2 = np.array([[1.25, -0.5], [1.25, -0.5], [0.5, 0.5]])
    net = ReLUNetwork([w1, w2], [np.array([0.1, -0.3]), np.array([0.2, 0.2, -0.1])])
    lo, hi = np.array([[0.0, 0.1]]), np.array([[0.9, 0.7]])
    err = forward_error_bound(net, lo, hi)
    assert err[0, 0] == err[0, 1] and err[0, 0] >= err[0, 2]
    got = Fraction(float(margin_error_bound(net, lo, hi, np.array([0]), False)[0]))
    two_e = 2 * Fraction(float(err[0, 0]))
    assert two_e * (1 + 4 * U) * (1 - U) <= got <= two_e * (1 + 4 * U) * (1 + U)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("classes", [1, 3], ids=["binary", "3-class"])
def test_float_margin_lower_is_the_two_bounds_from_one_propagation(sparse, classes):
    """float_margin_lower returns exactly (ibp_margin_lower − margin_error_bound,
    margin_error_bound), bit for bit, per box and with one box for every label."""
    import scipy.sparse as sps

    from robmem.theory.intervals import float_margin_lower

    rng = np.random.default_rng(7 + classes)
    w = [rng.normal(size=(5, 3)) * 30, rng.normal(size=(4, 5)), rng.normal(size=(classes, 4))]
    if sparse:
        w = [sps.csr_matrix(np.where(np.abs(m) > 0.4, m, 0.0)) for m in w]
    net = ReLUNetwork(w, [rng.normal(size=m.shape[0]) for m in w])
    lo = rng.uniform(0, 0.5, size=(6, 3))
    hi = lo + rng.uniform(0, 0.5, size=(6, 3))
    labels = rng.integers(0, 2, size=6) if classes == 1 else rng.integers(0, classes, size=6)
    for box_lo, box_hi in ((lo, hi), (lo[:1], hi[:1])):
        lower, err = float_margin_lower(net, box_lo, box_hi, labels, classes == 1)
        want_err = margin_error_bound(net, box_lo, box_hi, labels, classes == 1)
        want = ibp_margin_lower(net, box_lo, box_hi, labels, classes == 1) - want_err
        assert lower.shape == (6,) and np.array_equal(err, want_err)
        assert np.array_equal(lower, want)
