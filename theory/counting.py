"""Closed-form non-zero parameter count of the SPEC T1 construction (single source of truth).

:func:`construction_parameter_count_expr` is the sympy expression;
:func:`construction_parameter_count` evaluates it. Helper modules (``robmem.theory.sizes``)
import both. The count is exactly ``RobustMemorizer.network().nonzero_parameter_count()``
(tests check equality).

Symbols (all non-negative integers): N centres, d input dimension, C classes (C = 2 is one
binary output), Z zero coordinates among the centres (each gives two zero first-layer
biases), m sawtooth teeth; for f_clean: P its non-zero parameters, P_L those of its last
affine layer (weights + bias), L_c its number of affine layers. ``P = 0`` means no f_clean.

Per centre (ℓ∞, notes §3.4): 2d first-layer weights, a max-tree over ⌈log₂ d⌉ levels
with Tree(d) weights, 2·2 bump weights and 2 bump biases (α, β > 0). The tree level ℓ has
m_ℓ = ⌈d/2^ℓ⌉ values, p_ℓ = ⌊m_ℓ/2⌋ pairs, o_ℓ = m_ℓ mod 2 odd values; a value carries 2
terms except the pass-through of an odd value (T_ℓ = o_{ℓ−1}); a pair (a, b) costs
|a| + 2|b| weights, a pass-through |b|:

    Tree(d) = Σ_{ℓ=0}^{⌈log₂ d⌉−1} [6 p_ℓ − 2 T_ℓ (1 − o_ℓ) + o_ℓ (2 − T_ℓ)].
"""

from __future__ import annotations

import functools
import math

import sympy

from robmem.theory.separation import check_norm

#: Weights per coordinate of the sawtooth layers: |·| layer 2, first tooth 3 units × 2.
_SAW_FIRST = 2 + 6


def _symbols() -> dict[str, sympy.Symbol]:
    names = ["N", "d", "C", "Z", "m", "P", "P_L", "L_c", "l"]
    return {n: sympy.Symbol(n, integer=True, nonnegative=True) for n in names}


@functools.cache
def linf_tree_weight_expr() -> sympy.Expr:
    """Tree(d) above, as a sympy Sum in d (evaluate with ``.subs(d, value).doit()``)."""
    s = _symbols()
    d, l = s["d"], s["l"]
    m_l = sympy.ceiling(d / 2**l)
    p_l = sympy.floor(m_l / 2)
    o_l = sympy.Mod(m_l, 2)
    # T_ℓ = o_{ℓ−1}; for ℓ = 0, ⌈d/2^{-1}⌉ = 2d is even, so the same formula gives T_0 = 0.
    t_l = sympy.Mod(sympy.ceiling(d / 2 ** (l - 1)), 2)
    levels = sympy.ceiling(sympy.log(d, 2))
    return sympy.Sum(6 * p_l - 2 * t_l * (1 - o_l) + o_l * (2 - t_l), (l, 0, levels - 1))


@functools.cache
def construction_parameter_count_expr(distance: str = "linf") -> sympy.Expr:
    """Closed form of the non-zero parameters of f̂ (SPEC T1).

    Symbolic in N, d, C, Z, m, P, P_L, L_c (see the module docstring).

    Parameters
    ----------
    distance : {"linf", "l2-sawtooth"}
        ℓ∞ (also ℓ2 via inclusion) or the ℓ2 sawtooth distance.

    Returns
    -------
    sympy.Expr
        Uses ``Piecewise`` for C = 2 versus C > 2 and for P = 0 (no f_clean), and
        ``Max`` for the padding depths.
    """
    s = _symbols()
    n, d, c, z, m, p, p_last, l_c = (s[k] for k in ("N", "d", "C", "Z", "m", "P", "P_L", "L_c"))
    first_biases = 2 * (n * d - z)
    if distance == "linf":
        per_point = 2 * d + linf_tree_weight_expr() + 2 * 2 + 2
        bump_layer = sympy.ceiling(sympy.log(d, 2)) + 2
    elif distance == "l2-sawtooth":
        tooth_layers = (9 + 2) * (m - 1) + sympy.Piecewise(
            (0, sympy.Eq(m, 1)), (3 + 4 * (m - 2), True)
        )
        per_coord = _SAW_FIRST + 2 + tooth_layers
        readout_terms = sympy.Piecewise((3, sympy.Eq(m, 1)), (4, True))
        per_point = d * per_coord + 2 * readout_terms * d + 2
        bump_layer = m + 2
    else:
        raise ValueError(f"distance: must be 'linf' or 'l2-sawtooth', got {distance!r}")
    n_out = sympy.Piecewise((1, sympy.Eq(c, 2)), (c, True))
    n_sums = sympy.Piecewise((2, sympy.Eq(c, 2)), (c, True))
    no_clean = 2 * n
    k_pad = sympy.Max(0, bump_layer + 1 - l_c)
    e_pad = sympy.Max(0, l_c - 1 - bump_layer)
    clean_part = (
        p
        + p_last
        + sympy.Piecewise((0, sympy.Eq(k_pad, 0)), (4 * n_out + 2 * n_out * (k_pad - 1), True))
    )
    with_clean = (
        2 * n * e_pad  # σ(u) = u pads of the 2N bump units
        + 2 * n  # class sums
        + 4 * n * n_out  # gate units read all bump units
        + clean_part
        + n_sums
        + 2 * n_out  # output layer
    )
    head = sympy.Piecewise((no_clean, sympy.Eq(p, 0)), (with_clean, True))
    return n * per_point + first_biases + head


def construction_parameter_count(
    n_points: int,
    dim: int,
    n_classes: int = 2,
    clean_params: int = 0,
    norm: str = "inf",
    *,
    clean_last_params: int = 0,
    clean_depth: int = 1,
    zero_centre_coordinates: int = 0,
    l2_method: str = "inclusion",
    teeth: int = 1,
) -> int:
    """Exact non-zero parameter count of the SPEC T1 construction (closed form).

    Parameters
    ----------
    n_points : int ≥ 1
        Memorized centres N.
    dim : int ≥ 1
        Input dimension d.
    n_classes : int ≥ 2
        C; C = 2 is one binary output.
    clean_params : int ≥ 0
        Non-zero parameters of f_clean (0: no f_clean).
    norm : {"inf", "2"}
    clean_last_params : int
        Non-zero weights + biases of f_clean's last affine layer.
    clean_depth : int ≥ 1
        Affine layers of f_clean.
    zero_centre_coordinates : int
        Number of zero coordinates among the N·d centre coordinates (Z).
    l2_method : {"inclusion", "sawtooth"}
    teeth : int ≥ 1
        Sawtooth teeth (ℓ2 sawtooth only).

    Returns
    -------
    int
        ``N(2d + Tree(d) + 6) + 2(Nd − Z) + head`` for ℓ∞ (see module docstring).
    """
    key = check_norm(norm)
    for name, value, least in (
        ("n_points", n_points, 1),
        ("dim", dim, 1),
        ("n_classes", n_classes, 2),
        ("clean_params", clean_params, 0),
        ("clean_last_params", clean_last_params, 0),
        ("clean_depth", clean_depth, 1),
        ("zero_centre_coordinates", zero_centre_coordinates, 0),
        ("teeth", teeth, 1),
    ):
        if int(value) != value or value < least:
            raise ValueError(f"{name}: must be an integer >= {least}, got {value}")
    if zero_centre_coordinates > n_points * dim:
        raise ValueError(
            f"zero_centre_coordinates: must be <= N·d = {n_points * dim}, "
            f"got {zero_centre_coordinates}"
        )
    if l2_method not in ("inclusion", "sawtooth"):
        raise ValueError(f"l2_method: must be 'inclusion' or 'sawtooth', got {l2_method!r}")
    distance = "l2-sawtooth" if key == "2" and l2_method == "sawtooth" else "linf"
    s = _symbols()
    expr = construction_parameter_count_expr(distance)
    tree_value = sympy.Integer(linf_tree_weight_count(dim))
    expr = expr.subs(linf_tree_weight_expr(), tree_value)
    values = {
        s["N"]: n_points,
        s["d"]: dim,
        s["C"]: n_classes,
        s["Z"]: zero_centre_coordinates,
        s["m"]: teeth,
        s["P"]: clean_params,
        s["P_L"]: clean_last_params,
        s["L_c"]: clean_depth,
    }
    return int(sympy.Integer(expr.subs(values).doit()))


def linf_tree_weight_count(dim: int) -> int:
    """Tree(d) evaluated with integer arithmetic (same formula as :func:`linf_tree_weight_expr`)."""
    total = 0
    levels = 0 if dim <= 1 else math.ceil(math.log2(dim))
    prev_odd = 0
    for level in range(levels):
        m_l = -(-dim // 2**level)
        p_l, o_l = m_l // 2, m_l % 2
        total += 6 * p_l - 2 * prev_odd * (1 - o_l) + o_l * (2 - prev_odd)
        prev_odd = o_l
    return total
