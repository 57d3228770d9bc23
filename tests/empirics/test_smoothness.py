"""Tests of empirics.smoothness (SPEC E4): closed forms, a Hessian oracle, the model untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robmem.empirics.config import TrainConfig
from robmem.empirics.models import build_model
from robmem.empirics.smoothness import local_smoothness

# ------------------------------------------------------------------ per-epoch mean squared norm


def test_grad_norm_sq_mean_is_the_mean_of_logged_squared_step_norms(tmp_path):
    from robmem.empirics.runs import load_steps
    from robmem.empirics.trainers import train

    cfg = TrainConfig(
        dataset="digits", n_train=60, n_test=20, model="mlp", model_kwargs={"hidden": [8]},
        method="pgd", epsilon=0.1, attack_steps=1, eval_attack_steps=1, epochs=2, batch_size=20,
        num_threads=1,
    )  # fmt: skip
    result = train(cfg, tmp_path / "run", progress=False)
    squares: dict[int, list[float]] = {}
    for row in load_steps(tmp_path / "run"):
        squares.setdefault(row["epoch"], []).append(row["grad_norm"] ** 2)
    got = {epoch: float(np.mean(v)) for epoch, v in squares.items()}
    assert list(got) == [1, 2]
    for row in result.metrics:  # the trainer's own per-epoch aggregate, computed on the device
        assert got[row["epoch"]] == pytest.approx(row["grad_norm_sq_mean"], rel=1e-5)


# ------------------------------------------------------------------ local smoothness probe


def _linear_binary(seed: int = 0, d: int = 6) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("linear", 2, (d,))


def _closed_form_pgd_grad(w: torch.Tensor, b: torch.Tensor, x, y, eps: float):
    """∇θ of mean CE at the exact ℓ∞ worst case of a binary linear model (interior points).

    For logits Wx + b the margin of label y is Δw·x + Δb with Δw = w_y − w_other, and the worst
    case in the ℓ∞ ball lowers it by ε‖Δw‖₁; CE = softplus(−margin).
    """
    w = w.detach().double().requires_grad_(True)
    b = b.detach().double().requires_grad_(True)
    other = 1 - y
    dw = w[y] - w[other]
    db = b[y] - b[other]
    margin = (dw * x.double()).sum(1) + db - eps * dw.abs().sum(1)
    loss = F.softplus(-margin).mean()
    gw, gb = torch.autograd.grad(loss, (w, b))
    return torch.cat([gw.flatten(), gb.flatten()])


def test_pgd_probe_equals_closed_form_with_recomputed_attack():
    """PGD-AT on a linear model has a closed-form objective; the probe must match it exactly.

    The direction flips every weight (θ + h·u = −θ for the weights), so the worst-case sign
    pattern changes: a probe that kept the adversarial examples of θ would differ.
    """
    eps = 0.1
    model = _linear_binary()
    gen = torch.Generator().manual_seed(1)
    x = 0.3 + 0.4 * torch.rand(20, 6, generator=gen)  # interior: the box never clips
    y = torch.randint(0, 2, (20,), generator=gen)
    cfg = TrainConfig(method="pgd", epsilon=eps, attack_steps=1, attack_step_size=2.5 * eps)
    w, b = model.net.fc.weight, model.net.fc.bias
    direction = [-2 * w.detach(), torch.zeros_like(b)]
    h = float(torch.linalg.vector_norm(2 * w.detach()))
    res = local_smoothness(model, x, y, cfg, h=h, direction=direction)

    g0 = _closed_form_pgd_grad(w, b, x, y, eps)
    g1 = _closed_form_pgd_grad(-w, b, x, y, eps)
    want = float((g1 - g0).norm()) / h
    assert res.ratio == pytest.approx(want, rel=1e-4)
    assert res.grad_norm == pytest.approx(float(g0.norm()), rel=1e-4)
    # The frozen-attack value (x_adv of θ reused at θ + h·u) is different: recomputation matters.
    x_adv0 = x - eps * torch.sign(w[y] - w[1 - y]).detach()
    frozen = []
    for ww in (w, -w):
        wd = ww.detach().double().requires_grad_(True)
        bd = b.detach().double().requires_grad_(True)
        loss = F.cross_entropy(x_adv0.double() @ wd.T + bd, y)
        frozen.append(torch.cat([t.flatten() for t in torch.autograd.grad(loss, (wd, bd))]))
    frozen_ratio = float((frozen[1] - frozen[0]).norm()) / h
    assert abs(frozen_ratio - want) > 0.1 * want


def test_standard_probe_tends_to_hessian_vector_product():
    """For a smooth loss the probe tends to ‖H u‖ (double-backward oracle) as h → 0."""
    torch.manual_seed(0)
    model = build_model("linear", 3, (5,)).double()
    x, y = torch.rand(30, 5, dtype=torch.float64), torch.randint(0, 3, (30,))
    cfg = TrainConfig(method="standard")
    u = [torch.randn(3, 5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)]
    w = model.net.fc.weight.detach().clone().requires_grad_(True)
    b = model.net.fc.bias.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(x @ w.T + b, y)
    gw, gb = torch.autograd.grad(loss, (w, b), create_graph=True)
    norm_u = float(torch.sqrt(sum((t**2).sum() for t in u)))
    dot = ((gw * u[0]).sum() + (gb * u[1]).sum()) / norm_u
    hu = torch.autograd.grad(dot, (w, b))
    want = float(torch.sqrt(sum((t**2).sum() for t in hu)))
    res = local_smoothness(model, x, y, cfg, h=1e-3, direction=u)
    assert res.ratio == pytest.approx(want, rel=2e-2)


def test_trades_probe_uses_beta_and_reduces_to_ce_at_beta_zero():
    torch.manual_seed(0)
    model = build_model("cnn1d", 10, (1, 40), channels=(4, 4))
    x, y = torch.rand(16, 1, 40), torch.randint(0, 10, (16,))
    base = dict(epsilon=0.2, attack_steps=3, attack_step_size=0.1)
    std = local_smoothness(model, x, y, TrainConfig(method="standard", **base), h=1e-2, seed=4)
    t0 = local_smoothness(
        model, x, y, TrainConfig(method="trades", trades_beta=0.0, **base), h=1e-2, seed=4
    )
    t6 = local_smoothness(
        model, x, y, TrainConfig(method="trades", trades_beta=6.0, **base), h=1e-2, seed=4
    )
    assert t0.ratio == pytest.approx(std.ratio, rel=1e-4) and t0.loss == pytest.approx(std.loss)
    assert t6.trades_beta == 6.0 and t6.loss > t0.loss and t6.ratio != pytest.approx(t0.ratio)


@pytest.mark.parametrize("start_training", [True, False])
@pytest.mark.parametrize("method", ["pgd", "trades"])
def test_model_is_unchanged_after_the_probe(method, start_training):
    torch.manual_seed(0)
    model = build_model("mlp", 10, (1, 40), hidden=(16,), batch_norm=True)
    x, y = torch.rand(12, 1, 40), torch.randint(0, 10, (12,))
    model.train()
    model(x)  # non-trivial running statistics
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    model.train(start_training)
    before = copy.deepcopy(model.state_dict())
    rng_before = torch.random.get_rng_state()
    res = local_smoothness(model, x, y, TrainConfig(method=method, attack_steps=2), n_directions=2)
    assert len(res.ratios) == 2 and np.isfinite(res.ratio) and res.ratio > 0
    assert model.training is start_training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
    assert torch.equal(rng_before, torch.random.get_rng_state())


def test_probe_is_seeded_and_rejects_bad_input():
    torch.manual_seed(0)
    model = build_model("mlp", 10, (40,), hidden=(8,))
    x, y = torch.rand(8, 40), torch.randint(0, 10, (8,))
    cfg = TrainConfig(method="pgd", attack_steps=2)
    a = local_smoothness(model, x, y, cfg, seed=1)
    assert a == local_smoothness(model, x, y, cfg, seed=1)
    assert a.ratio != local_smoothness(model, x, y, cfg, seed=2).ratio
    with pytest.raises(ValueError, match="method"):
        local_smoothness(model, x, y, TrainConfig(method="pgd-te"))
    with pytest.raises(ValueError, match="h must"):
        local_smoothness(model, x, y, cfg, h=0.0)
    with pytest.raises(ValueError, match="n_directions"):
        local_smoothness(model, x, y, cfg, n_directions=0)
    with pytest.raises(ValueError, match="direction"):
        local_smoothness(model, x, y, cfg, direction=[torch.zeros(3)])
    with pytest.raises(TypeError, match="config"):
        local_smoothness(model, x, y, {"method": "pgd"})


def test_shifted_loss_is_evaluated_from_the_saved_state():
    """L(θ + h·u) must be computed from θ's BN buffers and the same attack start (BN model)."""
    from robmem.empirics.methods import method_step

    torch.manual_seed(0)
    model = build_model("mlp", 10, (1, 40), hidden=(16,), batch_norm=True)
    x, y = torch.rand(12, 1, 40), torch.randint(0, 10, (12,))
    model.train()
    model(x)
    cfg = TrainConfig(method="pgd", epsilon=0.2, attack_steps=3, attack_step_size=0.1)
    u = [torch.randn_like(p) for p in model.parameters()]
    h = 0.05
    res = local_smoothness(model, x, y, cfg, h=h, direction=u, seed=9)
    # Independent re-computation on a copy moved by h·u/‖u‖.
    other = copy.deepcopy(model)
    norm = float(torch.sqrt(sum((t.double() ** 2).sum() for t in u)))
    with torch.no_grad():
        for p, d in zip(other.parameters(), u, strict=True):
            p.add_(d, alpha=h / norm)
    torch.manual_seed(9)
    want = method_step(cfg, other, x, y, torch.arange(12), 1, None).loss
    assert res.loss_shifted[0] == pytest.approx(float(want.detach()), rel=1e-6)
