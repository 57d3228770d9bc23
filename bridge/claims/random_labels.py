"""E3, E4: adversarial training on random labels, and gradient (in)stability ([P2] §3).

Runs (5 paired seeds): PGD-AT, TRADES β = 6 and TRADES β = 1 on fully random labels of a small
training set, with [P2]'s optimizer (SGD 0.1, momentum 0.9, ×0.1 at E/3 and 2E/3, wd 0, no
augmentation; official train.py README). Criteria: :mod:`bridge.criteria`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bridge.claims.common import (
    CPU_THREADS,
    GPU_REASON_DATA,
    PAIRED_SEEDS,
    empirical_result,
    pts,
    setup_for,
)
from bridge.claims.runs import EPS_MNIST, STEP_FRACTION, RunRequest, requests_for
from bridge.criteria import E3_CRITERIA, E3_PREMISES, E4_CRITERIA, E4_PREMISES
from bridge.plots import plot_curves_ci
from bridge.records import RunRecord
from bridge.registry import Claim, ClaimContext, ClaimResult, TierPlan
from bridge.stats import Estimate, mean_ci, paired_difference
from bridge.verdicts import EMPIRICAL

#: TRADES β of [P2]'s code and the reduced value probed by E4.
TRADES_BETA: float = 6.0
TRADES_BETA_REDUCED: float = 1.0
#: E4: the mean squared gradient norm is compared over this last fraction of the epochs.
E4_LAST_FRACTION: float = 1.0 / 3.0


def rl_config(tier: str, method: str, beta: float = TRADES_BETA) -> Any:
    """Random-label run at ``tier`` for ``method`` ∈ {pgd, trades} (seed 0)."""
    from empirics.config import TrainConfig

    eps = EPS_MNIST

    def p2_schedule(epochs: int) -> dict[str, Any]:
        # [P2]: SGD lr 0.1, momentum 0.9, ×0.1 at 1/3 and 2/3 of training, wd 0
        return dict(
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            schedule="multistep",
            milestones=[epochs // 3, 2 * epochs // 3],
            weight_decay=0.0,
            epochs=epochs,
        )

    common = dict(
        label_noise=1.0, label_noise_seed=0, method=method, trades_beta=beta, epsilon=eps,
        attack_step_size=STEP_FRACTION * eps, augment=False, seed=0,
    )  # fmt: skip
    if tier == "smoke":
        return TrainConfig(
            dataset="digits", n_train=40, n_test=60, model="mlp",
            model_kwargs={"hidden": [64, 64]}, batch_size=20, attack_steps=2,
            eval_attack_steps=2, num_threads=1, **p2_schedule(4), **common,
        )  # fmt: skip
    if tier in ("cpu", "cpu-full"):
        # digits N = 200 random labels, MLP [512, 512]: PGD-AT memorizes in ≈ 15 s on one core
        return TrainConfig(
            dataset="digits", n_train=200, n_test=300, model="mlp",
            model_kwargs={"hidden": [512, 512]}, batch_size=50, attack_steps=5,
            eval_attack_steps=10, eval_every=10, num_threads=CPU_THREADS,
            **p2_schedule(150 if tier == "cpu" else 300), **common,
        )  # fmt: skip
    # gpu: [P2] train.py README: WRN-28-10, PGD-10 8/255, wd 0, no augmentation, 300 epochs,
    # SGD lr 0.1 decayed ×0.1 at 100 and 200
    return TrainConfig(
        dataset="cifar10", download=True, model="wrn", model_kwargs={"depth": 28, "widen": 10},
        label_noise=1.0, method=method, trades_beta=beta, epsilon=8 / 255, attack_steps=10,
        attack_step_size=2 / 255, epochs=300, batch_size=128, optimizer="sgd", lr=0.1,
        schedule="multistep", milestones=[100, 200], weight_decay=0.0, eval_every=10,
        eval_train_size=10000, device="auto", precision="bf16", seed=0,
    )  # fmt: skip


#: Run families: label → (family, method, β).
FAMILIES: dict[str, tuple[str, str, float]] = {
    "PGD-AT": ("rl-pgd", "pgd", TRADES_BETA),
    f"TRADES β={TRADES_BETA:g}": ("rl-trades-b6", "trades", TRADES_BETA),
    f"TRADES β={TRADES_BETA_REDUCED:g}": ("rl-trades-b1", "trades", TRADES_BETA_REDUCED),
}
PGD, TR6, TR1 = FAMILIES


def rl_requests(tier: str, labels: Sequence[str] = (PGD, TR6)) -> list[RunRequest]:
    out = []
    for label in labels:
        family, method, beta = FAMILIES[label]
        out += requests_for(family, rl_config(tier, method, beta), PAIRED_SEEDS[tier])
    return out


def _records(ctx: ClaimContext, labels: Sequence[str]) -> dict[str, list[RunRecord]]:
    return {
        label: ctx.records.family(FAMILIES[label][0], PAIRED_SEEDS[ctx.tier]) for label in labels
    }


def e3_estimates(
    pgd: Sequence[RunRecord], trades: Sequence[RunRecord], num_classes: int = 10
) -> dict[str, Estimate]:
    chance = 100.0 / num_classes

    def above(values: Sequence[float | None]) -> Estimate:
        return mean_ci([100.0 * float(v) - chance for v in values])

    return {
        "pgd_robust_train_above_chance_pts": above([r.final.train_robust_acc for r in pgd]),
        "pgd_robust_train_pts": pts([r.final.train_robust_acc for r in pgd]),
        "pgd_clean_test_above_chance_pts": above([r.final.test_clean_acc for r in pgd]),
        "trades_robust_train_above_chance_pts": above([r.final.train_robust_acc for r in trades]),
        "trades_clean_train_above_chance_pts": above([r.final.train_clean_acc for r in trades]),
    }


def _acc_series(recs: Sequence[RunRecord], key: str) -> tuple[list[int], list[list[float]]]:
    rows = [[r for r in rec.rows if getattr(r, key) is not None] for rec in recs]
    xs = [r.epoch for r in rows[0]]
    return xs, [[100.0 * getattr(r, key) for r in rr] for rr in rows]


def evaluate_e3(ctx: ClaimContext) -> ClaimResult:
    recs = _records(ctx, (PGD, TR6))
    est = e3_estimates(recs[PGD], recs[TR6])
    series = {}
    for label, rr in recs.items():
        series[f"{label}: robust train (random labels)"] = _acc_series(rr, "train_robust_acc")
        series[f"{label}: clean train (random labels)"] = _acc_series(rr, "train_clean_acc")
        series[f"{label}: clean test (true labels)"] = _acc_series(rr, "test_clean_acc")
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

    chance = 100.0 / num_classes
    return {
        "trades_robust_train_above_chance_pts": mean_ci(
            [100.0 * r.final.train_robust_acc - chance for r in tr6]
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
        "cpu-full": TierPlan(runs=cpu + extra + "; 300 epochs, seeds 0-4 paired",
                             scale="digits N=200, MLP, 5 paired seeds"),
        "gpu": TierPlan(
            runs="CIFAR-10 random labels, WRN-28-10, PGD-10 8/255, SGD 0.1 (×0.1 at 100, 200), "
            "wd 0, 300 epochs ([P2] train.py)" + extra + "; " + GPU_REASON_DATA,
            scale="CIFAR-10, WRN-28-10"),
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
        tiers=_tiers(", plus TRADES β = 1"),
        evaluate=evaluate_e4,
        requests=lambda tier: rl_requests(tier, (PGD, TR6, TR1)),
    ),
]
