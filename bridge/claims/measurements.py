"""Post-training measurements of the report's runs (SPEC E4, E5, B3), run inside the run store.

Each function takes the finished trainer folder and its config and returns a JSON-able dict
that :class:`robmem.bridge.records.RunRecord` keeps under ``measures[name]``
(:data:`robmem.bridge.claims.runs.MEASUREMENTS`).
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from robmem.bridge.claims.runs import STEP_FRACTION

#: Test points per PGD batch for the block-level torch evaluation (memory: batch·N·d floats).
B3_BATCH_ELEMENTS: int = 20_000_000
#: Sampled points of the property-(b) falsification check of robmem.theory.certify.
B3_OUTSIDE_SAMPLES: int = 32
#: Test points on which the torch block evaluation is compared with the lowered network.
B3_LOWERING_CHECK: int = 50


def complexity_of_run(
    train_dir: pathlib.Path, config: Any, *, margin_steps: int = 10
) -> dict[str, Any]:
    """SPEC E5: complexity measures of the final model (margins on PGD points of the training
    set, distance-to-init against the model's own initialization)."""
    import torch

    from robmem.empirics.attacks import PGD, perturb_in_batches
    from robmem.empirics.complexity import initial_model, model_complexity
    from robmem.empirics.trainers import load_model_from_run, prepare_data

    model, _, _ = load_model_from_run(train_dir)
    init = initial_model(config)
    data = prepare_data(config)
    attack = PGD(config.epsilon, STEP_FRACTION * config.epsilon, margin_steps)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        x_adv = perturb_in_batches(
            model, attack, data.train_x, data.train_y, batch_size=config.eval_batch_size
        )
    return model_complexity(
        model, data.train_x, data.train_y, init_model=init, x_margin=x_adv, pac_bayes=True
    )


def smoothness_of_run(
    train_dir: pathlib.Path,
    config: Any,
    *,
    h: float,
    n_points: int,
    n_directions: int,
    probe_seed: int = 0,
) -> dict[str, Any]:
    """SPEC E4: [P2]'s gradient instability probed at the final model.

    :func:`robmem.empirics.smoothness.local_smoothness` of the run's own training objective (its
    method and β, adversarial examples recomputed at θ + h·u) on the first ``n_points`` of the
    run's (noisy-label) training set, over ``n_directions`` random unit directions drawn from
    ``probe_seed`` + the run's seed. Returns the probe's fields (``ratio`` is the mean of
    ‖∇L(θ + h·u) − ∇L(θ)‖₂ / h over the directions).
    """
    from robmem.empirics.smoothness import local_smoothness
    from robmem.empirics.trainers import load_model_from_run, prepare_data

    if not (isinstance(n_points, int) and n_points >= 1):
        raise ValueError(f"n_points must be an int >= 1; got {n_points!r}")
    model, _, _ = load_model_from_run(train_dir)
    data = prepare_data(config)
    x, y = data.train_x[:n_points], data.train_y[:n_points]
    probe = local_smoothness(
        model,
        x,
        y,
        config,
        h=float(h),
        n_directions=int(n_directions),
        seed=int(probe_seed) + int(config.seed),
        epoch=int(config.epochs),
    )
    return probe.to_dict()


def _robust_acc(
    model: Any, x: Any, y: Any, eps: float, batch: int, steps: int, restarts: int
) -> float:
    from robmem.empirics.attacks import PGD, correct_under_attack

    attack = PGD(eps, STEP_FRACTION * eps, steps, restarts=restarts)
    return int(correct_under_attack(model, attack, x, y, batch_size=batch).sum()) / len(y)


def construction_of_run(
    train_dir: pathlib.Path,
    config: Any,
    *,
    delta: float,
    attack_points: int,
    steps: int,
    restarts: int,
) -> dict[str, Any]:
    """SPEC B3: the T1 construction on the run's training data with the run's model as
    f_clean: certified robust train accuracy, clean and PGD-robust test accuracy of f̂ and of
    f_clean (percent), property (b) on test points, and the torch-vs-lowered check."""
    import torch

    from robmem.empirics.construction_torch import ConstructionModule
    from robmem.empirics.network_torch import from_torch
    from robmem.empirics.trainers import load_model_from_run, prepare_data
    from robmem.theory.pipeline import construct_and_certify
    from robmem.theory.separation import opposite_label_separation

    clean_model, _, _ = load_model_from_run(train_dir)
    inner = clean_model.net.net  # NormalizedModel -> MLP -> Sequential(Linear, ReLU, ...)
    f_clean = from_torch(inner)
    data = prepare_data(config)
    x = data.train_x.flatten(1).double().numpy()
    y = data.train_y.numpy()
    xt = data.test_x.flatten(1).double().numpy()
    yt = data.test_y.numpy()
    sep = opposite_label_separation(x, y, "inf")
    if not delta < sep.distance / 2:
        raise ValueError(f"ℓ∞ separation {sep.distance:.4g} does not allow delta={delta} (< λ/2)")
    report = construct_and_certify(
        x, y, delta, "inf", clean=f_clean, n_classes=data.num_classes, separation=sep,
        outside_samples=B3_OUTSIDE_SAMPLES,
    )  # fmt: skip
    model, net = report.model, report.network
    module = ConstructionModule(model, inner.float()).eval()
    xt_t = torch.as_tensor(xt, dtype=torch.float32)
    yt_t = torch.as_tensor(yt)
    batch = max(1, B3_BATCH_ELEMENTS // (len(y) * x.shape[1]))
    with torch.no_grad():
        logits, margin = [], []
        for s in range(0, len(yt), batch):
            logits.append(module(xt_t[s : s + batch]))
            margin.append(module.outside_margin(xt_t[s : s + batch]))
        pred_hat = torch.cat(logits).argmax(1).numpy()
        outside_mask = (torch.cat(margin) >= 0).numpy()
        torch_out = module(xt_t[:B3_LOWERING_CHECK]).double().numpy()
    pred_clean = f_clean.forward(xt).argmax(1)
    n_att = min(attack_points, len(yt))
    xa, ya = xt_t[:n_att], yt_t[:n_att]
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        rob_hat = _robust_acc(module, xa, ya, delta, batch, steps, restarts)
        rob_clean = _robust_acc(inner.float().eval(), xa, ya, delta, 256, steps, restarts)
    return {
        "n_train": len(y),
        "dim": int(x.shape[1]),
        "separation_linf": float(sep.distance),
        "delta": float(delta),
        "params": report.params,
        "certified_robust_train_acc": 100.0 * float(report.certification.certified_fraction),
        "property_b_holds": bool(report.outside.holds),
        "test_fraction_outside_inflated_balls": float(outside_mask.mean()),
        "agrees_with_fclean_outside_balls": bool(
            (pred_hat[outside_mask] == pred_clean[outside_mask]).all()
        ),
        "clean_test_acc_hat": 100.0 * float((pred_hat == yt).mean()),
        "clean_test_acc_fclean": 100.0 * float((pred_clean == yt).mean()),
        "robust_test_points_attacked": int(n_att),
        "robust_test_acc_hat": 100.0 * rob_hat,
        "robust_test_acc_fclean": 100.0 * rob_clean,
        "torch_vs_lowered_max_abs_diff": float(
            np.abs(torch_out - net.forward(xt[:B3_LOWERING_CHECK])).max()
        ),
    }
