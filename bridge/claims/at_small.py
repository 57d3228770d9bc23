"""E1, E2, B2: the adversarially trained network, its input landscape, and the clean bound.

Runs (per seed): PGD-AT and standard training on each data set of the tier (E1), plus PGD-AT
at two more radii (E2's knee test); the landscape is measured at the final epoch on a fixed
subset. Criteria and premises: :mod:`robmem.bridge.criteria` (fixed before the runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from robmem.bridge.claims.common import (
    CPU_THREADS,
    GPU_REASON_DATA,
    GPU_RUN,
    OFFLINE_REASON,
    SEEDS,
    above_chance,
    empirical_result,
    pts,
    setup_for,
    tier_notes,
)
from robmem.bridge.claims.runs import (
    EPS_MNIST,
    STEP_FRACTION,
    LandscapeSpec,
    RunRequest,
    requests_for,
)
from robmem.bridge.criteria import E1_CRITERIA, E1_PREMISES, E2_CRITERIA, E2_PREMISES, EPS_MNIST1D
from robmem.bridge.plots import plot_bars_ci, plot_curves_ci, plot_vacuity
from robmem.bridge.records import LandscapeCurve, RunRecord
from robmem.bridge.registry import Claim, ClaimContext, ClaimResult, TierPlan
from robmem.bridge.stats import Estimate, kendall_tau_ci, mean_ci, paired_difference
from robmem.bridge.verdicts import (
    EMPIRICAL,
    FAILED,
    ILLUSTRATION,
    VERIFIED,
    combine,
)

# ---------------------------------------------------------------- settings per tier
#: Data sets of E1 per tier. digits: scikit-learn's 8×8 digits (1438 / 359 split); mnist1d:
#: the MNIST-1D generator ([P1]'s regime: robust train ≈ 100 %, large robust gap).
DATASETS: dict[str, tuple[str, ...]] = {
    "smoke": ("digits",),
    "cpu": ("digits",),
    "cpu-full": ("digits", "mnist1d"),
    "gpu": ("cifar10", "mnist1d"),
}
#: E2's data set per tier (its knee test runs PGD-AT at several radii on it).
E2_DATASET: dict[str, str] = {
    "smoke": "digits",
    "cpu": "digits",
    "cpu-full": "mnist1d",
    "gpu": "cifar10",
}
#: E2: extra training radii besides the E1 run's (digits ε = 0.1, MNIST-1D ε = EPS_MNIST1D);
#: the knee must move with ε.
E2_EXTRA_EPS: dict[str, tuple[float, ...]] = {
    "smoke": (0.05,),
    "cpu": (0.05, 0.15),
    "cpu-full": (round(0.5 * EPS_MNIST1D, 6), round(1.5 * EPS_MNIST1D, 6)),
    "gpu": (4 / 255, 12 / 255),
}
#: MNIST-1D training-set size of E1/E2 (the rest of the generated 4000-point train split is
#: unused; 1000 test points).
MNIST1D_N: int = 1000
MNIST1D_TEST: int = 1000
#: Seeds of the MNIST-1D E1/E2 families at cpu-full (3: the 70-min budget; SPEC minimum).
MNIST1D_SEEDS: tuple[int, ...] = (0, 1, 2)


def knee_grid(ref_eps: float) -> tuple[float, ...]:
    """E2 landscape grid: radii 0, ε/4, …, 3ε for the reference training radius ε, the same
    for every model of a data set so that knees are comparable."""
    return tuple(round(ref_eps * k / 4, 6) for k in range(13))


#: Digits / MNIST grid: 0 … 0.3 in steps of 0.025 ([0,1] units).
KNEE_GRID: tuple[float, ...] = knee_grid(EPS_MNIST)
#: Samples and PGD steps of the landscape search at the final epoch.
LANDSCAPE_SAMPLES: dict[str, int] = {
    "smoke": 30, "cpu": 200, "cpu-full": 400, "gpu-offline": 400, "gpu": 1000
}  # fmt: skip
LANDSCAPE_STEPS: dict[str, int] = {
    "smoke": 3, "cpu": 10, "cpu-full": 10, "gpu-offline": 10, "gpu": 10
}  # fmt: skip
#: B2: confidence Δ of the VC bound.
B2_CONFIDENCE: float = 0.05


def ref_eps(dataset: str) -> float:
    """The E1 training radius of ``dataset`` ([0,1] units)."""
    return EPS_MNIST1D if dataset == "mnist1d" else EPS_MNIST


def seeds_of(tier: str, dataset: str) -> tuple[int, ...]:
    """Seeds of the E1/E2 families on ``dataset`` at ``tier``."""
    if dataset == "mnist1d" and tier in ("cpu-full", "gpu-offline"):
        return MNIST1D_SEEDS
    return SEEDS[tier]


def at_config(
    tier: str, dataset: str = "digits", method: str = "pgd", eps: float | None = None
) -> Any:
    """The PGD-AT (or standard) run of E1/E2/B2 at ``tier`` on ``dataset`` (seed 0); ``eps``
    defaults to :func:`ref_eps`."""
    from robmem.empirics.config import TrainConfig, preset
    from robmem.empirics.data import model_normalization

    eps = ref_eps(dataset) if eps is None else eps
    common = dict(
        method=method, epsilon=eps, attack_step_size=STEP_FRACTION * eps,
        weight_decay=0.0,  # [P2]'s memorization runs use wd 0; no explicit regularizer
        batch_size=64, lr=0.1, schedule="piecewise", seed=0, data_seed=0,
    )  # fmt: skip
    if tier == "smoke":
        return TrainConfig(
            dataset="digits", n_train=150, n_test=100, model="mlp",
            model_kwargs={"hidden": [64, 64]}, epochs=3, attack_steps=3, eval_attack_steps=3,
            num_threads=1, **common,
        )  # fmt: skip
    if tier in ("cpu", "cpu-full", "gpu-offline") and dataset == "mnist1d":
        # MNIST-1D N = 1000, MLP [512, 512] (standardization inside the model), 60 epochs
        # (gpu-offline: B1's models vary N from it);
        # pilot (seed 0, ε = 0.01): robust train 100 %, robust test 30 %, clean test 56 %
        return TrainConfig(
            dataset="mnist1d", n_train=MNIST1D_N, n_test=MNIST1D_TEST, model="mlp",
            model_kwargs={"hidden": [512, 512], **model_normalization("mnist1d")}, epochs=60,
            attack_steps=10, eval_attack_steps=10, eval_every=10, num_threads=CPU_THREADS,
            **common,
        )  # fmt: skip
    if tier == "gpu" and dataset == "mnist1d":
        # gpu: MNIST-1D's whole 4000-point train split, the 1-D CNN (BN), 100 epochs
        return TrainConfig(
            dataset="mnist1d", n_test=MNIST1D_TEST, model="cnn1d",
            model_kwargs=model_normalization("mnist1d"), epochs=100, attack_steps=10,
            eval_attack_steps=10, eval_every=10, device="auto", **common,
        )  # fmt: skip
    if tier in ("cpu", "cpu-full"):
        # digits, MLP [512, 512], 30 epochs: robust train ≈ 97 %, ≈ 35 s per run on one core.
        # Evaluated every 10 epochs: E1/E2/B2/B3 read the final epoch only, and a PGD-10
        # evaluation of the full splits costs about a third of a training epoch's attacks.
        return TrainConfig(
            dataset=dataset, model="mlp", model_kwargs={"hidden": [512, 512]}, epochs=30,
            attack_steps=10, eval_attack_steps=10, eval_every=10, num_threads=CPU_THREADS,
            **common,
        )  # fmt: skip
    # gpu: [P1] §4 CIFAR-10 setting with PreActResNet-18 ([R20]); 30 epochs, cyclic lr
    eps = 8 / 255 if eps in (EPS_MNIST, EPS_MNIST1D) else eps
    return preset(
        "rice-cifar10-pgd", method=method, epsilon=eps, epochs=30, lr=0.2, schedule="cyclic",
        **GPU_RUN,
    )  # fmt: skip


def landscape_spec(tier: str, config: Any) -> LandscapeSpec:
    """E2: the fixed knee grid of the data set, at the final epoch only."""
    grid = (
        tuple(round(k / 255, 6) for k in range(0, 25, 2))
        if config.dataset == "cifar10"
        else knee_grid(ref_eps(config.dataset))
    )
    return LandscapeSpec(
        eps_grid=grid,
        epochs=(config.epochs,),
        n_samples=LANDSCAPE_SAMPLES[tier],
        steps=LANDSCAPE_STEPS[tier],
    )


def _fam(kind: str, dataset: str, eps: float | None = None) -> str:
    return f"e1-{kind}-{dataset}" + ("" if eps is None else f"-eps{eps:g}")


def e1_requests(tier: str) -> list[RunRequest]:
    out = []
    for ds in DATASETS[tier]:
        for kind, method in (("at", "pgd"), ("std", "standard")):
            cfg = at_config(tier, ds, method)
            out += requests_for(
                _fam(kind, ds), cfg, seeds_of(tier, ds), landscape=landscape_spec(tier, cfg)
            )
    return out


def e2_requests(tier: str) -> list[RunRequest]:
    ds = E2_DATASET[tier]
    out = [r for r in e1_requests(tier) if r.config.dataset == at_config(tier, ds).dataset]
    for eps in E2_EXTRA_EPS[tier]:
        cfg = at_config(tier, ds, "pgd", eps)
        out += requests_for(
            _fam("at", ds, eps), cfg, seeds_of(tier, ds), landscape=landscape_spec(tier, cfg)
        )
    return out


# ---------------------------------------------------------------- E1
def e1_estimates(at: Sequence[RunRecord], num_classes: int = 10) -> dict[str, Estimate]:
    """E1's statistics over the seeds of one data set's PGD-AT runs (pts)."""
    finals = [r.final for r in at]
    return {
        "at_clean_test_above_chance_pts": above_chance(
            [f.test_clean_acc for f in finals], num_classes
        ),
        "robust_gap_pts": pts([f.robust_gap for f in finals]),
        "robust_gap_minus_2x_clean_gap_pts": pts([f.robust_gap - 2 * f.clean_gap for f in finals]),
    }


def _four(records: Sequence[RunRecord]) -> dict[str, Estimate]:
    finals = [r.final for r in records]
    return {
        "robust test": pts([f.test_robust_acc for f in finals]),
        "robust train": pts([f.train_robust_acc for f in finals]),
        "clean test": pts([f.test_clean_acc for f in finals]),
        "clean train": pts([f.train_clean_acc for f in finals]),
    }


def evaluate_e1(ctx: ClaimContext) -> ClaimResult:
    results, groups, table = [], {}, []
    estimates: dict[str, Estimate] = {}
    setup = None
    for ds in DATASETS[ctx.tier]:
        seeds = seeds_of(ctx.tier, ds)
        at = ctx.records.family(_fam("at", ds), seeds)
        std = ctx.records.family(_fam("std", ds), seeds)
        est = e1_estimates(at)
        res = empirical_result(ctx.tier, est, E1_CRITERIA, E1_PREMISES, summary=f"{ds}:")
        results.append((ds, res))
        for k, v in est.items():
            estimates[f"{ds}_{k}"] = v
        groups[f"standard ({ds})"] = _four(std)
        groups[f"PGD-AT ({ds})"] = _four(at)
        for label, recs in (("standard", std), ("PGD-AT", at)):
            for r in recs:
                f = r.final
                table.append(
                    {"data": ds, "run": label, "seed": r.seed,
                     "robust_test": 100 * f.test_robust_acc,
                     "robust_train": 100 * f.train_robust_acc,
                     "clean_test": 100 * f.test_clean_acc, "clean_train": 100 * f.train_clean_acc}
                )  # fmt: skip
        setup = setup_for(at[0].config, ctx.tier, data=", ".join(DATASETS[ctx.tier]), seeds=seeds)
    assert setup is not None
    fig = plot_bars_ci(
        groups, ctx.figures_dir, "e1_accuracies.png", setup,
        title_text="E1 ([P1] Table 1 protocol): robust (PGD) and clean accuracy on train and "
        "test, standard training vs PGD-AT.",
        ylabel="accuracy (%)",
    )  # fmt: skip
    verdict = combine([r.verdict for _, r in results])
    summary = " ".join(r.summary for _, r in results)
    return ClaimResult(
        verdict, summary, estimates, {}, [fig], table, tier_notes(ctx.tier),
        [(f"{ds} {n}", s) for ds, r in results for n, s in r.readings],
    )  # fmt: skip


# ---------------------------------------------------------------- E2
def knee(curve: LandscapeCurve) -> float:
    """κ: the smallest grid radius where the mean loss change reaches half its value at the
    largest radius (the largest radius when the curve never rises)."""
    top = curve.loss_change[-1]
    if not top > 0:
        return float(curve.eps[-1])
    for r, v in zip(curve.eps, curve.loss_change, strict=True):
        if v >= 0.5 * top:
            return float(r)
    return float(curve.eps[-1])


def _final_curve(r: RunRecord, split: str = "train") -> LandscapeCurve:
    if not r.landscape:
        raise ValueError(f"run {r.family} seed {r.seed} has no landscape measurement")
    return r.landscape[max(r.landscape)][split]


def e2_estimates(
    at_by_eps: dict[float, Sequence[RunRecord]],
    std: Sequence[RunRecord],
    ref_eps: float,
    num_classes: int = 10,
) -> dict[str, Estimate]:
    """E2's statistics: τ(ε_train, κ) across AT models; κ_AT(ref ε) − κ_std paired by seed."""
    eps_list, knees = [], []
    for eps, recs in sorted(at_by_eps.items()):
        for r in recs:
            eps_list.append(eps)
            knees.append(knee(_final_curve(r)))
    ref = {r.seed: knee(_final_curve(r)) for r in at_by_eps[ref_eps]}
    fits = above_chance([r.final.train_robust_acc for r in at_by_eps[ref_eps]], num_classes)
    std_k = {r.seed: knee(_final_curve(r)) for r in std}
    seeds = sorted(set(ref) & set(std_k))
    return {
        "at_robust_train_above_chance_pts": fits,
        "knee_tau": kendall_tau_ci(eps_list, knees),
        "knee_shift_vs_standard": paired_difference(
            [ref[s] for s in seeds], [std_k[s] for s in seeds]
        ),
    }


def evaluate_e2(ctx: ClaimContext) -> ClaimResult:
    ds = E2_DATASET[ctx.tier]
    seeds = seeds_of(ctx.tier, ds)
    eps0 = at_config(ctx.tier, ds).epsilon
    at_by_eps = {eps0: ctx.records.family(_fam("at", ds), seeds)}
    for eps in E2_EXTRA_EPS[ctx.tier]:
        at_by_eps[at_config(ctx.tier, ds, "pgd", eps).epsilon] = ctx.records.family(
            _fam("at", ds, eps), seeds
        )
    std = ctx.records.family(_fam("std", ds), seeds)
    est = e2_estimates(at_by_eps, std, eps0)
    runs = [(f"PGD-AT ε={e:g}", rr) for e, rr in sorted(at_by_eps.items())] + [("standard", std)]
    series, table = {}, []
    for run, recs in runs:
        curves = [_final_curve(r) for r in recs]
        series[run] = (list(curves[0].eps), [list(c.loss_change) for c in curves])
        table.append(
            {"run": run, **{f"κ seed {r.seed}": knee(c) for r, c in zip(recs, curves, strict=True)}}
        )
    fig = plot_curves_ci(
        series, ctx.figures_dir, "e2_knee.png",
        setup_for(at_by_eps[eps0][0].config, ctx.tier, seeds=seeds),
        title_text="E2 ([P1] Figs 2-4): mean train loss change max_{‖ξ‖∞≤r} L(x+ξ) − L(x) "
        "(PGD lower estimate) against r at the final epoch, per training radius.",
        ylabel="loss change (nats)", xlabel="ℓ∞ radius r (pixel units, [0,1] scale)",
        vlines=sorted(at_by_eps),
    )  # fmt: skip
    test_g = mean_ci([_final_curve(r, "test").at(eps0)[0] for r in at_by_eps[eps0]])
    train_g = mean_ci([_final_curve(r).at(eps0)[0] for r in at_by_eps[eps0]])
    grid = _final_curve(std[0]).eps
    return empirical_result(
        ctx.tier, est, E2_CRITERIA, E2_PREMISES,
        summary=f"{ds}: knees κ (half-rise radius of the train loss-change curve) per ε in the "
        f"table; at ε = {eps0:g} train G = {train_g.text()}, test G = {test_g.text()}.",
        figures=[fig], table=table,
        notes=[
            "Loss change and G are PGD lower estimates (10 steps) on a fixed subset at the "
            "final epoch; κ is read on the grid " + ", ".join(f"{e:g}" for e in grid[:3])
            + ", …, " + f"{grid[-1]:g}.",
            "[P1] reports test curves rising over epochs on CIFAR-10 only (MNIST test curves "
            "behave like train); the test-set figures are shown, not judged.",
        ],
    )  # fmt: skip


# ---------------------------------------------------------------- B2
def evaluate_b2(ctx: ClaimContext) -> ClaimResult:
    from robmem.theory.bounds.vc import vc_dimension_upper_from_widths, vc_generalization_gap
    from robmem.theory.counting import construction_parameter_count

    seeds = SEEDS[ctx.tier]
    ds = DATASETS[ctx.tier][0]
    at = ctx.records.family(_fam("at", ds), seeds)
    cfg = at[0].config
    n, dim, classes = _data_shape(cfg)
    hidden = list((cfg.get("model_kwargs") or {}).get("hidden", []))
    widths = [dim, *hidden, classes]
    vc = vc_dimension_upper_from_widths(widths).value
    bound = vc_generalization_gap(n=n, vc=vc, confidence=B2_CONFIDENCE).value
    w_cons = construction_parameter_count(n, dim, n_classes=classes)
    cons_bound = vc_generalization_gap(
        n=n, vc=w_cons * math.log2(w_cons), confidence=B2_CONFIDENCE
    ).value
    clean_gap = pts([r.final.clean_gap for r in at])
    verdict = VERIFIED if bound >= 1.0 and cons_bound >= 1.0 else FAILED
    fig = plot_vacuity(
        [f"PGD-AT MLP {hidden}", "T1 construction (W log2 W)"],
        [max(clean_gap.mean / 100.0, 0.0), 0.0], [bound, cons_bound], ctx.figures_dir,
        "b2_clean_gap_vs_vc.png", setup_for(cfg, ctx.tier, seeds=seeds),
    )  # fmt: skip
    summary = (
        f"VC bound {bound:.3g} (VCdim ≤ {vc:.3g}, N = {n}) and {cons_bound:.3g} for the T1 "
        f"construction: {'both vacuous (≥ 1)' if verdict == VERIFIED else 'not vacuous'}; "
        f"measured clean gap of the AT net {clean_gap.text()} pts."
    )
    notes = tier_notes(ctx.tier) + [
        "An illustration, not a test: for VC ≥ N the bound exceeds √(2 ln 2) > 1 by "
        "arithmetic, so 'verified' only says the calculator shows the vacuity [P1] §6 describes.",
        f"VC dimension by Bartlett-Harvey-Liaw-Mehrabian (widths {widths}); gap bound "
        f"√(2 log Π(N)/N) + √(log(1/Δ)/(2N)) with Δ = {B2_CONFIDENCE}.",
    ]
    numbers = {"n_train": n, "vc_dim_upper": vc, "vc_bound": bound,
               "construction_params": w_cons, "construction_vc_bound": cons_bound}  # fmt: skip
    return ClaimResult(verdict, summary, {"clean_gap_pts": clean_gap}, numbers, [fig], [], notes)


def _data_shape(cfg: dict[str, Any]) -> tuple[int, int, int]:
    """(N, d, C) of a run's training data (loads the data set, no training)."""
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.trainers import prepare_data

    data = prepare_data(TrainConfig.from_dict(dict(cfg)))
    return len(data.train_y), int(math.prod(data.in_shape)), int(data.num_classes)


# ---------------------------------------------------------------- entries
def _tiers(extra: str = "", extra_full: str = "") -> dict[str, TierPlan]:
    return {
        "smoke": TierPlan(
            runs="digits (150 train / 100 test), MLP [64, 64], PGD-3 AT at ε = 0.1, 3 epochs, "
            "seeds 0, 1" + extra, scale="smoke"),
        "cpu": TierPlan(
            runs="digits (1438 train / 359 test), MLP [512, 512], PGD-10 AT at ε = 0.1 (step "
            "0.025), wd 0, 30 epochs, piecewise lr 0.1; standard training with the same "
            "settings; seeds 0, 1, 2; landscape on 200 train + 200 test points at the final "
            "epoch" + extra,
            scale="digits N=1438, MLP [512, 512], 3 seeds"),
        "cpu-full": TierPlan(
            runs="digits as cpu with 5 seeds and 400 landscape points; MNIST-1D (N = "
            f"{MNIST1D_N} train / {MNIST1D_TEST} test, standardization inside the model), MLP "
            f"[512, 512], PGD-10 AT at ε = {EPS_MNIST1D:g} in [0,1] units ({12 * EPS_MNIST1D:g} "
            "raw, i.e. data standard deviations), wd 0, 60 epochs, piecewise lr 0.1, and "
            "standard training, seeds 0, 1, 2, landscape on the grid 0, ε/4, …, 3ε"
            + (extra_full or extra),
            scale=f"digits N=1438 (5 seeds) + MNIST-1D N={MNIST1D_N} (3 seeds), MLP"),
        "gpu-offline": TierPlan(reason=OFFLINE_REASON),
        "gpu": TierPlan(
            runs="CIFAR-10, PreActResNet-18, PGD-10 AT at 8/255 (step 2/255), 30 epochs cyclic "
            "lr, crop+flip, bf16, 3 seeds; MNIST-1D (all 4000 train points), 1-D CNN, PGD-10 at "
            f"ε = {EPS_MNIST1D:g}, 100 epochs, 3 seeds" + extra + "; " + GPU_REASON_DATA,
            scale="CIFAR-10, PreActResNet-18 + MNIST-1D CNN, 3 seeds"),
    }  # fmt: skip


CLAIMS = [
    Claim(
        id="E1",
        title="AT: large robust gap, small clean gap",
        paper_claim=(
            "Adversarial training fits the training set robustly (robust train 100%) but "
            "generalizes robustly much worse (45.8% robust test) while the clean gap stays "
            "small (87.3% vs 100%); standard training has 3.5% robust test accuracy."
        ),
        source="[P1] Table 1, quoting Raghunathan et al. 2019 (CIFAR-10)",
        kind=EMPIRICAL,
        premises=E1_PREMISES,
        criteria=E1_CRITERIA,
        criterion="Per data set; several data sets: all agree → that verdict, else inconclusive.",
        tiers=_tiers(),
        evaluate=evaluate_e1,
        requests=e1_requests,
    ),
    Claim(
        id="E2",
        title="Loss landscape over the input: flat on train up to the training radius",
        paper_claim=(
            "On training points max_{‖ξ‖∞≤ε} ‖∇ₓL‖₁ and the loss change are flat up to the "
            "training radius and rise after it; on CIFAR-10 test points they rise over epochs "
            "(global flatness is not achieved)."
        ),
        source="[P1] §4, Figs 2-4",
        kind=EMPIRICAL,
        premises=E2_PREMISES,
        criteria=E2_CRITERIA,
        tiers=_tiers(
            "; PGD-AT also at ε = 0.05 and 0.15 (0.05 at smoke)",
            f"; E2 on MNIST-1D: PGD-AT also at ε = {E2_EXTRA_EPS['cpu-full'][0]:g} and "
            f"{E2_EXTRA_EPS['cpu-full'][1]:g}",
        ),
        evaluate=evaluate_e2,
        requests=e2_requests,
    ),
    Claim(
        id="B2",
        title="Clean gap vs the clean / VC bound (vacuity)",
        paper_claim=(
            "The standard bound L_D ≤ L_S + √(Complexity/N) is vacuous for networks large "
            "enough to memorize robustly (complexity O(Nd)), although the clean gap is small."
        ),
        source="[P1] §6 (Thm 6.2 discussion); Bartlett et al. 2019",
        kind=ILLUSTRATION,
        criterion=(
            "Illustration: the VC gap bound (BHLM VC dimension, Δ = 0.05) of the PGD-AT network "
            "and of the T1 construction are both ≥ 1 (vacuous) → verified, else failed; the "
            "measured clean gap is shown with its CI."
        ),
        tiers=_tiers(),
        evaluate=evaluate_b2,
        requests=lambda tier: [
            r for r in e1_requests(tier) if r.family == _fam("at", DATASETS[tier][0])
        ],
    ),
]
