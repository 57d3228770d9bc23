"""Public hypothesis strategies for robust-memorization property tests (SPEC T5).

Users write their own property tests with these, e.g.::

    from hypothesis import given
    from robmem.theory.strategies import datasets_with_radius

    @given(datasets_with_radius())
    def test_mine(case):
        data, delta = case
        ...

* :func:`separated_datasets` – labelled point sets in [0, 1]^d with a guaranteed ℓ∞ (and
  ℓ2) separation, *constructed* (grid points plus a bounded jitter), never rejection-heavy;
  at least two labels by default, and often a pair of opposite labels at exactly the
  guaranteed distance.
* :func:`admissible_radii` – radii δ with 0 < δ < R/2, reaching up to the largest δ the
  construction can realise in float64 (:data:`~robmem.theory.construction.FLOAT_RAMP_FLOOR`).
* :func:`clean_relu_networks` – small ReLU classifiers (:class:`~theory.network.ReLUNetwork`),
  non-constant on [0, 1]^d by default.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from robmem.theory.construction import FLOAT_RAMP_FLOOR
from robmem.theory.network import ReLUNetwork
from robmem.theory.separation import Separation, opposite_label_separation

#: Smallest radius as a fraction of R/2 (δ > 0 strictly).
RADIUS_FLOOR = 0.01
#: Probe points per input dimension for the non-constancy check of clean networks.
_PROBES_PER_DIM = 4


@dataclass(frozen=True)
class SeparatedData:
    """Points (N, d) in [0, 1]^d, labels (N,), and their exact opposite-label separation."""

    points: np.ndarray
    labels: np.ndarray
    separation: Separation
    min_separation: float


@st.composite
def separated_datasets(
    draw: st.DrawFn,
    n_points: st.SearchStrategy[int] | None = None,
    dim: st.SearchStrategy[int] | None = None,
    min_separation: float = 0.2,
    n_classes: int = 2,
    norm: str = "inf",
    min_labels: int = 2,
) -> SeparatedData:
    """Labelled data in [0, 1]^d, every pair ≥ ``min_separation`` apart (ℓ∞ and ℓ2).

    Points are grid cells c/k (k = ⌊1/(2·min_separation)⌋) plus a jitter in [−1, 1]/(4k)
    per coordinate, so every pair is ≥ 1/(2k) ≥ ``min_separation`` apart. About half of
    the draws place points 0 and 1, with different labels, in neighbouring cells at exactly
    the guaranteed distance 1/(2k) in both norms (up to float rounding of the
    coordinates): the boundary case of the separation.

    Parameters
    ----------
    n_points, dim : strategies for N and d (defaults: N ∈ [2, 8], d ∈ [1, 4])
    min_separation : float in (0, 0.5]
    n_classes : 2 gives labels ±1; more gives class indices 0..C−1
    norm : {"inf", "2"} norm of the reported ``separation``
    min_labels : at least min(min_labels, N, n_classes) distinct labels are drawn
    """
    if not 0 < min_separation <= 0.5:
        raise ValueError(f"min_separation: must be in (0, 0.5], got {min_separation}")
    if n_classes < 2:
        raise ValueError(f"n_classes: must be >= 2, got {n_classes}")
    k = int(np.floor(1.0 / (2.0 * min_separation)))
    d = draw(dim if dim is not None else st.integers(1, 4))
    capacity = (k + 1) ** d
    n = draw(n_points if n_points is not None else st.integers(2, 8))
    n = min(n, capacity)
    values = [-1, 1] if n_classes == 2 else list(range(n_classes))
    need = min(min_labels, n, len(values))
    tight = need >= 2 and draw(st.booleans())
    cell_st = st.tuples(*[st.integers(0, k)] * d)
    cells = draw(st.lists(cell_st, min_size=n, max_size=n, unique=True))
    if tight:
        first = list(draw(st.tuples(st.integers(0, k - 1), *[st.integers(0, k)] * (d - 1))))
        pair = [tuple(first), tuple([first[0] + 1] + first[1:])]
        cells = pair + [c for c in cells if c not in pair][: n - 2]
    unit = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    jitter = np.array(draw(st.lists(unit, min_size=n * d, max_size=n * d))).reshape(n, d)
    if tight:
        # opposite extremes along axis 0, equal offsets elsewhere: distance exactly 1/(2k)
        jitter[0, 0], jitter[1, 0] = 1.0, -1.0
        jitter[1, 1:] = jitter[0, 1:]
    x = np.array(cells, dtype=np.float64) / k + jitter / (4.0 * k)
    x = np.clip(x, 0.0, 1.0)
    distinct = list(draw(st.permutations(values)))[:need]
    free = draw(st.lists(st.sampled_from(values), min_size=n - need, max_size=n - need))
    y = np.array(distinct + free, dtype=np.int64)
    if not tight:
        y = y[np.array(draw(st.permutations(range(n))), dtype=np.int64)]
    sep = opposite_label_separation(x, y, norm)
    return SeparatedData(x, y, sep, min_separation)


def largest_admissible_radius(separation: float) -> float:
    """The largest δ drawn for separation R: R/2 less the float64 floor of the bump ramp.

    :func:`robmem.theory.construction.build_construction` needs β − α = R − 2δ ≥
    ``FLOAT_RAMP_FLOOR``·max(1, β); this leaves twice that, so that rounding of δ or of R
    can never cross it.
    """
    return separation / 2.0 - FLOAT_RAMP_FLOOR * max(1.0, separation)


def admissible_radii(separation: float) -> st.SearchStrategy[float]:
    """Radii δ with 0 < δ < R/2, from RADIUS_FLOOR·R/2 up to :func:`largest_admissible_radius`.

    The upper end (within 2^-29 relative of R/2) is drawn explicitly in about a quarter of
    the draws, besides the whole range (whose ends hypothesis also favours).
    """
    if not separation > 0:
        raise ValueError(f"separation: must be > 0, got {separation}")
    r = min(separation, 1e6)
    lo, hi = RADIUS_FLOOR * r / 2.0, largest_admissible_radius(r)
    whole = st.floats(lo, hi, allow_nan=False)
    return st.one_of(whole, whole, whole, st.just(hi))


@st.composite
def datasets_with_radius(draw: st.DrawFn, **kwargs: Any) -> tuple[SeparatedData, float]:
    """A :func:`separated_datasets` draw (same keyword arguments) and an admissible radius δ.

    When all labels coincide (R = ∞, only with ``min_labels`` = 1 or N = 1), δ is drawn
    below ``min_separation``/2.
    """
    data = draw(separated_datasets(**kwargs))
    r = data.separation.distance
    r = data.min_separation if not np.isfinite(r) else r
    return data, draw(admissible_radii(r))


def _probe_points(input_dim: int) -> np.ndarray:
    """Corners of [0, 1]^d (up to 16), the centre and a fixed spread of interior points."""
    corners = list(itertools.islice(itertools.product([0.0, 1.0], repeat=input_dim), 16))
    rng = np.random.default_rng(0)
    inner = rng.random((_PROBES_PER_DIM * input_dim, input_dim))
    return np.vstack([np.array(corners), np.full((1, input_dim), 0.5), inner])


@st.composite
def clean_relu_networks(
    draw: st.DrawFn,
    input_dim: int,
    output_dim: int = 1,
    max_hidden_layers: int = 2,
    max_width: int = 4,
    weight_bound: float = 2.0,
    nonconstant: bool = True,
) -> ReLUNetwork:
    """Small ReLU classifiers R^input_dim → R^output_dim with weights in [−bound, bound].

    With ``nonconstant`` (default) every output takes at least two values on a fixed set
    of probe points of [0, 1]^d (draws that do not are rejected with ``assume``, so they
    never count as examples).
    """
    depth = draw(st.integers(0, max_hidden_layers)) + 1
    widths = [input_dim] + [draw(st.integers(1, max_width)) for _ in range(depth - 1)]
    widths.append(output_dim)
    elem = st.floats(-weight_bound, weight_bound, allow_nan=False, allow_infinity=False)
    ws, bs = [], []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        w = draw(st.lists(elem, min_size=fan_in * fan_out, max_size=fan_in * fan_out))
        b = draw(st.lists(elem, min_size=fan_out, max_size=fan_out))
        ws.append(np.array(w).reshape(fan_out, fan_in))
        bs.append(np.array(b))
    net = ReLUNetwork(ws, bs)
    if nonconstant:
        out = net.forward(_probe_points(input_dim))
        assume(bool(np.all(out.max(axis=0) > out.min(axis=0))))
    return net
