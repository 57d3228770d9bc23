"""The claim registry: one entry per SPEC id (E1-E6, B1-B4, T1-T4) (SPEC B5).

Each :class:`Claim` states the paper's claim, its source, the verdict **criterion** (written
here, before any result is seen, and implemented verbatim by the claim's ``evaluate``), and per
tier (``smoke``, ``cpu``, ``gpu``) which runs it needs or why it is not run at that tier.
``evaluate(ctx)`` runs (or loads from the cache) the runs, computes the numbers and returns a
:class:`ClaimResult` with one of the four verdicts in :data:`VERDICTS`.

The entries themselves live in :mod:`bridge.claims` (one module per claim or group of claims
sharing runs); :func:`all_claims` collects them in SPEC order.
"""

from __future__ import annotations

import importlib
import math
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Scale tiers, smallest first (SPEC "Scale tiers").
TIERS: tuple[str, ...] = ("smoke", "cpu", "gpu")

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run at this tier"
#: The only verdicts a claim may return (SPEC B5).
VERDICTS: tuple[str, ...] = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN)

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

#: Modules of :mod:`bridge.claims` that define ``CLAIMS: list[Claim]``.
CLAIM_MODULES: tuple[str, ...] = (
    "bridge.claims.at_small",
    "bridge.claims.random_labels",
    "bridge.claims.noise_rates",
    "bridge.claims.overfitting",
    "bridge.claims.construction",
    "bridge.claims.theory_checks",
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
    """

    runs: str = ""
    reason: str = ""

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
        One of :data:`VERDICTS`.
    summary : str
        One or two sentences: the decisive numbers against the criterion.
    numbers : dict
        Flat mapping name → finite float / int / bool / str (shown in the table and the JSON).
    figures : list of Figure
    table : list of dict
        Optional rows (e.g. per noise rate) for a detail table.
    notes : list of str
        Caveats (lower estimates, smaller tier than the paper, missing data, ...).
    """

    verdict: str
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        for key, value in self.numbers.items():
            if isinstance(value, float) and not math.isfinite(value):
                self.numbers[key] = None


@dataclass
class ClaimContext:
    """What a claim's ``evaluate`` gets: the tier, where to write figures, the run cache.

    Attributes
    ----------
    tier : str
    figures_dir : pathlib.Path
        Folder for this report's PNG files (exists).
    cache : bridge.cache.RunCache
    progress : callable
        ``progress(message)`` for long steps (the CLI shows it; library code never prints).
    shared : dict
        Scratch space shared by the claims of one report (e.g. loaded runs).
    device : str, optional
        Device of every training run ("cpu", "cuda", "cuda:N", "auto"), overriding the
        tier's configs (``robmem report --device``); None keeps each config's own.
    """

    tier: str
    figures_dir: pathlib.Path
    cache: Any
    progress: Callable[[str], None] = lambda message: None
    shared: dict[str, Any] = field(default_factory=dict)
    device: str | None = None


@dataclass(frozen=True)
class Claim:
    """One registry entry (SPEC id).

    Attributes
    ----------
    id : str
        SPEC id (``"E2"``, ``"B1"``, ...).
    title : str
    paper_claim : str
        The claim as the paper states it (paraphrase marked as such).
    source : str
        Paper, section / theorem / figure.
    criterion : str
        The verdict rule, fixed before results are seen; ``evaluate`` implements exactly it.
    tiers : mapping
        Tier → :class:`TierPlan`; every tier in :data:`TIERS` must be present.
    evaluate : callable
        ``evaluate(ctx: ClaimContext) -> ClaimResult``; called only at enabled tiers.
    """

    id: str
    title: str
    paper_claim: str
    source: str
    criterion: str
    tiers: Mapping[str, TierPlan]
    evaluate: Callable[[ClaimContext], ClaimResult]

    def __post_init__(self) -> None:
        missing = [t for t in TIERS if t not in self.tiers]
        if missing:
            raise ValueError(f"claim {self.id}: tiers must cover {TIERS}, missing {missing}")

    def plan(self, tier: str) -> TierPlan:
        check_tier(tier)
        return self.tiers[tier]


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
