"""Pitfall suite for empirics.attacks (issue 4 "Done when"; notes/speed-and-library-anchors §4).

Oracles: closed forms and brute force for linear models, torchattacks for PGD strength,
F.cross_entropy for the loss, and recorded model inputs for the ε-ball / box invariants.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from robmem.empirics.attacks import (
    FGSM,
    FGSMRS,
    PGD,
    LinearExactAttack,
    TradesPGD,
    affine_map,
    attack_mode,
    correct_under_attack,
    linear_worst_case,
    margin_cross_entropy,
    select_worst_case,
    trades_kl,
)
from robmem.empirics.models import build_model

TOL = 1e-6  # float32 slack on ε-ball checks (pixel units)


# ------------------------------------------------------------------------------ fixtures


# digits and trained_mlp: tests/empirics/conftest.py


@pytest.fixture(scope="module")
def _bn_base(digits):
    torch.manual_seed(1)
    model = build_model("wrn", 10, digits.in_shape, depth=10, widen=1)
    model.train()
    with torch.no_grad():
        for i in range(3):
            model(digits.train_x[i * 64 : (i + 1) * 64])
    return model


@pytest.fixture()
def bn_model(_bn_base):
    """A small WideResNet (BatchNorm) with non-trivial running statistics, in train mode."""
    return copy.deepcopy(_bn_base)


class Recorder(nn.Module):
    """Wraps a model and records every input it is called on."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.model(x)


def _all_attacks(eps: float, steps: int = 5):
    alpha = max(eps / 4, 1e-3)
    return [
        PGD(eps, alpha, steps),
        PGD(eps, alpha, steps, restarts=3),
        PGD(eps, alpha, steps, keep_best=False),
        PGD(eps * 8, alpha * 8, steps, norm="2"),
        PGD(eps * 8, alpha * 8, steps, norm="2", restarts=2),
        FGSM(eps),
        FGSMRS(eps, 1.25 * eps if eps else 1e-3),
        TradesPGD(eps, alpha, steps),
    ]


# ------------------------------------------------------------------ ε-ball and [0,1] box


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_every_iterate_in_ball_and_box(trained_mlp, digits, norm):
    x, y = digits.test_x[:64], digits.test_y[:64]
    eps = 0.1 if norm == "inf" else 1.0
    rec = Recorder(trained_mlp)
    x_adv = PGD(eps, eps / 2, 7, norm=norm, restarts=2)(rec, x, y)
    assert len(rec.seen) == 8  # start point + 6 more iterates + final evaluation
    for xi in rec.seen + [x_adv.repeat(2, 1, 1, 1)]:
        d = xi - x.repeat(2, 1, 1, 1)
        assert xi.min() >= 0 and xi.max() <= 1
        if norm == "inf":
            assert d.abs().max() <= eps + TOL
        else:
            assert d.flatten(1).norm(dim=1).max() <= eps * (1 + 1e-5)


@pytest.mark.parametrize("make", [lambda e: TradesPGD(e, e / 4, 4), lambda e: FGSMRS(e, 1.25 * e)])
def test_trades_and_fgsmrs_stay_in_ball_and_box(trained_mlp, digits, make):
    x, y = digits.test_x[:64], digits.test_y[:64]
    rec = Recorder(trained_mlp)
    x_adv = make(0.05)(rec, x, y)
    for xi in rec.seen + [x_adv]:
        assert xi.min() >= 0 and xi.max() <= 1
        assert (xi - x).abs().max() <= 0.05 + TOL


def test_random_start_is_symmetric_per_channel_and_applied():
    """Wong's per-channel bug (U(-eps_c, eps_0)) and torchattacks #83 (start never added)."""
    torch.manual_seed(0)
    model = build_model("lenet5", 10, (3, 16, 16))
    eps = 0.1
    x = 0.2 + 0.6 * torch.rand(64, 3, 16, 16)  # interior: the box never clips the start
    y = torch.randint(0, 10, (64,))
    rec = Recorder(model)
    PGD(eps, 0.01, 1, keep_best=False, generator=torch.Generator().manual_seed(3))(rec, x, y)
    start = rec.seen[0] - x
    assert start.abs().max() <= eps + TOL
    for c in range(3):
        dc = start[:, c]
        assert dc.min() < -0.99 * eps and dc.max() > 0.99 * eps, f"channel {c} bounds"
        assert abs(float(dc.mean())) < 0.01 * eps * 10, f"channel {c} mean"
        assert float((dc > 0).float().mean()) == pytest.approx(0.5, abs=0.02)


def test_l2_random_start_inside_ball_and_nonzero():
    x = 0.3 + 0.4 * torch.rand(128, 1, 8, 8)
    model = build_model("linear", 10, (1, 8, 8))
    rec = Recorder(model)
    PGD(0.5, 0.1, 1, norm="2", keep_best=False)(rec, x, torch.zeros(128, dtype=torch.long))
    norms = (rec.seen[0] - x).flatten(1).norm(dim=1)
    assert norms.max() <= 0.5 * (1 + 1e-5)
    assert norms.min() > 0
    # Uniform in the 64-dim ball: radius^64 ~ U(0,1), so most radii are near eps.
    assert float(norms.median()) > 0.45


def test_l2_random_start_is_uniform_in_a_low_dimensional_ball():
    # In the 2-D ball, uniform means P(‖δ‖ ≤ t·ε) = t²: at t = ½ a quarter of 4000 draws
    # (binomial sd 0.007; ±0.03 is > 4 sd), against ½ for a radius ε·U and 0 on the sphere.
    # A batch of one sample works too.
    x = torch.full((4000, 2), 0.5)
    model = nn.Linear(2, 3)
    rec = Recorder(model)
    gen = torch.Generator().manual_seed(0)
    PGD(0.2, 0.01, 1, norm="2", keep_best=False, generator=gen)(rec, x, torch.zeros(4000).long())
    ratio = (rec.seen[0] - x).norm(dim=1) / 0.2
    assert float(ratio.max()) <= 1 + 1e-6
    assert float((ratio <= 0.5).float().mean()) == pytest.approx(0.25, abs=0.03)
    one = PGD(0.2, 0.01, 2, norm="2")(model, x[:1], torch.zeros(1).long())
    assert float((one - x[:1]).norm()) <= 0.2 * (1 + 1e-6)


# ------------------------------------------------------------- eps = 0 / steps = 0 → clean


@pytest.mark.parametrize("k", range(8))
def test_eps_zero_gives_exactly_clean(trained_mlp, digits, k):
    x, y = digits.test_x, digits.test_y
    attack = _all_attacks(0.0)[k]
    x_adv = attack(trained_mlp, x, y)
    assert torch.equal(x_adv, x)
    clean = correct_under_attack(trained_mlp, None, x, y)
    assert torch.equal(correct_under_attack(trained_mlp, attack, x, y), clean)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_steps_zero_gives_exactly_clean(trained_mlp, digits, norm):
    x, y = digits.test_x, digits.test_y
    for attack in (PGD(0.3, 0.1, 0, norm=norm), PGD(0.3, 0.1, 0, norm=norm, restarts=4)):
        assert torch.equal(attack(trained_mlp, x, y), x)


def test_linear_exact_eps_zero_is_clean(digits):
    torch.manual_seed(0)
    model = build_model("linear", 10, digits.in_shape)
    x, y = digits.test_x, digits.test_y
    assert torch.allclose(LinearExactAttack(0.0)(model, x, y), x, atol=0)


# ---------------------------------------------------------------------------- monotonicity


def _robust_acc(model, attack, x, y) -> float:
    return float(correct_under_attack(model, attack, x, y).float().mean())


def test_robust_accuracy_non_increasing_in_eps(trained_mlp, digits):
    x, y = digits.test_x, digits.test_y
    accs = []
    for eps in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4):
        gen = torch.Generator().manual_seed(0)
        accs.append(_robust_acc(trained_mlp, PGD(eps, max(eps / 4, 1e-3), 10, generator=gen), x, y))
    assert all(a >= b for a, b in zip(accs, accs[1:], strict=False)), accs
    assert accs[0] > 0.9 and accs[-1] < 0.02, accs


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_robust_accuracy_non_increasing_in_steps(trained_mlp, digits, norm):
    """With keep_best and a fixed start, a longer run contains the shorter trajectory."""
    x, y = digits.test_x, digits.test_y
    eps = 0.07 if norm == "inf" else 0.6
    prev = None
    for steps in (1, 2, 4, 8, 16):
        gen = torch.Generator().manual_seed(0)
        attack = PGD(eps, eps / 4, steps, norm=norm, generator=gen)
        correct = correct_under_attack(trained_mlp, attack, x, y)
        if prev is not None:
            assert not bool((correct & ~prev).any()), f"steps={steps} un-fooled a sample"
        prev = correct


def test_robust_accuracy_non_increasing_in_restarts(trained_mlp, digits):
    x, y = digits.test_x, digits.test_y
    accs = []
    for restarts in (1, 2, 4, 8):
        gen = torch.Generator().manual_seed(0)
        accs.append(
            _robust_acc(trained_mlp, PGD(0.06, 0.01, 3, restarts=restarts, generator=gen), x, y)
        )
    assert all(a >= b for a, b in zip(accs, accs[1:], strict=False)), accs
    assert accs[-1] < accs[0], accs


# ------------------------------------------------------------ restarts: per-sample worst


def test_select_worst_case_rule():
    cand = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1)  # (R=3, n=4, 1)
    wrong = torch.tensor([[0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    loss = torch.tensor([[5.0, 1.0, 0.0, 9.0], [1.0, 2.0, 3.0, 1.0], [9.0, 9.0, 1.0, 0.5]])
    out = select_worst_case(cand, wrong, loss).squeeze(1)
    # sample 0: only r=1 wrong; sample 1: r=0,1 wrong, r=1 higher loss; sample 2: none wrong,
    # r=1 highest loss; sample 3: only r=2 wrong despite lowest loss.
    assert out.tolist() == [cand[1, 0, 0], cand[1, 1, 0], cand[1, 2, 0], cand[2, 3, 0]]


@pytest.mark.parametrize("keep_best", [True, False])
def test_restarts_never_worse_than_any_single_run(trained_mlp, digits, keep_best):
    """Batched restarts draw the same starts as R sequential single runs (one generator)."""
    x, y = digits.test_x, digits.test_y
    r = 4
    gen = torch.Generator().manual_seed(7)
    multi = correct_under_attack(
        trained_mlp,
        PGD(0.06, 0.015, 3, restarts=r, generator=gen, keep_best=keep_best),
        x,
        y,
        batch_size=len(y),
    )
    gen = torch.Generator().manual_seed(7)
    single = PGD(0.06, 0.015, 3, generator=gen, keep_best=keep_best)
    runs = [correct_under_attack(trained_mlp, single, x, y, batch_size=len(y)) for _ in range(r)]
    every = torch.stack(runs).all(dim=0)
    assert torch.equal(multi, every), "restarts must fool exactly the samples some run fools"
    assert float(multi.float().mean()) < min(float(c.float().mean()) for c in runs)


# -------------------------------------------------------------------------- state hygiene


def _snapshot(model):
    return (
        [m.training for m in model.modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
        [(p.requires_grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()],
    )


@pytest.mark.parametrize("eval_mode", [True, False])
@pytest.mark.parametrize("k", range(8))
def test_attacks_leave_model_untouched(bn_model, digits, eval_mode, k):
    model = bn_model
    # Mixed state: some modules in eval, one parameter frozen, some grads set, others None.
    model.net.bn.eval()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    params[1].grad = torch.full_like(params[1], 0.5)
    before = _snapshot(model)
    attack = _all_attacks(0.05, steps=2)[k]
    attack.eval_mode = eval_mode
    attack(model, digits.test_x[:8], digits.test_y[:8])
    after = _snapshot(model)
    assert before[0] == after[0]
    for key in before[1]:
        assert torch.equal(before[1][key], after[1][key]), key
    for (r0, g0), (r1, g1) in zip(before[2], after[2], strict=True):
        assert r0 == r1
        assert (g0 is None and g1 is None) or torch.equal(g0, g1)


def test_eval_mode_false_uses_train_mode_batch_statistics(bn_model, digits):
    """In train mode BN normalises with batch statistics: the attack must see that mode."""
    seen = []
    hook = bn_model.net.bn.register_forward_hook(lambda m, i, o: seen.append(m.training))
    PGD(0.05, 0.01, 1, eval_mode=False)(bn_model, digits.test_x[:8], digits.test_y[:8])
    PGD(0.05, 0.01, 1, eval_mode=True)(bn_model, digits.test_x[:8], digits.test_y[:8])
    hook.remove()
    assert seen[0] is True and seen[-1] is False


def test_attack_mode_restores_after_exception(bn_model):
    before = _snapshot(bn_model)
    with pytest.raises(RuntimeError), attack_mode(bn_model, eval_mode=False):
        bn_model(torch.rand(4, 1, 8, 8))
        raise RuntimeError("boom")
    after = _snapshot(bn_model)
    assert before[0] == after[0]
    assert all(torch.equal(before[1][k], after[1][k]) for k in before[1])


def test_attack_does_not_build_weight_gradients(trained_mlp, digits):
    seen_requires_grad = []
    h = trained_mlp.net.net[0].register_forward_pre_hook(
        lambda m, i: seen_requires_grad.append(m.weight.requires_grad)
    )
    PGD(0.05, 0.01, 2)(trained_mlp, digits.test_x[:8], digits.test_y[:8])
    h.remove()
    assert seen_requires_grad and not any(seen_requires_grad)
    assert all(p.requires_grad for p in trained_mlp.parameters())


# ------------------------------------------------------------- linear models: exact oracle


def _binary_linear(d: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("linear", 2, (d,))
    with torch.no_grad():
        model.net.fc.weight.mul_(5)
    return model


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_on_binary_linear_model_matches_closed_form(random_start):
    """ℓ∞: the worst case of a binary linear model is the box corner sign(w_other − w_y);
    one sign step of size ≥ 2ε from anywhere in the ball reaches it (SPEC T3)."""
    d, eps = 20, 0.1
    model = _binary_linear(d, 0)
    x = torch.rand(300, d)
    y = torch.randint(0, 2, (300,))
    w, b = affine_map(model, (d,), x.device)
    exact, margin = linear_worst_case(w, b, x, y, eps, "inf")
    v = (w[1 - y] - w[y]).float()
    manual = torch.clamp(
        x + eps * torch.sign(v), torch.clamp(x - eps, min=0), torch.clamp(x + eps, max=1)
    )
    assert torch.allclose(exact, manual, atol=1e-7)
    for attack in (
        PGD(eps, 2.5 * eps, 3, random_start=random_start),
        PGD(eps, 2.5 * eps, 1, random_start=random_start, keep_best=False),
        LinearExactAttack(eps),
    ):
        x_adv = attack(model, x, y)
        assert torch.allclose(x_adv, exact, atol=1e-6)
    # FGSM takes exactly the closed-form step too (box clamp included).
    assert torch.allclose(FGSM(eps)(model, x, y), exact, atol=1e-6)
    # Robust accuracy from the closed-form margin equals the attacked accuracy.
    robust = correct_under_attack(model, LinearExactAttack(eps), x, y)
    assert torch.equal(robust, margin < 0)


def test_pgd_l2_on_binary_linear_model_matches_closed_form_without_box():
    d, eps = 15, 0.3
    model = _binary_linear(d, 1)
    x = 0.5 + 0.01 * torch.rand(100, d)  # far from the box: the box constraint is inactive
    y = torch.randint(0, 2, (100,))
    w, b = affine_map(model, (d,), x.device)
    v = (w[1 - y] - w[y]).float()
    expected = x + eps * v / v.norm(dim=1, keepdim=True)
    exact, _ = linear_worst_case(w, b, x, y, eps, "2")
    assert torch.allclose(exact, expected, atol=1e-6)
    x_adv = PGD(eps, 2 * eps, 2, norm="2", random_start=False)(model, x, y)
    assert torch.allclose(x_adv, expected, atol=1e-5)


def test_confident_points_still_get_a_gradient():
    """CE's gradient underflows to 0 at huge margins (cleverhans #350); ours does not."""
    model = _binary_linear(10, 2)
    with torch.no_grad():
        model.net.fc.weight.mul_(1000)
        model.net.fc.bias.zero_()
    x = torch.rand(50, 10)
    with torch.no_grad():
        y = model(x).argmax(1)
    exact, _ = linear_worst_case(*affine_map(model, (10,), x.device), x, y, 0.05, "inf")
    assert torch.allclose(PGD(0.05, 0.2, 1, random_start=False)(model, x, y), exact, atol=1e-6)


def test_linear_exact_matches_brute_force_corners():
    """ℓ∞ ∩ box: max of a linear function over a box is at a corner; enumerate all 2^d."""
    torch.manual_seed(3)
    d, c, eps = 6, 4, 0.15
    model = build_model("linear", c, (d,))
    x = torch.rand(40, d)
    y = torch.randint(0, c, (40,))
    w, b = affine_map(model, (d,), x.device)
    _, margin = linear_worst_case(w, b, x, y, eps, "inf")
    lo = torch.clamp(x.double() - eps, min=0)
    hi = torch.clamp(x.double() + eps, max=1)
    corners = torch.tensor(list(itertools.product([0, 1], repeat=d)), dtype=torch.float64)
    for i in range(len(y)):
        pts = lo[i] + corners * (hi[i] - lo[i])  # (2^d, d)
        z = pts @ w.T + b
        m = (z - z[:, y[i] : y[i] + 1]).scatter(1, y[i].expand(len(pts), 1), float("-inf"))
        assert float(m.max()) == pytest.approx(float(margin[i]), abs=1e-9)
    x_adv = LinearExactAttack(eps)(model, x, y)
    assert (x_adv - x).abs().max() <= eps + TOL and x_adv.min() >= 0 and x_adv.max() <= 1


def test_linear_exact_l2_with_box_matches_convex_program():
    cp = pytest.importorskip("cvxpy")
    torch.manual_seed(4)
    d, c, eps = 5, 3, 0.4
    model = build_model("linear", c, (d,))
    x = torch.rand(8, d) * 0.3  # near the lower edge: the box binds
    y = torch.randint(0, c, (8,))
    w, b = affine_map(model, (d,), x.device)
    _, margin = linear_worst_case(w, b, x, y, eps, "2")
    wn, bn_, xn = w.numpy(), b.numpy(), x.double().numpy()
    for i in range(len(y)):
        best = -np.inf
        for j in range(c):
            if j == int(y[i]):
                continue
            v = wn[j] - wn[int(y[i])]
            delta = cp.Variable(d)
            cons = [cp.norm(delta, 2) <= eps, xn[i] + delta >= 0, xn[i] + delta <= 1]
            prob = cp.Problem(cp.Maximize(v @ (xn[i] + delta)), cons)
            prob.solve()
            best = max(best, prob.value + bn_[j] - bn_[int(y[i])])
        assert float(margin[i]) == pytest.approx(best, abs=1e-5)


def test_pgd_never_beats_exact_attack_on_multiclass_linear(digits):
    torch.manual_seed(5)
    model = build_model("linear", 10, digits.in_shape)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(100):
        loss = F.cross_entropy(model(digits.train_x), digits.train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = digits.test_x, digits.test_y
    exact = correct_under_attack(model, LinearExactAttack(0.05), x, y)
    pgd = correct_under_attack(model, PGD(0.05, 0.01, 20, restarts=2), x, y)
    assert not bool((~pgd & exact).any()), "PGD fooled a point the exact attack certifies"
    assert float(pgd.float().mean()) >= float(exact.float().mean())


def test_linear_exact_rejects_non_affine_model(trained_mlp, digits):
    with pytest.raises(ValueError, match="affine"):
        LinearExactAttack(0.1)(trained_mlp, digits.test_x[:8], digits.test_y[:8])


# ------------------------------------------------------------------ torchattacks oracle


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_pgd_at_least_as_strong_as_torchattacks(trained_mlp, digits, norm):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = digits.test_x, digits.test_y
    if norm == "inf":
        eps, alpha = 0.05, 0.0125
        theirs_atk = torchattacks.PGD(
            trained_mlp, eps=eps, alpha=alpha, steps=10, random_start=True
        )
    else:
        eps, alpha = 0.5, 0.125
        theirs_atk = torchattacks.PGDL2(
            trained_mlp, eps=eps, alpha=alpha, steps=10, random_start=True
        )
    ours_atk = PGD(eps, alpha, 10, norm=norm)
    torch.manual_seed(0)  # same global-RNG convention for the ℓ∞ random start
    theirs = (trained_mlp(theirs_atk(x, y)).argmax(1) == y).float().mean()
    torch.manual_seed(0)
    ours = correct_under_attack(trained_mlp, ours_atk, x, y, batch_size=len(y)).float().mean()
    assert float(ours) <= float(theirs), (float(ours), float(theirs))
    if norm == "inf":
        # Same start, same steps, last iterate: the two implementations agree closely.
        torch.manual_seed(0)
        last = PGD(eps, alpha, 10, keep_best=False)(trained_mlp, x, y)
        torch.manual_seed(0)
        ref = theirs_atk(x, y)
        assert float((last - ref).abs().gt(1e-5).float().mean()) < 0.01


# ---------------------------------------------------------------- objective and options


def test_margin_cross_entropy_is_inverse_softplus_of_ce():
    torch.manual_seed(0)
    z = torch.randn(64, 7) * 3
    y = torch.randint(0, 7, (64,))
    ce = F.cross_entropy(z, y, reduction="none")
    assert torch.allclose(F.softplus(margin_cross_entropy(z, y)), ce, atol=1e-5)


def test_custom_loss_fn_is_maximised(trained_mlp, digits):
    """A targeted objective (−CE to class t) drives predictions to t."""
    x, y = digits.test_x[:100], digits.test_y[:100]
    target = (y + 1) % 10

    def toward_target(logits, labels):
        return -F.cross_entropy(logits, (labels + 1) % 10, reduction="none")

    x_adv = PGD(0.3, 0.05, 20, loss_fn=toward_target)(trained_mlp, x, y)
    hit = (trained_mlp(x_adv).argmax(1) == target).float().mean()
    assert float(hit) > 0.8


def test_loss_fn_must_return_per_sample(trained_mlp, digits):
    with pytest.raises(ValueError, match="loss_fn"):
        PGD(0.1, 0.01, 1, loss_fn=lambda z, y: z.sum())(
            trained_mlp, digits.test_x[:4], digits.test_y[:4]
        )


def test_trades_pgd_increases_kl(trained_mlp, digits):
    x, y = digits.test_x[:128], digits.test_y[:128]
    with torch.no_grad():
        p = F.softmax(trained_mlp(x), 1)
    start = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
    x_adv = TradesPGD(0.1, 0.02, 10)(trained_mlp, x, y)
    with torch.no_grad():
        kl_adv = trades_kl(trained_mlp(x_adv), p)
        kl0 = trades_kl(trained_mlp(start), p)
        ref = F.kl_div(F.log_softmax(trained_mlp(x_adv), 1), p, reduction="none").sum(1)
    assert torch.allclose(kl_adv, ref, atol=1e-5)
    assert float(kl_adv.mean()) > 10 * float(kl0.mean())
    # A custom objective replaces the KL (here: KL toward uniform instead of the clean probs).
    seen = []

    def obj(z, probs):
        seen.append(probs.shape)
        return trades_kl(z, torch.full_like(probs, 0.1))

    TradesPGD(0.1, 0.02, 2, loss_fn=obj)(trained_mlp, x, y)
    assert seen == [probs.shape for probs in [p, p]]


def test_bf16_autocast_close_to_fp32(trained_mlp, digits):
    x, y = digits.test_x, digits.test_y
    torch.manual_seed(0)
    fp32 = _robust_acc(trained_mlp, PGD(0.05, 0.0125, 10), x, y)
    torch.manual_seed(0)
    bf16 = _robust_acc(trained_mlp, PGD(0.05, 0.0125, 10, amp_dtype=torch.bfloat16), x, y)
    assert abs(fp32 - bf16) < 0.05


def test_channels_last_gives_same_result(digits):
    torch.manual_seed(0)
    model = build_model("lenet5", 10, digits.in_shape)
    x, y = digits.test_x[:32], digits.test_y[:32]
    a = PGD(0.05, 0.01, 3, random_start=False)(model, x, y)
    b = PGD(0.05, 0.01, 3, random_start=False, channels_last=True)(model, x, y)
    assert a.is_contiguous() and torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("restarts", [1, 2])
@pytest.mark.parametrize("cl_attack", [False, True])
@pytest.mark.parametrize("cl_input", [False, True])
def test_result_keeps_the_input_memory_format(cl_input, cl_attack, restarts):
    """x_adv comes back NCHW for NCHW input and channels_last for channels_last input, with
    restarts too (their worst-case gather used to return NCHW)."""
    torch.manual_seed(0)
    model = build_model("lenet5", 4, (3, 8, 8)).to(memory_format=torch.channels_last)
    x = torch.rand(6, 3, 8, 8)
    if cl_input:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (6,))
    amp = torch.bfloat16 if cl_attack else None  # the GPU setting: bf16 with channels_last
    out = PGD(0.1, 0.02, 2, restarts=restarts, channels_last=cl_attack, amp_dtype=amp)(model, x, y)
    fmt = torch.channels_last if cl_input else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert float((out - x).abs().max()) <= 0.1 + TOL


def _meta_batch(shape=(4, 3, 8, 8), channels_last=False):
    x = torch.empty(shape, device="meta")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.empty(shape[0], dtype=torch.long, device="meta")


@pytest.mark.parametrize(
    ("make", "channels_last"),
    [
        (lambda: PGD(0.1, 0.02, 3), False),
        (lambda: PGD(0.1, 0.02, 3, restarts=3, channels_last=True), True),
        (lambda: PGD(0.1, 0.02, 3, restarts=2), True),
        (lambda: PGD(0.5, 0.1, 3, norm="2", restarts=2), False),
        (lambda: PGD(0.1, 0.02, 2, eval_mode=False), True),
        (
            lambda: PGD(0.1, 0.02, 2, loss_fn=lambda z, t: F.cross_entropy(z, t, reduction="none")),
            False,
        ),
        (lambda: FGSMRS(0.1, 0.125, eval_mode=False), False),
        (lambda: FGSM(0.1), True),
        (lambda: TradesPGD(0.1, 0.02, 3, keep_best=True), True),
    ],
)
def test_attacks_stay_on_device_without_host_syncs(make, channels_last):
    """The same code on torch's ``meta`` device: a tensor created on the CPU and combined with
    the batch (a device mismatch on CUDA) raises there, and so does every host synchronisation
    (``.item()``, ``float()``, ``bool()``, ``.tolist()``), since meta tensors hold no values. So
    the attack loops are device-generic and sync-free (validation, the one sync per call, is
    switched off as a training loop does)."""
    with torch.device("meta"):  # built there directly (no CPU initialisation)
        model = build_model("preactresnet18", 10, (3, 8, 8))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x, y = _meta_batch(channels_last=channels_last)
    attack = make()
    attack.validate = False
    out = attack(model, x, y)
    assert out.device.type == "meta" and out.shape == x.shape and out.dtype == x.dtype
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    # The meta check is able to fail: a sync is refused there.
    with pytest.raises((RuntimeError, NotImplementedError)):
        float(out.sum())


def test_generator_on_another_device_is_a_clear_error():
    x, y = _meta_batch()
    model = build_model("linear", 10, (3, 8, 8)).to("meta")
    attack = PGD(0.1, 0.02, 1, generator=torch.Generator(), validate=False)
    with pytest.raises(ValueError, match="generator"):
        attack(model, x, y)


def test_out_of_range_label_is_refused_before_it_indexes_anything():
    """A label >= the number of outputs is a ValueError raised before any loss sees it (on
    CUDA the loss's gather would be a device-side assert that poisons the process)."""
    model = build_model("linear", 3, (1, 4, 4))
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 3])
    seen = []

    def loss_fn(z, t):
        seen.append(t)
        return F.cross_entropy(z, t, reduction="none")

    with pytest.raises(ValueError, match="y: every label must be below .* outputs \\(3\\)"):
        PGD(0.1, 0.02, 2, loss_fn=loss_fn)(model, x, y)
    assert seen == []
    PGD(0.1, 0.02, 2, loss_fn=loss_fn)(model, x, y.clamp_max(2))
    assert len(seen) == 3


def test_linear_exact_attack_ignores_a_callers_bf16_autocast(digits):
    """Under a trainer's bf16 autocast the exact attack still evaluates in full precision
    (bf16 logits used to fail the affinity check)."""
    torch.manual_seed(0)
    model = build_model("linear", 10, digits.in_shape).eval()
    x, y = digits.test_x[:16], digits.test_y[:16]
    ref = LinearExactAttack(0.05)(model, x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = LinearExactAttack(0.05)(model, x, y)
    assert out.dtype == x.dtype and torch.equal(out, ref)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: PGD(-0.1, 0.01, 1), "eps"),
        (lambda: PGD(float("nan"), 0.01, 1), "eps"),
        (lambda: PGD(0.1, 0.0, 1), "alpha"),
        (lambda: PGD(0.1, -1.0, 1), "alpha"),
        (lambda: PGD(0.1, 0.01, -1), "steps"),
        (lambda: PGD(0.1, 0.01, 1.5), "steps"),
        (lambda: PGD(0.1, 0.01, 1, restarts=0), "restarts"),
        (lambda: PGD(0.1, 0.01, 1, norm="1"), "norm"),
        (lambda: FGSM(-1.0), "eps"),
        (lambda: FGSMRS(0.1, 0.0), "alpha"),
        (lambda: TradesPGD(0.1, 0.01, -2), "steps"),
        (lambda: LinearExactAttack(-0.5), "eps"),
        (lambda: PGD(0.1, 0.01, 1, bounds=(1.0, 0.0)), "bounds"),
    ],
)
def test_bad_parameters_raise_naming_the_argument(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_bad_batches_raise_naming_the_argument(trained_mlp, digits):
    x, y = digits.test_x[:8], digits.test_y[:8]
    attack = PGD(0.1, 0.01, 1)
    with pytest.raises(ValueError, match=r"x must lie in \[0.0, 1.0\]"):
        attack(trained_mlp, x + 1.0, y)
    with pytest.raises(ValueError, match=r"x must lie"):
        attack(trained_mlp, x - 0.5, y)
    with pytest.raises(ValueError, match="y must have shape"):
        attack(trained_mlp, x, y[:5])
    with pytest.raises(ValueError, match="y must have shape"):
        attack(trained_mlp, x, y.view(-1, 1))
    with pytest.raises(ValueError, match="NaN"):
        attack(trained_mlp, x.clone().fill_(float("nan")), y)
    with pytest.raises(TypeError, match="y must be"):
        attack(trained_mlp, x, y.float())


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_unboxed_linear_worst_case_matches_theory_linear(norm):
    """Independent oracle: robmem.theory.linear (helper B's numpy closed form −δ·y·∂‖w‖_q)."""
    import robmem.theory.linear as linear

    d, eps = 12, 0.2
    model = _binary_linear(d, 6)
    x = torch.rand(64, d)
    y = torch.randint(0, 2, (64,))
    w, b = affine_map(model, (d,), x.device)
    x_adv, margin = linear_worst_case(w, b, x, y, eps, norm, bounds=None)
    wv, bv = (w[1] - w[0]).numpy(), float(b[1] - b[0])
    ypm = (2 * y - 1).numpy().astype(np.float64)
    p = "inf" if norm == "inf" else 2
    rm = linear.robust_margin(wv, x.double().numpy(), ypm, delta=eps, p=p, b=bv)
    assert np.allclose(-margin.numpy(), rm, atol=1e-9)
    xi = linear.worst_case_perturbation(wv, ypm, delta=eps, p=p)
    assert np.allclose((x_adv.double() - x.double()).numpy(), xi, atol=1e-6)
    pgd = PGD(eps, 2.5 * eps, 2, norm=norm, random_start=False, bounds=None)(model, x * 0 + 0.5, y)
    exact, _ = linear_worst_case(w, b, x * 0 + 0.5, y, eps, norm, bounds=None)
    assert torch.allclose(pgd, exact, atol=1e-5)


@given(
    d=st.integers(1, 5),
    c=st.integers(2, 4),
    eps=st.floats(0.0, 0.6),
    seed=st.integers(0, 2**31 - 1),
)
def test_linear_worst_case_property(d, c, eps, seed):
    """ℓ∞: equals brute force over the 2^d corners; ℓ2: no random feasible point does better."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(c, d, generator=gen, dtype=torch.float64)
    b = torch.randn(c, generator=gen, dtype=torch.float64)
    x = torch.rand(3, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, c, (3,), generator=gen)
    _, m_inf = linear_worst_case(w, b, x, y, eps, "inf")
    x2, m_2 = linear_worst_case(w, b, x, y, eps, "2")
    corners = torch.tensor(list(itertools.product([0, 1], repeat=d)), dtype=torch.float64)

    def best_margin(pts: torch.Tensor, i: int) -> float:
        z = pts @ w.T + b
        m = (z - z[:, y[i] : y[i] + 1]).scatter(1, y[i].expand(len(pts), 1), float("-inf"))
        return float(m.max())

    for i in range(3):
        lo, hi = (x[i] - eps).clamp(min=0), (x[i] + eps).clamp(max=1)
        assert best_margin(lo + corners * (hi - lo), i) == pytest.approx(float(m_inf[i]), abs=1e-9)
        assert best_margin(_l2_feasible_samples(x[i], eps, gen), i) <= float(m_2[i]) + 1e-9
        assert best_margin(x2[i : i + 1], i) == pytest.approx(float(m_2[i]), abs=1e-9)
    d2 = x2 - x
    assert float(d2.norm(dim=1).max()) <= eps + 1e-9 and x2.min() >= 0 and x2.max() <= 1


def _l2_feasible_samples(x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    direction = torch.randn(256, x.numel(), generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    radius = eps * torch.rand(256, 1, generator=gen, dtype=torch.float64)
    return (x + radius * direction).clamp(0, 1)


def test_perturb_in_batches_equals_one_call(trained_mlp, digits):
    """Batch by batch gives each sample the result one whole-set call gives it (no random
    start; PGD's per-sample update does not couple samples)."""
    from robmem.empirics.attacks import perturb_in_batches

    x, y = digits.test_x[:50], digits.test_y[:50]
    attack = PGD(0.05, 0.0125, 3, random_start=False)
    whole = attack(trained_mlp, x, y)
    # (equal up to float rounding of the matmul at another batch size)
    assert torch.allclose(perturb_in_batches(trained_mlp, attack, x, y, batch_size=16), whole)
    assert torch.equal(perturb_in_batches(trained_mlp, attack, x, y, batch_size=64), whole)
    with pytest.raises(ValueError, match="batch_size"):
        perturb_in_batches(trained_mlp, attack, x, y, batch_size=0)


def test_pgd_l2_matches_torchattacks_pgdl2_step_by_step():
    """Same start (x itself), same steps: every iterate equals torchattacks.PGDL2's.

    Both normalise the CE gradient per sample (ours through CE's margin form, whose
    gradient is a positive multiple of CE's), step by α, project δ onto the ε-ball
    (shrinking only when ‖δ‖ > ε) and clamp to [0, 1]. The steps are short (α = ε/4), so the
    first iterates lie strictly inside the ball and a projection onto the sphere shows.
    A randomly initialised net keeps CE's gradient well conditioned (p_y far from 1).
    """
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    gen = torch.Generator().manual_seed(4)
    x = 0.1 + 0.8 * torch.rand(32, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (32,), generator=gen)
    eps, alpha = 1.0, 0.25
    inside = 0
    for steps in range(1, 9):
        ours = PGD(eps, alpha, steps, norm="2", random_start=False, keep_best=False)(model, x, y)
        theirs = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
        ref = theirs(x, y)
        # float32: the two normalised steps differ by rounding only (~1e-7 per coordinate
        # per step; torchattacks adds 1e-10 to the norms): 8 steps stay far below 1e-5.
        assert float((ours - ref).abs().max()) <= 1e-5, steps
        norms = (ours - x).flatten(1).norm(dim=1)
        assert float(norms.max()) <= eps * (1 + 1e-6)
        inside += int((norms < eps * 0.99).sum())
    assert inside > 32  # iterates strictly inside the ball occurred (not all on the sphere)


def test_out_of_range_label_without_validation_is_a_value_error():
    # validate=False skips check_batch; the index error torch raises deep inside is then
    # reported as the user's input error, naming y
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    attack = PGD(0.1, 0.05, 2, validate=False)
    with pytest.raises(ValueError, match="y: every label"):
        attack(model, torch.full((2, 4), 0.5), torch.tensor([0, 3]))


def test_zero_gradient_coordinates_stay_and_single_elements_move():
    # sign(0) = 0: an input the model ignores keeps its value under an ℓ∞ step; and a
    # batch of one single-feature sample is attacked like any other
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight[:, 2] = 0.0  # the model ignores coordinate 2: its gradient is exactly 0
    x = torch.full((4, 3), 0.5)
    y = torch.zeros(4, dtype=torch.long)
    x_adv = PGD(0.1, 0.05, 3, random_start=False, keep_best=False)(model, x, y)
    assert torch.equal(x_adv[:, 2], x[:, 2]) and float((x_adv - x).abs().max()) > 0.09
    one = nn.Linear(1, 2)
    x1 = torch.full((1, 1), 0.5)
    moved = PGD(0.1, 0.05, 2, random_start=False)(one, x1, torch.zeros(1, dtype=torch.long))
    assert float((moved - x1).abs().max()) == pytest.approx(0.1)
