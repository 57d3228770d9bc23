"""Certification results, and the certifier of any ReLUNetwork: IBP, refutation, then MILP.

Per ball: CERTIFIED, REFUTED (with a counterexample that ``forward`` misclassifies) or UNKNOWN.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from robmem.theory.intervals import (
    MARGIN_TOLERANCE,
    _labels_for,
    ball_box,
    clean_margin_lower,
    float_margin_lower,
    margins,
    project_to_ball,
)
from robmem.theory.milp import (
    MILP_MARGIN_TOLERANCE,
    MILP_MAX_RELUS,
    MILP_TIME_LIMIT_S,
    milp_min_margin,
)
from robmem.theory.network import ReLUNetwork
from robmem.theory.separation import check_norm, check_points_labels


class Status(str, Enum):
    """Outcome for one ball."""

    CERTIFIED = "certified"
    REFUTED = "refuted"
    UNKNOWN = "unknown"


@dataclass
class CertificationResult:
    """Per-point certification outcome.

    Attributes
    ----------
    status : list of Status
    margin_lower : (N,) array
        Sound lower bound on the margin of the float64 forward pass over the float64
        points of the ball ∩ domain (−inf if none); float rounding is bounded, not assumed
        small (see :func:`~robmem.theory.intervals.forward_error_bound`).
    margin_found : (N,) array
        Smallest margin actually evaluated by ``forward`` at a candidate (an upper bound
        on the true minimum); ``inf`` where nothing was evaluated.
    counterexamples : dict[int, ndarray]
        For REFUTED points, an input in the ball ∩ domain with margin ≤ 0 under ``forward``.
    method : list of str
        Which method decided each point.
    """

    status: list[Status]
    margin_lower: np.ndarray
    margin_found: np.ndarray
    counterexamples: dict[int, np.ndarray] = field(default_factory=dict)
    method: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_certified(self) -> int:
        return sum(s is Status.CERTIFIED for s in self.status)

    @property
    def n_refuted(self) -> int:
        return sum(s is Status.REFUTED for s in self.status)

    @property
    def certified_fraction(self) -> float:
        return self.n_certified / max(len(self.status), 1)

    @property
    def worst_margin_lower(self) -> float:
        """Smallest certified margin lower bound over all points."""
        return float(np.min(self.margin_lower)) if self.margin_lower.size else float("nan")

    @property
    def worst_margin_found(self) -> float:
        """Smallest margin evaluated at any candidate (upper bound on the true worst)."""
        return float(np.min(self.margin_found)) if self.margin_found.size else float("nan")


def _check_radius(radius: float) -> float:
    if not (np.isfinite(radius) and radius >= 0):
        raise ValueError(f"radius: must be a finite number >= 0, got {radius}")
    return float(radius)


def _refute(
    net: ReLUNetwork,
    candidates: list[np.ndarray],
    owners: list[int],
    labels: np.ndarray,
    binary: bool,
    result: CertificationResult,
) -> None:
    """Evaluate candidates with forward(); record counterexamples (margin ≤ 0)."""
    if not candidates:
        return
    xs = np.vstack(candidates)
    own = np.concatenate([[o] * c.shape[0] for o, c in zip(owners, candidates, strict=True)])
    m = margins(net.forward(xs), labels[own], binary)
    for k in np.argsort(m):
        i = int(own[k])
        if m[k] < result.margin_found[i]:
            result.margin_found[i] = m[k]
        if m[k] <= 0 and i not in result.counterexamples:
            result.counterexamples[i] = xs[k].copy()
            result.status[i] = Status.REFUTED


def certify_network(
    net: ReLUNetwork,
    points: np.ndarray,
    labels: np.ndarray,
    radius: float,
    norm: str = "inf",
    *,
    domain: tuple[float, float] | None = (0.0, 1.0),
    use_milp: bool = True,
    time_limit: float = MILP_TIME_LIMIT_S,
) -> CertificationResult:
    """Certify an arbitrary ReLUNetwork: IBP filter, candidate refutation, then MILP.

    ℓ∞ is complete when the MILP runs (net with ≤ MILP_MAX_RELUS ReLUs) and solves to
    optimality. ℓ2 balls are relaxed to their box: sound, not complete; except that a
    linear classifier (one layer) also gets its closed-form ℓ2 margin
    (:func:`~robmem.theory.intervals.clean_margin_lower`, exact up to its rounding
    allowance; method ``"linear"``).

    What ``margin_lower`` bounds: the margin of the float64 forward pass at every float64
    point of the ball ∩ domain. The IBP bound is rigorous for the exact-arithmetic network
    (its own rounding included, :func:`~robmem.theory.intervals.ibp_margin_lower`) and
    :func:`~robmem.theory.intervals.margin_error_bound` (a-priori bound on the forward
    pass's rounding over the box) is subtracted from it and from the MILP value. The MILP
    value itself rests on HiGHS' tolerances, which MILP_MARGIN_TOLERANCE absorbs (see
    :mod:`robmem.theory.milp`): that part is a documented tolerance, not a proof.
    """
    start = time.perf_counter()
    x, y = check_points_labels(points, labels)
    key = check_norm(norm)
    radius = _check_radius(radius)
    y_enc, binary = _labels_for(net.output_dim, y)
    if domain is not None and (x.min() < domain[0] or x.max() > domain[1]):
        raise ValueError(f"points: must lie in the domain {domain} (or pass domain=None)")
    n = x.shape[0]
    lo, hi = ball_box(x, radius, domain)
    # the exact network's IBP bound, less the float64 forward pass's rounding (err)
    lower, err = float_margin_lower(net, lo, hi, y_enc, binary)
    method = "ibp"
    if net.depth == 1 and key == "2":
        # a linear classifier's margin over the ℓ2 ball is closed-form (SPEC T3)
        linear = clean_margin_lower(net, x, y_enc, radius, key, binary, domain) - err
        lower, method = np.maximum(lower, linear), "linear"
    res = CertificationResult(
        [Status.UNKNOWN] * n, lower.copy(), margins(net.forward(x), y_enc, binary), {}, [method] * n
    )
    cand, owners = [], []
    for i in range(n):
        if lower[i] > MARGIN_TOLERANCE:
            res.status[i] = Status.CERTIFIED
            continue
        corners = np.vstack([x[i], lo[i], hi[i]])
        cand.append(project_to_ball(corners, x[i], radius, key, domain))
        owners.append(i)
    _refute(net, cand, owners, y_enc, binary, res)
    if use_milp and net.relu_count <= MILP_MAX_RELUS:
        for i in range(n):
            if res.status[i] is not Status.UNKNOWN:
                continue
            value, arg, optimal = milp_min_margin(
                net, lo[i], hi[i], int(y_enc[i]), binary, time_limit=time_limit
            )
            res.method[i] = "milp"
            value -= err[i]  # the MILP models the exact network
            res.margin_lower[i] = max(res.margin_lower[i], value - MILP_MARGIN_TOLERANCE)
            if value > MILP_MARGIN_TOLERANCE:
                res.status[i] = Status.CERTIFIED
            elif arg is not None:
                inside = project_to_ball(arg, x[i], radius, key, domain)
                _refute(net, [inside], [i], y_enc, binary, res)
    res.seconds = time.perf_counter() - start
    return res


@dataclass
class OutsideCertificate:
    """Property (b): f̂ = f_clean outside ∪_i B(x_i, β_i) (SPEC T1 (b)).

    ``holds`` combines the block check (every bump vanishes for r ≥ β_i, i.e. α_i ≤ β_i,
    with the piecewise proof in :mod:`robmem.theory.proofs`; the gate with g = 0 is the identity
    σ(f) − σ(−f) = f) and falsification checks of the lowered network: agreement with the
    independent block-level evaluator, and f̂ − f_clean = 0 at sampled outside points.
    """

    holds: bool
    blocks_ok: bool
    bad_centres: np.ndarray
    lowering_max_error: float
    outside_max_difference: float
    n_outside_samples: int
    counterexample: np.ndarray | None
