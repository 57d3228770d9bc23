"""Opposite-label separation of a labelled point set (SPEC T1 hypothesis "R-separated").

The classes are R-separated when ``‖x_i − x_j‖_p > R`` for every pair with ``y_i ≠ y_j``
(SPEC Notation; [C22] writes R = 2ε). :func:`opposite_label_separation` returns the exact
minimum and the pair attaining it.

For ℓ∞ the work is pruned instead of materialising the ``N × N × d`` difference tensor: a
maximum over a subset of coordinates is a lower bound on ``‖x_i − x_j‖_∞``, so a pair is
dropped as soon as its partial maximum reaches the current best (or a given threshold).
Coordinates are visited in decreasing-variance order so that most pairs are dropped after
the first block. For ℓ2 the squared distances come from one matrix product per chunk
and the candidate minima are recomputed exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: Norms understood by this module ("inf" = ℓ∞, "2" = ℓ2).
NORMS: tuple[str, ...] = ("inf", "2")

#: Rows per chunk of the pairwise computation (memory ~ ROW_CHUNK × N × 8 bytes).
ROW_CHUNK = 128
#: Coordinates in the first, dense filtering block of the ℓ∞ pruning.
FIRST_BLOCK = 32
#: Coordinates per refinement block for the surviving ℓ∞ pairs.
REFINE_BLOCK = 64
#: Surviving pairs refined at once (memory ~ REFINE_PAIRS × REFINE_BLOCK × 8 bytes × 2).
REFINE_PAIRS = 200_000
#: Points whose ℓ2-nearest opposite neighbour seeds the ℓ∞ upper bound.
SEED_POINTS = 512


@dataclass(frozen=True)
class Separation:
    """Minimum opposite-label distance ``distance = ‖x_i − x_j‖_p`` attained at ``(i, j)``.

    ``distance`` is ``inf`` and ``i = j = -1`` when fewer than two labels occur.
    """

    distance: float
    i: int
    j: int
    norm: str = "inf"


def check_norm(norm: str) -> str:
    """Return the canonical norm name or raise ``ValueError``."""
    key = str(norm).lower().replace("l", "").replace("∞", "inf")
    if key in ("inf", "infinity", "np.inf"):
        return "inf"
    if key == "2":
        return "2"
    raise ValueError(f"norm: must be one of {NORMS}, got {norm!r}")


def check_points_labels(points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``points`` (N, d) finite floats and ``labels`` (N,) integers; return arrays."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points: must be 2-D (N, d), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("points: N must be >= 1, got N = 0")
    if x.shape[1] == 0:
        raise ValueError("points: dimension d must be >= 1, got 0")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"points: coordinates must be finite, found {x[tuple(bad)]} at {tuple(bad)}"
        )
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels: must be 1-D, got shape {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"labels: got {y.shape[0]} labels for {x.shape[0]} points")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError("labels: must be integers")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"labels: must be integers, got dtype {y.dtype}")
    return x, y.astype(np.int64)


def _refine_linf(
    x_a: np.ndarray,
    x_b: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    partial: np.ndarray,
    order: np.ndarray,
    start: int,
    threshold: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finish ℓ∞ distances of candidate pairs, dropping those whose partial max ≥ threshold.

    ``threshold`` is a scalar or an array aligned with ``cols`` (indexed by column).
    Returns the surviving ``(rows, cols, exact distances)``.
    """
    d = x_a.shape[1]
    thr_is_array = np.ndim(threshold) > 0
    out_r, out_c, out_d = [], [], []
    for lo in range(0, rows.size, REFINE_PAIRS):
        r = rows[lo : lo + REFINE_PAIRS]
        c = cols[lo : lo + REFINE_PAIRS]
        part = partial[lo : lo + REFINE_PAIRS]
        for block_start in range(start, d, REFINE_BLOCK):
            if r.size == 0:
                break
            blk = order[block_start : block_start + REFINE_BLOCK]
            part = np.maximum(part, np.abs(x_a[r][:, blk] - x_b[c][:, blk]).max(axis=1))
            thr = threshold[c] if thr_is_array else threshold
            keep = part < thr
            r, c, part = r[keep], c[keep], part[keep]
        out_r.append(r)
        out_c.append(c)
        out_d.append(part)
    if not out_r:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_d)


def _coordinate_order(*arrays: np.ndarray) -> np.ndarray:
    stacked = np.concatenate(arrays, axis=0)
    return np.argsort(-stacked.var(axis=0), kind="stable")


def _first_block_partial(xa: np.ndarray, xb: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """max_{k ∈ coords} |xa_k − xb_k| for all pairs (rows of xa × rows of xb), in place."""
    part = np.zeros((xa.shape[0], xb.shape[0]))
    tmp = np.empty_like(part)
    cols_a = np.ascontiguousarray(xa[:, coords].T)
    cols_b = np.ascontiguousarray(xb[:, coords].T)
    for a_col, b_col in zip(cols_a, cols_b, strict=True):
        np.subtract(a_col[:, None], b_col[None, :], out=tmp)
        np.abs(tmp, out=tmp)
        np.maximum(part, tmp, out=part)
    return part


def linf_close_pairs(
    queries: np.ndarray,
    centres: np.ndarray,
    thresholds: np.ndarray,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs with ``‖queries[q] − centres[c]‖_∞ < thresholds[c]``, with exact distances.

    Parameters
    ----------
    queries : (Q, d) array
    centres : (C, d) array
    thresholds : (C,) array
        Per-centre threshold; pairs at distance ≥ threshold are pruned.
    mask : (Q, C) bool array or callable, optional
        Only pairs with ``mask[q, c]`` True are considered (e.g. opposite labels). A
        callable ``mask(q_indices) -> (len(q_indices), C) bool`` avoids a dense (Q, C) mask.

    Returns
    -------
    (q_idx, c_idx, dist) : arrays of the surviving pairs, ``dist`` exact ℓ∞ distances.
    """
    queries = np.asarray(queries, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (centres.shape[0],))
    order = _coordinate_order(queries[: min(len(queries), 4096)], centres[:4096])
    first = order[:FIRST_BLOCK]
    rows_all, cols_all, dist_all = [], [], []
    for lo in range(0, queries.shape[0], ROW_CHUNK):
        idx = np.arange(lo, min(lo + ROW_CHUNK, queries.shape[0]))
        part = _first_block_partial(queries[idx], centres, first)
        keep = part < thresholds[None, :]
        if mask is not None:
            keep &= mask(idx) if callable(mask) else mask[idx]
        r, c = np.nonzero(keep)
        r_glob = idx[r]
        rr, cc, dd = _refine_linf(
            queries, centres, r_glob, c, part[r, c], order, FIRST_BLOCK, thresholds
        )
        rows_all.append(rr)
        cols_all.append(cc)
        dist_all.append(dd)
    return np.concatenate(rows_all), np.concatenate(cols_all), np.concatenate(dist_all)


def _seed_linf_upper_bound(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[float, int, int]:
    """Exact ℓ∞ distance of ℓ2-nearest opposite pairs for a sample: an upper bound."""
    n = x.shape[0]
    sample = rng.choice(n, size=min(n, SEED_POINTS), replace=False)
    sq = (x**2).sum(axis=1)
    best, bi, bj = np.inf, -1, -1
    for lo in range(0, sample.size, ROW_CHUNK):
        s = sample[lo : lo + ROW_CHUNK]
        d2 = sq[s, None] + sq[None, :] - 2.0 * (x[s] @ x.T)
        d2[y[s, None] == y[None, :]] = np.inf
        nn = np.argmin(d2, axis=1)
        ok = np.isfinite(d2[np.arange(s.size), nn])
        if not np.any(ok):
            continue
        linf = np.abs(x[s[ok]] - x[nn[ok]]).max(axis=1)
        k = int(np.argmin(linf))
        if linf[k] < best:
            best, bi, bj = float(linf[k]), int(s[ok][k]), int(nn[ok][k])
    return best, bi, bj


def _linf_separation(x: np.ndarray, y: np.ndarray) -> Separation:
    rng = np.random.default_rng(0)
    best, bi, bj = _seed_linf_upper_bound(x, y, rng)
    order = _coordinate_order(x)
    first = order[:FIRST_BLOCK]
    classes = np.unique(y)
    for a_pos, a in enumerate(classes):
        rows_a = np.flatnonzero(y == a)
        cols_b = np.flatnonzero(y > a) if a_pos < classes.size - 1 else np.zeros(0, dtype=int)
        if cols_b.size == 0:
            continue
        xb = x[cols_b]
        for lo in range(0, rows_a.size, ROW_CHUNK):
            ridx = rows_a[lo : lo + ROW_CHUNK]
            part = _first_block_partial(x[ridx], xb, first)
            r, c = np.nonzero(part < best)
            if r.size == 0:
                continue
            rr, cc, dd = _refine_linf(
                x, x, ridx[r], cols_b[c], part[r, c], order, FIRST_BLOCK, best
            )
            if dd.size:
                k = int(np.argmin(dd))
                if dd[k] < best:
                    best, bi, bj = float(dd[k]), int(rr[k]), int(cc[k])
    return Separation(best, min(bi, bj), max(bi, bj), "inf")


def _l2_separation(x: np.ndarray, y: np.ndarray) -> Separation:
    sq = (x**2).sum(axis=1)
    best, bi, bj = np.inf, -1, -1
    scale = float(sq.max()) if sq.size else 1.0
    tol = 1e-9 * max(scale, 1.0)
    for lo in range(0, x.shape[0], ROW_CHUNK):
        idx = np.arange(lo, min(lo + ROW_CHUNK, x.shape[0]))
        d2 = sq[idx, None] + sq[None, :] - 2.0 * (x[idx] @ x.T)
        d2[y[idx, None] == y[None, :]] = np.inf
        chunk_min = float(d2.min())
        if not np.isfinite(chunk_min) or chunk_min > best**2 + tol:
            continue
        r, c = np.nonzero(d2 <= chunk_min + tol)
        exact = np.sqrt(((x[idx[r]] - x[c]) ** 2).sum(axis=1))
        k = int(np.argmin(exact))
        if exact[k] < best:
            best, bi, bj = float(exact[k]), int(idx[r[k]]), int(c[k])
    return Separation(best, min(bi, bj), max(bi, bj), "2")


def opposite_label_separation(
    points: np.ndarray, labels: np.ndarray, norm: str = "inf"
) -> Separation:
    """Minimum ``‖x_i − x_j‖_p`` over pairs with different labels, and the pair.

    Statement: returns ``λ = min_{y_i ≠ y_j} ‖x_i − x_j‖_p`` exactly (up to float64
    rounding of the differences), so the data are R-separated for every R < λ (SPEC T1,
    Notation). Works in chunks: memory is O(ROW_CHUNK · N), never O(N² d).

    Parameters
    ----------
    points : (N, d) array of finite floats
    labels : (N,) integer array
    norm : {"inf", "2"}

    Returns
    -------
    Separation
        ``distance = inf`` and ``i = j = -1`` when all labels are equal.
    """
    x, y = check_points_labels(points, labels)
    key = check_norm(norm)
    if np.unique(y).size < 2:
        return Separation(float("inf"), -1, -1, key)
    sep = _linf_separation(x, y) if key == "inf" else _l2_separation(x, y)
    logger.info("opposite-label separation (%s): %.6g at %s", key, sep.distance, (sep.i, sep.j))
    return sep


def synthetic_separated_points(
    n_points: int,
    dim: int,
    min_separation: float,
    n_classes: int = 2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Random points in [0, 1]^d whose *all* pairs are ≥ min_separation apart in ℓ∞ and ℓ2.

    Construction (no rejection): distinct points of the grid {0, 1/K, …, 1}^d with
    K = ⌊1/(2·min_separation)⌋, each moved by at most 1/(4K) per coordinate (and clipped
    to [0, 1]); distinct grid points are ≥ 1/K apart, so the moved points are ≥ 1/(2K) ≥
    min_separation apart. Labels: ±1 when ``n_classes == 2``, else 0..C−1, uniform.

    Raises
    ------
    ValueError
        If the grid has fewer than ``n_points`` points, or an argument is out of range.
    """
    if n_points < 1:
        raise ValueError(f"n_points: must be >= 1, got {n_points}")
    if dim < 1:
        raise ValueError(f"dim: must be >= 1, got {dim}")
    if not 0 < min_separation <= 0.5:
        raise ValueError(f"min_separation: must be in (0, 0.5], got {min_separation}")
    if n_classes < 2:
        raise ValueError(f"n_classes: must be >= 2, got {n_classes}")
    k = int(np.floor(1.0 / (2.0 * min_separation)))
    capacity = float(k + 1) ** dim
    if capacity < n_points:
        raise ValueError(
            f"n_points: the grid for min_separation={min_separation} in d={dim} has only "
            f"{int(capacity)} points, asked for {n_points}"
        )
    rng = np.random.default_rng(seed)
    chosen: set[tuple[int, ...]] = set()
    while len(chosen) < n_points:
        chosen.add(tuple(int(v) for v in rng.integers(0, k + 1, size=dim)))
    grid = np.array(sorted(chosen), dtype=np.float64) / k
    grid = grid[rng.permutation(n_points)]
    jitter = rng.uniform(-1.0, 1.0, size=grid.shape) / (4.0 * k)
    x = np.clip(grid + jitter, 0.0, 1.0)
    if n_classes == 2:
        y = np.where(rng.random(n_points) < 0.5, -1, 1).astype(np.int64)
    else:
        y = rng.integers(0, n_classes, size=n_points).astype(np.int64)
    return x, y
