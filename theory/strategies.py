"""Public hypothesis strategies for robust-memorization property tests (SPEC T5).

Users write their own property tests with these, e.g.::

    from hypothesis import given
    from theory.strategies import datasets_with_radius

    @given(datasets_with_radius())
    def test_mine(case):
        data, delta = case
        ...

* :func:`separated_datasets` – labelled point sets in [0, 1]^d with a guaranteed ℓ∞ (and
  ℓ2) separation, *constructed* (grid points plus a bounded jitter), never rejection-heavy.
* :func:`admissible_radii` – radii δ with 0 < δ < R/2.
* :func:`clean_relu_networks` – small ReLU classifiers (:class:`~theory.network.ReLUNetwork`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from theory.network import ReLUNetwork
from theory.separation import Separation, opposite_label_separation

#: Fraction of R/2 that radii stay below, so that δ < R/2 holds with float margin.
RADIUS_CEILING = 0.98
#: Smallest radius as a fraction of R/2 (δ > 0 strictly).
RADIUS_FLOOR = 0.01


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
) -> SeparatedData:
    """Labelled data in [0, 1]^d, every pair ≥ ``min_separation`` apart (ℓ∞ and ℓ2).

    Parameters
    ----------
    n_points, dim : strategies for N and d (defaults: N ∈ [1, 8], d ∈ [1, 4])
    min_separation : float in (0, 0.5]
    n_classes : 2 gives labels ±1; more gives class indices 0..C−1
    norm : {"inf", "2"} norm of the reported ``separation``
    """
    if not 0 < min_separation <= 0.5:
        raise ValueError(f"min_separation: must be in (0, 0.5], got {min_separation}")
    k = int(np.floor(1.0 / (2.0 * min_separation)))
    d = draw(dim if dim is not None else st.integers(1, 4))
    capacity = (k + 1) ** d
    n = draw(n_points if n_points is not None else st.integers(1, 8))
    n = min(n, capacity)
    cells = draw(st.lists(st.tuples(*[st.integers(0, k)] * d), min_size=n, max_size=n, unique=True))
    jitter = draw(
        st.lists(
            st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False),
            min_size=n * d,
            max_size=n * d,
        )
    )
    x = np.array(cells, dtype=np.float64) / k + np.array(jitter).reshape(n, d) / (4.0 * k)
    x = np.clip(x, 0.0, 1.0)
    if n_classes == 2:
        y = np.array(draw(st.lists(st.sampled_from([-1, 1]), min_size=n, max_size=n)))
    else:
        y = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    sep = opposite_label_separation(x, y.astype(np.int64), norm)
    return SeparatedData(x, y.astype(np.int64), sep, min_separation)


def admissible_radii(separation: float) -> st.SearchStrategy[float]:
    """Radii δ with 0 < δ < R/2 (δ ∈ [RADIUS_FLOOR·R/2, RADIUS_CEILING·R/2])."""
    if not separation > 0:
        raise ValueError(f"separation: must be > 0, got {separation}")
    half = min(separation, 1e6) / 2.0
    return st.floats(RADIUS_FLOOR * half, RADIUS_CEILING * half, allow_nan=False)


@st.composite
def datasets_with_radius(
    draw: st.DrawFn,
    n_points: st.SearchStrategy[int] | None = None,
    dim: st.SearchStrategy[int] | None = None,
    min_separation: float = 0.2,
    n_classes: int = 2,
    norm: str = "inf",
) -> tuple[SeparatedData, float]:
    """A :func:`separated_datasets` draw and an admissible radius for it (δ < R/2).

    When all labels coincide (R = ∞), δ is drawn below ``min_separation``/2.
    """
    data = draw(separated_datasets(n_points, dim, min_separation, n_classes, norm))
    r = data.separation.distance
    r = min_separation if not np.isfinite(r) else r
    return data, draw(admissible_radii(r))


@st.composite
def clean_relu_networks(
    draw: st.DrawFn,
    input_dim: int,
    output_dim: int = 1,
    max_hidden_layers: int = 2,
    max_width: int = 4,
    weight_bound: float = 2.0,
) -> ReLUNetwork:
    """Small ReLU classifiers R^input_dim → R^output_dim with weights in [−bound, bound]."""
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
    return ReLUNetwork(ws, bs)
