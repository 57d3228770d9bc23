"""Sound certification of robust memorization (SPEC T1 (a) and (b); notes §4).

``certify(net, points, labels, radius, norm)`` returns, per point, CERTIFIED (the prediction
is the label on the whole ball ∩ domain), REFUTED (with a counterexample input that
:meth:`ReLUNetwork.forward` evaluates to a wrong prediction) or UNKNOWN, plus margins.

Methods
-------
* **structural** (for a :class:`~theory.construction.RobustMemorizer`): interval arithmetic
  on the typed blocks. For one ℓ∞ distance over a box the range is exact:
  min_{x∈box} ‖x − c‖_∞ = max_k dist(c_k, [lo_k, hi_k]) and
  max_{x∈box} ‖x − c‖_∞ = max_k max(|lo_k − c_k|, |hi_k − c_k|); the trapezoid is monotone,
  so each bump's range is exact. Opposite-label centres are pruned with the ℓ∞ partial-max
  engine of :mod:`theory.separation`. The parameters are read from the blocks, so broken
  blocks are caught.
* **ibp**: interval bound propagation, the fast sound filter for any ReLUNetwork
  (notes §4: l' = W⁺l + W⁻u + b).
* **milp**: the complete big-M MILP (Tjeng, Xiao, Tedrake, ICLR 2019) with IBP bounds,
  solved by scipy's HiGHS; ℓ∞ boxes only (an ℓ2 ball is relaxed to its box: certificates
  stay sound, counterexamples outside the ball are discarded).

Margins: binary y·f(x); multi-class f_y(x) − max_{c≠y} f_c(x). A point is certified only
when the margin lower bound exceeds :data:`MARGIN_TOLERANCE`, which absorbs float64 rounding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import scipy.sparse as sp

from theory.network import ReLUNetwork
from theory.separation import check_norm, check_points_labels, linf_close_pairs

logger = logging.getLogger(__name__)

#: Certified only if the margin lower bound exceeds this (float64 rounding of O(1) sums).
MARGIN_TOLERANCE = 1e-9
#: Relative slack added to the pruning thresholds so that rounding never prunes a pair
#: whose bump could be non-zero (pairs inside the slack get the exact box computation).
PRUNE_SLACK = 1e-12
#: The MILP is attempted only on networks with at most this many ReLUs.
MILP_MAX_RELUS = 2000
#: A MILP minimum certifies only above this. What it absorbs: HiGHS stops once its
#: incumbent is within mip_abs_gap = 1e-6 (or mip_rel_gap = 1e-4 relative, i.e. ≤ 1e-9 at
#: values near this threshold) of its dual bound, so its incumbent may exceed the exact
#: minimum by that gap (1e-4·|value|: far more than this far from 0); the value used is
#: therefore the dual bound (see milp_min_margin). Its feasibility/integrality tolerances
#: (1e-7/1e-6) only *relax*
#: the MILP, which can lower the value (a conservative error: with bump ramps
#: 1/(β − α) ≳ 1e6 whole bumps are lost) but not raise it.
MILP_MARGIN_TOLERANCE = 1e-5
#: Wall-clock limit per MILP solve, seconds.
MILP_TIME_LIMIT_S = 60.0
#: Opposite centres per point whose nearest ball points become refutation candidates.
CANDIDATES_PER_POINT = 8
#: Above this many (ReLU units × points), structural certification does not evaluate the
#: lowered network at every centre (that is O(N² d) work for the full construction); it
#: evaluates refutation candidates only.
FORWARD_ALL_BUDGET = 2 * 10**8


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
        Sound lower bound on the margin over the ball ∩ domain (−inf if none).
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


# ---------------------------------------------------------------- margins and balls


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


# ---------------------------------------------------------------- IBP


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
    (both by minimising over g ≥ 0; the gate pieces are proved in theory.proofs).
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


# ---------------------------------------------------------------- MILP


def milp_min_margin(
    net: ReLUNetwork,
    lo: np.ndarray,
    hi: np.ndarray,
    label: int,
    binary: bool,
    *,
    time_limit: float = MILP_TIME_LIMIT_S,
) -> tuple[float, np.ndarray | None, bool]:
    """Exact min of the margin over the box [lo, hi] by a big-M MILP (notes §4).

    Returns ``(value, argmin_x, optimal)``. ``value`` is HiGHS' dual bound, a sound lower
    bound on the minimum: with ``optimal`` within the solver's gap (mip_abs_gap 1e-6 or
    mip_rel_gap 1e-4 relative) of the best input found; False on a time-out. ``argmin_x``
    is the best input found (or None).
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    lo = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1)
    _, _, pre = interval_bounds(net, lo[None, :], hi[None, :], keep_hidden=True)
    ws = [w.toarray() if sp.issparse(w) else np.asarray(w) for w in net.weights]
    # variable layout: x, then per hidden layer z (all units), then binaries (unstable units)
    offsets = [0]
    sizes = [net.input_dim] + [w.shape[0] for w in ws[:-1]]
    for s in sizes:
        offsets.append(offsets[-1] + s)
    n_cont = offsets[-1]
    unstable = [np.flatnonzero((l[0] < 0) & (u[0] > 0)) for l, u in pre]
    bin_offsets = [n_cont]
    for un in unstable:
        bin_offsets.append(bin_offsets[-1] + un.size)
    n_var = bin_offsets[-1]
    var_lo = np.zeros(n_var)
    var_hi = np.ones(n_var)
    var_lo[: net.input_dim] = lo
    var_hi[: net.input_dim] = hi
    rows, cols, vals, c_lo, c_hi = [], [], [], [], []
    row = 0

    def add(coef_cols: np.ndarray, coef_vals: np.ndarray, low: float, high: float) -> None:
        nonlocal row
        rows.extend([row] * len(coef_cols))
        cols.extend(coef_cols.tolist())
        vals.extend(coef_vals.tolist())
        c_lo.append(low)
        c_hi.append(high)
        row += 1

    for layer, (l_pre, u_pre) in enumerate(pre):
        l_pre, u_pre = l_pre[0], u_pre[0]
        w, b = ws[layer], net.biases[layer]
        prev = np.arange(offsets[layer], offsets[layer + 1])
        zcols = np.arange(offsets[layer + 1], offsets[layer + 2])
        var_hi[zcols] = np.maximum(u_pre, 0)
        pos_of_unstable = {int(k): t for t, k in enumerate(unstable[layer])}
        for k in range(w.shape[0]):
            nz = np.flatnonzero(w[k])
            if u_pre[k] <= 0:
                var_hi[zcols[k]] = 0.0
                continue
            if l_pre[k] >= 0:
                # z = w·prev + b
                add(
                    np.concatenate([[zcols[k]], prev[nz]]),
                    np.concatenate([[1.0], -w[k, nz]]),
                    b[k],
                    b[k],
                )
                continue
            a = bin_offsets[layer] + pos_of_unstable[k]
            # z ≥ w·prev + b
            add(
                np.concatenate([[zcols[k]], prev[nz]]),
                np.concatenate([[1.0], -w[k, nz]]),
                b[k],
                np.inf,
            )
            # z ≤ w·prev + b − l(1 − a)
            add(
                np.concatenate([[zcols[k]], prev[nz], [a]]),
                np.concatenate([[1.0], -w[k, nz], [-l_pre[k]]]),
                -np.inf,
                b[k] - l_pre[k],
            )
            # z ≤ u a
            add(np.array([zcols[k], a]), np.array([1.0, -u_pre[k]]), -np.inf, 0.0)
    w_last, b_last = ws[-1], net.biases[-1]
    last = np.arange(offsets[-2], offsets[-1])
    integrality = np.zeros(n_var)
    integrality[n_cont:] = 1
    a_mat = sp.csr_matrix((vals, (rows, cols)), shape=(row, n_var)) if row else None
    constraints = [LinearConstraint(a_mat, c_lo, c_hi)] if a_mat is not None else []
    targets = [None] if binary else [c for c in range(w_last.shape[0]) if c != label]
    best_val, best_x, all_optimal = np.inf, None, True
    for c in targets:
        if binary:
            sign = 1.0 if label == 1 else -1.0
            v, const = sign * w_last[0], sign * b_last[0]
        else:
            v, const = w_last[label] - w_last[c], b_last[label] - b_last[c]
        obj = np.zeros(n_var)
        obj[last] = v
        if net.depth == 1:
            obj[: net.input_dim] = v
        res = milp(
            obj,
            integrality=integrality,
            bounds=Bounds(var_lo, var_hi),
            constraints=constraints,
            options={"time_limit": time_limit},
        )
        if res.x is None:
            all_optimal = False
            bound = getattr(res, "mip_dual_bound", None)
            value = -np.inf if bound is None or not np.isfinite(bound) else bound + const
            best_val = min(best_val, value)
            continue
        optimal = res.status == 0
        all_optimal &= optimal
        if optimal:
            # "optimal" means within HiGHS' gap (mip_rel_gap = 1e-4 of |fun|), so fun may
            # overstate the minimum; its dual bound is the sound value (None for a pure LP,
            # i.e. no unstable unit, whose fun is exact)
            bound = res.mip_dual_bound
            lower = res.fun if bound is None or not np.isfinite(bound) else min(res.fun, bound)
        else:
            lower = getattr(res, "mip_dual_bound", -np.inf)
        value = lower + const
        if value < best_val or best_x is None:
            best_val = min(best_val, value)
            best_x = np.clip(res.x[: net.input_dim], lo, hi)
    return float(best_val), best_x, bool(all_optimal)


# ---------------------------------------------------------------- generic certification


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
    optimality. ℓ2 balls are relaxed to their box: sound, not complete.
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
    lower = ibp_margin_lower(net, lo, hi, y_enc, binary)
    res = CertificationResult(
        [Status.UNKNOWN] * n, lower.copy(), margins(net.forward(x), y_enc, binary), {}, ["ibp"] * n
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
            res.margin_lower[i] = max(res.margin_lower[i], value - MILP_MARGIN_TOLERANCE)
            if value > MILP_MARGIN_TOLERANCE:
                res.status[i] = Status.CERTIFIED
            elif arg is not None:
                inside = project_to_ball(arg, x[i], radius, key, domain)
                _refute(net, [inside], [i], y_enc, binary, res)
    res.seconds = time.perf_counter() - start
    return res


# ---------------------------------------------------------------- structural certification


def _own_centre_index(model: object, x: np.ndarray, y_enc: np.ndarray) -> np.ndarray:
    """Index of a centre equal to each point (any label), or −1."""
    centres = model.distance.centres
    table = {centres[j].tobytes(): j for j in range(centres.shape[0] - 1, -1, -1)}
    return np.array([table.get(x[i].tobytes(), -1) for i in range(x.shape[0])], dtype=np.int64)


def _bump_range(r_lo: np.ndarray, r_hi: np.ndarray, alpha: np.ndarray, beta: np.ndarray):
    """Exact range [g(r_hi), g(r_lo)] of the (monotone non-increasing) trapezoid."""
    from theory.construction import trapezoid

    return trapezoid(r_hi, alpha, beta), trapezoid(r_lo, alpha, beta)


def certify_construction(
    model: object,
    points: np.ndarray,
    labels: np.ndarray,
    radius: float,
    norm: str = "inf",
    *,
    domain: tuple[float, float] | None | str = "model",
    use_milp: bool = False,
) -> CertificationResult:
    """Structural certificate of (a) sign f̂ = y on B_p(x, δ) ∩ domain, for a RobustMemorizer.

    Statement checked per point p with label y (SPEC T1 (a); notes §3.4 proof obligation):
    with S_c = Σ_{centres j of class c} h_j and g = Σ_j h_j, f̂ = S (signed) + gate, and
    margin ≥ S_y,lo − max_{c≠y} S_c,hi − (gate slack), where each h_j's range over the box
    is exact (monotone trapezoid of an exact ℓ∞ distance range), same-label bumps other
    than p's own are bounded below by 0, and opposite-label centres with
    ‖p − c_j‖_∞ ≥ max(α_j, β_j) + δ are provably inactive. When f_clean is certified on
    the ball with margin Δ and the remaining opposite bumps sum to at most ε, the gate
    argument gives margin ≥ (Δ − k·M·ε)·min(1, 1/(kM)) − ε (k = 1 binary, 2 multi-class;
    :func:`gate_factor`). Uncertified points get refutation candidates (the point, the
    ball point farthest from its own centre, the nearest ball points to active opposite
    centres), evaluated by the lowered network; ``use_milp`` adds the complete MILP on
    small lowered networks (ℓ∞).

    Assumptions: centres and points in the domain; for the sawtooth kind, domain ⊂ [0, 1]
    (Yarotsky's bound holds on [0, 1]). Bounds are exact up to float64 rounding, absorbed
    by :data:`MARGIN_TOLERANCE`.
    """
    from theory.construction import RobustMemorizer

    if not isinstance(model, RobustMemorizer):
        raise TypeError(f"model: expected RobustMemorizer, got {type(model).__name__}")
    start = time.perf_counter()
    x, y = check_points_labels(points, labels)
    key = check_norm(norm)
    radius = _check_radius(radius)
    if x.shape[1] != model.dim:
        raise ValueError(f"points: dimension must be {model.dim}, got {x.shape[1]}")
    dom = model.domain if domain == "model" else domain
    if dom is not None and (x.min() < dom[0] or x.max() > dom[1]):
        raise ValueError(f"points: must lie in the domain {dom}")
    out = model.output
    if out.binary:
        vals = set(np.unique(y).tolist())
        if not vals <= {-1, 1}:
            raise ValueError(f"labels: binary construction needs labels ±1, got {sorted(vals)}")
        y_enc = (y == 1).astype(np.int64)
    else:
        if y.min() < 0 or y.max() >= out.n_classes:
            raise ValueError(f"labels: class indices must be in [0, {out.n_classes})")
        y_enc = y
    saw = model.distance.kind == "l2-sawtooth"
    if saw and key != "2":
        raise ValueError("norm: a sawtooth (ℓ2) construction can only be certified for norm='2'")
    if saw and (dom is None or dom[0] < 0 or dom[1] > 1):
        raise ValueError("domain: sawtooth certificates need a domain inside [0, 1]")
    net = model.network()
    n = x.shape[0]
    if model.n_centres == 0:
        # f̂ = f_clean exactly (see construction.lower): certify the clean network
        res = certify_network(net, x, y, radius, key, domain=dom, use_milp=use_milp)
        exact = clean_margin_lower(net, x, y_enc, radius, key, out.binary, dom)
        for i in range(n):
            res.margin_lower[i] = max(res.margin_lower[i], exact[i])
            if res.status[i] is Status.UNKNOWN and exact[i] > MARGIN_TOLERANCE:
                res.status[i] = Status.CERTIFIED
        res.seconds = time.perf_counter() - start
        return res
    centres = model.distance.centres
    alpha, beta = model.bump.alpha, model.bump.beta
    c_lab = out.labels
    reach = np.maximum(alpha, beta)  # h_j = 0 once r_j ≥ max(α_j, β_j)
    own = _own_centre_index(model, x, y_enc)
    lo, hi = ball_box(x, radius, dom)
    n_cls = 2 if out.binary else out.n_classes

    # --- opposite-label (and other-class) centres that may be active on each ball
    if saw:
        thr_r = np.sqrt(np.maximum(reach, 0)) + radius
        q_idx, c_idx, _ = _l2_close_pairs(x, centres, thr_r * (1 + PRUNE_SLACK) + PRUNE_SLACK)
        keep = c_lab[c_idx] != y_enc[q_idx]
        q_idx, c_idx = q_idx[keep], c_idx[keep]
    else:
        thr = (reach + radius) * (1 + PRUNE_SLACK) + PRUNE_SLACK

        def opposite(rows: np.ndarray) -> np.ndarray:
            return c_lab[None, :] != y_enc[rows, None]

        q_idx, c_idx, _ = linf_close_pairs(x, centres, thr, opposite)
    # exact upper bound on each surviving opposite bump over the ball
    if saw:
        dist = np.linalg.norm(x[q_idx] - centres[c_idx], axis=1)
        s_lo = np.maximum(dist - radius, 0.0) ** 2
        _, h_hi = _bump_range(s_lo, s_lo, alpha[c_idx], beta[c_idx])
    else:
        gap = np.maximum(np.maximum(lo[q_idx] - centres[c_idx], centres[c_idx] - hi[q_idx]), 0)
        r_lo = gap.max(axis=1)
        _, h_hi = _bump_range(r_lo, r_lo, alpha[c_idx], beta[c_idx])
    s_other = np.zeros((n, n_cls))
    np.add.at(s_other, (q_idx, c_lab[c_idx]), h_hi)
    # --- own centre lower bound
    s_own = np.zeros(n)
    has_own = (own >= 0) & (c_lab[np.maximum(own, 0)] == y_enc)
    # points that are not centres: every same-label centre j with ‖p − c_j‖ < reach_j can
    # contribute g_j(max distance over the ball) > 0 (all bumps are ≥ 0, so any subset of
    # same-label terms is a valid lower bound)
    rest = np.flatnonzero(~has_own)
    q_own, j_own = has_own.nonzero()[0], own[has_own]
    if rest.size:
        if saw:
            qq, jj, _ = _l2_close_pairs(x[rest], centres, np.sqrt(np.maximum(reach, 0)))
        else:

            def same(rows: np.ndarray) -> np.ndarray:
                return c_lab[None, :] == y_enc[rest][rows, None]

            qq, jj, _ = linf_close_pairs(x[rest], centres, reach, same)
        keep = c_lab[jj] == y_enc[rest[qq]]
        q_own = np.concatenate([q_own, rest[qq[keep]]])
        j_own = np.concatenate([j_own, jj[keep]])
    if j_own.size:
        if saw:
            from theory.gadgets import sawtooth_error_bound

            dist = np.linalg.norm(x[q_own] - centres[j_own], axis=1)
            s_hi = (dist + radius) ** 2 + model.dim * sawtooth_error_bound(model.distance.teeth)
            lower_h = _bump_range(s_hi, s_hi, alpha[j_own], beta[j_own])[0]
        else:
            far = np.maximum(np.abs(lo[q_own] - centres[j_own]), np.abs(hi[q_own] - centres[j_own]))
            r_hi = far.max(axis=1)
            lower_h = _bump_range(r_hi, r_hi, alpha[j_own], beta[j_own])[0]
        np.add.at(s_own, q_own, np.maximum(lower_h, 0.0))
    s_other[np.arange(n), y_enc] = 0.0
    worst_other = s_other.max(axis=1)
    bound = s_own - worst_other
    if model.gate is not None:
        clean = model.gate.clean
        m_scale = model.gate.scale
        f_lo, f_hi = interval_bounds(clean, lo, hi)
        f_abs = np.maximum(np.abs(f_lo), np.abs(f_hi)).max(axis=1)
        slack = np.maximum(0.0, f_abs - m_scale * s_own)
        bound = bound - (slack if out.binary else 2 * slack)
        clean_m = clean_margin_lower(clean, x, y_enc, radius, key, out.binary, dom)
        factor = gate_factor(m_scale, out.binary)
        # opposite bumps add at most eps in total; with Δ the clean margin the gate gives
        # margin ≥ (Δ − k·M·eps)·factor − eps (k = 1 binary, 2 multi-class; see gate_factor)
        eps = s_other.sum(axis=1)
        k = 1.0 if out.binary else 2.0
        via_gate = (clean_m - k * m_scale * eps) * factor - eps
        gate_ok = clean_m > 0
        bound = np.where(gate_ok, np.maximum(bound, via_gate), bound)
    if net.relu_count * n <= FORWARD_ALL_BUDGET:
        found = margins(net.forward(x), y_enc, out.binary)
    else:
        found = np.full(n, np.inf)
    res = CertificationResult(
        [Status.UNKNOWN] * n, bound.astype(np.float64), found, {}, ["structural"] * n
    )
    cand, owners = [], []
    for i in range(n):
        if bound[i] > MARGIN_TOLERANCE:
            res.status[i] = Status.CERTIFIED
            continue
        pts = [x[i]]
        if own[i] >= 0:
            c = centres[own[i]]
            dev = np.maximum(np.abs(lo[i] - c), np.abs(hi[i] - c))
            far_corner = np.where(np.abs(lo[i] - c) > np.abs(hi[i] - c), lo[i], hi[i])
            one = x[i].copy()
            k = int(np.argmax(dev))
            one[k] = far_corner[k]
            pts += [far_corner, one]
        active = c_idx[q_idx == i]
        for jj in active[:CANDIDATES_PER_POINT]:
            pts.append(np.clip(centres[jj], lo[i], hi[i]))
            pts.append(
                x[i] + radius * (centres[jj] - x[i]) / max(np.abs(centres[jj] - x[i]).max(), 1e-300)
            )
            pts.append((x[i] + centres[jj]) / 2)
        cand.append(project_to_ball(np.vstack(pts), x[i], radius, key, dom))
        owners.append(i)
    _refute(net, cand, owners, y_enc, out.binary, res)
    if use_milp and key == "inf" and net.relu_count <= MILP_MAX_RELUS:
        small = ReLUNetwork(net.dense_weights(), net.biases)
        for i in range(n):
            if res.status[i] is not Status.UNKNOWN:
                continue
            value, arg, _ = milp_min_margin(small, lo[i], hi[i], int(y_enc[i]), out.binary)
            res.method[i] = "milp"
            res.margin_lower[i] = max(res.margin_lower[i], value - MILP_MARGIN_TOLERANCE)
            if value > MILP_MARGIN_TOLERANCE:
                res.status[i] = Status.CERTIFIED
            elif arg is not None:
                _refute(net, [arg[None, :]], [i], y_enc, out.binary, res)
    res.seconds = time.perf_counter() - start
    return res


def _l2_close_pairs(
    queries: np.ndarray, centres: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs with ‖q − c‖₂ < threshold_c (chunked matrix products, exact re-check)."""
    sq_c = (centres**2).sum(axis=1)
    rows, cols, dists = [], [], []
    for lo in range(0, queries.shape[0], 256):
        q = queries[lo : lo + 256]
        d2 = (q**2).sum(axis=1)[:, None] + sq_c[None, :] - 2 * q @ centres.T
        r, c = np.nonzero(d2 < (thresholds[None, :] ** 2) * (1 + 1e-9) + 1e-12)
        exact = np.linalg.norm(q[r] - centres[c], axis=1)
        ok = exact < thresholds[c]
        rows.append(r[ok] + lo)
        cols.append(c[ok])
        dists.append(exact[ok])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(dists)


def certify(
    net: object,
    points: np.ndarray,
    labels: np.ndarray,
    radius: float,
    norm: str = "inf",
    **kwargs: object,
) -> CertificationResult:
    """Certify robustness of ``net`` on every ball B_p(points_i, radius) (∩ domain).

    ``net`` is a RobustMemorizer (structural certificate, optional MILP fallback) or a
    ReLUNetwork (IBP then MILP). See :func:`certify_construction` and
    :func:`certify_network`.
    """
    from theory.construction import RobustMemorizer

    if isinstance(net, RobustMemorizer):
        return certify_construction(net, points, labels, radius, norm, **kwargs)
    if isinstance(net, ReLUNetwork):
        return certify_network(net, points, labels, radius, norm, **kwargs)
    raise TypeError(f"net: expected RobustMemorizer or ReLUNetwork, got {type(net).__name__}")


# ---------------------------------------------------------------- property (b)


@dataclass
class OutsideCertificate:
    """Property (b): f̂ = f_clean outside ∪_i B(x_i, β_i) (SPEC T1 (b)).

    ``holds`` combines the block check (every bump vanishes for r ≥ β_i, i.e. α_i ≤ β_i,
    with the piecewise proof in :mod:`theory.proofs`; the gate with g = 0 is the identity
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


def certify_outside_balls(
    model: object, *, n_samples: int = 256, seed: int = 0, tolerance: float = 1e-9
) -> OutsideCertificate:
    """Check property (b) of SPEC T1 for a RobustMemorizer (see :class:`OutsideCertificate`)."""
    from theory.construction import RobustMemorizer

    if not isinstance(model, RobustMemorizer):
        raise TypeError(f"model: expected RobustMemorizer, got {type(model).__name__}")
    if n_samples < 1:
        raise ValueError(f"n_samples: must be >= 1, got {n_samples}")
    if model.n_centres == 0:
        # lowering returns f_clean itself: (b) holds by construction
        return OutsideCertificate(True, True, np.zeros(0, dtype=np.int64), 0.0, 0.0, 0, None)
    rng = np.random.default_rng(seed)
    alpha, beta = model.bump.alpha, model.bump.beta
    bad = np.flatnonzero(~(alpha <= beta))
    centres = model.distance.centres
    d = model.dim
    lo, hi = model.domain if model.domain is not None else (centres.min(), centres.max())
    net = model.network()
    saw = model.distance.kind == "l2-sawtooth"
    radius = np.sqrt(np.maximum(beta, 0)) if saw else beta
    # targeted points: just outside each β-ball along a random axis, and inside the annulus
    pick = rng.choice(centres.shape[0], size=min(centres.shape[0], n_samples), replace=False)
    axis = rng.integers(0, d, size=pick.size)
    sign = np.where(rng.random(pick.size) < 0.5, -1.0, 1.0)
    targeted = centres[pick].copy()
    targeted[np.arange(pick.size), axis] += sign * radius[pick] * (1 + 1e-6)
    uniform = rng.uniform(lo, hi, size=(n_samples, d))
    samples = np.vstack([targeted, uniform])
    if model.domain is not None:
        # (b) is claimed on the input domain (the sawtooth's bound needs [0, 1]^d)
        samples = np.clip(samples, lo, hi)
    mid = centres[bad].copy()
    if bad.size:
        # inside the annulus β < r < α of a broken bump: a witness that (b) fails
        r_mid = (alpha[bad] + beta[bad]) / 2
        r_mid = np.sqrt(np.maximum(r_mid, 0)) if saw else r_mid
        mid[:, 0] += r_mid
        samples = np.vstack([samples, mid])
    lowered = net.forward(samples)
    blocks = model.forward_blocks(samples)
    lowering_err = float(np.abs(lowered - blocks).max())
    if saw:
        dist = np.sqrt(((samples[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    else:
        dist = model.distances(samples)
    outside = np.all(dist >= radius[None, :], axis=1)
    if model.gate is not None:
        reference = model.gate.clean.forward(samples)
    else:
        reference = np.zeros_like(lowered)
    diff = np.abs(lowered - reference).max(axis=1)
    diff_out = diff[outside]
    worst = float(diff_out.max()) if diff_out.size else 0.0
    counterexample = None
    if diff_out.size and worst > tolerance:
        counterexample = samples[outside][int(np.argmax(diff_out))]
    holds = bad.size == 0 and lowering_err <= tolerance and worst <= tolerance
    return OutsideCertificate(
        holds, bad.size == 0, bad, lowering_err, worst, int(outside.sum()), counterexample
    )
