"""B3, T1: the robust-memorization construction, certified, on synthetic and real data.

T1 builds the construction of :mod:`theory.construction` on synthetic separated point sets
and checks (a) certified robustness on every ball, (b) agreement with f_clean outside the
inflated balls, the exact parameter count against the closed form, and that the certifier
refutes a wrong labelling. B3 runs it on real data (digits, MNIST-10k) with the
standard-trained network as f_clean and puts it next to the PGD-AT network of E1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.claims.at_small import MNIST_MISSING_NOTE, at_run, datasets_for, standard_run
from bridge.claims.common import pct, tier_notes
from bridge.claims.runs import STEP_FRACTION, final_row, load_trained_model
from bridge.plots import Setup, plot_construction_vs_at
from bridge.registry import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    ClaimContext,
    ClaimResult,
    TierPlan,
)

#: B3 (ii): f̂'s clean test accuracy may fall at most this many points below f_clean's (the
#: construction must not hurt clean generalization; inside the inflated balls it may differ).
B3_CLEAN_MATCH_PTS: float = 0.5
#: B3 (iii): robust overfitting made concrete: robust train − robust test of f̂ ≥ this.
B3_MIN_ROBUST_GAP_PTS: float = 20.0
#: PGD against f̂ and f_clean on the test set, per tier: (test points attacked, steps,
#: restarts). The block-level evaluation of f̂ touches N·d numbers per input, so the cpu
#: tier attacks a fixed subset (the first test points of the seeded split).
B3_ATTACK: dict[str, tuple[int, int, int]] = {"smoke": (60, 5, 1), "cpu": (200, 10, 1)}
#: Sampled points of the property-(b) falsification check of theory.certify.
B3_OUTSIDE_SAMPLES: int = 32
#: Test points on which the torch block evaluation is compared with the lowered network.
B3_LOWERING_CHECK: int = 50
#: Test points per PGD batch for the block-level torch evaluation (memory: batch·N·d floats).
B3_BATCH_ELEMENTS: int = 20_000_000


class _ConstructionTorch:
    """Torch evaluation of f̂ from its blocks (for PGD); independent of the lowered network."""

    def __new__(cls, model: Any, clean_torch: Any):  # noqa: D102 - factory returning a Module
        import torch

        class Module(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer(
                    "c", torch.as_tensor(model.distance.centres, dtype=torch.float32)
                )
                self.register_buffer(
                    "alpha", torch.as_tensor(model.bump.alpha, dtype=torch.float32)
                )
                self.register_buffer("beta", torch.as_tensor(model.bump.beta, dtype=torch.float32))
                labels = torch.as_tensor(model.output.labels, dtype=torch.long)
                onehot = torch.nn.functional.one_hot(labels, model.output.n_classes).float()
                self.register_buffer("onehot", onehot)
                self.clean = clean_torch
                self.scale = float(model.gate.scale) if model.gate is not None else None

            def outside_margin(self, x: torch.Tensor) -> torch.Tensor:
                """min_i (r_i(x) − β_i): ≥ 0 iff x lies outside every inflated ball."""
                r = (x.flatten(1)[:, None, :] - self.c[None]).abs().amax(dim=2)
                return (r - self.beta).amin(dim=1)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                xf = x.flatten(1)
                r = (xf[:, None, :] - self.c[None]).abs().amax(dim=2)
                h = (torch.relu(self.beta - r) - torch.relu(self.alpha - r)) / (
                    self.beta - self.alpha
                )
                out = h @ self.onehot
                if self.scale is None:
                    return out
                f = self.clean(x)
                g = h.sum(dim=1, keepdim=True)
                return out + torch.relu(f - self.scale * g) - torch.relu(-f - self.scale * g)

        return Module()


def _robust_acc(
    model: Any, x: Any, y: Any, eps: float, batch: int, steps: int, restarts: int
) -> float:
    import torch

    from empirics.attacks import PGD

    attack = PGD(eps, STEP_FRACTION * eps, steps, restarts=restarts)
    correct = 0
    for s in range(0, len(y), batch):
        xb, yb = x[s : s + batch], y[s : s + batch]
        xa = attack(model, xb, yb)
        with torch.no_grad():
            correct += int((model(xa).argmax(1) == yb).sum())
    return correct / len(y)


def construction_on(ctx: ClaimContext, dataset: str) -> dict[str, Any]:
    """Build, certify and attack the construction on one data set; numbers in percent."""
    import torch

    from empirics.trainers import prepare_data
    from theory.certify import certify, certify_outside_balls
    from theory.construction import build_construction
    from theory.network import ReLUNetwork
    from theory.separation import opposite_label_separation

    cfg_std, res_std = standard_run(ctx, dataset)
    cfg_at, res_at = at_run(ctx, dataset)
    clean_model, _ = load_trained_model(res_std)
    inner = clean_model.net.net  # NormalizedModel -> MLP -> Sequential(Linear, ReLU, ...)
    f_clean = ReLUNetwork.from_torch(inner)
    data = prepare_data(cfg_std)
    x = data.train_x.flatten(1).double().numpy()
    y = data.train_y.numpy()
    xt = data.test_x.flatten(1).double().numpy()
    yt = data.test_y.numpy()
    delta = cfg_at.epsilon
    ctx.progress(f"{dataset}: separation and construction (N={len(y)}, d={x.shape[1]})")
    sep = opposite_label_separation(x, y, "inf")
    if not delta < sep.distance / 2:
        raise ValueError(
            f"{dataset}: ℓ∞ separation {sep.distance:.4g} does not allow δ = {delta} (< λ/2)"
        )
    model = build_construction(
        x, y, delta, "inf", clean=f_clean, n_classes=data.num_classes, separation=sep
    )
    cert = certify(model, x, y, delta, "inf")
    outside = certify_outside_balls(model, n_samples=B3_OUTSIDE_SAMPLES)
    net = model.network()
    module = _ConstructionTorch(model, inner.float()).eval()
    xt_t = torch.as_tensor(xt, dtype=torch.float32)
    yt_t = torch.as_tensor(yt)
    batch = max(1, B3_BATCH_ELEMENTS // (len(y) * x.shape[1]))
    with torch.no_grad():  # block-level torch evaluation (checked against the lowering below)
        logits, margin = [], []
        for s in range(0, len(yt), batch):
            logits.append(module(xt_t[s : s + batch]))
            margin.append(module.outside_margin(xt_t[s : s + batch]))
        pred_hat = torch.cat(logits).argmax(1).numpy()
        outside_mask = (torch.cat(margin) >= 0).numpy()
    pred_clean = f_clean.forward(xt).argmax(1)
    # property (b) on real test points: outside every inflated ball (r_i ≥ β_i) f̂ = f_clean
    agree_outside = bool((pred_hat[outside_mask] == pred_clean[outside_mask]).all())
    n_att, steps, restarts = B3_ATTACK[ctx.tier]
    n_att = min(n_att, len(yt))
    ctx.progress(f"{dataset}: PGD-{steps} against the construction on {n_att} test points")
    with torch.no_grad():
        torch_out = module(xt_t[:B3_LOWERING_CHECK]).double().numpy()
    lowering_gap = float(np.abs(torch_out - net.forward(xt[:B3_LOWERING_CHECK])).max())
    xa, ya = xt_t[:n_att], yt_t[:n_att]
    rob_hat = _robust_acc(module, xa, ya, delta, batch, steps, restarts)
    rob_clean = _robust_acc(inner.float().eval(), xa, ya, delta, 256, steps, restarts)
    at_last = final_row(res_at)
    return {
        "dataset": dataset,
        "n_train": len(y),
        "dim": x.shape[1],
        "separation_linf": sep.distance,
        "delta": delta,
        "params": net.nonzero_parameter_count(),
        "certified_robust_train_acc": 100.0 * cert.certified_fraction,
        "property_b_holds": bool(outside.holds),
        "test_fraction_outside_inflated_balls": float(outside_mask.mean()),
        "agrees_with_fclean_outside_balls": agree_outside,
        "clean_test_acc_hat": 100.0 * float((pred_hat == yt).mean()),
        "clean_test_acc_fclean": 100.0 * float((pred_clean == yt).mean()),
        "robust_test_points_attacked": n_att,
        "robust_test_acc_hat": 100.0 * rob_hat,
        "robust_test_acc_fclean": 100.0 * rob_clean,
        "torch_vs_lowered_max_abs_diff": lowering_gap,
        "at_robust_train_acc": pct(at_last["train_robust_acc"]),
        "at_clean_test_acc": pct(at_last["test_clean_acc"]),
        "at_robust_test_acc": pct(at_last["test_robust_acc"]),
    }


def b3_verdict(rows: list[dict[str, Any]]) -> str:
    verdicts = []
    for r in rows:
        i = r["certified_robust_train_acc"] == 100.0
        ii = r["agrees_with_fclean_outside_balls"] and (
            r["clean_test_acc_hat"] >= r["clean_test_acc_fclean"] - B3_CLEAN_MATCH_PTS
        )
        iii = r["certified_robust_train_acc"] - r["robust_test_acc_hat"] >= B3_MIN_ROBUST_GAP_PTS
        if not (i and ii):
            verdicts.append(NOT_REPRODUCED)
        else:
            verdicts.append(REPRODUCED if iii else INCONCLUSIVE)
    return verdicts[0] if len(set(verdicts)) == 1 else INCONCLUSIVE


def evaluate_b3(ctx: ClaimContext) -> ClaimResult:
    datasets = datasets_for(ctx.tier)
    rows = [construction_on(ctx, ds) for ds in datasets]
    verdict = b3_verdict(rows)
    bars = []
    for r in rows:
        bars.append(
            {"name": f"T1 construction ({r['dataset']})",
             "robust_train_acc": r["certified_robust_train_acc"],
             "clean_test_acc": r["clean_test_acc_hat"], "robust_test_acc": r["robust_test_acc_hat"]}
        )  # fmt: skip
        bars.append(
            {"name": f"PGD-AT net ({r['dataset']})", "robust_train_acc": r["at_robust_train_acc"],
             "clean_test_acc": r["at_clean_test_acc"], "robust_test_acc": r["at_robust_test_acc"]}
        )  # fmt: skip
    setup = Setup(
        data=", ".join(f"{r['dataset']} (N={r['n_train']}, d={r['dim']})" for r in rows),
        model="T1 construction (ℓ∞, f_clean = standard-trained MLP) vs PGD-AT MLP",
        eps=f"δ = ε = {rows[0]['delta']:g} (ℓ∞)",
        seeds="seed 0",
        tier=ctx.tier,
    )
    fig = plot_construction_vs_at(bars, ctx.figures_dir, "b3_construction_vs_at.png", setup)
    numbers = {f"{r['dataset']}_{k}": v for r in rows for k, v in r.items() if k != "dataset"}
    summary = "; ".join(
        f"{r['dataset']}: certified robust train {r['certified_robust_train_acc']:.0f}%, clean "
        f"test {r['clean_test_acc_hat']:.1f}% (f_clean {r['clean_test_acc_fclean']:.1f}%; "
        f"{100 * r['test_fraction_outside_inflated_balls']:.0f}% of test points outside the "
        "inflated balls), "
        f"robust test {r['robust_test_acc_hat']:.1f}% vs AT {r['at_robust_test_acc']:.1f}%"
        for r in rows
    )
    notes = tier_notes(ctx.tier) + [
        "Criterion (ii) was first written as 'clean test accuracy within 0.5 pts of "
        "f_clean's'; the smoke run showed that the inflated balls (radius β = λ − δ) contain "
        "test points, where f̂ legitimately differs, so (ii) now tests property (b) on the test "
        "points outside the balls plus 'no worse than f_clean'. Changed before any cpu/gpu run.",
        "Robust train accuracy of the construction is certified (interval arithmetic, "
        "theory.certify); the AT network's robust train/test accuracies are PGD estimates "
        "(upper estimates of true robust accuracy).",
    ]
    if ctx.tier == "cpu" and "mnist10k" not in datasets:
        notes.append(MNIST_MISSING_NOTE)
    return ClaimResult(verdict, summary + ".", numbers, [fig], [], notes)


# ---------------------------------------------------------------- T1
T1_CASES = {
    "smoke": [(20, 4, 0.3, 2), (15, 3, 0.3, 3)],
    "cpu": [(50, 8, 0.3, 2), (100, 16, 0.3, 2), (60, 10, 0.3, 4)],
    "gpu": [(200, 32, 0.3, 2), (300, 16, 0.3, 5)],
}


def evaluate_t1(ctx: ClaimContext) -> ClaimResult:
    from empirics.data import separated_points
    from theory.certify import Status, certify, certify_outside_balls
    from theory.construction import build_construction
    from theory.counting import construction_parameter_count

    table, ok_all = [], True
    for n, d, sep, classes in T1_CASES[ctx.tier]:
        x, y = separated_points(n, d, sep, classes, seed=n + d)
        delta = 0.45 * sep
        if classes == 2:
            labels = np.where(y == 1, 1, -1)
            model = build_construction(x, labels, delta, "inf")
        else:
            labels = y
            model = build_construction(x, labels, delta, "inf", n_classes=classes)
        cert = certify(model, x, labels, delta, "inf")
        outside = certify_outside_balls(model, n_samples=64)
        count = model.network().nonzero_parameter_count()
        formula = construction_parameter_count(
            n, d, n_classes=classes, zero_centre_coordinates=int((x == 0).sum())
        )
        wrong = np.roll(labels, 1)
        wrong_cert = certify(model, x, wrong, delta, "inf")
        rejected = any(
            s is Status.REFUTED
            for s, a, b in zip(wrong_cert.status, labels, wrong, strict=True)
            if a != b
        )
        row = {
            "N": n, "d": d, "classes": classes, "delta": delta,
            "certified_fraction": cert.certified_fraction, "property_b": bool(outside.holds),
            "params": count, "closed_form": formula, "broken_rejected": bool(rejected),
        }  # fmt: skip
        ok_all &= cert.certified_fraction == 1.0 and outside.holds and count == formula and rejected
        table.append(row)
    verdict = REPRODUCED if ok_all else NOT_REPRODUCED
    summary = (
        f"{len(table)} synthetic instances: all balls certified, property (b), exact count and "
        "broken-labelling refutation " + ("all hold." if ok_all else "do NOT all hold (see table).")
    )
    notes = tier_notes(ctx.tier) + [
        "Exact ℓ∞ construction of notes §3.4 (a documented reconstruction; the papers give no "
        "weights); synthetic points from empirics.data.separated_points with δ = 0.45·separation."
    ]
    numbers = {"instances": len(table), "all_checks_pass": ok_all}
    return ClaimResult(verdict, summary, numbers, [], table, notes)


CLAIMS = [
    Claim(
        id="B3",
        title="T1 construction on real data vs an AT network (CGRO regime)",
        paper_claim=(
            "A network of size Õ(Nd) + poly(d) memorizes the training set robustly (robust "
            "train error 0), keeps f_clean's clean test accuracy, and has robust test error "
            "Ω(that of f_clean): clean generalization with robust overfitting."
        ),
        source="[P1] Prop 3.2, Thm 3.3 / Cor 3.4; [C22] Thm 2.2",
        criterion=(
            "Per data set: (i) certified robust train accuracy of the construction = 100%, "
            "(ii) on test points outside every inflated ball f̂ predicts as f_clean does, and "
            f"its clean test accuracy is at least f_clean's − {B3_CLEAN_MATCH_PTS:g} pts, (iii) "
            f"its robust train − robust test (PGD) accuracy ≥ {B3_MIN_ROBUST_GAP_PTS:g} pts. "
            "(i)-(iii) → reproduced; (i) or (ii) fails → not reproduced; only (iii) fails → "
            "inconclusive. Several data sets must agree, else inconclusive."
        ),
        tiers={
            "smoke": TierPlan(runs="digits (150 train), f_clean = the smoke standard MLP"),
            "cpu": TierPlan(
                runs="digits (1438 train) and MNIST-10k (1000 train) when present; f_clean = the "
                "E1 standard-trained MLP; δ = 0.1; PGD-10 (1 restart) on the first 200 test points"
            ),
            "gpu": TierPlan(
                reason="the construction's size N·(3d+…) at CIFAR-10 scale (N = 50 000, d = 3072) "
                "is ≈ 10^9 parameters; its certificate is size-independent, so the cpu tier "
                "already carries the evidence"
            ),
        },
        evaluate=evaluate_b3,
    ),
    Claim(
        id="T1",
        title="Robust-memorization construction: certified and counted",
        paper_claim=(
            "For R-separated data and δ < R/2 a ReLU network f̂ is robust at radius δ on every "
            "training ball and equals f_clean outside the inflated balls, with Õ(Nd) parameters."
        ),
        source="[P1] Thm 3.3; [C22] Thm 2.2; notes §3.4",
        criterion=(
            "On every synthetic instance: all balls certified (a), property (b) holds, the "
            "non-zero parameter count equals the closed form, and the certifier refutes a "
            "wrong labelling → reproduced; any failure → not reproduced."
        ),
        tiers={
            "smoke": TierPlan(runs="2 instances, N ≤ 20, d ≤ 4"),
            "cpu": TierPlan(runs="3 instances, N ≤ 100, d ≤ 16, 2-4 classes"),
            "gpu": TierPlan(runs="2 instances, N ≤ 300, d ≤ 32 (CPU-bound; no GPU needed)"),
        },
        evaluate=evaluate_t1,
    ),
]
