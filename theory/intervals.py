"""Margins (binary y·f, multi-class f_y − max_{c≠y} f_c), balls and interval bounds.

Interval bound propagation (notes §4: l' = W⁺l + W⁻u + b) is the fast sound filter.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from robmem.theory.network import ReLUNetwork

#: Certified only if the margin lower bound exceeds this (float64 rounding of O(1) sums).
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


def interval_bounds(
    net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, *, keep_hidden: bool = False
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list]:
    """Interval bound propagation (sound) of the outputs over boxes [lo, hi] (n, d).

    Returns ``(out_lo, out_hi)``; with ``keep_hidden`` also the list of pre-activation
    ``(l, u)`` per hidden layer.
    """
    lo = np.atleast_2d(np.asarray(lo, dtype=np.float64))
    hi = np.atleast_2d(np.asarray(hi, dtype=np.float64))
    pre: list[tuple[np.ndarray, np.ndarray]] = []
    for index, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        if sp.issparse(w):
            wp, wn = w.maximum(0).tocsr(), w.minimum(0).tocsr()
            new_lo = np.asarray((wp @ lo.T + wn @ hi.T).T) + b
            new_hi = np.asarray((wp @ hi.T + wn @ lo.T).T) + b
        else:
            wp, wn = np.maximum(w, 0), np.minimum(w, 0)
            new_lo = lo @ wp.T + hi @ wn.T + b
            new_hi = hi @ wp.T + lo @ wn.T + b
        if index < net.depth - 1:
            pre.append((new_lo, new_hi))
            lo, hi = np.maximum(new_lo, 0), np.maximum(new_hi, 0)
        else:
            lo, hi = new_lo, new_hi
    if keep_hidden:
        return lo, hi, pre
    return lo, hi


def ibp_margin_lower(
    net: ReLUNetwork, lo: np.ndarray, hi: np.ndarray, labels: np.ndarray, binary: bool
) -> np.ndarray:
    """Sound lower bound of the margin over each box, by IBP (last layer as differences)."""
    n = lo.shape[0]
    if net.depth == 1:
        h_lo, h_hi = lo, hi
    else:
        trunk = ReLUNetwork(net.weights[:-1], net.biases[:-1])
        h_lo, h_hi = interval_bounds(trunk, lo, hi)
        h_lo, h_hi = np.maximum(h_lo, 0), np.maximum(h_hi, 0)
    w = net.weights[-1]
    w = w.toarray() if sp.issparse(w) else np.asarray(w)
    b = net.biases[-1]
    if binary:
        sign = np.where(labels == 1, 1.0, -1.0)
        v = sign[:, None] * w[0][None, :]
        return (np.where(v > 0, v * h_lo, v * h_hi)).sum(axis=1) + sign * b[0]
    out = np.full(n, np.inf)
    for c in range(w.shape[0]):
        v = w[labels] - w[c][None, :]
        bound = np.where(v > 0, v * h_lo, v * h_hi).sum(axis=1) + b[labels] - b[c]
        bound[labels == c] = np.inf
        out = np.minimum(out, bound)
    return out


def clean_margin_lower(
    clean: ReLUNetwork,
    points: np.ndarray,
    labels: np.ndarray,
    radius: float,
    norm: str,
    binary: bool,
    domain: tuple[float, float] | None,
) -> np.ndarray:
    """Sound lower bound of f_clean's margin on each ball: exact for linear f_clean.

    For a linear classifier the worst ℓp perturbation is closed-form (SPEC T3): the
    margin over B_p(x, δ) is y·(wᵀx + b) − δ‖w‖_q; for ℓ∞ the box ∩ domain is used
    (exact). Deeper networks use IBP over the box.
    """
    lo, hi = ball_box(points, radius, domain)
    if clean.depth == 1 and norm == "2":
        w = clean.weights[0]
        w = w.toarray() if sp.issparse(w) else np.asarray(w)
        b = clean.biases[0]
        if binary:
            sign = np.where(labels == 1, 1.0, -1.0)
            return sign * (points @ w[0] + b[0]) - radius * np.linalg.norm(w[0])
        out = np.full(points.shape[0], np.inf)
        for c in range(w.shape[0]):
            v = w[labels] - w[c][None, :]
            val = (v * points).sum(axis=1) + b[labels] - b[c] - radius * np.linalg.norm(v, axis=1)
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
