"""Sound certification of robust memorization (SPEC T1 (a) and (b); notes §4).

``certify`` sends a RobustMemorizer to the structural certificate and any other ReLUNetwork
to :func:`~robmem.theory.certificates.certify_network`. The structural certificate is interval
arithmetic on the typed blocks: over a box, min ‖x − c‖_∞ = max_k dist(c_k, [lo_k, hi_k])
and max ‖x − c‖_∞ = max_k max(|lo_k − c_k|, |hi_k − c_k|) are exact and the trapezoid is
monotone, so each bump's range is exact; opposite-label centres are pruned by
:mod:`robmem.theory.separation`.

Float64: the structural bound is computed for the lowered network in exact arithmetic
(its float64 weights, real inputs) with rigorous allowances for the certifier's own
rounding (distances rounded outward by an ulp, bump values without cancellation, and
γ_{N+STRUCTURAL_DEPTH} of the magnitudes of the final expression); then the a-priori bound
:func:`~robmem.theory.intervals.margin_error_bound` on the float64 forward pass's rounding
over each ball's box is subtracted. So ``margin_lower`` bounds the margin that
:meth:`~robmem.theory.network.ReLUNetwork.forward` computes at any float64 point of the
ball, however steep the bump ramps (weights ~1/(β − α)).
"""

from __future__ import annotations

import time

import numpy as np

from robmem.theory.certificates import (
    CertificationResult,
    OutsideCertificate,
    Status,
    _check_radius,
    _refute,
    certify_network,
)
from robmem.theory.construction import RobustMemorizer
from robmem.theory.gadgets import sawtooth_error_bound
from robmem.theory.intervals import (
    MARGIN_TOLERANCE,
    ball_box,
    clean_margin_lower,
    gamma,
    gate_factor,
    interval_bounds,
    margin_error_bound,
    margins,
    project_to_ball,
)
from robmem.theory.milp import MILP_MARGIN_TOLERANCE, MILP_MAX_RELUS, milp_min_margin
from robmem.theory.network import ReLUNetwork
from robmem.theory.separation import check_norm, check_points_labels, linf_close_pairs

#: Relative slack added to the pruning thresholds so that rounding never prunes a pair
#: whose bump could be non-zero (pairs inside the slack get the exact box computation).
PRUNE_SLACK = 1e-12
#: Opposite centres per point whose nearest ball points become refutation candidates.
CANDIDATES_PER_POINT = 8
#: Above this many (ReLU units × points), structural certification does not evaluate the
#: lowered network at every centre (that is O(N² d) work for the full construction); it
#: evaluates refutation candidates only, and bounds the forward pass's rounding once over
#: the hull of all balls instead of per ball.
FORWARD_ALL_BUDGET = 2 * 10**8
#: Each structural bound is a float64 expression of at most N + STRUCTURAL_DEPTH rounded
#: steps per term (N bump values summed, each within γ_5 of the network's bump, then the
#: gate's few operations): its rounding is at most γ_{N + STRUCTURAL_DEPTH}·Σ|terms|.
STRUCTURAL_DEPTH = 20


def _own_centre_index(model: RobustMemorizer, x: np.ndarray, y_enc: np.ndarray) -> np.ndarray:
    """Index of a centre equal to each point (any label), or −1."""
    centres = model.distance.centres
    table = {centres[j].tobytes(): j for j in range(centres.shape[0] - 1, -1, -1)}
    return np.array([table.get(x[i].tobytes(), -1) for i in range(x.shape[0])], dtype=np.int64)


def _bump(r: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The trapezoid g(r) = [σ(β − r) − σ(α − r)]/(β − α) without cancellation.

    g = 1 for r ≤ min(α, β), 0 for r ≥ max(α, β), else (max − r)/(max − min) (also for a
    broken bump with α > β). Each value is within relative γ_3 of g at this r: (max − r) and
    (max − min) are single roundings of float differences. (gadgets.trapezoid's
    σ(β − r) − σ(α − r) cancels on the flat top: its error is u·r/(β − α), which a steep
    ramp makes large.)
    """
    low, high = np.minimum(alpha, beta), np.maximum(alpha, beta)
    ramp = (high - r) / (high - low)
    return np.where(r <= low, 1.0, np.where(r >= high, 0.0, ramp))


def _bump_range(r_lo: np.ndarray, r_hi: np.ndarray, alpha: np.ndarray, beta: np.ndarray):
    """Range [g(r_hi), g(r_lo)] of the (monotone non-increasing) trapezoid, each end within
    relative γ_3 (see :func:`_bump`)."""
    return _bump(r_hi, alpha, beta), _bump(r_lo, alpha, beta)


def _down(v: np.ndarray) -> np.ndarray:
    """One ulp towards −∞: below the exact value of a single rounded operation."""
    return np.nextafter(v, -np.inf)


def _up(v: np.ndarray) -> np.ndarray:
    """One ulp towards +∞: above the exact value of a single rounded operation."""
    return np.nextafter(v, np.inf)


def certify_construction(
    model: RobustMemorizer,
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
    small lowered networks (ℓ∞), whose value (for the exact network, to HiGHS' tolerance
    MILP_MARGIN_TOLERANCE) is also lowered by the forward error bound.

    ``margin_lower`` is a lower bound on the margin of the float64 forward pass at every
    float64 point of B_p(x, δ) ∩ domain: the bound above (rounding of its own evaluation
    included, see the module docstring) minus
    :func:`~robmem.theory.intervals.margin_error_bound`, per ball's box when
    (ReLU units × points) ≤ :data:`FORWARD_ALL_BUDGET`, else once over the hull of all
    boxes. The structural bound's own allowances, all outward: an ℓ∞ distance range's ends
    move one ulp (one rounded subtraction per coordinate); an ℓ2 distance is the float
    norm times (1 ∓ γ_{d+5}), then one ulp (γ_{d+3} covers the norm: d rounded differences,
    the sum of squares and the square root; γ_2 more the factor and the product); the
    sawtooth's squared-distance range is [(‖p − c‖ − δ)², (‖p − c‖ + δ)² + d·e_saw]
    (e_saw = sawtooth_error_bound(teeth)), each step one ulp outward; each bump value is
    within relative γ_3 (:func:`_bump`); and the final expression loses
    γ_{N+STRUCTURAL_DEPTH} times its magnitude: S_y,lo + max_{c≠y} S_c,hi, plus
    k(sup_box |f_clean| + M·S_y,lo) with a gate (whose slack term is
    k·max(0, sup_box |f_clean| − M·S_y,lo)), and (|Δ| + kMε)·min(1, 1/(kM)) + ε for the
    gate bound. A ball is CERTIFIED when that exceeds :data:`MARGIN_TOLERANCE`. The allowance
    is ~1e-8 to 1e-5 of the margin 1 (larger for steeper ramps and more centres), so a
    ball whose exact margin is within it of 0 (e.g. a point with a clean margin of a few
    1e-9 certified through the gate) can be UNKNOWN.

    Assumptions: centres and points in the domain; for the sawtooth kind, domain ⊂ [0, 1]
    (Yarotsky's bound holds on [0, 1]).
    """
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
        # f̂ = f_clean exactly (see construction.lower): certify the clean network (a linear
        # one with its closed-form ℓ2 margin, as small_margin_mask decided)
        res = certify_network(net, x, y, radius, key, domain=dom, use_milp=use_milp)
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
        # ‖·‖₂ is within relative γ_{d+3}; every later step is one rounding, moved outward
        dist = np.linalg.norm(x[q_idx] - centres[c_idx], axis=1)
        dist = _down(dist * (1.0 - gamma(x.shape[1] + 5)))
        s_lo = _down(np.maximum(_down(dist - radius), 0.0) ** 2)
        _, h_hi = _bump_range(s_lo, s_lo, alpha[c_idx], beta[c_idx])
    else:
        gap = np.maximum(np.maximum(lo[q_idx] - centres[c_idx], centres[c_idx] - hi[q_idx]), 0)
        # one rounded subtraction per coordinate: one ulp down is below the exact distance
        r_lo = np.maximum(_down(gap.max(axis=1)), 0.0)
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
            dist = np.linalg.norm(x[q_own] - centres[j_own], axis=1)
            dist = _up(dist * (1.0 + gamma(model.dim + 5)))
            saw_err = model.dim * sawtooth_error_bound(model.distance.teeth)
            s_hi = _up(_up(_up(dist + radius) ** 2) + saw_err)
            lower_h = _bump_range(s_hi, s_hi, alpha[j_own], beta[j_own])[0]
        else:
            far = np.maximum(np.abs(lo[q_own] - centres[j_own]), np.abs(hi[q_own] - centres[j_own]))
            r_hi = _up(far.max(axis=1))
            lower_h = _bump_range(r_hi, r_hi, alpha[j_own], beta[j_own])[0]
        np.add.at(s_own, q_own, np.maximum(lower_h, 0.0))
    s_other[np.arange(n), y_enc] = 0.0
    worst_other = s_other.max(axis=1)
    bound = s_own - worst_other
    # rounding of the structural expression (STRUCTURAL_DEPTH): γ times Σ|terms|
    slop = gamma(model.n_centres + STRUCTURAL_DEPTH)
    magnitude = s_own + worst_other
    if model.gate is not None:
        clean = model.gate.clean
        m_scale = model.gate.scale
        f_lo, f_hi = interval_bounds(clean, lo, hi)
        f_abs = np.maximum(np.abs(f_lo), np.abs(f_hi)).max(axis=1)
        slack = np.maximum(0.0, f_abs - m_scale * s_own)
        bound = bound - (slack if out.binary else 2 * slack)
        k = 1.0 if out.binary else 2.0
        magnitude = magnitude + k * (f_abs + m_scale * s_own)
        clean_m = clean_margin_lower(clean, x, y_enc, radius, key, out.binary, dom)
        factor = gate_factor(m_scale, out.binary)
        # opposite bumps add at most eps in total; with Δ the clean margin the gate gives
        # margin ≥ (Δ − k·M·eps)·factor − eps (k = 1 binary, 2 multi-class; see gate_factor)
        eps = s_other.sum(axis=1)
        via_gate = (clean_m - k * m_scale * eps) * factor - eps
        via_gate = via_gate - slop * ((np.abs(clean_m) + k * m_scale * eps) * factor + eps)
        gate_ok = clean_m > 0
        bound = bound - slop * magnitude
        bound = np.where(gate_ok, np.maximum(bound, via_gate), bound)
    else:
        bound = bound - slop * magnitude
    if net.relu_count * n <= FORWARD_ALL_BUDGET:
        found = margins(net.forward(x), y_enc, out.binary)
        err = margin_error_bound(net, lo, hi, y_enc, out.binary)
    else:
        found = np.full(n, np.inf)
        err = margin_error_bound(net, lo.min(axis=0), hi.max(axis=0), y_enc, out.binary)
    # the bound is for the exact-arithmetic network; the float64 forward pass can be lower
    # by err (a-priori bound on its rounding over the box)
    bound = bound - err
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
            value -= err[i]  # the MILP models the exact network
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
    net: RobustMemorizer | ReLUNetwork,
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
    if isinstance(net, RobustMemorizer):
        return certify_construction(net, points, labels, radius, norm, **kwargs)
    if isinstance(net, ReLUNetwork):
        return certify_network(net, points, labels, radius, norm, **kwargs)
    raise TypeError(f"net: expected RobustMemorizer or ReLUNetwork, got {type(net).__name__}")


def certify_outside_balls(
    model: RobustMemorizer, *, n_samples: int = 256, seed: int = 0, tolerance: float = 1e-9
) -> OutsideCertificate:
    """Check property (b) of SPEC T1 for a RobustMemorizer (see :class:`OutsideCertificate`)."""
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
