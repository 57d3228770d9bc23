"""What the claim modules share: seeds per tier, the verdict of an empirical result, captions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from robmem.bridge.criteria import phase_verdict
from robmem.bridge.plots import Setup
from robmem.bridge.registry import ClaimResult, Figure
from robmem.bridge.stats import Estimate, mean_ci
from robmem.bridge.verdicts import PIPELINE_CHECKED, Criterion, decide

#: Seeds of every run family, per tier (SPEC "Statistics": ≥ 3 seeds; smoke uses 2 only to
#: exercise the CI code, and gives no verdict). A seed varies init, data order, attack RNG and
#: the label-noise draw (:func:`robmem.bridge.claims.runs.seeds_for`).
SEEDS: dict[str, tuple[int, ...]] = {
    "smoke": (0, 1),
    "cpu": (0, 1, 2),
    "cpu-full": (0, 1, 2, 3, 4),
    "gpu-offline": (0, 1, 2),
    "gpu": (0, 1, 2),
}
#: Seeds of families compared pairwise by seed (SPEC: 5 for paired comparisons).
PAIRED_SEEDS: dict[str, tuple[int, ...]] = {
    "smoke": (0, 1),
    "cpu": (0, 1, 2, 3, 4),
    "cpu-full": (0, 1, 2, 3, 4),
    "gpu-offline": (0, 1, 2, 3, 4),
    "gpu": (0, 1, 2, 3, 4),
}

#: Added to every smoke-tier result: smoke runs check the pipeline, not the science.
SMOKE_NOTE = (
    "smoke tier: seconds-long runs that exercise the pipeline; its numbers are not evidence "
    "for or against the claim, and no verdict is given (use --tier cpu or gpu)."
)

#: Threads used by small-tier training. One: the small MLPs gain little from a second thread,
#: and a report runs several runs at once (--jobs).
CPU_THREADS: int = 1

#: What every gpu-tier run sets on top of its paper's preset (robmem.empirics.config.PRESETS):
#: CIFAR-10 downloaded on first use, train accuracies on 10 000 points, a GPU, bf16.
GPU_RUN: dict[str, Any] = dict(
    download=True, eval_train_size=10000, device="auto", precision="bf16"
)

#: Why a claim is not part of the gpu-offline tier.
OFFLINE_REASON = (
    "the gpu-offline tier enlarges only E3/E4, E6 and B1 (the grids the verdict audit asked "
    "to grow, on MNIST-1D); this claim's evidence is at cpu-full"
)

GPU_REASON_DATA = (
    "needs CIFAR-10 (torchvision downloads it to the default data root on first use) and a GPU"
)


def p2_optimizer(epochs: int) -> dict[str, Any]:
    """[P2]'s optimizer as TrainConfig fields: SGD lr 0.1, momentum 0.9, ×0.1 at 1/3 and 2/3 of
    ``epochs``, weight decay 0 (official train.py README; SPEC E3)."""
    return dict(
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        schedule="multistep",
        milestones=[epochs // 3, 2 * epochs // 3],
        weight_decay=0.0,
        epochs=epochs,
    )


def tier_notes(tier: str) -> list[str]:
    """Notes every result at ``tier`` carries."""
    return [SMOKE_NOTE] if tier == "smoke" else []


def pts(values: Sequence[float]) -> Estimate:
    """Mean with t-CI of fractions, in percentage points."""
    return mean_ci([100.0 * float(v) for v in values])


def above_chance(values: Sequence[float | None], num_classes: int = 10) -> Estimate:
    """Mean with t-CI of accuracies (fractions) minus chance 100/C, in percentage points."""
    return mean_ci([100.0 * float(v) - 100.0 / num_classes for v in values])


def epoch_series(
    records: Sequence[Any], key: str, scale: float = 100.0
) -> tuple[list[int], list[list[float]]]:
    """Curve ``scale · key`` over the epochs where the first record has it, one list per run."""
    rows = [[r for r in rec.rows if getattr(r, key) is not None] for rec in records]
    return [r.epoch for r in rows[0]], [[scale * getattr(r, key) for r in rr] for rr in rows]


def setup_for(
    config: Any, tier: str, *, data: str | None = None, seeds: Sequence[int] = ()
) -> Setup:
    """Caption setup (data, model, ε, seeds, tier) of a TrainConfig (or its dict)."""
    cfg = config if isinstance(config, Mapping) else config.to_dict()
    hidden = (cfg.get("model_kwargs") or {}).get("hidden")
    model = cfg["model"] + (f" {list(hidden)}" if hidden else "")
    n_train = f"n_train={cfg['n_train']}" if cfg.get("n_train") else "full train split"
    seed_text = f"seeds {list(seeds)}" if seeds else f"seed {cfg['seed']}"
    return Setup(
        data=data or f"{cfg['dataset']} ({n_train})",
        model=f"{model}, {cfg['method']} training, {cfg['epochs']} epochs",
        eps=f"ℓ{cfg['norm']} {cfg['epsilon']:.4g} (train), PGD-{cfg['eval_attack_steps']} eval",
        seeds=f"{seed_text} (each varies init, data order, attack RNG, label-noise draw)",
        tier=tier,
    )


def _shown(estimates: Mapping[str, Estimate], criteria: Sequence[Criterion]) -> str:
    """ "name = estimate" for each criterion (and premise) that has an estimate, in order."""
    return "; ".join(
        f"{c.name} = {estimates[c.name].text()}" for c in criteria if c.name in estimates
    )


def empirical_result(
    tier: str,
    estimates: Mapping[str, Estimate],
    criteria: Sequence[Criterion],
    premises: Sequence[Criterion] = (),
    *,
    summary: str,
    numbers: Mapping[str, Any] | None = None,
    figures: Sequence[Figure] = (),
    table: Sequence[Mapping[str, Any]] = (),
    notes: Sequence[str] = (),
) -> ClaimResult:
    """The :class:`ClaimResult` of an empirical claim by the report's one rule
    (:func:`robmem.bridge.verdicts.decide`); at the smoke tier, no verdict."""
    decision = decide(estimates, criteria, premises)
    verdict = PIPELINE_CHECKED if tier == "smoke" else decision.verdict
    shown = _shown(estimates, (*premises, *criteria))
    text = f"{summary} {shown}." if shown else summary
    if tier != "smoke":
        text += f" ({decision.reason}.)"
    return ClaimResult(
        verdict=verdict,
        summary=text,
        estimates=dict(estimates),
        numbers=dict(numbers or {}),
        figures=list(figures),
        table=[dict(r) for r in table],
        notes=tier_notes(tier) + list(notes),
        readings=list(decision.readings),
    )


def per_cell_result(
    tier: str,
    cells: Sequence[tuple[str, str, str, Mapping[str, Estimate], Sequence[Criterion]]],
    premises: Sequence[Criterion],
    summary: str,
    *,
    numbers: Mapping[str, Any] | None = None,
    figures: Sequence[Figure] = (),
    table: Sequence[Mapping[str, Any]] = (),
    notes: Sequence[str] = (),
) -> ClaimResult:
    """The :class:`ClaimResult` of a claim judged per cell (architecture, label-noise rate):
    one verdict per cell by :func:`robmem.bridge.verdicts.decide`, combined by
    :func:`robmem.bridge.criteria.phase_verdict` (the applicable cells agree → that verdict, else
    inconclusive; not applicable when no cell is); at the smoke tier, no verdict. ``cells``
    gives per cell (label, prefix of its estimate keys, prefix of its readings, estimates,
    criteria)."""
    estimates: dict[str, Estimate] = {}
    readings: list[tuple[str, str]] = []
    verdicts, texts = [], []
    for label, key_prefix, reading_prefix, est, criteria in cells:
        decision = decide(est, criteria, premises)
        verdicts.append(decision.verdict)
        estimates.update({f"{key_prefix}{k}": v for k, v in est.items()})
        readings += [(f"{reading_prefix}{n}", st) for n, st in decision.readings]
        texts.append(f"{label}: {decision.verdict} ({_shown(est, (*premises, *criteria))})")
    return ClaimResult(
        verdict=PIPELINE_CHECKED if tier == "smoke" else phase_verdict(verdicts),
        summary=f"{summary} " + "; ".join(texts) + ".",
        estimates=estimates,
        numbers=dict(numbers or {}),
        figures=list(figures),
        table=list(table),
        notes=tier_notes(tier) + list(notes),
        readings=readings,
    )
