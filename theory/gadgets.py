"""ReLU gadgets of the robust-memorization construction (SPEC T1; notes §3.4).

Each public function returns a :class:`~robmem.theory.network.ReLUNetwork` computing its gadget
exactly (or, for the sawtooth, Yarotsky's approximation of t²). The identities are proved
piece by piece in :mod:`robmem.theory.proofs`. The ``*_templates`` functions return the per-point
sparse layer templates that :mod:`robmem.theory.construction` tiles over N centres.

σ denotes ReLU throughout.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from robmem.theory.network import ReLUNetwork

#: Break points of Yarotsky's tooth g(t) = 2σ(t) − 4σ(t − ½) + 2σ(t − 1) (Yarotsky 2017, §3.1).
TOOTH_BREAKS: tuple[float, float, float] = (0.0, 0.5, 1.0)
#: Its coefficients on σ(t − break).
TOOTH_COEFFS: tuple[float, float, float] = (2.0, -4.0, 2.0)


def sawtooth_error_bound(teeth: int) -> float:
    """Yarotsky 2017 Prop. 2: ``sup_{t∈[0,1]} |f_m(t) − t²| = 2^(−2m−2)`` (proved in proofs)."""
    return 2.0 ** (-2 * teeth - 2)


def abs_network() -> ReLUNetwork:
    """|t| = σ(t) + σ(−t) (1 → 1)."""
    return ReLUNetwork([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), [0.0]])


def max_network() -> ReLUNetwork:
    """max(a, b) = σ(a − b) + σ(b) − σ(−b) for all real a, b (2 → 1)."""
    w1 = np.array([[1.0, -1.0], [0.0, 1.0], [0.0, -1.0]])
    return ReLUNetwork([w1, np.array([[1.0, 1.0, -1.0]])], [np.zeros(3), [0.0]])


def trapezoid_network(alpha: float, beta: float) -> ReLUNetwork:
    """Trapezoid bump g(r) = [σ(β − r) − σ(α − r)]/(β − α) (1 → 1).

    g = 1 for r ≤ α, g = 0 for r ≥ β and g is linear in between, when 0 ≤ α < β
    (notes §3.4). Requires α ≠ β.
    """
    if alpha == beta:
        raise ValueError(f"beta: must differ from alpha, got alpha = beta = {alpha}")
    scale = 1.0 / (beta - alpha)
    return ReLUNetwork(
        [np.array([[-1.0], [-1.0]]), np.array([[scale, -scale]])], [[beta, alpha], [0.0]]
    )


def trapezoid(r: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """g(r) = [σ(β − r) − σ(α − r)]/(β − α), elementwise (α, β broadcast over the last axis)."""
    return (np.maximum(beta - r, 0.0) - np.maximum(alpha - r, 0.0)) / (beta - alpha)


def gate_network(scale: float) -> ReLUNetwork:
    """Gate (f, g) ↦ σ(f − M g) − σ(−f − M g) (2 → 1), SPEC T1.

    Equals f when g = 0, and 0 when M g ≥ |f|.
    """
    if not scale > 0:
        raise ValueError(f"scale: gate scale M must be > 0, got {scale}")
    w1 = np.array([[1.0, -scale], [-1.0, -scale]])
    return ReLUNetwork([w1, np.array([[1.0, -1.0]])], [np.zeros(2), [0.0]])


# ---------------------------------------------------------------- ℓ∞ / ℓ1 distance


def abs_difference_layer(dim: int) -> sp.csr_matrix:
    """Per-point first layer (2d × d): unit 2k = σ(x_k − c_k), unit 2k+1 = σ(c_k − x_k)."""
    rows = np.arange(2 * dim)
    cols = np.repeat(np.arange(dim), 2)
    vals = np.tile([1.0, -1.0], dim)
    return sp.csr_matrix((vals, (rows, cols)), shape=(2 * dim, dim))


def abs_difference_bias(centres: np.ndarray) -> np.ndarray:
    """First-layer biases for centres (N, d): (−c_ik, +c_ik) interleaved, flattened."""
    c = np.asarray(centres, dtype=np.float64)
    out = np.empty((c.shape[0], 2 * c.shape[1]))
    out[:, 0::2] = -c
    out[:, 1::2] = c
    return out.reshape(-1)


def linf_tree_templates(dim: int) -> tuple[list[sp.csr_matrix], sp.csr_matrix]:
    """Max-tree layers after the |·| layer, for one centre: ‖x − c‖_∞ exactly.

    Values at level 0 are |x_k − c_k| = a⁺_k + a⁻_k. Each level pairs consecutive values
    (a, b) into units σ(a − b) and σ(b), whose sum is max(a, b) because b ≥ 0 (notes §3.4);
    an odd last value passes as σ(b) = b. There are ⌈log₂ d⌉ levels.

    Returns
    -------
    (layers, readout) : list of sparse (units_out × units_in) matrices, and the (1 × units)
        row whose product with the last layer gives ‖x − c‖_∞.
    """
    values: list[list[tuple[int, float]]] = [[(2 * k, 1.0), (2 * k + 1, 1.0)] for k in range(dim)]
    n_units = 2 * dim
    layers = []
    while len(values) > 1:
        rows, cols, vals = [], [], []
        new_values: list[list[tuple[int, float]]] = []
        unit = 0
        for start in range(0, len(values) - 1, 2):
            va, vb = values[start], values[start + 1]
            for col, coef in va:
                rows.append(unit)
                cols.append(col)
                vals.append(coef)
            for col, coef in vb:
                rows.append(unit)
                cols.append(col)
                vals.append(-coef)
                rows.append(unit + 1)
                cols.append(col)
                vals.append(coef)
            new_values.append([(unit, 1.0), (unit + 1, 1.0)])
            unit += 2
        if len(values) % 2 == 1:
            for col, coef in values[-1]:
                rows.append(unit)
                cols.append(col)
                vals.append(coef)
            new_values.append([(unit, 1.0)])
            unit += 1
        layers.append(sp.csr_matrix((vals, (rows, cols)), shape=(unit, n_units)))
        values = new_values
        n_units = unit
    readout = sp.csr_matrix(
        ([c for _, c in values[0]], ([0] * len(values[0]), [u for u, _ in values[0]])),
        shape=(1, n_units),
    )
    return layers, readout


def linf_distance_network(centre: np.ndarray) -> ReLUNetwork:
    """x ↦ ‖x − c‖_∞ exactly: |·| layer, then a ⌈log₂ d⌉-level max-tree (d → 1)."""
    c = np.asarray(centre, dtype=np.float64).reshape(-1)
    layers, readout = linf_tree_templates(c.size)
    ws = [abs_difference_layer(c.size)] + layers + [readout]
    bs = [abs_difference_bias(c[None, :])] + [np.zeros(m.shape[0]) for m in layers] + [[0.0]]
    return ReLUNetwork(ws, bs)


def l1_distance_network(centre: np.ndarray) -> ReLUNetwork:
    """x ↦ ‖x − c‖_1 = Σ_k (σ(x_k − c_k) + σ(c_k − x_k)) (d → 1)."""
    c = np.asarray(centre, dtype=np.float64).reshape(-1)
    readout = np.ones((1, 2 * c.size))
    return ReLUNetwork(
        [abs_difference_layer(c.size), readout], [abs_difference_bias(c[None, :]), [0.0]]
    )


def linf_tree_depth(dim: int) -> int:
    """Number of max-tree levels, ⌈log₂ d⌉ (0 for d = 1)."""
    return 0 if dim <= 1 else math.ceil(math.log2(dim))


# ---------------------------------------------------------------- Yarotsky sawtooth


def sawtooth_templates(
    teeth: int,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per-coordinate layers computing f_m(t) = t − Σ_{s=1}^m g_s(t)/4^s from (a⁺, a⁻).

    ``t = a⁺ + a⁻ = |x_k − c_k|``. Layer 2 holds the tooth pieces of t; layer j+1
    (j ≥ 2) holds the pieces of g_{j−1} and a carry unit σ(f_{j−1}(t)) = f_{j−1}(t) ≥ 0.
    Yarotsky 2017 Prop. 2: 0 ≤ f_m(t) − t² ≤ 2^(−2m−2) on [0, 1].

    Returns
    -------
    (layers, readout) : list of (W, b) dense per-coordinate templates, and the readout row
        giving f_m(t) from the last layer.
    """
    if teeth < 1:
        raise ValueError(f"teeth: must be >= 1, got {teeth}")
    breaks = np.array(TOOTH_BREAKS)
    coeffs = np.array(TOOTH_COEFFS)
    layers: list[tuple[np.ndarray, np.ndarray]] = [(np.ones((3, 2)), -breaks)]
    # f_1 from layer 2's units (σ(t), σ(t−½), σ(t−1)): t − g_1/4
    readout = np.array([1.0, 0.0, 0.0]) - coeffs / 4.0
    for j in range(2, teeth + 1):
        # layer j+1: pieces of g_{j-1}, then carry f_{j-1}
        n_in = 3 if j == 2 else 4
        w = np.zeros((4, n_in))
        w[:3, :3] = coeffs[None, :]
        w[3, :] = readout
        layers.append((w, np.concatenate([-breaks, [0.0]])))
        readout = np.concatenate([-coeffs / 4.0**j, [1.0]])
    return layers, readout


def sawtooth_square_network(teeth: int) -> ReLUNetwork:
    """Yarotsky's f_m(t) ≈ t² on t ∈ [0, 1] (1 → 1), error in [0, 2^(−2m−2)].

    Built as ``f_m(|t|)`` so the first layer is the |·| layer of the construction.
    """
    layers, readout = sawtooth_templates(teeth)
    ws = [np.array([[1.0], [-1.0]])] + [w for w, _ in layers] + [readout[None, :]]
    bs = [np.zeros(2)] + [b for _, b in layers] + [[0.0]]
    return ReLUNetwork(ws, bs)


def sawtooth_square(t: np.ndarray, teeth: int) -> np.ndarray:
    """Yarotsky's f_m(t) = t − Σ_{s=1}^m g_s(t)/4^s, elementwise (exact float evaluation)."""
    acc = np.array(t, dtype=np.float64)
    g = np.array(t, dtype=np.float64)
    for s in range(1, teeth + 1):
        g = 2 * np.maximum(g, 0) - 4 * np.maximum(g - 0.5, 0) + 2 * np.maximum(g - 1, 0)
        acc = acc - g / 4.0**s
    return acc


def sawtooth_teeth_for_gap(dim: int, gap: float) -> int:
    """Smallest m with d·2^(−2m−2) ≤ gap (so the squared-distance error fits in ``gap``)."""
    if not gap > 0:
        raise ValueError(f"gap: must be > 0, got {gap}")
    m = 1
    while dim * sawtooth_error_bound(m) > gap:
        m += 1
    return m
