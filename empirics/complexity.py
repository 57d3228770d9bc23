"""Complexity measures of trained models versus the robust generalization gap (SPEC E5, B4).

[P2] trains PGD-AT models at increasing label-noise rates and asks whether norm- and
flatness-based complexity measures track the robust generalization gap; the claim is that most
do not. The measures themselves are computed by the theory-side calculator
:func:`theory.bounds.measures_torch.complexity_measures` (SPEC T4); this module collects them
over a family of models and computes each measure's Kendall rank correlation τ with the gap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: |τ| at or above which a measure is said to *track* the gap. Kendall τ = 0.6 over the six
#: noise rates of [P2] (0, .2, .4, .6, .8, 1) means at most 3 of the 15 pairs are discordant;
#: it is our stated criterion (the paper gives no threshold).
TRACKING_TAU: float = 0.6


def model_complexity(
    model: Any, x: Any, y: Any, init_model: Any | None = None, **kwargs: Any
) -> dict[str, float]:
    """Complexity measures of one trained model (delegates to ``theory.bounds.measures_torch``).

    Parameters
    ----------
    model : torch.nn.Module
    x, y : torch.Tensor
        Training data (the measures that need margins use them).
    init_model : torch.nn.Module, optional
        Model at initialization, for distance-from-init measures.
    **kwargs
        Passed to ``complexity_measures``.

    Returns
    -------
    dict
        Measure name → value (finite floats only; non-finite values are dropped with a log).
    """
    from theory.bounds.measures_torch import complexity_measures

    raw = complexity_measures(model, x, y, init_model=init_model, **kwargs)
    out: dict[str, float] = {}
    for name, value in raw.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[str(name)] = v
        else:
            logger.warning("measure %s is not finite (%r); dropped", name, value)
    return out


@dataclass(frozen=True)
class MeasureCorrelation:
    """Kendall τ of one measure with the robust gap across models."""

    measure: str
    tau: float
    p_value: float
    n_models: int
    tracks_gap: bool


def kendall_tau_table(
    measures: Sequence[Mapping[str, float]],
    gaps: Sequence[float],
    *,
    tracking_tau: float = TRACKING_TAU,
) -> list[MeasureCorrelation]:
    """Kendall τ between each measure and the robust gap over a family of models (SPEC E5).

    Parameters
    ----------
    measures : sequence of mappings
        One mapping measure-name → value per model; only names present in every model count.
    gaps : sequence of float
        The measured robust generalization gap of each model (same order).
    tracking_tau : float
        A measure "tracks" the gap when τ ≥ this value (positive association expected).

    Returns
    -------
    list of MeasureCorrelation
        Sorted by measure name. τ is ``nan`` when a measure is constant over the models.
    """
    from scipy.stats import kendalltau

    if len(measures) != len(gaps):
        raise ValueError(
            f"measures and gaps must have the same length, got {len(measures)} and {len(gaps)}"
        )
    if len(gaps) < 2:
        raise ValueError(f"need at least 2 models for a rank correlation, got {len(gaps)}")
    if not -1.0 <= tracking_tau <= 1.0:
        raise ValueError(f"tracking_tau must lie in [-1, 1], got {tracking_tau!r}")
    names = set(measures[0])
    for m in measures[1:]:
        names &= set(m)
    gap_arr = np.asarray(gaps, dtype=float)
    rows = []
    for name in sorted(names):
        vals = np.asarray([m[name] for m in measures], dtype=float)
        if np.ptp(vals) == 0.0 or np.ptp(gap_arr) == 0.0:
            tau, p = float("nan"), float("nan")
        else:
            # Unpacked as a pair: ``.statistic`` only exists from scipy 1.10 on.
            stat, pvalue = kendalltau(vals, gap_arr)
            tau, p = float(stat), float(pvalue)
        rows.append(
            MeasureCorrelation(
                measure=name,
                tau=tau,
                p_value=p,
                n_models=len(gaps),
                tracks_gap=bool(math.isfinite(tau) and tau >= tracking_tau),
            )
        )
    return rows
