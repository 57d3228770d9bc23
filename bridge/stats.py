"""Statistics behind every empirical verdict: means with confidence intervals (SPEC B5).

Every number the report shows for an empirical claim is an :class:`Estimate`: the mean over
seeds (or over bootstrap resamples) with a two-sided confidence interval, the number of
values it rests on, the method, and the values themselves (so that ``numbers.csv`` and
``report.json`` carry the per-seed data).

Methods
-------
- ``t``: Student-t interval of the mean, ``mean ± t_{n-1, 1-α/2} · s/√n``. With one value
  (or n = 0) the interval is unbounded: one seed says nothing about the spread.
- ``bootstrap``: percentile bootstrap over units (seeds, models) with a fixed seed, used for
  statistics that are not means (Kendall τ, odds ratios).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Default two-sided confidence level of every interval in the report.
CONFIDENCE: float = 0.95
#: Bootstrap resamples: the Monte-Carlo error of a 95 % percentile bound is ≈ 0.5 % of the
#: sampling distribution's mass at 2000 resamples, well below the spread it estimates.
BOOTSTRAP_RESAMPLES: int = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval.

    Attributes
    ----------
    mean : float
        The estimate (the mean of ``values`` for ``method="t"``; the statistic on the full
        sample for ``method="bootstrap"``).
    low, high : float
        Bounds of the two-sided interval (``-inf``/``inf`` when it cannot be computed, e.g.
        from one value).
    n : int
        Number of independent units (seeds, models) it rests on.
    method : str
        ``"t"``, ``"bootstrap"`` or ``"exact"`` (a number with no sampling error).
    values : tuple of float
        The per-unit values (per seed), in seed order.
    confidence : float
        Two-sided confidence level of ``[low, high]``.
    """

    mean: float
    low: float
    high: float
    n: int
    method: str
    values: tuple[float, ...] = field(default_factory=tuple)
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units (e.g. fraction → percent with ``factor=100``)."""
        lo, hi = sorted((self.low * factor, self.high * factor))
        return Estimate(
            self.mean * factor,
            lo,
            hi,
            self.n,
            self.method,
            tuple(v * factor for v in self.values),
            self.confidence,
        )

    def text(self, fmt: str = ".3g", unit: str = "") -> str:
        """``"12.3 [10.1, 14.5] (n=3, t 95 % CI)"``; an unbounded interval is written
        ``[−∞, ∞]``. A t-interval of n ≥ 2 equal values has zero width, which says only that
        the seeds agree (e.g. the same count on the same test set), not that the number has
        no sampling error: the text says ``all n values equal``."""

        def f(v: float) -> str:
            if math.isinf(v):
                return "−∞" if v < 0 else "∞"
            if math.isnan(v):
                return "nan"
            return format(v, fmt)

        equal = self.method == "t" and self.n >= 2 and len(set(self.values)) == 1
        return (
            f"{f(self.mean)}{unit} [{f(self.low)}, {f(self.high)}]{unit} "
            f"(n={self.n}, {self.method} {100 * self.confidence:g} % CI"
            + (f"; all {self.n} values equal)" if equal else ")")
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (infinite bounds become None)."""

        def j(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "mean": j(self.mean),
            "ci_low": j(self.low),
            "ci_high": j(self.high),
            "n": self.n,
            "method": self.method,
            "confidence": self.confidence,
            "values": [j(v) for v in self.values],
        }


def _check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, int | float) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}")
    return float(confidence)


def _finite_array(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr.tolist()}")
    return arr


def exact(value: float) -> Estimate:
    """A number without sampling error (a count, a closed form)."""
    v = float(value)
    return Estimate(v, v, v, 1, "exact", (v,))


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean of ``values`` with its Student-t confidence interval.

    Parameters
    ----------
    values : sequence of float
        One value per independent unit (seed). Must be finite.
    confidence : float in (0, 1)

    Returns
    -------
    Estimate
        ``method="t"``; with fewer than two values the interval is ``[-inf, inf]`` (and with
        none, the mean is nan).
    """
    from scipy import stats

    confidence = _check_confidence(confidence)
    arr = _finite_array(values, "values")
    n = len(arr)
    if n == 0:
        return Estimate(math.nan, -math.inf, math.inf, 0, "t", (), confidence)
    mean = float(arr.mean())
    if n < 2:
        return Estimate(mean, -math.inf, math.inf, n, "t", tuple(arr.tolist()), confidence)
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sem
    return Estimate(mean, mean - half, mean + half, n, "t", tuple(arr.tolist()), confidence)


def paired_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
) -> Estimate:
    """Mean of ``a_i − b_i`` over paired units (same seed) with its t interval."""
    xa, xb = _finite_array(a, "a"), _finite_array(b, "b")
    if len(xa) != len(xb):
        raise ValueError(f"a and b must pair up (same seeds); got {len(xa)} and {len(xb)} values")
    return mean_ci((xa - xb).tolist(), confidence)


def bootstrap_ci(
    units: Sequence[object],
    statistic: Callable[[Sequence[object]], float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap of ``statistic`` over resampled ``units`` (with replacement).

    Resamples on which the statistic is undefined (nan, e.g. Kendall τ of a constant
    sequence) are dropped; if more than half are, the interval is ``[-inf, inf]``.
    """
    confidence = _check_confidence(confidence)
    if not isinstance(resamples, int) or resamples < 100:
        raise ValueError(f"resamples must be an int ≥ 100; got {resamples!r}")
    units = list(units)
    n = len(units)
    point = float(statistic(units)) if n else math.nan
    if n < 2:
        return Estimate(point, -math.inf, math.inf, n, "bootstrap", (), confidence)
    rng = np.random.default_rng(seed)
    stats_ = []
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        stats_.append(float(statistic([units[i] for i in idx])))
    arr = np.asarray(stats_)
    arr = arr[np.isfinite(arr)]
    if len(arr) < resamples / 2 or not math.isfinite(point):
        return Estimate(point, -math.inf, math.inf, n, "bootstrap", (), confidence)
    alpha = 1.0 - confidence
    low, high = np.quantile(arr, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Estimate(point, float(low), float(high), n, "bootstrap", (), confidence)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall τ-b of two sequences (nan when either is constant or shorter than 2)."""
    from scipy.stats import kendalltau

    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(xa) != len(xb):
        raise ValueError(f"a and b must have equal length; got {len(xa)} and {len(xb)}")
    if len(xa) < 2 or len(np.unique(xa)) < 2 or len(np.unique(xb)) < 2:
        return math.nan
    return float(kendalltau(xa, xb).statistic)


def partial_kendall_tau(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> float:
    """Kendall's partial τ of x and y controlling for z.

    τ_xy·z = (τ_xy − τ_xz·τ_yz) / √((1 − τ_xz²)(1 − τ_yz²)) (Kendall 1942); nan when a
    τ is undefined or |τ_xz| = 1 or |τ_yz| = 1.
    """
    txy, txz, tyz = kendall_tau(x, y), kendall_tau(x, z), kendall_tau(y, z)
    denom = (1.0 - txz**2) * (1.0 - tyz**2)
    if not all(math.isfinite(t) for t in (txy, txz, tyz)) or denom <= 0.0:
        return math.nan
    return (txy - txz * tyz) / math.sqrt(denom)


def kendall_tau_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    control: Sequence[float] | None = None,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Kendall τ(a, b) (partial, controlling for ``control``, when given) with a bootstrap CI
    over the paired units."""
    xa, xb = _finite_array(a, "a"), _finite_array(b, "b")
    if len(xa) != len(xb):
        raise ValueError(f"a and b must have equal length; got {len(xa)} and {len(xb)}")
    columns = [xa.tolist(), xb.tolist()]
    if control is not None:
        xc = _finite_array(control, "control")
        if len(xc) != len(xa):
            raise ValueError(f"control must have {len(xa)} values; got {len(xc)}")
        columns.append(xc.tolist())
    tau = kendall_tau if control is None else partial_kendall_tau
    units = list(zip(*columns, strict=True))

    def stat(us: Sequence[object]) -> float:
        return tau(*([u[k] for u in us] for k in range(len(columns))))  # type: ignore[index]

    return bootstrap_ci(units, stat, confidence=confidence, resamples=resamples, seed=seed)


def fraction_ci(successes: int, trials: int, confidence: float = CONFIDENCE) -> Estimate:
    """A proportion with its Wilson score interval (e.g. cells of a phase diagram that hold)."""
    from scipy.stats import binomtest

    confidence = _check_confidence(confidence)
    if not (isinstance(trials, int) and trials >= 1):
        raise ValueError(f"trials must be an int ≥ 1; got {trials!r}")
    if not (isinstance(successes, int) and 0 <= successes <= trials):
        raise ValueError(f"successes must be an int in [0, trials={trials}]; got {successes!r}")
    ci = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Estimate(successes / trials, float(ci.low), float(ci.high), trials, "wilson")
