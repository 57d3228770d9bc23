"""E3, E4: adversarial training on random labels, and gradient (in)stability ([P2] §3).

The runs: PGD-AT, TRADES (β = 6) and TRADES (β = 1) on fully random labels of a small
training set with an over-parameterized MLP (capacity ≫ N), no weight decay, no augmentation,
as in [P2]'s ``train.py`` README command. Criteria fixed before any run.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from bridge.claims.common import CPU_THREADS, GPU_REASON_DATA, pct, setup_for, tier_notes
from bridge.claims.runs import EPS_MNIST, STEP_FRACTION, final_row, run_training
from bridge.plots import plot_training_curves
from bridge.registry import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    ClaimContext,
    ClaimResult,
    TierPlan,
)

#: E3: PGD-AT "reaches about 100%" robust training accuracy: we require at least this.
E3_MIN_ROBUST_TRAIN: float = 0.9
#: E3: below this robust training accuracy the net did not memorize: capacity/budget issue.
E3_NO_FIT: float = 0.5
#: E3: test accuracy (true labels) "at chance": within this many points of 1/C.
E3_CHANCE_SLACK_PTS: float = 10.0
#: E3: TRADES "fails to converge": its robust train accuracy at least this far below PGD-AT's.
E3_TRADES_SHORTFALL_PTS: float = 20.0
#: E4: "instability": TRADES(β=6) per-step gradient-norm coefficient of variation, second half
#: of training, at least this multiple of PGD-AT's.
E4_CV_RATIO: float = 1.5
#: E4: reducing β helps: TRADES(β=1) robust train accuracy at least this many points above β=6.
E4_BETA_GAIN_PTS: float = 10.0
#: TRADES β of [P2]'s code and the reduced value probed by E4.
TRADES_BETA: float = 6.0
TRADES_BETA_REDUCED: float = 1.0


def rl_config(tier: str, method: str, beta: float = TRADES_BETA) -> Any:
    """Random-label run at ``tier`` for ``method`` ∈ {pgd, trades}."""
    from empirics.config import TrainConfig

    eps = EPS_MNIST
    common = dict(
        label_noise=1.0, label_noise_seed=0, method=method, trades_beta=beta, epsilon=eps,
        attack_step_size=STEP_FRACTION * eps, weight_decay=0.0, augment=False, seed=0,
        optimizer="adam", lr=1e-3, schedule="constant",
    )  # fmt: skip
    if tier == "smoke":
        return TrainConfig(
            dataset="digits", n_train=40, n_test=60, model="mlp",
            model_kwargs={"hidden": [64, 64]}, epochs=4, batch_size=20, attack_steps=2,
            eval_attack_steps=2, num_threads=1, **common,
        )  # fmt: skip
    if tier == "cpu":
        return TrainConfig(
            dataset="digits", n_train=200, n_test=300, model="mlp",
            model_kwargs={"hidden": [512, 512]}, epochs=200, batch_size=50, attack_steps=5,
            eval_attack_steps=10, eval_every=10, num_threads=CPU_THREADS, **common,
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


def _runs(ctx: ClaimContext, *, reduced: bool = False) -> dict[str, tuple[Any, dict[str, Any]]]:
    out = {}
    specs = [("PGD-AT", "pgd", TRADES_BETA), (f"TRADES β={TRADES_BETA:g}", "trades", TRADES_BETA)]
    if reduced:
        specs.append((f"TRADES β={TRADES_BETA_REDUCED:g}", "trades", TRADES_BETA_REDUCED))
    for label, method, beta in specs:
        cfg = rl_config(ctx.tier, method, beta)
        name = f"rl-{method}" + (f"-b{beta:g}" if method == "trades" else "")
        out[label] = (cfg, run_training(ctx, name, cfg))
    return out


def _curve(res: dict[str, Any], key: str) -> dict[str, list[float]]:
    rows = [r for r in res["metrics"] if r.get(key) is not None]
    return {"x": [r["epoch"] for r in rows], "y": [100.0 * r[key] for r in rows]}


def evaluate_e3(ctx: ClaimContext) -> ClaimResult:
    runs = _runs(ctx)
    cfg_pgd, res_pgd = runs["PGD-AT"]
    _, res_tr = runs[f"TRADES β={TRADES_BETA:g}"]
    last_pgd, last_tr = final_row(res_pgd), final_row(res_tr)
    chance = 100.0 / 10
    rob_pgd = pct(last_pgd["train_robust_acc"])
    rob_tr = pct(last_tr["train_robust_acc"])
    test_pgd = pct(last_pgd["test_clean_acc"])
    at_chance = test_pgd <= chance + E3_CHANCE_SLACK_PTS
    if not at_chance:
        verdict = NOT_REPRODUCED
    elif rob_pgd < 100 * E3_NO_FIT:
        verdict = INCONCLUSIVE
    elif rob_pgd >= 100 * E3_MIN_ROBUST_TRAIN:
        verdict = REPRODUCED if rob_tr <= rob_pgd - E3_TRADES_SHORTFALL_PTS else NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    series = {}
    for label, (_, res) in runs.items():
        series[f"{label}: robust train (random labels)"] = _curve(res, "train_robust_acc")
        series[f"{label}: clean test (true labels)"] = _curve(res, "test_clean_acc")
    setup = setup_for(cfg_pgd, ctx.tier)
    fig = plot_training_curves(
        series, ctx.figures_dir, "e3_random_labels.png", setup,
        title_text=(
            "E3 ([P2] §3): PGD-AT vs TRADES on fully random training labels: robust (PGD) "
            "training accuracy on the random labels and clean test accuracy on the true labels."
        ),
        ylabel="accuracy (%)", chance=chance,
    )  # fmt: skip
    numbers = {
        "pgd_robust_train_acc": rob_pgd,
        "pgd_clean_train_acc": pct(last_pgd["train_clean_acc"]),
        "pgd_clean_test_acc": test_pgd,
        "trades_robust_train_acc": rob_tr,
        "trades_clean_test_acc": pct(last_tr["test_clean_acc"]),
        "chance_acc": chance,
        "epochs": cfg_pgd.epochs,
        "n_train": cfg_pgd.n_train,
    }
    summary = (
        f"PGD-AT robust train acc on random labels {rob_pgd:.1f}% (test {test_pgd:.1f}%, "
        f"chance {chance:.0f}%); TRADES β={TRADES_BETA:g} {rob_tr:.1f}%."
    )
    notes = tier_notes(ctx.tier) + [
        "Adam (lr 1e-3, constant) replaces [P2]'s SGD schedule at the small tiers so that a "
        "few-minute run can reach the memorization regime; the gpu tier uses [P2]'s SGD setup.",
    ]
    return ClaimResult(verdict, summary, numbers, [fig], [], notes)


def _cv_second_half(values: list[float]) -> float:
    half = values[len(values) // 2 :]
    if len(half) < 2 or statistics.fmean(half) == 0:
        return float("nan")
    return statistics.pstdev(half) / statistics.fmean(half)


def evaluate_e4(ctx: ClaimContext) -> ClaimResult:
    runs = _runs(ctx, reduced=True)
    labels = list(runs)
    cvs = {label: _cv_second_half(res["step_grad_norm"]) for label, (_, res) in runs.items()}
    rob = {label: pct(final_row(res)["train_robust_acc"]) for label, (_, res) in runs.items()}
    pgd, tr6, tr1 = labels
    ratio = cvs[tr6] / cvs[pgd] if cvs[pgd] and math.isfinite(cvs[pgd]) else float("nan")
    unstable = math.isfinite(ratio) and ratio >= E4_CV_RATIO
    beta_helps = rob[tr1] >= rob[tr6] + E4_BETA_GAIN_PTS
    if unstable and beta_helps:
        verdict = REPRODUCED
    elif not unstable and not beta_helps:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    series = {}
    for label, (_, res) in runs.items():
        g = res["step_grad_norm"]
        series[label] = {"x": list(range(1, len(g) + 1)), "y": g}
    cfg = runs[pgd][0]
    fig = plot_training_curves(
        series, ctx.figures_dir, "e4_grad_norms.png", setup_for(cfg, ctx.tier),
        title_text=(
            "E4 ([P2] §3): global parameter-gradient ℓ2 norm per optimisation step on random "
            "labels, PGD-AT vs TRADES (β = 6 and reduced β = 1)."
        ),
        ylabel="‖∇_θ L‖₂ (per step, loss units per parameter unit)", xlabel="optimisation step",
        log_y=True,
    )  # fmt: skip
    numbers = {
        "cv_pgd": cvs[pgd],
        "cv_trades_beta6": cvs[tr6],
        "cv_trades_beta1": cvs[tr1],
        "cv_ratio_trades6_over_pgd": ratio,
        "robust_train_acc_pgd": rob[pgd],
        "robust_train_acc_trades_beta6": rob[tr6],
        "robust_train_acc_trades_beta1": rob[tr1],
    }
    summary = (
        f"second-half gradient-norm CV: TRADES β=6 {cvs[tr6]:.3g} vs PGD-AT {cvs[pgd]:.3g} "
        f"(ratio {ratio:.2f}); robust train acc TRADES β=1 {rob[tr1]:.1f}% vs β=6 {rob[tr6]:.1f}%."
    )
    notes = tier_notes(ctx.tier) + [
        "[P2]'s theorem on gradient instability was not retrievable (SPEC E4); this measures "
        "the phenomenon only: the coefficient of variation (std/mean) of the per-step global "
        "gradient norm over the second half of training.",
    ]
    return ClaimResult(verdict, summary, numbers, [fig], [], notes)


_RUNS_CPU = (
    "digits, 200 training points with fully random labels (label noise 1.0, seed 0), 300 test "
    "points, MLP [512, 512], Adam 1e-3, wd 0, 200 epochs, batch 50, ε = 0.1 (PGD-5 in "
    "training, PGD-10 evaluation every 10 epochs); PGD-AT and TRADES β = 6"
)
_RUNS_GPU = (
    "CIFAR-10 random labels, WRN-28-10, PGD-10 8/255, SGD 0.1 (×0.1 at 100, 200), wd 0, 300 "
    "epochs ([P2] train.py); " + GPU_REASON_DATA
)

CLAIMS = [
    Claim(
        id="E3",
        title="AT memorizes random labels (PGD-AT yes, TRADES no)",
        paper_claim=(
            "With completely random labels PGD-AT still reaches about 100% robust training "
            "accuracy given capacity, while test accuracy stays at chance; TRADES (β = 6) "
            "fails to converge."
        ),
        source="[P2] §3 (abstract claims 1; official train.py README)",
        criterion=(
            f"PGD-AT clean test accuracy (true labels) > chance + {E3_CHANCE_SLACK_PTS:g} pts → "
            f"not reproduced; else PGD-AT robust train accuracy < {100 * E3_NO_FIT:g}% → "
            f"inconclusive (no memorization at this budget); ≥ {100 * E3_MIN_ROBUST_TRAIN:g}% → "
            f"reproduced if TRADES β = 6 robust train accuracy is ≥ {E3_TRADES_SHORTFALL_PTS:g} "
            "pts lower, else not reproduced; in between → inconclusive."
        ),
        tiers={
            "smoke": TierPlan(runs="digits, 40 random-label points, MLP [64, 64], 4 epochs"),
            "cpu": TierPlan(runs=_RUNS_CPU),
            "gpu": TierPlan(runs=_RUNS_GPU),
        },
        evaluate=evaluate_e3,
    ),
    Claim(
        id="E4",
        title="Gradient instability of TRADES on random labels",
        paper_claim=(
            "Some AT methods (TRADES) suffer from gradient instability on random labels; "
            "reducing β lets TRADES converge."
        ),
        source="[P2] §3 (abstract claim 2; theorem not retrieved)",
        criterion=(
            "Over the second half of training, the coefficient of variation of the per-step "
            f"gradient norm of TRADES β = 6 ≥ {E4_CV_RATIO:g} × PGD-AT's, and TRADES β = 1 "
            f"reaches ≥ {E4_BETA_GAIN_PTS:g} pts higher robust train accuracy than β = 6: both "
            "→ reproduced; neither → not reproduced; one → inconclusive."
        ),
        tiers={
            "smoke": TierPlan(runs="the E3 smoke runs plus TRADES β = 1"),
            "cpu": TierPlan(runs=_RUNS_CPU + ", plus TRADES β = 1"),
            "gpu": TierPlan(runs=_RUNS_GPU + ", plus TRADES β = 1"),
        },
        evaluate=evaluate_e4,
    ),
]
