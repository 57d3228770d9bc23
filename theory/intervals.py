"""Margins (binary y·f, multi-class f_y − max_{c≠y} f_c), balls and interval bounds.

Interval bound propagation (notes §4: l' = W⁺l + W⁻u + b) is the fast sound filter. Two
kinds of float64 rounding are bounded rigorously here (Higham-style a-priori bounds, see
:func:`_propagate`): IBP's own, so that its bounds contain the exact-arithmetic network's
values, and the forward pass's (:func:`forward_error_bound`), so that a certifier can turn a
bound on the exact network's margin into one on the float64 network that
:meth:`~robmem.theory.network.ReLUNetwork.forward` evaluates. Balls are boxed as
[fl(x − δ), fl(x + δ)]: rounding is monotone, so every float64 point of the ball is inside.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from robmem.theory.network import ReLUNetwork

#: Certified only if the margin lower bound exceeds this. The bounds already allow for
#: float64 rounding (see :func:`forward_error_bound`); this is a safety margin on top.
MARGIN_TOLERANCE = 1e-9


def margins(outputs: np.ndarray, labels: np.ndarray, binary: bool) -> np.ndarray:
    """y·f (binary, labels ±1 or {0,1} with 1 ↔ +1) or f_y − max_{c≠y} f_c."""
    out = np.atleast_2d(outputs)
    labels = np.asarray(labels)
    if binary:
        sign = np.where(labels == 1, 1.0, -1.0)
        return sign * out[:, 0]
    idx = np.arange(out.shape[0])
    own = out[idx, labels]
    other = out.copy()
    other[idx, labels] = -np.inf
    return own - other.max(axis=1)


def ball_box(
    points: np.ndarray, radius: float, domain: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of B_∞(p, radius) ∩ domain (also contains the ℓ2 ball)."""
    lo = points - radius
    hi = points + radius
    if domain is not None:
        lo = np.maximum(lo, domain[0])
        hi = np.minimum(hi, domain[1])
    return lo, hi


def project_to_ball(
    x: np.ndarray,
    centre: np.ndarray,
    radius: float,
    norm: str,
    domain: tuple[float, float] | None,
) -> np.ndarray:
    """Move candidates into B_p(centre, radius) ∩ domain (centre must be in the domain)."""
    x = np.atleast_2d(x)
    if norm == "inf":
        x = np.clip(x, centre - radius, centre + radius)
    else:
        diff = x - centre
        n = np.linalg.norm(diff, axis=1, keepdims=True)
        scale = np.where(n > radius, radius / np.maximum(n, 1e-300), 1.0)
        x = centre + diff * scale
    if domain is not None:
        x = np.clip(x, domain[0], domain[1])
    return x


def _labels_for(net_out_dim: int, labels: np.ndarray) -> tuple[np.ndarray, bool]:
    """Encode labels: binary (out dim 1, labels ±1 → 1/0) or class indices."""
    if net_out_dim == 1:
        vals = set(np.unique(labels).tolist())
        if not vals <= {-1, 1}:
            raise ValueError(f"labels: a one-output network needs labels ±1, got {sorted(vals)}")
        return (labels == 1).astype(np.int64), True
    if labels.min() < 0 or labels.max() >= net_out_dim:
        raise ValueError(
            f"labels: class indices must be in [0, {net_out_dim}), got "
            f"[{labels.min()}, {labels.max()}]"
        )
    return labels.astype(np.int64), False


#: Unit roundoff of float64 (round to nearest): |fl(a ∘ b) − a ∘ b| ≤ u·|a ∘ b|.
UNIT_ROUNDOFF = 2.0**-53
#: Smallest positive subnormal: a product that underflows is off by at most half of it.
_TINY = 2.0**-1074


def gamma(k: np.ndarray | int) -> np.ndarray:
    """Higham's γ_k = k·u/(1 − k·u) (0 for k = 0): a k-term float64 dot product, in any
    summation order (BLAS blocking and FMA included), is within γ_k·|w|ᵀ|h| of the exact one.

    Raises ValueError unless k·u < 0.01 for every k (there γ_k < 1.0102·k·u)."""
    k = np.asarray(k, dtype=np.float64)
    if np.any(k * UNIT_ROUNDOFF >= 0.01):
        raise ValueError(f"gamma: k·u must stay below 0.01, got k = {k.max():.3g}")
    return k * UNIT_ROUNDOFF / (1.0 - k * UNIT_ROUNDOFF)


def _row_terms(w) -> np.ndarray:
    """Stored weights per output row (a zero weight's product adds exactly)."""
    if sp.issparse(w):
        return np.diff(sp.csr_matrix(w).indptr).astype(np.float64)
    return np.count_nonzero(np.asarray(w), axis=1).astype(np.float64)


def _apply(w, h: np.ndarray) -> np.ndarray:
    """h @ wᵀ for dense or sparse w, h of shape (n, in)."""
    if sp.issparse(w):
        return np.asarray((w @ h.T).T)
    return h @ np.asarray(w).T


def _propagate(net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, forward_error: bool):
    """IBP with its own rounding bounded (ε) and, optionally, the forward error bound (e).

    Per layer with k_j stored weights in row j (u = 2^-53, γ_k = k·u/(1 − k·u)): the
    computed IBP bound is within γ_{k_j+2}(|W| m + |b|)_j of the exact formula applied to
    the computed input bounds (m = max(|l|, |u|)), so the exact pre-activations lie in
    [l − ε, u + ε] with ε' = |W| ε + γ_{k+2}(|W| m + |b|). The float64 forward pass
    h ↦ σ(fl(W h + b)) stays within e' = |W| e + γ_{k+1}(|W| a + |b|) of the exact one,
    where a = m + ε + e bounds the computed activations (Higham, *Accuracy and Stability
    of Numerical Algorithms*, §3.1: the dot-product bound holds in any summation order;
    ReLU is 1-Lipschitz). Underflow adds at most k·2^-1074 per row to a computed sum; ε'
    and e' each add 2k·2^-1074, the second k·2^-1074 for their own evaluation, whose
    products can underflow to 0 where no relative inflation helps. A unit with
    u + ε < 0 is exactly 0, and with u + ε + e < 0 also 0 when computed: no error passes
    it. ε and e are computed in float64 from non-negative terms; each layer multiplies
    them by 1 + 8(k_max + 8)·u, more than their own relative rounding.

    Returns the plain float64 bounds (out_lo, out_hi), the output ε, the hidden
    pre-activation bounds widened by their ε (outward by one more ulp), and e (or None).
    """
    lo = np.atleast_2d(np.asarray(lo, dtype=np.float64))
    hi = np.atleast_2d(np.asarray(hi, dtype=np.float64))
    eps = np.zeros_like(lo)
    err = np.zeros_like(lo) if forward_error else None
    pre: list[tuple[np.ndarray, np.ndarray]] = []
    for index, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        k = _row_terms(w)
        inflate = 1.0 + 8.0 * (k.max(initial=0.0) + 8.0) * UNIT_ROUNDOFF
        if sp.issparse(w):
            wp, wn, wa = w.maximum(0).tocsr(), w.minimum(0).tocsr(), abs(w).tocsr()
        else:
            wp, wn, wa = np.maximum(w, 0), np.minimum(w, 0), np.abs(w)
        mag = np.maximum(np.abs(lo), np.abs(hi))
        new_lo = _apply(wp, lo) + _apply(wn, hi) + b
        new_hi = _apply(wp, hi) + _apply(wn, lo) + b
        spread = _apply(wa, mag) + np.abs(b)
        tiny = 2.0 * k * _TINY
        new_eps = (_apply(wa, eps) + gamma(np.where(k > 0, k + 2, 0)) * spread + tiny) * inflate
        if err is not None:
            act = _apply(wa, mag + eps + err) + np.abs(b)
            new_err = _apply(wa, err) + gamma(np.where(k > 0, k + 1, 0)) * act
            new_err = (new_err + tiny) * inflate
        if index == net.depth - 1:
            return new_lo, new_hi, new_eps, pre, (new_err if err is not None else None)
        pre.append(
            (np.nextafter(new_lo - new_eps, -np.inf), np.nextafter(new_hi + new_eps, np.inf))
        )
        # exact pre-activation ≤ u + ε < 0: the unit is exactly 0 (fl is monotone, so a
        # computed u + ε < 0 means the exact sum is < 0)
        eps = np.where(new_hi + new_eps < 0, 0.0, new_eps)
        if err is not None:
            # and the computed one ≤ u + ε + e < 0 too: both are 0, no error
            err = np.where(new_hi + new_eps + new_err < 0, 0.0, new_err)
        lo, hi = np.maximum(new_lo, 0), np.maximum(new_hi, 0)
    raise AssertionError("unreachable: a network has at least one layer")


def interval_bounds(
    net: ReLUNetwork,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    keep_hidden: bool = False,
    rounding: bool = True,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list]:
    """Interval bound propagation (notes §4: l' = W⁺l + W⁻u + b) over boxes [lo, hi] (n, d).

    Returns ``(out_lo, out_hi)``; with ``keep_hidden`` also the list of pre-activation
    ``(l, u)`` per hidden layer. With ``rounding`` (the default) every bound is widened by
    a rigorous bound on IBP's own float64 rounding (:func:`_propagate`), so the bounds
    contain the exact-arithmetic values of the network on the box. ``rounding=False``
    returns the output bounds of the plain float64 formula (a few ulps inside; hidden
    bounds stay widened).
    """
    out_lo, out_hi, eps, pre, _ = _propagate(net, lo, hi, forward_error=False)
    if rounding:
        out_lo = np.nextafter(out_lo - eps, -np.inf)
        out_hi = np.nextafter(out_hi + eps, np.inf)
    if keep_hidden:
        return out_lo, out_hi, pre
    return out_lo, out_hi


def forward_error_bound(net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Bound (n, output_dim) on |forward(x) − f(x)| for every float64 x in each box.

    ``forward`` is :meth:`ReLUNetwork.forward` (float64, any summation order); f is the
    same network (same float64 weights) in exact arithmetic. See :func:`_propagate`.
    """
    return _propagate(net, lo, hi, forward_error=True)[4]


def _margin_error(err: np.ndarray, labels: np.ndarray, binary: bool) -> np.ndarray:
    """:func:`margin_error_bound` from the per-output bound ``err`` (n or 1, output_dim)."""
    labels = np.asarray(labels)
    if err.shape[0] == 1 and labels.size > 1:
        err = np.repeat(err, labels.size, axis=0)  # one box for every label
    if binary:
        return err[:, 0]
    idx = np.arange(err.shape[0])
    other = err.copy()
    other[idx, labels] = -np.inf
    # one more u·|e| covers the rounding of this sum
    return (err[idx, labels] + other.max(axis=1)) * (1.0 + 4.0 * UNIT_ROUNDOFF)


def margin_error_bound(
    net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, labels: np.ndarray, binary: bool
) -> np.ndarray:
    """Bound (n,) on how far the float64 forward's margin can fall below the exact one.

    Binary: e₀. Multi-class: (e_y + max_{c≠y} e_c)·(1 + 4u), as f̂_y − f̂_c ≥ f_y − f_c −
    e_y − e_c and the factor covers the rounding of that sum. A
    float lower bound on the exact difference of the float outputs also bounds their rounded
    difference (rounding is monotone). A single box (one row of ``lo``, ``hi``) serves all
    labels.
    """
    return _margin_error(forward_error_bound(net, lo, hi), labels, binary)


def _last_layer_margin_lower(
    net: ReLUNetwork,
    lo: np.ndarray,
    hi: np.ndarray,
    hidden: list[tuple[np.ndarray, np.ndarray]],
    labels: np.ndarray,
    binary: bool,
) -> np.ndarray:
    """:func:`ibp_margin_lower` from the widened hidden pre-activation bounds of
    :func:`_propagate` (the input box itself for a one-layer network)."""
    n = lo.shape[0]
    if net.depth == 1:
        h_lo, h_hi = lo, hi
    else:
        h_lo, h_hi = np.maximum(hidden[-1][0], 0), np.maximum(hidden[-1][1], 0)
    w = net.weights[-1]
    w = w.toarray() if sp.issparse(w) else np.asarray(w)
    b = net.biases[-1]
    mag = np.maximum(np.abs(h_lo), np.abs(h_hi))
    slack = gamma(w.shape[1] + 5)
    if binary:
        sign = np.where(labels == 1, 1.0, -1.0)
        v = sign[:, None] * w[0][None, :]
        value = (np.where(v > 0, v * h_lo, v * h_hi)).sum(axis=1) + sign * b[0]
        return value - slack * ((np.abs(v) * mag).sum(axis=1) + abs(b[0]))
    out = np.full(n, np.inf)
    for c in range(w.shape[0]):
        v = w[labels] - w[c][None, :]
        bound = np.where(v > 0, v * h_lo, v * h_hi).sum(axis=1) + b[labels] - b[c]
        bound -= slack * ((np.abs(v) * mag).sum(axis=1) + np.abs(b[labels]) + abs(b[c]))
        bound[labels == c] = np.inf
        out = np.minimum(out, bound)
    return out


def ibp_margin_lower(
    net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, labels: np.ndarray, binary: bool
) -> np.ndarray:
    """Lower bound of the exact-arithmetic margin over each box, by IBP (last layer as
    differences), rigorous against its own float64 rounding.

    The hidden bounds are :func:`interval_bounds`' (widened by their rounding); the last
    layer's sum of n terms, with v = w_y − w_c rounded, is off by at most
    γ_{n+5}(|v|·m + |b_y| + |b_c|) (m = max(|l|, |u|)), which is subtracted. For the
    float64 forward pass subtract :func:`margin_error_bound` as well, or call
    :func:`float_margin_lower`, which does both from one propagation.
    """
    hidden = _propagate(net, lo, hi, forward_error=False)[3]
    return _last_layer_margin_lower(net, lo, hi, hidden, labels, binary)


def float_margin_lower(
    net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, labels: np.ndarray, binary: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(lower bound on the float64 forward pass's margin over each box, the rounding
    allowance subtracted in it): ``ibp_margin_lower − margin_error_bound``, both from one
    interval propagation (:func:`_propagate` carries IBP's bounds and the forward error
    together; the values are those of the two functions)."""
    _, _, _, hidden, err = _propagate(net, lo, hi, forward_error=True)
    allowance = _margin_error(err, labels, binary)
    return _last_layer_margin_lower(net, lo, hi, hidden, labels, binary) - allowance, allowance


def clean_margin_lower(
    clean: ReLUNetwork,
    points: np.ndarray,
    labels: np.ndarray,
    radius: float,
    norm: str,
    binary: bool,
    domain: tuple[float, float] | None,
) -> np.ndarray:
    """Lower bound of f_clean's exact-arithmetic margin on each ball: exact for linear f_clean
    up to a rigorous allowance for its own float64 rounding.

    For a linear classifier the worst ℓp perturbation is closed-form (SPEC T3): the
    margin over B_p(x, δ) is y·(wᵀx + b) − δ‖w‖_q; for ℓ∞ the box ∩ domain is used
    (exact). Deeper networks use IBP over the box (:func:`ibp_margin_lower`). The float64
    forward pass of f_clean can be lower by :func:`margin_error_bound`.
    """
    lo, hi = ball_box(points, radius, domain)
    if clean.depth == 1 and norm == "2":
        w = clean.weights[0]
        w = w.toarray() if sp.issparse(w) else np.asarray(w)
        b = clean.biases[0]
        # rounding of a d-term sum, v = w_y − w_c and the norm: γ_{2d+10} of the magnitudes
        slack = gamma(2 * points.shape[1] + 10)
        if binary:
            sign = np.where(labels == 1, 1.0, -1.0)
            norm_w = np.linalg.norm(w[0])
            value = sign * (points @ w[0] + b[0]) - radius * norm_w
            return value - slack * (np.abs(points) @ np.abs(w[0]) + abs(b[0]) + radius * norm_w)
        out = np.full(points.shape[0], np.inf)
        for c in range(w.shape[0]):
            v = w[labels] - w[c][None, :]
            norm_v = np.linalg.norm(v, axis=1)
            val = (v * points).sum(axis=1) + b[labels] - b[c] - radius * norm_v
            mag = (np.abs(v) * np.abs(points)).sum(axis=1) + np.abs(b[labels]) + abs(b[c])
            val -= slack * (mag + radius * norm_v)
            val[labels == c] = np.inf
            out = np.minimum(out, val)
        return out
    return ibp_margin_lower(clean, lo, hi, labels, binary)


def gate_factor(scale: float, binary: bool) -> float:
    """Margin transfer of the gate: f̂'s margin ≥ factor · f_clean's margin (see below).

    With all opposite bumps zero, binary: y f̂ = g + max(|f| − M g, 0) ≥ |f|·min(1, 1/M);
    multi-class: f̂_y − f̂_c ≥ g + max(0, Δ − 2 M g) ≥ Δ·min(1, 1/(2M)), Δ = f_y − f_c
    (both by minimising over g ≥ 0; the gate pieces are proved in robmem.theory.proofs).
    """
    return min(1.0, 1.0 / scale) if binary else min(1.0, 1.0 / (2.0 * scale))


def small_margin_mask(
    clean: ReLUNetwork,
    points: np.ndarray,
    labels: np.ndarray,
    radius: float,
    norm: str,
    binary: bool,
    domain: tuple[float, float] | None,
    scale: float | None = None,
) -> np.ndarray:
    """True where f_clean is not certified robust at radius δ: [P1]'s S_small (conservative).

    [P1] §3 defines S_small = {x_i : dist_p(x_i, DB(f_clean)) < δ}. A point is treated as
    large-margin only if f_clean's certified margin on its ball, times
    :func:`gate_factor` when the gate ``scale`` M is given, exceeds
    :data:`MARGIN_TOLERANCE` (so the certifier can prove it through the gate). For linear
    f_clean the margin is exact (ℓ2; ℓ∞ over the box ∩ domain); deeper f_clean use IBP,
    so S_small may contain extra points, never fewer.
    """
    margin = clean_margin_lower(clean, points, labels, radius, norm, binary, domain)
    factor = 1.0 if scale is None else gate_factor(scale, binary)
    return ~(margin * factor > MARGIN_TOLERANCE)
