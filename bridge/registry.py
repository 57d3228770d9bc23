"""The claim registry: one entry per SPEC id (E1-E6, B1-B4, T1-T4) (SPEC B5).

Each :class:`Claim` states the paper's claim, its source, its **kind** (empirical, or a kind
of mathematical check), its pre-registered criteria and premises (:mod:`robmem.bridge.criteria`),
and per tier which runs it needs (``requests(tier)``) or why it is not run there. A claim's
``evaluate(ctx)`` is a pure function of the run records in ``ctx.records`` (plus, for the
theory claims, computation on fixed instances): unit tests feed it hand-made records.

The entries themselves live in :mod:`robmem.bridge.claims` (one module per claim or group of claims
sharing runs); :func:`all_claims` collects them in SPEC order.
"""

from __future__ import annotations

import importlib
import math
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from robmem.bridge.records import Records
from robmem.bridge.stats import Estimate
from robmem.bridge.verdicts import (
    EMPIRICAL,
    EMPIRICAL_VERDICTS,
    KINDS,
    MATH_VERDICTS,
    VERDICTS,
    Criterion,
)

#: Scale tiers, smallest first (SPEC "Scale tiers"). ``gpu-offline`` enlarges the grids of
#: E3/E4, E6 and B1 beyond cpu-full on data a machine without network has (MNIST-1D), for a
#: short GPU session (benchmarks/gpu_session.py; registered 2026-12-02, before any of its
#: runs, with cpu-full's criteria); ``gpu`` is the papers' CIFAR-10 scale.
TIERS: tuple[str, ...] = ("smoke", "cpu", "cpu-full", "gpu-offline", "gpu")
#: Tiers whose verdicts carry the small-scale caveat (SPEC: "A claim verified only at a small
#: tier says so in the report").
SMALL_TIERS: tuple[str, ...] = ("smoke", "cpu", "cpu-full", "gpu-offline")

#: Claim ids in SPEC order; every one must have an entry.
CLAIM_IDS: tuple[str, ...] = (
    "E1",
    "E2",
    "E3",
    "E4",
    "E5",
    "E6",
    "B1",
    "B2",
    "B3",
    "B4",
    "T1",
    "T2",
    "T3",
    "T4",
)

#: Modules of :mod:`robmem.bridge.claims` that define ``CLAIMS: list[Claim]``.
CLAIM_MODULES: tuple[str, ...] = (
    "robmem.bridge.claims.at_small",
    "robmem.bridge.claims.random_labels",
    "robmem.bridge.claims.noise_rates",
    "robmem.bridge.claims.overfitting",
    "robmem.bridge.claims.construction",
    "robmem.bridge.claims.theory_checks",
)


@dataclass(frozen=True)
class TierPlan:
    """What a claim runs at one tier, or why it does not run there.

    Attributes
    ----------
    runs : str
        The run(s) needed (data, model, attack, epochs, seeds), or ``""`` when not run.
    reason : str
        Why the claim is not run at this tier (empty when it runs).
    scale : str
        The scale in a few words, for the small-tier caveat of every verdict
        (e.g. ``"digits N=1438, MLP, 3 seeds"``).
    """

    runs: str = ""
    reason: str = ""
    scale: str = ""

    @property
    def enabled(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class Figure:
    """A figure written by a claim: file name (relative to the figures folder) and caption."""

    filename: str
    caption: str


@dataclass
class ClaimResult:
    """What evaluating one claim at one tier produced.

    Attributes
    ----------
    verdict : str
        One of :data:`VERDICTS` (empirical or mathematical, by the claim's kind).
    summary : str
        One or two sentences: the decisive numbers (mean [CI]) against the criterion.
    estimates : dict
        Statistic name → :class:`robmem.bridge.stats.Estimate` (mean, 95 % CI, n, per-seed values):
        every number behind the verdict.
    numbers : dict
        Other facts: name → finite float / int / bool / str.
    figures : list of Figure
    table : list of dict
        Optional detail rows (per seed, per noise rate, per cell).
    notes : list of str
        Caveats (lower estimates, smaller tier than the paper, missing data, ...).
    readings : list of (name, reading)
        How each premise and criterion read its CI (holds / fails / undecided).
    """

    verdict: str
    summary: str
    estimates: dict[str, Estimate] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    readings: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        for key, value in self.numbers.items():
            if isinstance(value, float) and not math.isfinite(value):
                self.numbers[key] = None


@dataclass
class ClaimContext:
    """What a claim's ``evaluate`` gets.

    Attributes
    ----------
    tier : str
    figures_dir : pathlib.Path
        Folder for this report's PNG files (exists).
    records : Records
        The finished runs of every request of the report, by family.
    progress : callable
        ``progress(message)`` for long steps (the CLI shows it; library code never prints).
    """

    tier: str
    figures_dir: pathlib.Path
    records: Records = field(default_factory=Records)
    progress: Callable[[str], None] = lambda message: None


def _no_runs(tier: str) -> list[Any]:
    return []


@dataclass(frozen=True)
class Claim:
    """One registry entry (SPEC id).

    Attributes
    ----------
    id : str
        SPEC id (``"E2"``, ``"B1"``, ...).
    title : str
    paper_claim : str
    source : str
    kind : str
        ``"empirical"`` or a mathematical kind (:data:`robmem.bridge.verdicts.MATH_KINDS`).
    criteria, premises : tuple of Criterion
        The pre-registered tests (empirical claims; :mod:`robmem.bridge.criteria`).
    criterion : str
        The verdict rule in words (mathematical claims; empirical ones derive it).
    tiers : mapping
        Tier → :class:`TierPlan`; every tier in :data:`TIERS` must be present.
    evaluate : callable
        ``evaluate(ctx: ClaimContext) -> ClaimResult``; called only at enabled tiers.
    requests : callable
        ``requests(tier) -> list[RunRequest]``: the training runs ``evaluate`` reads.
    """

    id: str
    title: str
    paper_claim: str
    source: str
    kind: str
    tiers: Mapping[str, TierPlan]
    evaluate: Callable[[ClaimContext], ClaimResult]
    criteria: tuple[Criterion, ...] = ()
    premises: tuple[Criterion, ...] = ()
    criterion: str = ""
    requests: Callable[[str], list[Any]] = _no_runs

    def __post_init__(self) -> None:
        missing = [t for t in TIERS if t not in self.tiers]
        if missing:
            raise ValueError(f"claim {self.id}: tiers must cover {TIERS}, missing {missing}")
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == EMPIRICAL and not self.criteria:
            raise ValueError(f"claim {self.id}: an empirical claim needs criteria")
        if self.kind != EMPIRICAL and not self.criterion:
            raise ValueError(f"claim {self.id}: a mathematical claim states its criterion")

    @property
    def empirical(self) -> bool:
        return self.kind == EMPIRICAL

    def rule_text(self) -> str:
        """The criterion in words (premises, criteria, and the shared CI rule)."""
        if not self.empirical:
            return self.criterion
        parts = []
        if self.premises:
            parts.append(
                "Premises (else not applicable): " + "; ".join(p.text() for p in self.premises)
            )
        parts.append("Criteria: " + "; ".join(c.text() for c in self.criteria) + ".")
        parts.append(
            "Each read from its 95 % CI: all wholly on the claimed side → reproduced; any wholly "
            "on the other side → not reproduced; else inconclusive."
        )
        if self.criterion:
            parts.append(self.criterion)
        return " ".join(parts)

    def plan(self, tier: str) -> TierPlan:
        check_tier(tier)
        return self.tiers[tier]

    def check_verdict(self, verdict: str) -> None:
        """ValueError when ``verdict`` is not one this claim's kind may return."""
        allowed = EMPIRICAL_VERDICTS if self.empirical else MATH_VERDICTS
        if verdict not in allowed:
            raise ValueError(f"claim {self.id} ({self.kind}) may not return {verdict!r}")


def check_tier(tier: str) -> str:
    """Return ``tier`` if known, else raise ValueError naming the allowed tiers."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}; got {tier!r}")
    return tier


def all_claims() -> list[Claim]:
    """Every registry entry, in SPEC order (imports :data:`CLAIM_MODULES`)."""
    found: dict[str, Claim] = {}
    for name in CLAIM_MODULES:
        for claim in importlib.import_module(name).CLAIMS:
            if claim.id in found:
                raise RuntimeError(f"claim {claim.id} defined twice (second in {name})")
            found[claim.id] = claim
    missing = [cid for cid in CLAIM_IDS if cid not in found]
    if missing:
        raise RuntimeError(f"registry lacks entries for {missing}")
    return [found[cid] for cid in CLAIM_IDS]


def select_claims(ids: Sequence[str] | None = None) -> list[Claim]:
    """The claims with the given ids (case-insensitive), in SPEC order; all when ``None``."""
    claims = all_claims()
    if ids is None:
        return claims
    wanted = [i.strip().upper() for i in ids if i.strip()]
    unknown = sorted(set(wanted) - set(CLAIM_IDS))
    if unknown:
        raise ValueError(f"unknown claim id(s) {unknown}; claims must be among {list(CLAIM_IDS)}")
    if not wanted:
        raise ValueError("claims must name at least one claim id")
    return [c for c in claims if c.id in wanted]
