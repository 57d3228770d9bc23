r"""Size separation calculators and the T2 size table (SPEC T2; [P1] Thm 3.5; [C22]).

Clean classifier poly(d) < robust memorization Õ(Nd) < robust classifier exp(Ω(d)).
:func:`size_table` returns, for (N, d, ε, δ), each size with its formula, source and whether
its constant is stated (certified) or hidden (exposed as ``C``):

* the clean classifier's size (our stated poly(d) choice: a dense ReLU net of width d);
* the constructive T1 count, from :func:`robmem.theory.counting.construction_parameter_count`
  (the single source of truth of that closed form);
* the memorization lower bound C·√(Nd) ([C22] Thm 2.3);
* the robust-generalization lower bound C·(2ε)^{−(d−1)/6} ([C22] Thm 4.3) and the grid VC
  lower bound 0.05·K^{d−1};
* the BHLM VC upper bound of the construction's architecture and the Mohri VC gap at
  n = N, which is vacuous (≥ 1) — [P1] §6's point that robust-memorization capacity makes
  the clean VC bound useless.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from robmem.theory.bounds.capacity import (
    grid_vc_lower_bound,
    memorization_lower_bound,
    robust_generalization_lower_bound,
)
from robmem.theory.bounds.result import BoundResult
from robmem.theory.bounds.validation import (
    require_int_at_least,
    require_open_interval,
    require_positive,
)
from robmem.theory.bounds.vc import (
    clean_gap_sqrt_complexity,
    vc_dimension_upper_from_layers,
    vc_generalization_gap,
)
from robmem.theory.counting import construction_parameter_count

#: δ used when building the 2- and 3-centre constructions whose layer sizes are extrapolated
#: (the count does not depend on δ; the probe centres are 0.25 apart in ℓ∞, so δ < 0.125).
_PROBE_DELTA = 0.1


def clean_classifier_size(dim: int, hidden_layers: int = 1) -> int:
    """Parameters of a dense ReLU net [d, d, ..., d, 1] with biases (our poly(d) f_clean).

    [P1] §3 assumes f_clean has width O(d) and constant depth; it gives no sizes. We state the
    choice width = d and ``hidden_layers`` hidden layers: d(d+1)·H + (d+1) parameters.
    """
    dim = require_int_at_least("dim", dim, 1)
    hidden_layers = require_int_at_least("hidden_layers", hidden_layers, 0)
    return hidden_layers * dim * (dim + 1) + (dim + 1)


@functools.lru_cache(maxsize=64)
def _probe_layers(dim: int, n_points: int, norm: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from robmem.theory.construction import build_construction

    # centres 0.25, 0.75, 0.5 (no zero coordinate), alternating labels, l_inf separation 0.25
    centres = np.array([np.full(dim, v) for v in (0.25, 0.75, 0.5)[:n_points]])
    labels = np.array([1, -1, 1][:n_points])
    net = build_construction(centres, labels, _PROBE_DELTA, norm).network()
    return tuple(net.widths[1:]), tuple(net.layer_nonzero_counts())


def construction_layers(n_points: int, dim: int, norm: str = "inf") -> tuple[list[int], list[int]]:
    """Units and non-zero parameters per layer of the T1 construction (binary, no f_clean).

    The construction stacks one block per centre in parallel (notes §3.4), so every layer's
    unit and parameter counts are affine in N. They are read off A's construction
    (:func:`robmem.theory.construction.build_construction`) at N = 2 and N = 3 (centres with no zero
    coordinate, both labels present) and extrapolated; the total is checked against
    :func:`robmem.theory.counting.construction_parameter_count`.

    Returns
    -------
    (units, layer_params)
    """
    n_points = require_int_at_least("n_points", n_points, 1)
    dim = require_int_at_least("dim", dim, 1)
    u2, p2 = _probe_layers(dim, 2, norm)
    u3, p3 = _probe_layers(dim, 3, norm)
    if len(u2) != len(u3):
        raise RuntimeError("construction depth depends on N; cannot extrapolate layer sizes")
    units = [a + (n_points - 2) * (b - a) for a, b in zip(u2, u3, strict=True)]
    params = [a + (n_points - 2) * (b - a) for a, b in zip(p2, p3, strict=True)]
    expected = construction_parameter_count(n_points, dim, norm=norm)
    if sum(params) != expected:
        raise RuntimeError(
            f"extrapolated layer sizes give {sum(params)} parameters, the closed form {expected}"
        )
    return units, params


@dataclass(frozen=True)
class SizeRow:
    """One row of the size table."""

    key: str
    label: str
    value: float
    formula: str
    source: str
    certified: bool
    log10_value: float | None = None


def _bound_row(
    key: str,
    label: str,
    result: BoundResult,
    formula: str,
    *,
    log10: bool = False,
    source_prefix: str = "",
) -> SizeRow:
    """A row whose value, source and certification are those of a bound calculator's result."""
    log10_value = result.terms["log10_value"] if log10 else None
    source = source_prefix + result.source
    return SizeRow(key, label, result.value, formula, source, result.certified, log10_value)


@dataclass(frozen=True)
class SizeTable:
    """The T2 size table for one (N, d, ε, δ)."""

    n_points: int
    dim: int
    eps: float
    delta: float
    rows: tuple[SizeRow, ...]

    def as_dict(self) -> dict[str, float]:
        """Row key → value."""
        return {row.key: row.value for row in self.rows}


def size_table(
    n_points: int,
    dim: int,
    eps: float,
    delta: float,
    *,
    norm: str = "inf",
    clean_hidden_layers: int = 1,
    confidence: float = 0.05,
    C: float = 1.0,
) -> SizeTable:
    r"""Sizes separating clean, robust-memorizing and robustly generalizing nets (SPEC T2).

    Parameters
    ----------
    n_points : int
        N >= 1 training points.
    dim : int
        d >= 1.
    eps : float
        Half the class separation (R = 2ε, [C22] notation), in (0, 1/2).
    delta : float
        Robust radius, in (0, ε) (δ < R/2, [P1] §3).
    norm : {"inf", "2"}
        Norm of the construction.
    clean_hidden_layers : int
        Hidden layers of the clean classifier (>= 0).
    confidence : float
        Δ of the VC bound, in (0, 1).
    C : float
        The hidden constant of the Ω/O rows (> 0).

    Returns
    -------
    SizeTable
    """
    n_points = require_int_at_least("n_points", n_points, 1)
    dim = require_int_at_least("dim", dim, 1)
    eps = require_open_interval("eps", eps, 0.0, 0.5)
    delta = require_open_interval("delta", delta, 0.0, eps)
    confidence = require_open_interval("confidence", confidence, 0.0, 1.0)
    C = require_positive("C", C)
    clean = clean_classifier_size(dim, clean_hidden_layers)
    construction = construction_parameter_count(
        n_points,
        dim,
        clean_params=clean,
        norm=norm,
        clean_last_params=dim + 1,  # last layer: d weights + 1 bias (one output)
        clean_depth=clean_hidden_layers + 1,
    )
    memorization_only = construction_parameter_count(n_points, dim, norm=norm)
    mem = memorization_lower_bound(n_points=n_points, dim=dim, C=C)
    rob = robust_generalization_lower_bound(dim=dim, eps=eps, C=C)
    grid = grid_vc_lower_bound(dim=dim, eps=eps)
    units, params = construction_layers(n_points, dim, norm)
    vc_up = vc_dimension_upper_from_layers(units, params)
    gap_up = vc_generalization_gap(n=n_points, vc=vc_up.value, confidence=confidence)
    gap_low = vc_generalization_gap(n=n_points, vc=n_points, confidence=confidence)
    p1_gap = clean_gap_sqrt_complexity(n=n_points, complexity=construction, C=C)
    rows = (
        SizeRow(
            "clean_size",
            "clean classifier (dense, width d)",
            float(clean),
            f"{clean_hidden_layers}·d(d+1) + d + 1",
            "[P1] §3 assumption (width O(d), constant depth); our stated choice",
            True,
        ),
        SizeRow(
            "construction_size",
            "robust memorization (T1 construction + f_clean)",
            float(construction),
            "robmem.theory.counting.construction_parameter_count",
            "SPEC T1; [P1] Thm 3.3 / [C22] Thm 2.2 (O~(Nd))",
            True,
        ),
        SizeRow(
            "memorization_size",
            "  of which memorization part",
            float(memorization_only),
            "robmem.theory.counting.construction_parameter_count (no f_clean)",
            "SPEC T1",
            True,
        ),
        _bound_row("memorization_lower", "memorization lower bound", mem, "C·sqrt(N d)"),
        _bound_row(
            "robust_generalization_lower",
            "robust generalization lower bound",
            rob,
            "C·(2ε)^(-(d-1)/6)",
            log10=True,
        ),
        _bound_row(
            "grid_vc_lower",
            "grid instance VC lower bound",
            grid,
            "0.05·K^(d-1), K = floor(1/(2ε))",
            log10=True,
        ),
        _bound_row(
            "construction_vc_upper",
            "VC upper bound of the memorization net",
            vc_up,
            "L + L̄ W log2(4 e p R log2(2 e p R))",
        ),
        _bound_row(
            "vc_gap_at_n",
            "VC generalization gap at n = N",
            gap_up,
            "sqrt(2 log Π(N)/N) + sqrt(log(1/Δ)/(2N))",
        ),
        _bound_row(
            "vc_gap_lower_vc",
            "same with VC = N (shattering)",
            gap_low,
            "VC >= N for any class that robustly memorizes every labelling",
            source_prefix="[P1] §6; ",
        ),
        _bound_row(
            "p1_clean_gap",
            "[P1] sqrt(complexity/N), complexity = construction size",
            p1_gap,
            "C·sqrt(size/N)",
        ),
    )
    return SizeTable(n_points=n_points, dim=dim, eps=eps, delta=delta, rows=rows)


def format_size_table(table: SizeTable) -> str:
    """Plain-text rendering of a :class:`SizeTable` (used by ``robmem sizes``)."""
    head = (
        f"T2 size table: N={table.n_points}, d={table.dim}, eps={table.eps:g}, "
        f"delta={table.delta:g}"
    )
    width = max(len(r.label) for r in table.rows)
    lines = [head, f"{'quantity':<{width}}  {'value':>12}  kind        formula"]
    for r in table.rows:
        if math.isfinite(r.value):
            value = f"{r.value:12.4g}"
        else:
            value = (
                f"{'~1e' + format(r.log10_value, '.0f'):>12}" if r.log10_value else f"{'inf':>12}"
            )
        kind = "certified " if r.certified else "order (C) "
        lines.append(f"{r.label:<{width}}  {value}  {kind}  {r.formula}")
    vac = table.as_dict()
    lines.append(
        "VC bound vacuous at n = N: "
        + ("yes" if vac["vc_gap_at_n"] >= 1 and vac["vc_gap_lower_vc"] >= 1 else "no")
    )
    return "\n".join(lines)
