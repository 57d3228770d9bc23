"""E5, B4, B1: PGD-AT models across label-noise rates: complexity measures, the robust gap,
and global flatness ([P2] §4; [P1] Thm 6.3).

One family of PGD-AT runs per noise rate × seed (same data, model and [P2]'s optimizer). Per
final model: the robust gap, the complexity measures (distance-to-init against the model's own
initialization), and the landscape at the training radius on train and test points. E5 reads
Kendall τ of each deduplicated, oriented measure class with the gap (bootstrap over models);
B4 is the premise that the gap grows with the noise rate; B1 correlates test global flatness
with the robust loss gap across the models. Criteria: :mod:`robmem.bridge.criteria`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from robmem.bridge.claims.at_small import MNIST1D_N, _fam, at_config, landscape_spec, seeds_of
from robmem.bridge.claims.common import (
    CPU_THREADS,
    GPU_REASON_DATA,
    OFFLINE_REASON,
    SEEDS,
    above_chance,
    empirical_result,
    p2_optimizer,
    per_cell_result,
    setup_for,
)
from robmem.bridge.claims.runs import (
    EPS_MNIST,
    STEP_FRACTION,
    LandscapeSpec,
    RunRequest,
    measure,
    requests_for,
)
from robmem.bridge.criteria import (
    B1_CRITERIA,
    B1_PREMISES,
    B4_CRITERIA,
    B4_PREMISES,
    E5_CRITERIA,
    E5_PREMISES,
    EPS_MNIST1D,
    TRACKING_TAU,
)
from robmem.bridge.plots import plot_measures_vs_gap, plot_scatter
from robmem.bridge.records import RunRecord
from robmem.bridge.registry import Claim, ClaimContext, ClaimResult, TierPlan
from robmem.bridge.stats import Estimate, kendall_tau_ci, mean_ci
from robmem.bridge.verdicts import EMPIRICAL

#: [P2]'s noise rates (SPEC E5), per tier.
NOISE_RATES: dict[str, tuple[float, ...]] = {
    "smoke": (0.0, 0.5, 1.0),
    "cpu": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "cpu-full": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "gpu": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
}
#: Robust-margin PGD steps used for the margin-normalized measures.
MARGIN_PGD_STEPS: int = 10
#: B1: landscape samples per split at the final epoch.
B1_SAMPLES: dict[str, int] = {"smoke": 30, "cpu": 200, "cpu-full": 300, "gpu": 1000}
#: B1: relative slack of the measured first-order relation ΔL ≤ r·G (float round-off only).
B1_FIRST_ORDER_RTOL: float = 1e-6

#: E5/B4 architectures per tier: "mlp" (BN-free) and, at cpu-full, "mlp-bn" (BatchNorm after
#: every hidden layer; [P2]'s networks have BN).
ARCHS: dict[str, tuple[str, ...]] = {
    "smoke": ("mlp",),
    "cpu": ("mlp",),
    "cpu-full": ("mlp", "mlp-bn"),
    "gpu": ("mlp",),
}
#: Seeds of the E5/B4 families at cpu-full (3 × 2 architectures × 6 rates: the budget).
CPU_FULL_SEEDS: tuple[int, ...] = (0, 1, 2)
#: E5 control family (cpu-full): PGD-AT at zero noise with the training-set size varied (the
#: noise family's N = 200 is one of them): does a measure track the gap, or the noise rate?
CONTROL_N: dict[str, tuple[int, ...]] = {"cpu-full": (100, 200, 400)}
#: B1 at cpu-full and gpu-offline: MNIST-1D final PGD-AT models (E1's MNIST-1D config) over
#: N × noise × seeds (gpu-offline: 27 models, the audit's "~24").
B1_MNIST1D_N: dict[str, tuple[int, ...]] = {
    "cpu-full": (500, 1000),
    "gpu-offline": (1000, 2000, 4000),
}
B1_MNIST1D_NOISE: tuple[float, ...] = (0.0, 0.2, 0.4)


def _seeds(tier: str) -> tuple[int, ...]:
    return CPU_FULL_SEEDS if tier == "cpu-full" else SEEDS[tier]


def noise_config(tier: str, rate: float, arch: str = "mlp", n_train: int | None = None) -> Any:
    """PGD-AT at label-noise ``rate`` with [P2]'s optimizer (seed 0); ``arch`` "mlp-bn" adds
    BatchNorm; ``n_train`` overrides the training-set size (E5's control family)."""
    from robmem.empirics.config import TrainConfig

    eps = EPS_MNIST

    common = dict(
        label_noise=rate, label_noise_seed=0, method="pgd", epsilon=eps,
        attack_step_size=STEP_FRACTION * eps, seed=0, augment=False,
    )  # fmt: skip
    if tier == "smoke":
        return TrainConfig(
            dataset="digits", n_train=60, n_test=60, model="mlp",
            model_kwargs={"hidden": [32, 32]}, batch_size=30, attack_steps=2,
            eval_attack_steps=2, num_threads=1, **p2_optimizer(3), **common,
        )  # fmt: skip
    if tier in ("cpu", "cpu-full"):
        epochs = 150
        kwargs: dict[str, Any] = {"hidden": [512, 512]}
        if arch == "mlp-bn":
            kwargs["batch_norm"] = True
        return TrainConfig(
            dataset="digits", n_train=n_train or 200, n_test=300, model="mlp",
            model_kwargs=kwargs, batch_size=50, attack_steps=5,
            eval_attack_steps=10, eval_every=epochs, num_threads=CPU_THREADS,
            **p2_optimizer(epochs), **common,
        )  # fmt: skip
    return TrainConfig(
        dataset="cifar10", download=True, model="preactresnet18", label_noise=rate,
        method="pgd", epsilon=8 / 255, attack_steps=10, attack_step_size=2 / 255, epochs=100,
        batch_size=128, optimizer="sgd", lr=0.1, schedule="piecewise", weight_decay=0.0,
        eval_every=10, eval_train_size=10000, device="auto", precision="bf16", seed=0,
    )  # fmt: skip


def _family(rate: float, arch: str = "mlp", n_train: int | None = None) -> str:
    base = f"noise-{rate:g}" if arch == "mlp" else f"noise-{arch}-{rate:g}"
    return base if n_train is None else f"{base}-n{n_train}"


def _land(tier: str, cfg: Any) -> LandscapeSpec:
    return LandscapeSpec(
        eps_grid=(0.0, cfg.epsilon), epochs=(cfg.epochs,), n_samples=B1_SAMPLES[tier],
        steps=10 if tier != "smoke" else 2,
    )  # fmt: skip


def noise_requests(tier: str, *, complexity: bool = True) -> list[RunRequest]:
    """The noise family per architecture; with landscape at (0, ε) at the final epoch (B1) and,
    when asked, the complexity measures (E5) and E5's control family (N varied, noise 0)."""
    out = []
    measures = (measure("complexity", margin_steps=MARGIN_PGD_STEPS),) if complexity else ()
    for arch in ARCHS[tier]:
        for rate in NOISE_RATES[tier]:
            cfg = noise_config(tier, rate, arch)
            out += requests_for(
                _family(rate, arch), cfg, _seeds(tier), landscape=_land(tier, cfg),
                measures=measures,
            )  # fmt: skip
    if complexity:
        for n in CONTROL_N.get(tier, ()):
            cfg = noise_config(tier, 0.0, "mlp", n)
            if n == cfg.n_train and n == noise_config(tier, 0.0).n_train:
                continue  # the noise family's own N
            out += requests_for(
                _family(0.0, "mlp", n), cfg, _seeds(tier), landscape=_land(tier, cfg),
                measures=measures,
            )  # fmt: skip
    return out


def _models(ctx: ClaimContext, arch: str = "mlp") -> list[tuple[float, RunRecord]]:
    return [
        (rate, r)
        for rate in NOISE_RATES[ctx.tier]
        for r in ctx.records.family(_family(rate, arch), _seeds(ctx.tier))
    ]


def _control(ctx: ClaimContext) -> list[tuple[int, RunRecord]]:
    """E5's control family: (N, model) at zero noise (the noise family's N included)."""
    base_n = noise_config(ctx.tier, 0.0).n_train
    out = []
    for n in CONTROL_N.get(ctx.tier, ()):
        fam = _family(0.0) if n == base_n else _family(0.0, "mlp", n)
        out += [(n, r) for r in ctx.records.family(fam, _seeds(ctx.tier))]
    return out


def _gap_pts(r: RunRecord) -> float:
    return 100.0 * r.final.robust_gap


# ---------------------------------------------------------------- E5 / B4
def b4_estimates(
    models: Sequence[tuple[float, RunRecord]], num_classes: int = 10
) -> dict[str, Estimate]:
    """B4's premise (competent noise-0 models) and τ(noise rate, robust gap) over models."""
    return {
        "clean_test_at_zero_noise_above_chance_pts": above_chance(
            [r.final.test_clean_acc for q, r in models if q == 0.0], num_classes
        ),
        "tau_noise_vs_gap": kendall_tau_ci(
            [q for q, _ in models], [_gap_pts(r) for _, r in models]
        ),
    }


def measure_class_values(
    models: Sequence[tuple[Any, RunRecord]],
) -> tuple[list[str], list[dict[str, float]]]:
    """The deduplicated, oriented measure classes of each model (larger ⇒ larger predicted
    gap; :func:`robmem.empirics.complexity.measure_classes`) and the classes all models have."""
    from robmem.empirics.complexity import measure_classes

    classes = [dict(measure_classes(r.measures["complexity"])) for _, r in models]
    return sorted(set.intersection(*(set(c) for c in classes))) if classes else [], classes


def e5_estimates(
    models: Sequence[tuple[float, RunRecord]],
) -> tuple[dict[str, Estimate], list[dict[str, Any]]]:
    """B4's premise τ(rate, gap) and E5's fraction of failing classes; plus per-class rows."""
    gaps = [_gap_pts(r) for _, r in models]
    names, classes = measure_class_values(models)
    rows, n_fail, n_track = [], 0, 0
    for name in names:
        tau = kendall_tau_ci([c[name] for c in classes], gaps)
        fails = tau.high < TRACKING_TAU
        tracks = tau.low >= TRACKING_TAU
        n_fail += fails
        n_track += tracks
        rows.append({"measure class": name, "kendall_tau": tau.mean, "ci_low": tau.low,
                     "ci_high": tau.high, "fails_to_track": fails, "tracks": tracks})  # fmt: skip
    n = len(names)
    frac = (
        Estimate(n_fail / n, n_fail / n, 1.0 - n_track / n, n, "CI bounds over classes")
        if n
        else Estimate(math.nan, -math.inf, math.inf, 0, "CI bounds over classes")
    )
    return {**b4_estimates(models), "fraction_failing": frac}, rows


def control_rows(control: Sequence[tuple[int, RunRecord]]) -> tuple[dict[str, Any], Any]:
    """E5's control: at zero noise with N varied, τ(N, gap) and per measure class τ(measure,
    gap) (bootstrap over models). A class that tracks the gap here as well as across noise
    rates follows the gap, not the noise rate."""
    gaps = [_gap_pts(r) for _, r in control]
    names, classes = measure_class_values(control)
    per_class = {n: kendall_tau_ci([c[n] for c in classes], gaps) for n in names}
    return per_class, kendall_tau_ci([float(n) for n, _ in control], gaps)


E5_NOTES = [
    "Measures: robmem.empirics.measures.complexity_measures (margins on PGD points "
    "of the noisy training set; distance-to-init against the run's own initialization), "
    "reduced to deduplicated, oriented classes by robmem.empirics.complexity.measure_classes.",
    "[P2]'s exact protocol (which measures, how oriented, how many models) was not "
    "retrievable; this is our documented reconstruction.",
]


def evaluate_e5(ctx: ClaimContext) -> ClaimResult:
    archs = ARCHS[ctx.tier]
    parts, all_rows = [], []
    for arch in archs:
        est, rows = e5_estimates(_models(ctx, arch))
        parts.append((arch, est, rows))
        all_rows += [{"architecture": arch, **row} for row in rows]
    n_models = len(NOISE_RATES[ctx.tier]) * len(_seeds(ctx.tier))
    summary = (
        f"{len(parts[0][2])} measure classes over {n_models} PGD-AT models per architecture "
        f"({len(NOISE_RATES[ctx.tier])} noise rates × {len(_seeds(ctx.tier))} seeds):"
    )
    if len(archs) == 1 and not CONTROL_N.get(ctx.tier):
        return empirical_result(
            ctx.tier, parts[0][1], E5_CRITERIA, E5_PREMISES, summary=summary, table=all_rows,
            notes=E5_NOTES,
        )  # fmt: skip
    numbers: dict[str, Any] = {}
    notes = list(E5_NOTES)
    control = _control(ctx)
    if control:
        per_class, tau_n = control_rows(control)
        for row in all_rows:
            tau = per_class.get(row["measure class"])
            if tau is not None:
                row["control τ (noise 0, N varied)"] = tau.text()
        numbers["control_tau_N_vs_gap"] = tau_n.mean
        numbers["control_tau_N_vs_gap_ci"] = f"[{tau_n.low:.3g}, {tau_n.high:.3g}]"
        numbers["control_classes_tracking"] = sum(
            1 for t in per_class.values() if t.low >= TRACKING_TAU
        )
        numbers["control_classes"] = len(per_class)
        notes.append(
            "Control family (reported, not judged): PGD-AT at zero noise with N = "
            + ", ".join(str(n) for n in CONTROL_N[ctx.tier])
            + f" ({len(control)} models); τ(N, gap) = {tau_n.text()}. A class whose τ tracks "
            "the gap across noise rates but not here follows the noise rate, not the gap."
        )
    cells = [(arch, f"{arch}_", f"{arch} ", est, E5_CRITERIA) for arch, est, _ in parts]
    return per_cell_result(
        ctx.tier, cells, E5_PREMISES, summary, numbers=numbers, table=all_rows, notes=notes
    )


def evaluate_b4(ctx: ClaimContext) -> ClaimResult:
    archs = ARCHS[ctx.tier]
    parts, per_rate, figs = [], [], []
    for arch in archs:
        models = _models(ctx, arch)
        rates = [rate for rate, _ in models]
        gaps = [_gap_pts(r) for _, r in models]
        est = b4_estimates(models)
        parts.append((arch, f"{arch}_", f"{arch} ", est, B4_CRITERIA))
        names, classes = measure_class_values(models)
        measures = {n: [c[n] for c in classes] for n in names}
        taus = {n: kendall_tau_ci(measures[n], gaps).mean for n in names}
        suffix = "" if arch == "mlp" else f"_{arch.replace('-', '_')}"
        figs.append(plot_measures_vs_gap(
            rates, gaps, measures, taus, ctx.figures_dir, f"b4_measures_vs_gap{suffix}.png",
            setup_for(models[0][1].config, ctx.tier, data="digits, label noise varied",
                      seeds=_seeds(ctx.tier)),
        ))  # fmt: skip
        per_rate += [
            {
                "architecture": arch,
                "noise rate": rate,
                "robust gap (pts)": mean_ci([_gap_pts(r) for q, r in models if q == rate]).text(),
            }
            for rate in NOISE_RATES[ctx.tier]
        ]
    if len(archs) == 1:
        return empirical_result(
            ctx.tier, parts[0][3], B4_CRITERIA, B4_PREMISES,
            summary="Robust gap against the label-noise rate:", figures=figs, table=per_rate,
        )  # fmt: skip
    return per_cell_result(
        ctx.tier, parts, B4_PREMISES, "Robust gap against the label-noise rate, per "
        "architecture:", figures=figs, table=per_rate,
    )  # fmt: skip


# ---------------------------------------------------------------- B1
def b1_estimates(models: Sequence[RunRecord]) -> tuple[dict[str, Estimate], dict[str, Any]]:
    """B1's statistics across final models (each with a landscape at its training radius)."""
    g_test, g_train, gaps, clean_loss, excess = [], [], [], [], []
    for r in models:
        eps = float(r.config["epsilon"])
        land = r.landscape[max(r.landscape)]
        g_test.append(land["test"].at(eps)[0])
        g_train.append(land["train"].at(eps)[0])
        gaps.append(r.final.robust_loss_gap)
        clean_loss.append(float(r.final.test_clean_loss))  # type: ignore[arg-type]
        for curve in land.values():
            for x, g, lc in zip(curve.eps, curve.grad_norm, curve.loss_change, strict=True):
                excess.append(lc - x * g - B1_FIRST_ORDER_RTOL * max(1.0, x * g))
    est = {
        "test_minus_train_flatness": mean_ci([a - b for a, b in zip(g_test, g_train, strict=True)]),
        "tau_flatness_vs_gap": kendall_tau_ci(g_test, gaps),
        "partial_tau_given_clean_loss": kendall_tau_ci(g_test, gaps, control=clean_loss),
    }
    return est, {
        "max_first_order_excess": max(excess) if excess else None,
        "first_order_relation_holds": bool(excess) and max(excess) <= 0.0,
        "n_models": len(models),
        "_g_test": g_test,
        "_gaps": gaps,
    }


def _b1_mnist1d_runs(tier: str) -> list[tuple[str, str, Any]]:
    """B1's MNIST-1D runs, (label, family, config) per N × noise: E1's MNIST-1D PGD-AT config
    (the cell of E1's own N at zero noise *is* E1's family)."""
    cfg = at_config(tier, "mnist1d")
    runs = []
    for n in B1_MNIST1D_N[tier]:
        for q in B1_MNIST1D_NOISE:
            if n == MNIST1D_N and q == 0.0:
                fam, run_cfg = _fam("at", "mnist1d"), cfg
            else:
                fam = f"b1-mnist1d-n{n}-noise{q:g}"
                run_cfg = dataclasses.replace(cfg, n_train=n, label_noise=q)
            runs.append((f"N={n}, noise {q:g}", fam, run_cfg))
    return runs


def b1_requests(tier: str) -> list[RunRequest]:
    """B1's final models: at cpu-full and gpu-offline MNIST-1D N × noise × seeds (where global
    flatness is not reached; notes/verdict-audit.md §4), elsewhere the digits noise family."""
    if tier not in B1_MNIST1D_N:
        return noise_requests(tier, complexity=False)
    seeds = seeds_of(tier, "mnist1d")
    return [
        request
        for _, fam, cfg in _b1_mnist1d_runs(tier)
        for request in requests_for(fam, cfg, seeds, landscape=landscape_spec(tier, cfg))
    ]


def _b1_models(ctx: ClaimContext) -> tuple[list[tuple[str, RunRecord]], str, tuple[int, ...]]:
    """(group label, final model) of B1, the data text and the seeds."""
    if ctx.tier not in B1_MNIST1D_N:
        return (
            [(f"noise {q:g}", r) for q, r in _models(ctx)],
            "digits, label noise varied",
            (_seeds(ctx.tier)),
        )
    seeds = seeds_of(ctx.tier, "mnist1d")
    models = [
        (label, r)
        for label, fam, _ in _b1_mnist1d_runs(ctx.tier)
        for r in ctx.records.family(fam, seeds)
    ]
    return models, "MNIST-1D, N and label noise varied", seeds


def evaluate_b1(ctx: ClaimContext) -> ClaimResult:
    models, data_text, seeds = _b1_models(ctx)
    est, facts = b1_estimates([r for _, r in models])
    g_test, gaps = facts.pop("_g_test"), facts.pop("_gaps")
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for (label, _), g, gap in zip(models, g_test, gaps, strict=True):
        xs, ys = groups.setdefault(label, ([], []))
        xs.append(g)
        ys.append(gap)
    fig = plot_scatter(
        groups, ctx.figures_dir, "b1_flatness_vs_gap.png",
        setup_for(models[0][1].config, ctx.tier, data=data_text, seeds=seeds),
        title_text="B1 ([P1] Thm 6.3, Fig 4): test global flatness G_test(ε) (mean PGD estimate "
        "of max ‖∇ₓL‖₁) against the robust loss gap, one point per final PGD-AT model.",
        xlabel="G_test(ε) (nats per unit ℓ∞)", ylabel="robust test − train loss (nats)",
    )  # fmt: skip
    return empirical_result(
        ctx.tier, est, B1_CRITERIA, B1_PREMISES,
        summary=f"Across {len(models)} final PGD-AT models ({data_text}, × seeds): measured "
        "first-order relation ΔL ≤ ε·G "
        f"{'holds' if facts['first_order_relation_holds'] else 'FAILS'} "
        "at every model, radius and split;",
        numbers=facts, figures=[fig],
        notes=[
            "The first-order relation is exact for true maxima; G and ΔL are PGD lower "
            "estimates, so a violation means the estimate is too weak, not that the bound fails.",
            "Thm 6.3's constants are unknown; the across-model rank correlation tests its shape.",
        ],
    )  # fmt: skip


def _tiers(b1: bool = False) -> dict[str, TierPlan]:
    cpu = (
        "digits, 200 train / 300 test, label noise 0, 0.2, 0.4, 0.6, 0.8, 1.0 (draw varies with "
        "the seed), MLP [512, 512], PGD-5 AT at ε = 0.1, SGD 0.1 momentum 0.9 ×0.1 at E/3, 2E/3, "
        "wd 0; complexity measures with robust margins (PGD-10) and the run's init; landscape "
        "at (0, ε) on 200 train + 200 test points at the final epoch"
    )
    return {
        "smoke": TierPlan(
            runs="digits, 60 points, noise 0 / 0.5 / 1, MLP [32, 32], 3 epochs, seeds 0, 1",
            scale="smoke"),
        "cpu": TierPlan(runs=cpu + "; 150 epochs; seeds 0, 1, 2",
                        scale="digits N=200, MLP, 6 noise rates × 3 seeds"),
        "cpu-full": TierPlan(
            runs=(
                "MNIST-1D PGD-AT models of E1's config (N = 500 and 1000, label noise 0, 0.2, "
                f"0.4, MLP [512, 512], PGD-10 at ε = {EPS_MNIST1D:g} ([0,1] units), 60 epochs, "
                "wd 0, piecewise lr 0.1; landscape on the E2 knee grid at the final epoch, 400 "
                "points); seeds 0, 1, 2"
                if b1
                else cpu + "; MLP and MLP-BN; 150 epochs; seeds 0, 1, 2; E5 control family: "
                "noise 0 with N = 100, 200, 400"
            ),
            scale="MNIST-1D N=500/1000 × noise 0/0.2/0.4, 3 seeds" if b1
            else "digits N=200, MLP and MLP-BN, 6 noise rates × 3 seeds"),
        "gpu-offline": TierPlan(
            runs="as cpu-full with N = 1000, 2000 and 4000 (27 models)",
            scale="MNIST-1D N=1000/2000/4000 × noise 0/0.2/0.4, 3 seeds",
        ) if b1 else TierPlan(reason=OFFLINE_REASON),
        "gpu": TierPlan(
            runs="CIFAR-10, PreActResNet-18, PGD-10 AT at 8/255, 100 epochs, the six noise "
            "rates; " + GPU_REASON_DATA, scale="CIFAR-10, PreActResNet-18"),
    }  # fmt: skip


CLAIMS = [
    Claim(
        id="E5",
        title="Complexity measures fail to track the robust gap",
        paper_claim=(
            "Across PGD-AT models trained at label-noise rates 0-1, most recently suggested "
            "complexity measures do not track the robust generalization gap."
        ),
        source="[P2] (abstract claim 3); measures per notes §1-2",
        kind=EMPIRICAL,
        premises=E5_PREMISES,
        criteria=E5_CRITERIA,
        criterion="At cpu-full judged per architecture (MLP, MLP-BN): the applicable ones agree "
        "→ that verdict, else inconclusive; not applicable when neither is.",
        tiers=_tiers(),
        evaluate=evaluate_e5,
        requests=noise_requests,
    ),
    Claim(
        id="B1",
        title="Robust gap vs global flatness across models",
        paper_claim=(
            "The robust generalization gap is bounded through global flatness: gap ≲ "
            "N^(−1/(d+2))·(E_D max ‖∇ₓL‖₁ + C/√Δ); global flatness tracks the robust gap."
        ),
        source="[P1] Thm 6.3, Fig 4; exact first-order form (SPEC T4)",
        kind=EMPIRICAL,
        premises=B1_PREMISES,
        criteria=B1_CRITERIA,
        tiers=_tiers(b1=True),
        evaluate=evaluate_b1,
        requests=b1_requests,
    ),
    Claim(
        id="B4",
        title="The robust gap grows with the label-noise rate (E5's premise)",
        paper_claim=(
            "The robust generalization gap grows with the label-noise rate, which is what "
            "lets the measures be tested against it."
        ),
        source="[P2] §4 protocol; SPEC B4",
        kind=EMPIRICAL,
        premises=B4_PREMISES,
        criteria=B4_CRITERIA,
        criterion="At cpu-full judged per architecture (MLP, MLP-BN): the applicable ones agree "
        "→ that verdict, else inconclusive; not applicable when neither is.",
        tiers=_tiers(),
        evaluate=evaluate_b4,
        requests=noise_requests,
    ),
]
