"""Clean generalization bounds from VC dimension ([P1] Thm 6.2; SPEC T4, B2).

* :func:`vc_dimension_upper_from_widths` — the Bartlett–Harvey–Liaw–Mehrabian (2019) upper
  bound on the VC dimension of a piecewise-linear network, computed from its layer widths.
* :func:`vc_dimension_upper_bhlm` — the same for a uniform-width architecture (registered).
* :func:`vc_generalization_gap` — the Mohri-style VC generalization gap (certified).
* :func:`clean_gap_sqrt_complexity` — the [P1] Thm 6.2 form √(complexity/N) with constant C.
* :func:`growth_function_log2_bhlm` — the growth-function product the VC bound is derived
  from, used as an independent oracle in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sympy as sp

from robmem.theory.bounds.result import BoundResult
from robmem.theory.bounds.validation import (
    require_int_at_least,
    require_nonnegative,
    require_open_interval,
    require_positive,
)

SOURCE_BHLM = (
    "Bartlett, Harvey, Liaw, Mehrabian, JMLR 20(63) 2019, Thm 7 "
    "(constants recalled in notes §3.1); SPEC T2/T4"
)
SOURCE_MOHRI = "Mohri, Rostamizadeh, Talwalkar, Foundations of ML, Cor 3.19 (VC bound); SPEC T4"
SOURCE_THM62 = "[P1] Li & Li, §6 / Thm 6.2 (L_D <= L_S + sqrt(complexity/N)); SPEC T4"

#: Degree D of the activation's polynomial pieces; ReLU-type (piecewise-linear) nets have D = 1.
PIECEWISE_LINEAR_DEGREE = 1


#: The uniform-architecture calculator lists one width per layer; beyond this depth the list
#: itself would not fit in memory (no network of interest is that deep).
MAX_HIDDEN_LAYERS: int = 10**6


def _layer_terms(
    units: Sequence[int], layer_params: Sequence[int], pieces: int
) -> dict[str, float]:
    """L, W, L̄ and R of BHLM Thm 7 from per-layer unit and parameter counts."""
    units = [int(u) for u in units]
    layer_params = [int(w) for w in layer_params]
    if len(units) == 0:
        raise ValueError(
            "units must list at least one computation layer (length in [1, inf)), got 0"
        )
    if len(units) != len(layer_params):
        raise ValueError(
            f"layer_params must have one entry per layer ({len(units)}), got {len(layer_params)}"
        )
    for i, (k, w) in enumerate(zip(units, layer_params, strict=True)):
        require_int_at_least(f"units[{i}]", k, 1)
        require_int_at_least(f"layer_params[{i}]", w, 1)
    pieces = require_int_at_least("pieces", pieces, 1)
    cumulative = 0
    w_prefix = []
    r_term = 0
    deg = PIECEWISE_LINEAR_DEGREE
    for i, (k_i, w_i) in enumerate(zip(units, layer_params, strict=True), start=1):
        cumulative += w_i
        w_prefix.append(cumulative)
        r_term += k_i * (1 + (i - 1) * deg ** (i - 1))
    return {
        "n_params": float(cumulative),
        "n_layers": float(len(units)),
        "effective_depth": sum(w_prefix) / cumulative,
        "R": float(r_term),
        "pieces": float(pieces),
        "sum_prefix_params": float(sum(w_prefix)),
    }


def _architecture_terms(widths: Sequence[int], pieces: int) -> dict[str, float]:
    """Terms for a fully connected net with biases, widths = [d, k_1, ..., k_L]."""
    widths = [int(w) for w in widths]
    if len(widths) < 2:
        raise ValueError(
            "widths must list the input width and at least one layer width "
            f"(length in [2, inf)), got {widths!r}"
        )
    for i, w in enumerate(widths):
        require_int_at_least(f"widths[{i}]", w, 1)
    params = [widths[i] * (widths[i - 1] + 1) for i in range(1, len(widths))]
    return _layer_terms(widths[1:], params, pieces)


def _bhlm_bound(terms: dict[str, float], architecture: str) -> BoundResult:
    """L + L̄ W log₂(4 e p R log₂(2 e p R)) from :func:`_layer_terms`' terms."""
    p, R = terms["pieces"], terms["R"]
    value = terms["n_layers"] + terms["effective_depth"] * terms["n_params"] * math.log2(
        4.0 * math.e * p * R * math.log2(2.0 * math.e * p * R)
    )
    return BoundResult(
        value=value,
        terms=terms,
        assumptions=(architecture, "Thm 7 constants as recalled in notes §3.1"),
        source=SOURCE_BHLM,
        certified=True,
        name="vc_dimension_upper_bhlm",
    )


def vc_dimension_upper_from_widths(widths: Sequence[int], *, pieces: int = 1) -> BoundResult:
    r"""Bartlett–Harvey–Liaw–Mehrabian upper bound on the VC dimension of an architecture.

    Statement (BHLM 2019, Thm 7): for a feed-forward net with L computation layers (the
    output unit counted as layer L), k_i units in layer i, W parameters, W_i parameters
    feeding layers 1..i, activations piecewise polynomial with p + 1 pieces of degree ≤ D,
    let L̄ = (1/W) Σ_i W_i and R = Σ_i k_i (1 + (i−1) D^{i−1}). Then

    .. math:: \mathrm{VCdim} ≤ L + L̄ W \log_2(4 e p R \log_2(2 e p R)).

    Here D = 1 (piecewise linear; ReLU has p = 1). For sign(f) of a ReLU net of
    width list ``widths`` = [d, k_1, ..., k_L], with biases. The constants are as recalled
    in notes §3.1 (tag [recalled]); the tests check the bound against the growth-function
    product it is derived from.

    Parameters
    ----------
    widths : sequence of int
        [input dim, k_1, ..., k_L]; at least one computation layer.
    pieces : int
        p, the number of breakpoints of the activation (ReLU: 1).
    """
    try:
        return _bhlm_bound(
            _architecture_terms(widths, pieces),
            "fully connected feed-forward net, piecewise-linear activation with `pieces` "
            "breakpoints, identity output unit, classifier sign(f)",
        )
    except OverflowError as exc:
        raise ValueError(
            f"widths: the architecture's parameter count does not fit in float64 ({exc})"
        ) from exc


def vc_dimension_upper_from_layers(
    units: Sequence[int], layer_params: Sequence[int], *, pieces: int = 1
) -> BoundResult:
    """BHLM VC upper bound for a layered net given units and parameters per layer.

    Same statement as :func:`vc_dimension_upper_from_widths`; BHLM's W_i counts the
    parameters feeding layers 1..i, so a sparse network (e.g. the T1 construction) uses its
    non-zero weights and biases per layer.

    Parameters
    ----------
    units : sequence of int
        k_1, ..., k_L (the last is the output layer).
    layer_params : sequence of int
        Parameters (weights + biases) into each layer.
    pieces : int
        Activation breakpoints p.
    """
    return _bhlm_bound(
        _layer_terms(units, layer_params, pieces),
        "layered feed-forward net, piecewise-linear activation with `pieces` breakpoints",
    )


def vc_dimension_upper_bhlm(
    *, input_dim: int, width: int, hidden_layers: int, pieces: int = 1
) -> BoundResult:
    """BHLM VC upper bound for a uniform architecture [d, h, ..., h, 1].

    See :func:`vc_dimension_upper_from_widths` for the statement.

    Parameters
    ----------
    input_dim : int
        d >= 1.
    width : int
        Hidden width h >= 1.
    hidden_layers : int
        Number of hidden layers H >= 0 (L = H + 1 computation layers).
    pieces : int
        Activation breakpoints p >= 1.
    """
    input_dim = require_int_at_least("input_dim", input_dim, 1)
    width = require_int_at_least("width", width, 1)
    hidden_layers = require_int_at_least("hidden_layers", hidden_layers, 0)
    if hidden_layers > MAX_HIDDEN_LAYERS:
        raise ValueError(
            f"hidden_layers must be an integer in [0, {MAX_HIDDEN_LAYERS}], got {hidden_layers}"
        )
    return vc_dimension_upper_from_widths(
        [input_dim] + [width] * hidden_layers + [1], pieces=pieces
    )


def vc_dimension_upper_bhlm_expr() -> sp.Expr:
    """Sympy form of :func:`vc_dimension_upper_bhlm` via closed-form sums over layers."""
    d, h, p = sp.symbols("input_dim width pieces", positive=True)
    H = sp.Symbol("hidden_layers", integer=True, nonnegative=True)
    i = sp.Symbol("i", integer=True, positive=True)
    w1 = h * (d + 1)
    w_i = w1 + (i - 1) * h * (h + 1)  # parameters feeding layers 1..i, i <= H
    w_hidden = w1 + (H - 1) * h * (h + 1)
    w_total = sp.Piecewise((d + 1, sp.Eq(H, 0)), (w_hidden + h + 1, True))
    sum_prefix = sp.Piecewise(
        (d + 1, sp.Eq(H, 0)), (sp.summation(w_i, (i, 1, H)) + w_hidden + h + 1, True)
    )
    n_layers = H + 1
    r_term = sp.summation(h * i, (i, 1, H)) + (H + 1)  # D = 1: 1 + (i-1) = i; output unit
    lbar = sum_prefix / w_total
    return n_layers + lbar * w_total * sp.log(
        4 * sp.E * p * r_term * sp.log(2 * sp.E * p * r_term, 2), 2
    )


def growth_function_log2_bhlm(
    units: Sequence[int], layer_params: Sequence[int], m: int, *, pieces: int = 1
) -> float:
    r"""log₂ of the BHLM growth-function bound Π(m) ≤ Π_i 2(2emk_i p(1+(i−1)D^{i−1})/W_i)^{W_i}.

    Valid for m ≥ W (BHLM Thm 7 proof). The VC dimension is at most the largest m with
    2^m ≤ Π(m); the closed form of :func:`vc_dimension_upper_from_layers` upper-bounds that m.
    """
    terms = _layer_terms(units, layer_params, pieces)
    m = require_int_at_least("m", m, 1)
    total = 0.0
    cumulative = 0
    for i, (k_i, w_i) in enumerate(zip(units, layer_params, strict=True), start=1):
        cumulative += int(w_i)
        factor = 1 + (i - 1) * PIECEWISE_LINEAR_DEGREE ** (i - 1)
        total += 1.0 + cumulative * math.log2(
            2.0 * math.e * m * int(k_i) * terms["pieces"] * factor / cumulative
        )
    return total


def _log_growth_nats(n: float, vc: float) -> float:
    """log Π(n) ≤ min(n log 2, vc·log(e n / vc)) (Sauer–Shelah for n ≥ vc), n log 2 otherwise."""
    if n <= vc:
        return n * math.log(2.0)
    return min(n * math.log(2.0), vc * math.log(math.e * n / vc))


def vc_generalization_gap(*, n: float, vc: float, confidence: float) -> BoundResult:
    r"""Mohri-style VC generalization gap: R(h) − R̂(h) ≤ √(2 log Π(n)/n) + √(log(1/Δ)/(2n)).

    Statement (Mohri et al., Cor 3.18/3.19): for a class of VC dimension V and n i.i.d.
    samples, with probability ≥ 1 − Δ, every h satisfies the inequality above, with the growth
    function bounded by Sauer–Shelah, log Π(n) ≤ V log(e n/V) for n ≥ V, and always
    log Π(n) ≤ n log 2; the smaller one is used. A value ≥ 1 is vacuous for the 0-1 loss.

    Parameters
    ----------
    n : float
        Sample size (> 0).
    vc : float
        VC dimension, or an upper bound on it (> 0).
    confidence : float
        Failure probability Δ in (0, 1).
    """
    n = require_positive("n", n)
    vc = require_positive("vc", vc)
    confidence = require_open_interval("confidence", confidence, 0.0, 1.0)
    log_growth = _log_growth_nats(n, vc)
    complexity = math.sqrt(2.0 * log_growth / n)
    conf_term = math.sqrt(math.log(1.0 / confidence) / (2.0 * n))
    return BoundResult(
        value=complexity + conf_term,
        terms={
            "log_growth": log_growth,
            "complexity_term": complexity,
            "confidence_term": conf_term,
        },
        assumptions=("n i.i.d. samples", "0-1 loss", "vc upper-bounds the VC dimension"),
        source=SOURCE_MOHRI,
        certified=True,
        name="vc_generalization_gap",
    )


def vc_generalization_gap_expr() -> sp.Expr:
    """Sympy form of :func:`vc_generalization_gap`."""
    n, vc, conf = sp.symbols("n vc confidence", positive=True)
    log_growth = sp.Piecewise(
        (n * sp.log(2), n <= vc), (sp.Min(n * sp.log(2), vc * sp.log(sp.E * n / vc)), True)
    )
    return sp.sqrt(2 * log_growth / n) + sp.sqrt(sp.log(1 / conf) / (2 * n))


def clean_gap_sqrt_complexity(*, n: float, complexity: float, C: float = 1.0) -> BoundResult:
    r"""[P1] §6 standard bound L_D ≤ L_S + C·√(complexity/N) (the gap term).

    [P1] (§6, Thm 6.2 discussion) writes L^clean_D(f) ≤ L^clean_S(f) + √(Complexity(F)/N)
    with the constant and log factors hidden; ``C`` exposes them. With Complexity = O(Nd)
    (robust memorization capacity) the gap term is ≥ √d·C, i.e. vacuous.

    Parameters
    ----------
    n : float
        Sample size N (> 0).
    complexity : float
        Complexity of the class, e.g. a VC dimension (>= 0).
    C : float
        Hidden constant (> 0).
    """
    n = require_positive("n", n)
    complexity = require_nonnegative("complexity", complexity)
    C = require_positive("C", C)
    return BoundResult(
        value=C * math.sqrt(complexity / n),
        terms={"complexity": complexity, "C": C},
        assumptions=("order-of-magnitude form; constants and logs in C",),
        source=SOURCE_THM62,
        certified=False,
        name="clean_gap_sqrt_complexity",
    )


def clean_gap_sqrt_complexity_expr() -> sp.Expr:
    """Sympy form of :func:`clean_gap_sqrt_complexity`."""
    n, c, C = sp.symbols("n complexity C", positive=True)
    return C * sp.sqrt(c / n)


__all__ = [
    "clean_gap_sqrt_complexity",
    "growth_function_log2_bhlm",
    "vc_dimension_upper_bhlm",
    "vc_dimension_upper_from_layers",
    "vc_dimension_upper_from_widths",
    "vc_generalization_gap",
]
