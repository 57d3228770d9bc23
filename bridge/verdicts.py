"""How a verdict follows from numbers: the one rule of the report (SPEC B5).

Empirical claims
    A claim states one or more **criteria** (a statistic, a threshold and the side the claim
    predicts) and zero or more **premises** (what must hold for the claim to be testable in
    this regime). Each statistic is an :class:`robmem.bridge.stats.Estimate` with a 95 % CI.

    * a premise whose CI lies wholly on its failing side → **not applicable at this tier**;
    * a premise whose CI straddles its threshold → **inconclusive** (the regime is uncertain);
    * otherwise every criterion is read from its CI: wholly on the claimed side → holds,
      wholly on the other side → fails, else undecided. All hold → **reproduced**; any fails
      → **not reproduced**; else **inconclusive**.

Mathematical claims
    **verified** / **failed**, each with a kind: construction certified, calculator
    consistency, illustration, premise check. Never "reproduced".

The ``smoke`` tier checks the pipeline only: empirical claims there get
**pipeline checked (no verdict)**.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from robmem.bridge.stats import Estimate

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_APPLICABLE = "not applicable at this tier"
NOT_RUN = "not run at this tier"
PIPELINE_CHECKED = "pipeline checked (no verdict)"
VERIFIED = "verified"
FAILED = "failed"

#: Verdicts of empirical claims (SPEC B5).
EMPIRICAL_VERDICTS: tuple[str, ...] = (
    REPRODUCED,
    NOT_REPRODUCED,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    NOT_RUN,
    PIPELINE_CHECKED,
)
#: Verdicts of mathematical claims (SPEC B5).
MATH_VERDICTS: tuple[str, ...] = (VERIFIED, FAILED, NOT_RUN)
VERDICTS: tuple[str, ...] = EMPIRICAL_VERDICTS + (VERIFIED, FAILED)

EMPIRICAL = "empirical"
#: Kinds of mathematical claims (SPEC B5).
CONSTRUCTION_CERTIFIED = "construction certified"
CALCULATOR_CONSISTENCY = "calculator consistency"
ILLUSTRATION = "illustration"
PREMISE_CHECK = "premise check"
MATH_KINDS: tuple[str, ...] = (
    CONSTRUCTION_CERTIFIED,
    CALCULATOR_CONSISTENCY,
    ILLUSTRATION,
    PREMISE_CHECK,
)
KINDS: tuple[str, ...] = (EMPIRICAL, *MATH_KINDS)

ABOVE = "above"
BELOW = "below"
WITHIN = "within"

#: What one criterion's CI says.
HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"


@dataclass(frozen=True)
class Criterion:
    """One pre-registered test: ``statistic`` lies ``side`` of ``threshold``.

    Attributes
    ----------
    name : str
        Key of the statistic in the claim's estimates (``"robust_gap_pts"``).
    statistic : str
        What is measured, in words, with the unit.
    side : {"above", "below", "within"}
        Where the claim puts the statistic; ``"within"`` means inside
        ``[threshold, upper]`` (an equivalence margin).
    threshold : float
    upper : float, optional
        Upper end of the ``"within"`` band.
    unit : str
    source : str
        Why this threshold (paper number, convention).
    """

    name: str
    statistic: str
    side: str
    threshold: float
    unit: str = ""
    source: str = ""
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.side not in (ABOVE, BELOW, WITHIN):
            raise ValueError(f"side must be one of above/below/within; got {self.side!r}")
        if self.side == WITHIN and (self.upper is None or not self.upper > self.threshold):
            raise ValueError("a 'within' criterion needs upper > threshold")

    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.side == WITHIN:
            return f"{self.statistic} within [{self.threshold:g}, {self.upper:g}]{unit}"
        sign = ">" if self.side == ABOVE else "<"
        return f"{self.statistic} {sign} {self.threshold:g}{unit}"

    def read(self, estimate: Estimate) -> str:
        """``holds`` / ``fails`` / ``undecided`` from the CI of ``estimate``."""
        lo, hi = estimate.low, estimate.high
        if math.isnan(lo) or math.isnan(hi) or math.isnan(estimate.mean):
            return UNDECIDED
        t = self.threshold
        if self.side == ABOVE:
            return HOLDS if lo > t else FAILS if hi < t else UNDECIDED
        if self.side == BELOW:
            return HOLDS if hi < t else FAILS if lo > t else UNDECIDED
        u = float(self.upper)  # type: ignore[arg-type]
        if t < lo and hi < u:
            return HOLDS
        return FAILS if hi < t or lo > u else UNDECIDED


@dataclass(frozen=True)
class Amendment:
    """A criterion changed after results were seen (shown in the report).

    Attributes
    ----------
    claim : str
    what : str
        Which criterion or setting.
    old, new : str
    date : str
        ISO date of the change.
    reason : str
    """

    claim: str
    what: str
    old: str
    new: str
    date: str
    reason: str

    def __post_init__(self) -> None:
        _dt.date.fromisoformat(self.date)  # ValueError for a malformed date


@dataclass(frozen=True)
class Decision:
    """A verdict with the reading of every premise and criterion that led to it."""

    verdict: str
    readings: tuple[tuple[str, str], ...]  # (criterion name, holds/fails/undecided/missing)
    reason: str


def decide(
    estimates: Mapping[str, Estimate],
    criteria: Sequence[Criterion],
    premises: Sequence[Criterion] = (),
) -> Decision:
    """The report's verdict rule for an empirical claim (module docstring).

    A criterion or premise whose statistic is missing from ``estimates`` reads ``undecided``.
    """
    if not criteria:
        raise ValueError("criteria must name at least one criterion")

    def states(items: Sequence[Criterion]) -> list[tuple[Criterion, str]]:
        return [(c, c.read(estimates[c.name]) if c.name in estimates else UNDECIDED) for c in items]

    def texts(found: list[tuple[Criterion, str]], state: str) -> str:
        return "; ".join(c.text() for c, s in found if s == state)

    premise_states, crit_states = states(premises), states(criteria)
    readings = tuple((f"premise {p.name}", s) for p, s in premise_states)
    if failed := texts(premise_states, FAILS):
        return Decision(NOT_APPLICABLE, readings, "premise fails: " + failed)
    readings += tuple((c.name, s) for c, s in crit_states)
    if unsure := texts(premise_states, UNDECIDED):
        return Decision(INCONCLUSIVE, readings, "premise undecided: " + unsure)
    if all(s == HOLDS for _, s in crit_states):
        return Decision(REPRODUCED, readings, "every criterion holds")
    if fails := texts(crit_states, FAILS):
        return Decision(NOT_REPRODUCED, readings, "fails: " + fails)
    return Decision(INCONCLUSIVE, readings, "CI straddles: " + texts(crit_states, UNDECIDED))


def combine(verdicts: Sequence[str]) -> str:
    """Verdict over several data sets: all agree → that verdict, else inconclusive."""
    if not verdicts:
        raise ValueError("verdicts must not be empty")
    return verdicts[0] if len(set(verdicts)) == 1 else INCONCLUSIVE
