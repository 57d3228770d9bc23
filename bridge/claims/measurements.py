"""Post-training measurements of the report's runs (SPEC E4, E5, B3), run inside the run store.

Each function takes the finished trainer folder and its config and returns a JSON-able dict
that :class:`bridge.records.RunRecord` keeps under ``measures[name]``
(:data:`bridge.claims.runs.MEASUREMENTS`).
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from bridge.claims.runs import STEP_FRACTION, load_trained_model

#: Test points per PGD batch for the block-level torch evaluation (memory: batch·N·d floats).
B3_BATCH_ELEMENTS: int = 20_000_000
#: Sampled points of the property-(b) falsification check of theory.certify.
B3_OUTSIDE_SAMPLES: int = 32
#: Test points on which the torch block evaluation is compared with the lowered network.
B3_LOWERING_CHECK: int = 50


def complexity_of_run(
    train_dir: pathlib.Path, config: Any, *, margin_steps: int = 10
) -> dict[str, Any]:
    """SPEC E5: complexity measures of the final model (margins on PGD points of the training
    set, distance-to-init against the model's own initialization)."""
    import torch

    from empirics.attacks import PGD, perturb_in_batches
    from empirics.complexity import initial_model, model_complexity
    from empirics.trainers import prepare_data

    model, _ = load_trained_model(train_dir)
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

    :func:`empirics.smoothness.local_smoothness` of the run's own training objective (its
    method and β, adversarial examples recomputed at θ + h·u) on the first ``n_points`` of the
    run's (noisy-label) training set, over ``n_directions`` random unit directions drawn from
    ``probe_seed`` + the run's seed. Returns the probe's fields (``ratio`` is the mean of
    ‖∇L(θ + h·u) − ∇L(θ)‖₂ / h over the directions).
    """
    from empirics.smoothness import local_smoothness
    from empirics.trainers import prepare_data

    if not (isinstance(n_points, int) and n_points >= 1):
        raise ValueError(f"n_points must be an int >= 1; got {n_points!r}")
    model, _ = load_trained_model(train_dir)
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

    from empirics.network_torch import from_torch
    from empirics.trainers import prepare_data
    from theory.certify import certify, certify_outside_balls
    from theory.construction import build_construction
    from theory.separation import opposite_label_separation

    clean_model, _ = load_trained_model(train_dir)
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
        "params": int(net.nonzero_parameter_count()),
        "certified_robust_train_acc": 100.0 * float(cert.certified_fraction),
        "property_b_holds": bool(outside.holds),
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
