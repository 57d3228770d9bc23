"""E3, E4: adversarial training on random labels, and gradient (in)stability ([P2] §3).

Runs: PGD-AT, TRADES β = 6 and TRADES β = 1 on fully random labels, with [P2]'s optimizer (SGD
0.1, momentum 0.9, ×0.1 at E/3 and 2E/3, wd 0, no augmentation; official train.py README).

* ``smoke``/``cpu``: one cell (digits N = 200, BN-free MLP), 5 paired seeds.
* ``cpu-full``/``gpu``: a **phase diagram** (``notes/verdict-audit.md`` §4): cells = data set and
  N × BatchNorm off/on, 3 seeds per run family. Each cell gets its own E3 / E4 verdict by the
  same criteria (:mod:`robmem.bridge.criteria`); the claim's verdict over the cells is
  :func:`robmem.bridge.criteria.phase_verdict`. E4 adds the local smoothness probe
  (:func:`empirics.smoothness.local_smoothness`) at the final model of every PGD-AT and TRADES
  β = 6 run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from robmem.bridge.claims.common import (
    CPU_THREADS,
    GPU_REASON_DATA,
    GPU_RUN,
    PAIRED_SEEDS,
    above_chance,
    empirical_result,
    epoch_series,
    p2_optimizer,
    pts,
    setup_for,
    tier_notes,
)
from robmem.bridge.claims.runs import (
    EPS_MNIST,
    STEP_FRACTION,
    RunRequest,
    measure,
    requests_for,
)
from robmem.bridge.criteria import (
    CHANCE_SLACK_PTS,
    E3_CRITERIA,
    E3_PREMISES,
    E4_CRITERIA,
    E4_PHASE_CRITERIA,
    E4_PREMISES,
    EPS_MNIST1D,
    phase_verdict,
)
from robmem.bridge.plots import plot_curves_ci, plot_phase_diagram
from robmem.bridge.records import RunRecord
from robmem.bridge.registry import Claim, ClaimContext, ClaimResult, TierPlan
from robmem.bridge.stats import Estimate, mean_ci, paired_difference
from robmem.bridge.verdicts import EMPIRICAL, PIPELINE_CHECKED, decide

#: TRADES β of [P2]'s code and the reduced value probed by E4.
TRADES_BETA: float = 6.0
TRADES_BETA_REDUCED: float = 1.0
#: E4: the mean squared gradient norm is compared over this last fraction of the epochs.
E4_LAST_FRACTION: float = 1.0 / 3.0


@dataclass(frozen=True)
class Cell:
    """One cell of the E3/E4 phase diagram: data set, training-set size N, BatchNorm."""

    dataset: str
    n_train: int
    batch_norm: bool

    @property
    def key(self) -> str:
        """Family suffix, e.g. ``"digits200-bn"``."""
        return f"{self.dataset}{self.n_train}-{'bn' if self.batch_norm else 'nobn'}"

    @property
    def row(self) -> str:
        """Row of the phase-diagram figure (data set and N)."""
        return f"{self.dataset} N={self.n_train}"

    @property
    def column(self) -> str:
        """Column of the phase-diagram figure (BatchNorm)."""
        return "BN" if self.batch_norm else "no BN"

    @property
    def label(self) -> str:
        return f"{self.row}, {self.column}"


#: Phase-diagram cells per tier (None: the single digits N = 200 cell of the original E3).
#: cpu-full: digits 200 / 500 and MNIST-1D 500 (the audit's 1k / 4k do not fit the 70-min
#: cpu-full budget on 2 cores: 18 runs per N), each with and without BN. gpu-offline: the
#: audit's MNIST-1D 1k / 4k, with and without BN, every run setting as at cpu-full.
PHASE_CELLS: dict[str, tuple[Cell, ...] | None] = {
    "smoke": None,
    "cpu": None,
    "cpu-full": tuple(
        Cell(ds, n, bn)
        for ds, n in (("digits", 200), ("digits", 500), ("mnist1d", 500))
        for bn in (False, True)
    ),
    "gpu-offline": tuple(Cell("mnist1d", n, bn) for n in (1000, 4000) for bn in (False, True)),
    "gpu": tuple(Cell("cifar10", n, True) for n in (10_000, 50_000)),
}
#: Seeds of each phase-diagram run family (SPEC: ≥ 3; paired across methods by seed).
PHASE_SEEDS: dict[str, tuple[int, ...]] = {
    "cpu-full": (0, 1, 2), "gpu-offline": (0, 1, 2), "gpu": (0, 1, 2)
}  # fmt: skip
#: Epochs of the phase-diagram runs ([P2]'s 300 scaled to the cpu-full budget; gpu-offline
#: keeps cpu-full's so that only N changes).
PHASE_EPOCHS: dict[str, int] = {"cpu-full": 120, "gpu-offline": 120, "gpu": 300}
#: E4 smoothness probe (robmem.empirics.smoothness.local_smoothness) at the final model: step h in
#: parameter ℓ2 units (≳ 1e-4·‖θ‖ ≈ 3e-3 for the MLP [512, 512], so rounding does not
#: dominate), training points of the fixed batch, random directions.
PROBE_H: float = 1e-2
PROBE_POINTS: int = 256
PROBE_DIRECTIONS: int = 3
#: How the claim is judged at the phase-diagram tiers (shown with the criteria in the report).
PHASE_RULE = (
    "At cpu-full, gpu-offline and gpu: the criteria are applied in every cell of the phase "
    "diagram (data "
    "set and N × BatchNorm); cells whose premise fails are not applicable; the claim's verdict "
    "is the common verdict of the applicable cells, inconclusive when they disagree, not "
    "applicable when no cell is (robmem.bridge.criteria.phase_verdict)."
)
#: A seed "memorizes" at robust train ≥ this (E3's threshold) and a cell's outcome holds when
#: it holds in at least this share of seeds (notes/verdict-audit.md §4: ≥ 2/3 seeds).
MEMORIZED_PCT: float = 90.0
CELL_MAJORITY: float = 2.0 / 3.0


def rl_config(tier: str, method: str, beta: float = TRADES_BETA, cell: Cell | None = None) -> Any:
    """Random-label run at ``tier`` for ``method`` ∈ {pgd, trades} (seed 0), in ``cell`` of
    the phase diagram when given."""
    from robmem.empirics.config import TrainConfig, preset
    from robmem.empirics.data import model_normalization

    eps = EPS_MNIST

    common = dict(
        label_noise=1.0, label_noise_seed=0, method=method, trades_beta=beta, epsilon=eps,
        attack_step_size=STEP_FRACTION * eps, augment=False, seed=0,
    )  # fmt: skip
    if tier == "smoke":
        return TrainConfig(
            dataset="digits", n_train=40, n_test=60, model="mlp",
            model_kwargs={"hidden": [64, 64]}, batch_size=20, attack_steps=2,
            eval_attack_steps=2, num_threads=1, **p2_optimizer(4), **common,
        )  # fmt: skip
    if cell is not None and tier != "gpu":
        eps = EPS_MNIST1D if cell.dataset == "mnist1d" else EPS_MNIST
        common.update(epsilon=eps, attack_step_size=STEP_FRACTION * eps)
        kwargs = {"hidden": [512, 512], **model_normalization(cell.dataset)}
        if cell.batch_norm:
            kwargs["batch_norm"] = True
        return TrainConfig(
            dataset=cell.dataset, n_train=cell.n_train, n_test=300, model="mlp",
            model_kwargs=kwargs, batch_size=50, attack_steps=5, eval_attack_steps=10,
            eval_every=10, num_threads=CPU_THREADS, **p2_optimizer(PHASE_EPOCHS[tier]), **common,
        )  # fmt: skip
    if tier in ("cpu", "cpu-full"):
        # digits N = 200 random labels, MLP [512, 512]: PGD-AT memorizes in ≈ 15 s on one core
        return TrainConfig(
            dataset="digits", n_train=200, n_test=300, model="mlp",
            model_kwargs={"hidden": [512, 512]}, batch_size=50, attack_steps=5,
            eval_attack_steps=10, eval_every=25, num_threads=CPU_THREADS,
            **p2_optimizer(150 if tier == "cpu" else 300), **common,
        )  # fmt: skip
    # gpu: [P2] train.py README: WRN-28-10, PGD-10 8/255, wd 0, no augmentation, 300 epochs,
    # SGD lr 0.1 decayed ×0.1 at 100 and 200 (phase cells vary N; WRN has BN)
    return preset(
        "dong-cifar10-random-labels", n_train=cell.n_train if cell is not None else None,
        method=method, trades_beta=beta, eval_every=10, **GPU_RUN,
    )  # fmt: skip


#: Run families: label → (family, method, β).
FAMILIES: dict[str, tuple[str, str, float]] = {
    "PGD-AT": ("rl-pgd", "pgd", TRADES_BETA),
    f"TRADES β={TRADES_BETA:g}": ("rl-trades-b6", "trades", TRADES_BETA),
    f"TRADES β={TRADES_BETA_REDUCED:g}": ("rl-trades-b1", "trades", TRADES_BETA_REDUCED),
}
PGD, TR6, TR1 = FAMILIES


def cell_family(label: str, cell: Cell | None) -> str:
    """Run family of method ``label`` in ``cell`` (the original names when ``cell`` is None)."""
    family = FAMILIES[label][0]
    return family if cell is None else f"{family}-{cell.key}"


def _probe_measure() -> tuple[str, tuple[tuple[str, Any], ...]]:
    return measure("smoothness", h=PROBE_H, n_points=PROBE_POINTS, n_directions=PROBE_DIRECTIONS)


def rl_requests(tier: str, labels: Sequence[str] = (PGD, TR6)) -> list[RunRequest]:
    cells = PHASE_CELLS[tier]
    out = []
    if cells is None:
        for label in labels:
            family, method, beta = FAMILIES[label]
            out += requests_for(family, rl_config(tier, method, beta), PAIRED_SEEDS[tier])
        return out
    for cell in cells:
        for label in labels:
            _, method, beta = FAMILIES[label]
            # E4's probe on PGD-AT and TRADES β = 6 (the pair it compares)
            measures = (_probe_measure(),) if TR1 in labels and label != TR1 else ()
            out += requests_for(
                cell_family(label, cell), rl_config(tier, method, beta, cell),
                PHASE_SEEDS[tier], measures=measures,
            )  # fmt: skip
    return out


def _records(
    ctx: ClaimContext, labels: Sequence[str], cell: Cell | None = None
) -> dict[str, list[RunRecord]]:
    seeds = PAIRED_SEEDS[ctx.tier] if cell is None else PHASE_SEEDS[ctx.tier]
    return {label: ctx.records.family(cell_family(label, cell), seeds) for label in labels}


def e3_estimates(
    pgd: Sequence[RunRecord], trades: Sequence[RunRecord], num_classes: int = 10
) -> dict[str, Estimate]:
    def above(values: Sequence[float | None]) -> Estimate:
        return above_chance(values, num_classes)

    return {
        "pgd_robust_train_above_chance_pts": above([r.final.train_robust_acc for r in pgd]),
        "pgd_robust_train_pts": pts([r.final.train_robust_acc for r in pgd]),
        "pgd_clean_test_above_chance_pts": above([r.final.test_clean_acc for r in pgd]),
        "trades_robust_train_above_chance_pts": above([r.final.train_robust_acc for r in trades]),
        "trades_clean_train_above_chance_pts": above([r.final.train_clean_acc for r in trades]),
    }


def evaluate_e3(ctx: ClaimContext) -> ClaimResult:
    if PHASE_CELLS[ctx.tier] is not None:
        return _evaluate_phase(ctx, "E3")
    recs = _records(ctx, (PGD, TR6))
    est = e3_estimates(recs[PGD], recs[TR6])
    series = {}
    for label, rr in recs.items():
        series[f"{label}: robust train (random labels)"] = epoch_series(rr, "train_robust_acc")
        series[f"{label}: clean train (random labels)"] = epoch_series(rr, "train_clean_acc")
        series[f"{label}: clean test (true labels)"] = epoch_series(rr, "test_clean_acc")
    cfg = recs[PGD][0].config
    fig = plot_curves_ci(
        series, ctx.figures_dir, "e3_random_labels.png",
        setup_for(cfg, ctx.tier, seeds=PAIRED_SEEDS[ctx.tier]),
        title_text="E3 ([P2] §3): PGD-AT vs TRADES β = 6 on fully random training labels.",
        ylabel="accuracy (%)", chance=10.0, vlines=cfg["milestones"],
    )  # fmt: skip
    table = [
        {"run": label, "seed": r.seed, "robust_train": 100 * r.final.train_robust_acc,
         "clean_train": 100 * r.final.train_clean_acc, "clean_test": 100 * r.final.test_clean_acc}
        for label, rr in recs.items() for r in rr
    ]  # fmt: skip
    return empirical_result(
        ctx.tier, est, E3_CRITERIA, E3_PREMISES,
        summary=f"digits N={cfg['n_train']}, random labels, {cfg['epochs']} epochs of [P2]'s SGD "
        "schedule:",
        figures=[fig], table=table,
        notes=["[P2]'s scale is CIFAR-10 / WRN-28-10 (N = 50k); the audit pilot found the "
               "method that converges to depend on N at small scale (see the E3/E4 phase "
               "diagram of cpu-full when present)."],
    )  # fmt: skip


def e4_estimates(
    pgd: Sequence[RunRecord],
    tr6: Sequence[RunRecord],
    tr1: Sequence[RunRecord],
    num_classes: int = 10,
) -> dict[str, Estimate]:
    """E4's statistics, paired by seed (records given in the same seed order)."""

    def tail(r: RunRecord) -> float:
        g = [v for v in r.epoch_grad_sq if math.isfinite(v)]
        k = max(1, math.ceil(E4_LAST_FRACTION * len(g)))
        return sum(g[-k:]) / k

    return {
        "trades_robust_train_above_chance_pts": above_chance(
            [r.final.train_robust_acc for r in tr6], num_classes
        ),
        "log10_grad_sq_ratio": mean_ci(
            [math.log10(tail(a) / tail(b)) for a, b in zip(tr6, pgd, strict=True)]
        ),
        "beta1_minus_beta6_robust_train_pts": paired_difference(
            [100.0 * r.final.train_robust_acc for r in tr1],
            [100.0 * r.final.train_robust_acc for r in tr6],
        ),
    }


def evaluate_e4(ctx: ClaimContext) -> ClaimResult:
    if PHASE_CELLS[ctx.tier] is not None:
        return _evaluate_phase(ctx, "E4")
    recs = _records(ctx, (PGD, TR6, TR1))
    est = e4_estimates(recs[PGD], recs[TR6], recs[TR1])
    series = {
        label: (list(range(1, len(rr[0].epoch_grad_sq) + 1)), [list(r.epoch_grad_sq) for r in rr])
        for label, rr in recs.items()
    }
    cfg = recs[PGD][0].config
    fig = plot_curves_ci(
        series, ctx.figures_dir, "e4_grad_norms.png",
        setup_for(cfg, ctx.tier, seeds=PAIRED_SEEDS[ctx.tier]),
        title_text="E4 ([P2] §3): mean squared global parameter-gradient norm per epoch on "
        "random labels, PGD-AT vs TRADES β = 6 and 1.",
        ylabel="mean over steps of ‖∇_θ L‖₂²", log_y=True, vlines=cfg["milestones"],
    )  # fmt: skip
    return empirical_result(
        ctx.tier, est, E4_CRITERIA, E4_PREMISES,
        summary="Random labels, paired by seed:",
        figures=[fig],
        notes=["[P2]'s theorem on gradient instability was not retrievable (SPEC E4); this "
               "measures the phenomenon: [P2]'s mean squared gradient norm per epoch."],
    )  # fmt: skip


def smoothness_log_ratio(tr6: Sequence[RunRecord], pgd: Sequence[RunRecord]) -> Estimate:
    """log10 of TRADES β = 6 / PGD-AT local smoothness ratio (probe at the final model),
    paired by seed."""
    return mean_ci(
        [
            math.log10(a.measures["smoothness"]["ratio"] / b.measures["smoothness"]["ratio"])
            for a, b in zip(tr6, pgd, strict=True)
        ]
    )


def _share(values: Sequence[bool]) -> float:
    return sum(bool(v) for v in values) / len(values)


def cell_outcomes(
    pgd: Sequence[RunRecord],
    tr6: Sequence[RunRecord],
    tr1: Sequence[RunRecord] | None,
    num_classes: int = 10,
) -> dict[str, Any]:
    """Per-seed outcomes of a cell (notes/verdict-audit.md §4): does PGD-AT memorize (robust
    train ≥ 90 %)? does TRADES fail to converge (robust *and* clean train ≤ chance + 10)?
    Each as the share of seeds, and whether it holds in ≥ 2/3 of them."""
    chance = 100.0 / num_classes

    def fails(r: RunRecord) -> bool:
        f = r.final
        return (
            100.0 * f.train_robust_acc <= chance + CHANCE_SLACK_PTS
            and 100.0 * f.train_clean_acc <= chance + CHANCE_SLACK_PTS
        )

    out: dict[str, Any] = {
        "pgd_memorizes_share": _share([100.0 * r.final.train_robust_acc >= MEMORIZED_PCT
                                       for r in pgd]),
        "trades6_fails_share": _share([fails(r) for r in tr6]),
    }  # fmt: skip
    if tr1 is not None:
        out["trades1_fails_share"] = _share([fails(r) for r in tr1])
    for k in list(out):
        out[k.replace("_share", "")] = out[k] >= CELL_MAJORITY - 1e-9
    return out


def _evaluate_phase(ctx: ClaimContext, claim: str) -> ClaimResult:
    """E3 or E4 over the phase diagram: one verdict per cell, the claim's by
    :func:`robmem.bridge.criteria.phase_verdict`; the figure shows every cell's outcome."""
    cells = PHASE_CELLS[ctx.tier]
    assert cells is not None
    labels = (PGD, TR6) if claim == "E3" else (PGD, TR6, TR1)
    estimates: dict[str, Estimate] = {}
    readings: list[tuple[str, str]] = []
    table: list[dict[str, Any]] = []
    verdicts: dict[Cell, str] = {}
    notes_by_cell: dict[Cell, str] = {}
    for cell in cells:
        recs = _records(ctx, labels, cell)
        if claim == "E3":
            est = e3_estimates(recs[PGD], recs[TR6])
            decision = decide(est, E3_CRITERIA, E3_PREMISES)
        else:
            est = e4_estimates(recs[PGD], recs[TR6], recs[TR1])
            est["log10_smoothness_ratio"] = smoothness_log_ratio(recs[TR6], recs[PGD])
            decision = decide(est, E4_PHASE_CRITERIA, E4_PREMISES)
        verdicts[cell] = decision.verdict
        outcomes = cell_outcomes(recs[PGD], recs[TR6], recs.get(TR1))
        for k, v in est.items():
            estimates[f"{cell.key}:{k}"] = v
        readings += [(f"{cell.key} {n}", st) for n, st in decision.readings]
        row: dict[str, Any] = {"cell": cell.label, "verdict": decision.verdict}
        row.update({k: v for k, v in outcomes.items() if k.endswith("_share")})
        row.update({k: v.text() for k, v in est.items()})
        table.append(row)
        notes_by_cell[cell] = (
            f"PGD mem {outcomes['pgd_memorizes_share']:.0%}\n"
            f"TR6 fails {outcomes['trades6_fails_share']:.0%}"
            + (f"\nTR1 fails {outcomes['trades1_fails_share']:.0%}" if claim == "E4" else "")
        )
    verdict = PIPELINE_CHECKED if ctx.tier == "smoke" else phase_verdict(list(verdicts.values()))
    rows = sorted({(c.dataset, c.n_train) for c in cells}, key=lambda t: (t[0] != "digits", t[1]))
    first = _records(ctx, (PGD,), cells[0])[PGD][0].config
    fig = plot_phase_diagram(
        [f"{ds} N={n}" for ds, n in rows], ["no BN", "BN"],
        {(c.row, c.column): v for c, v in verdicts.items()},
        {(c.row, c.column): t for c, t in notes_by_cell.items()},
        ctx.figures_dir, f"{claim.lower()}_phase_diagram.png",
        setup_for(first, ctx.tier, data="; ".join(f"{ds} N={n}" for ds, n in rows)
                  + ", fully random labels", seeds=PHASE_SEEDS[ctx.tier]),
        title_text=f"{claim} ([P2] §3) phase diagram: verdict per cell (data set and N × "
        "BatchNorm), with the share of seeds where PGD-AT memorizes (robust train ≥ 90 %) and "
        "where TRADES fails to converge (robust and clean train ≤ chance + 10).",
    )  # fmt: skip
    by_verdict: dict[str, list[str]] = {}
    for c, v in verdicts.items():
        by_verdict.setdefault(v, []).append(c.label)
    trend = "; ".join(
        f"N={n} ({ds}): " + ", ".join(
            f"{c.column} {verdicts[c]}" for c in cells if (c.dataset, c.n_train) == (ds, n)
        )
        for ds, n in rows
    )  # fmt: skip
    summary = (
        f"Phase diagram over {len(cells)} cells ({len(PHASE_SEEDS[ctx.tier])} seeds per run): "
        + "; ".join(f"{v} in {', '.join(cs)}" for v, cs in by_verdict.items())
        + f". By N: {trend}."
    )
    notes = tier_notes(ctx.tier) + [
        "Verdict over cells (pre-registered, robmem.bridge.criteria.phase_verdict): not applicable "
        "when every cell is; otherwise the common verdict of the applicable cells, "
        "inconclusive when they disagree. Each cell's estimates are in the table.",
        "[P2]'s scale is CIFAR-10 / WRN-28-10 (N = 50k, BN); the small cells show where "
        "(in N and BN) the claim holds at small scale.",
    ]
    if claim == "E4":
        notes.append(
            f"Smoothness probe: ‖∇L(θ+hu) − ∇L(θ)‖/h of the run's own objective (adversarial "
            f"examples recomputed at θ+hu), h = {PROBE_H:g}, {PROBE_POINTS} training points, "
            f"{PROBE_DIRECTIONS} random directions, at the final model; [P2]'s theorem was not "
            "retrievable (SPEC E4)."
        )
    return ClaimResult(verdict, summary, estimates, {}, [fig], table, notes, readings)


def _tiers(extra: str = "") -> dict[str, TierPlan]:
    cpu = (
        "digits, 200 training points with fully random labels (label noise 1.0, the draw "
        "varies with the seed), 300 test points, MLP [512, 512], SGD 0.1 momentum 0.9 ×0.1 at "
        "E/3 and 2E/3, wd 0, no augmentation, batch 50, ε = 0.1 (PGD-5 in training, PGD-10 "
        "evaluation every 10 epochs); PGD-AT and TRADES β = 6"
    )
    return {
        "smoke": TierPlan(
            runs="digits, 40 random-label points, MLP [64, 64], 4 epochs, seeds 0, 1" + extra,
            scale="smoke"),
        "cpu": TierPlan(runs=cpu + extra + "; 150 epochs, seeds 0-4 paired",
                        scale="digits N=200, MLP, 5 paired seeds"),
        "cpu-full": TierPlan(
            runs="phase diagram: cells digits N = 200, digits N = 500, MNIST-1D N = 500 (ε = "
            f"{EPS_MNIST1D:g} in [0,1] units) × MLP [512, 512] without / with BatchNorm; per "
            "cell PGD-AT and TRADES β = 6" + extra + ", fully random labels, [P2]'s SGD "
            f"schedule over {PHASE_EPOCHS['cpu-full']} epochs, PGD-5 training / PGD-10 "
            "evaluation every 10 epochs, 300 test points; seeds 0, 1, 2 per run family"
            + ("; smoothness probe at the final PGD-AT and TRADES β = 6 models" if extra else ""),
            scale="phase diagram: 3 N × BN off/on, 3 seeds"),
        "gpu-offline": TierPlan(
            runs="phase diagram: cells MNIST-1D N = 1000 and N = 4000 (the verdict audit's "
            "sizes), each without / with BatchNorm, every run setting as at cpu-full (MLP [512, "
            f"512], {PHASE_EPOCHS['gpu-offline']} epochs, PGD-5 / PGD-10, 300 test points); "
            "PGD-AT and TRADES β = 6" + extra + "; seeds 0, 1, 2 per run family; MNIST-1D is "
            "generated locally, so a GPU machine without network runs it",
            scale="phase diagram: MNIST-1D N = 1k / 4k × BN off/on, 3 seeds"),
        "gpu": TierPlan(
            runs="CIFAR-10 random labels, WRN-28-10, PGD-10 8/255, SGD 0.1 (×0.1 at 100, 200), "
            "wd 0, 300 epochs ([P2] train.py), phase cells N = 10k and 50k" + extra
            + "; " + GPU_REASON_DATA,
            scale="CIFAR-10, WRN-28-10, N = 10k / 50k, 3 seeds"),
    }  # fmt: skip


CLAIMS = [
    Claim(
        id="E3",
        title="AT memorizes random labels (PGD-AT yes, TRADES no)",
        paper_claim=(
            "With completely random labels PGD-AT still reaches about 100% robust training "
            "accuracy given capacity, while test accuracy stays at chance; TRADES (β = 6) "
            "fails to converge."
        ),
        source="[P2] §3 (abstract claim 1; official train.py README)",
        kind=EMPIRICAL,
        premises=E3_PREMISES,
        criteria=E3_CRITERIA,
        criterion=PHASE_RULE,
        tiers=_tiers(),
        evaluate=evaluate_e3,
        requests=lambda tier: rl_requests(tier, (PGD, TR6)),
    ),
    Claim(
        id="E4",
        title="Gradient instability of TRADES on random labels",
        paper_claim=(
            "Some AT methods (TRADES) suffer from gradient instability on random labels; "
            "reducing β lets TRADES converge."
        ),
        source="[P2] §3 (abstract claim 2; theorem not retrieved)",
        kind=EMPIRICAL,
        premises=E4_PREMISES,
        criteria=E4_CRITERIA,
        criterion=PHASE_RULE + " There each cell is also judged by log10_smoothness_ratio > 0 "
        "(TRADES β = 6 / PGD-AT local smoothness at the final model, paired by seed).",
        tiers=_tiers(", plus TRADES β = 1"),
        evaluate=evaluate_e4,
        requests=lambda tier: rl_requests(tier, (PGD, TR6, TR1)),
    ),
]
