"""The complete big-M MILP (Tjeng, Xiao, Tedrake, ICLR 2019) with IBP bounds, by HiGHS.

ℓ∞ boxes only: an ℓ2 ball is relaxed to its box (certificates stay sound; the caller
discards counterexamples outside the ball).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from robmem.theory.intervals import interval_bounds
from robmem.theory.network import ReLUNetwork

#: The MILP is attempted only on networks with at most this many ReLUs.
MILP_MAX_RELUS = 2000
#: A MILP minimum certifies only above this. What it absorbs: HiGHS stops once its
#: incumbent is within mip_abs_gap = 1e-6 (or mip_rel_gap = 1e-4 relative, i.e. ≤ 1e-9 at
#: values near this threshold) of its dual bound, so its incumbent may exceed the exact
#: minimum by that gap (1e-4·|value|: far more than this far from 0); the value used is
#: therefore the dual bound (see milp_min_margin). Its feasibility/integrality tolerances
#: (1e-7/1e-6) only *relax* the MILP, which can lower the value (a conservative error: with
#: bump ramps 1/(β − α) ≳ 1e6 whole bumps are lost) but not raise it.
MILP_MARGIN_TOLERANCE = 1e-5
#: Wall-clock limit per MILP solve, seconds.
MILP_TIME_LIMIT_S = 60.0


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

    The MILP models the network in exact arithmetic (its big-M constants come from
    :func:`~robmem.theory.intervals.interval_bounds`, widened by IBP's own rounding); the
    certifiers subtract :func:`~robmem.theory.intervals.margin_error_bound` to cover the
    float64 forward pass.

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
