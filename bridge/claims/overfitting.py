"""E6: robust overfitting, temporal ensembling, and which examples are fitted late ([R20], [P2]).

PGD-AT with a step learning-rate decay is compared with PGD-AT + TE (the official [P2] form,
implemented in :mod:`empirics.trainers`), paired by seed; per-example robust fit is tracked for
PGD-AT. Criteria: :mod:`bridge.criteria`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.claims.common import GPU_REASON_DATA, PAIRED_SEEDS, empirical_result, setup_for
from bridge.claims.runs import FitSpec, RunRequest, requests_for
from bridge.criteria import E6_CRITERIA, E6_PREMISES
from bridge.plots import plot_curves_ci
from bridge.records import RunRecord
from bridge.registry import Claim, ClaimContext, ClaimResult, TierPlan
from bridge.stats import Estimate, mean_ci, paired_difference
from bridge.verdicts import EMPIRICAL


def e6_config(tier: str, method: str) -> Any:
    from empirics.config import TrainConfig

    if tier == "smoke":
        return TrainConfig(
            dataset="digits", n_train=100, n_test=80, model="mlp",
            model_kwargs={"hidden": [64, 64]}, method=method, epsilon=0.1,
            attack_step_size=0.025, attack_steps=2, eval_attack_steps=2, epochs=4,
            batch_size=50, schedule="multistep", milestones=[2, 3], lr=0.1, weight_decay=5e-4,
            te_start_epoch=2, te_end_epoch=3, num_threads=1, seed=0,
        )  # fmt: skip
    # gpu ([R20] / [P2] train_te.py): PreActResNet-18, 200 epochs, multistep [100, 150], TE
    # start 90 / end 150 / weight 300, crop+flip, wd 5e-4.
    return TrainConfig(
        dataset="cifar10", download=True, model="preactresnet18", method=method,
        epsilon=8 / 255, attack_steps=10, attack_step_size=2 / 255, eval_attack_steps=10,
        epochs=200, batch_size=128, lr=0.1, schedule="multistep", milestones=[100, 150],
        weight_decay=5e-4, augment=True, te_alpha=0.9, te_start_epoch=90, te_end_epoch=150,
        te_weight=300.0, eval_train_size=10000, device="auto", precision="bf16", seed=0,
    )  # fmt: skip


def _fit_spec(tier: str, config: Any) -> FitSpec:
    if tier == "smoke":
        return FitSpec(epochs=tuple(range(1, config.epochs + 1)), steps=2)
    return FitSpec(epochs=tuple(range(10, config.epochs + 1, 10)), steps=10)


def e6_requests(tier: str) -> list[RunRequest]:
    pgd, te = e6_config(tier, "pgd"), e6_config(tier, "pgd-te")
    return requests_for("e6-pgd", pgd, PAIRED_SEEDS[tier], fit=_fit_spec(tier, pgd)) + requests_for(
        "e6-pgd-te", te, PAIRED_SEEDS[tier]
    )


def _drop_pts(r: RunRecord) -> float:
    return 100.0 * (r.best().test_robust_acc - r.final.test_robust_acc)


def e6_estimates(
    pgd: Sequence[RunRecord], te: Sequence[RunRecord], num_classes: int = 10
) -> dict[str, Estimate]:
    """E6's statistics, paired by seed (the same seed order in both lists)."""
    chance = 100.0 / num_classes
    return {
        "pgd_best_robust_test_above_chance_pts": mean_ci(
            [100.0 * float(r.best().test_robust_acc) - chance for r in pgd]
        ),
        "pgd_best_minus_final_pts": mean_ci([_drop_pts(r) for r in pgd]),
        "te_final_minus_pgd_final_pts": paired_difference(
            [100.0 * r.final.test_robust_acc for r in te],
            [100.0 * r.final.test_robust_acc for r in pgd],
        ),
        "pgd_drop_minus_te_drop_pts": paired_difference(
            [_drop_pts(r) for r in pgd], [_drop_pts(r) for r in te]
        ),
    }


def evaluate_e6(ctx: ClaimContext) -> ClaimResult:
    seeds = PAIRED_SEEDS[ctx.tier]
    pgd = ctx.records.family("e6-pgd", seeds)
    te = ctx.records.family("e6-pgd-te", seeds)
    est = e6_estimates(pgd, te)
    series = {}
    for label, recs in (("PGD-AT", pgd), ("PGD-AT + TE", te)):
        for key, name in (("test_robust_acc", "robust test"), ("train_robust_acc", "robust train")):
            rows = [[r for r in rec.rows if getattr(r, key) is not None] for rec in recs]
            series[f"{label}: {name}"] = (
                [r.epoch for r in rows[0]],
                [[100.0 * getattr(r, key) for r in rr] for rr in rows],
            )
    cfg = pgd[0].config
    fig = plot_curves_ci(
        series, ctx.figures_dir, "e6_best_vs_final.png", setup_for(cfg, ctx.tier, seeds=seeds),
        title_text="E6 ([R20], [P2]): robust (PGD) accuracy over epochs with and without "
        "temporal ensembling; dashed lines: lr decays.",
        ylabel="accuracy (%)", vlines=cfg["milestones"],
    )  # fmt: skip
    table = [
        {"seed": a.seed, "PGD best": 100 * a.best().test_robust_acc,
         "PGD best epoch": a.best().epoch,
         "PGD final": 100 * a.final.test_robust_acc, "TE best": 100 * b.best().test_robust_acc,
         "TE final": 100 * b.final.test_robust_acc}
        for a, b in zip(pgd, te, strict=True)
    ]  # fmt: skip
    return empirical_result(
        ctx.tier, est, E6_CRITERIA, E6_PREMISES,
        summary="PGD-AT vs PGD-AT+TE, paired by seed:", figures=[fig], table=table,
        notes=["'Best' is selected on the test set, as in [R20] and [P2]'s code (optimistic)."],
    )  # fmt: skip


CLAIMS = [
    Claim(
        id="E6",
        title="Robust overfitting, and temporal ensembling removes it",
        paper_claim=(
            "PGD-AT's best robust test accuracy comes just after the first lr decay and the "
            "final one is lower ([R20]: 53.5% → 45.6%); TE keeps final ≈ best; late-fitted "
            "hard examples are memorized with one-hot labels."
        ),
        source="[R20] logs; [P2] §4 and official train_te.py / loss.py",
        kind=EMPIRICAL,
        premises=E6_PREMISES,
        criteria=E6_CRITERIA,
        tiers={
            "smoke": TierPlan(
                runs="digits (100 train), MLP [64, 64], 4 epochs, decays at 2, 3, seeds 0, 1",
                scale="smoke",
            ),
            "cpu": TierPlan(
                reason="robust overfitting appears after the first lr decay of a long schedule; "
                "the MNIST-1D cells of the regime-faithful experiments (issue 12) are not built "
                "yet, and digits at the cpu budget has no such regime to observe"
            ),
            "cpu-full": TierPlan(
                reason="the MNIST-1D robust-overfitting cells are not built yet (issue 12)"
            ),
            "gpu": TierPlan(
                runs="CIFAR-10, PreActResNet-18, PGD-10 8/255, 200 epochs, decay at 100 / 150, "
                "with and without TE (start 90, end 150, weight 300), per-example robust fit "
                "every 10 epochs, 5 paired seeds; " + GPU_REASON_DATA,
                scale="CIFAR-10, PreActResNet-18, 5 paired seeds",
            ),
        },
        evaluate=evaluate_e6,
        requests=e6_requests,
    ),
]
