"""Training losses checked by their gradients (SPEC E3, E6), not only by their values.

Oracle: the official formulations re-implemented here from their published code, sharing
nothing with :mod:`robmem.empirics.trainers` or :mod:`robmem.empirics.attacks`:

- TRADES, Zhang et al. 2019, ``trades.py``: ``CE(f(x), y) + β/B · KLDivLoss(sum)(
  log_softmax(f(x')), softmax(f(x)))``, gradient through *both* softmaxes (the natural one
  is not detached), attack ``x + 0.001·N(0, I)`` then sign steps on the summed KL with the
  clean softmax held fixed;
- PGD-TE and TRADES-TE, Dong et al. 2022, ``loss.py`` (``notes/paper-dong-memorization-at.md``
  §4.2): zero-initialised bank, EMA with momentum α, row-renormalised targets, weight
  ``te_weight·exp(−5(1 − (e − start)/(end − start))²)``, MSE as a mean over batch × classes,
  the TE term on adversarial outputs in PGD-TE's loss and attack, on natural outputs in
  TRADES-TE's loss and on adversarial outputs in its attack.

The adversarial inputs the trainer draws are captured (the attack classes are wrapped) and
fed to the reference, so that loss and gradient are compared on the same x'.

Tolerance: everything runs in float32 (the trainer casts logits to float32). Each gradient
entry of the 2-layer MLP below is a sum over a batch of 16 and ≤ 32 hidden units of
products computed with ~10 roundings each, so two float32 evaluations in different operation
orders differ by at most ~16·32·10·2^-24 ≈ 3e-4 relative to the sum of the absolute terms
(a worst-case bound; typical differences are ~1e-6). GRAD_RTOL = 3e-4 of the largest entry
therefore separates rounding from a formula change, which moves gradients by O(10 %)
(e.g. a detached natural softmax in TRADES).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robmem.empirics.attacks as attacks_mod
from robmem.empirics.config import TrainConfig
from robmem.empirics.methods import TEBank, method_step, te_rampup, te_weight

#: See the module docstring: worst-case float32 re-association error of one gradient entry,
#: relative to the largest entry.
GRAD_RTOL = 3e-4
#: Loss values: a float32 batch mean of 16 terms of ~10 roundings each, ≤ 160·2^-24 ≈ 1e-5.
LOSS_RTOL = 1e-5
N_CLASSES, DIM, BATCH = 10, 12, 16


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, 32), nn.ReLU(), nn.Linear(32, N_CLASSES))


def _batch(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = 0.2 + 0.6 * torch.rand(BATCH, DIM, generator=gen)  # interior: no clamping at the start
    y = torch.randint(0, N_CLASSES, (BATCH,), generator=gen)
    # 5 labels are _model()'s own predictions, so that "correct" counts are neither 0 nor
    # B/2 (a count of the wrong samples would then look right)
    with torch.no_grad():
        y[:5] = _model()(x[:5]).argmax(dim=1)
    return x, y


def _config(method: str, **kw) -> TrainConfig:
    base = dict(
        dataset="digits",
        model="mlp",
        method=method,
        epsilon=0.1,
        attack_steps=3,
        attack_step_size=0.03,
        trades_beta=6.0,
        te_alpha=0.9,
        te_start_epoch=2,
        te_end_epoch=6,
        te_weight=300.0,
        num_threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _capture(monkeypatch, cls_name: str) -> list:
    """Record (attack object, x_adv, call-time loss_fn) of every call of attacks_mod.<cls_name>."""
    seen = []
    cls = getattr(attacks_mod, cls_name)
    original = cls.__call__

    def wrapped(self, model, x, y, **kw):
        out = original(self, model, x, y, **kw)
        seen.append((self, out.detach().clone(), kw.get("loss_fn")))
        return out

    monkeypatch.setattr(cls, "__call__", wrapped)
    return seen


def _grads(loss: torch.Tensor, model: nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters()), retain_graph=True))


def _assert_grads_close(got: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    scale = max(float(g.abs().max()) for g in ref)
    assert scale > 1e-4  # a non-trivial gradient
    for a, b in zip(got, ref, strict=True):
        assert float((a - b).abs().max()) <= GRAD_RTOL * scale, float((a - b).abs().max())


# ------------------------------------------------------------------ reference formulations
def _ref_trades_loss(model, x, x_adv, y, beta):
    """Zhang et al. 2019, trades.py, the outer loss (model in train mode)."""
    criterion_kl = nn.KLDivLoss(reduction="sum")
    logits = model(x)
    loss_natural = F.cross_entropy(logits, y)
    loss_robust = (1.0 / len(x)) * criterion_kl(
        F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1)
    )
    return loss_natural + beta * loss_robust


def _ref_te_weight(epoch, start, end, weight):
    if epoch < start:
        return 0.0
    if epoch > end:
        return weight
    phase = 1.0 - (epoch - start) / (end - start)
    return weight * math.exp(-5.0 * phase * phase)


class _RefBank:
    def __init__(self, n, c, momentum):
        self.s = torch.zeros(n, c)
        self.m = momentum

    def targets(self, model, x, index):
        model.eval()
        with torch.no_grad():
            prob = F.softmax(model(x), dim=1)
        self.s[index] = self.m * self.s[index] + (1 - self.m) * prob
        model.train()
        return self.s[index] / self.s[index].sum(dim=1, keepdim=True)


def _assert_step_counts(out, model, x_clean, x_adv, y) -> None:
    """StepOutput's correct counts: clean (if reported) and robust, recounted here."""
    model.eval()
    with torch.no_grad():
        robust = int((model(x_adv).argmax(dim=1) == y).sum())
        clean = int((model(x_clean).argmax(dim=1) == y).sum())
    assert int(out.correct_robust) == robust
    if out.correct_clean is not None:
        assert int(out.correct_clean) == clean
    # counts that a wrong rule (argmin, ≠) would change
    assert (0 < robust < BATCH and 2 * robust != BATCH) or (
        0 < clean < BATCH and 2 * clean != BATCH
    )


def _official_trades_attack(model, x, config, targets, w):
    """trades.py's attack (+ loss.py's TE term once TE is on), global RNG, eval mode."""
    model.eval()
    eps, step = config.epsilon, config.attack_step_size
    x_adv = x + 0.001 * torch.empty_like(x).normal_()
    with torch.no_grad():
        p_nat = F.softmax(model(x), dim=1)
    for _ in range(config.attack_steps):
        x_adv.requires_grad_()
        logits = model(x_adv)
        loss = (
            config.trades_beta
            / len(x)
            * F.kl_div(F.log_softmax(logits, dim=1), p_nat, reduction="sum")
        )
        if targets is not None:
            loss = loss + w * ((F.softmax(logits, dim=1) - targets) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, [x_adv])
        x_adv = x_adv.detach() + step * torch.sign(grad)
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv


def _official_pgd_te_attack(model, x, y, config, targets, w):
    """loss.py PGD_TE's attack: x + U(−ε, ε), sign steps on CE (+ w·MSE), global RNG."""
    model.eval()
    eps, step = config.epsilon, config.attack_step_size
    x_adv = x + torch.empty_like(x).uniform_(-eps, eps)  # x interior: inside [0, 1] already
    for _ in range(config.attack_steps):
        x_adv.requires_grad_()
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y)
        if targets is not None:
            loss = loss + w * ((F.softmax(logits, dim=1) - targets) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, [x_adv])
        x_adv = x_adv.detach() + step * torch.sign(grad)
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv


def test_standard_step_is_clean_cross_entropy():
    model, (x, y) = _model(), _batch()
    out = method_step(_config("standard"), model, x, y, torch.arange(BATCH), 1, None)
    model.train()
    ref = F.cross_entropy(model(x), y)
    assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=LOSS_RTOL)
    _assert_grads_close(_grads(out.loss, model), _grads(ref, model))
    assert int(out.correct_clean) == int((model(x).argmax(dim=1) == y).sum()) == 5
    assert out.correct_robust is None


def test_fgsm_rs_step_is_cross_entropy_at_the_attack(monkeypatch):
    model, (x, y) = _model(), _batch()
    seen = _capture(monkeypatch, "FGSMRS")
    out = method_step(_config("fgsm-rs"), model, x, y, torch.arange(BATCH), 1, None)
    ((_, x_adv, _),) = seen
    model.train()
    ref = F.cross_entropy(model(x_adv), y)
    _assert_grads_close(_grads(out.loss, model), _grads(ref, model))
    _assert_step_counts(out, model, x, x_adv, y)


def test_te_schedule_and_bank_edges():
    config = _config("pgd-te")  # start 2, end 6, weight 300
    assert te_rampup(1, 2, 6) == 0.0 and te_rampup(2, 2, 6) == pytest.approx(math.exp(-5))
    assert te_rampup(6, 2, 6) == 1.0 and te_rampup(7, 2, 6) == 1.0
    for e in range(0, 9):
        assert te_weight(e, config) == _ref_te_weight(e, 2, 6, 300.0)
        assert te_weight(e, _config("pgd")) == 0.0 and te_weight(e, _config("trades")) == 0.0
    with pytest.raises(ValueError, match="end"):
        te_rampup(3, 5, 5)
    TEBank(4, 3, 0.0)  # α = 0: the bank is the last softmax
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="alpha"):
            TEBank(4, 3, bad)


# ------------------------------------------------------------------ TRADES
def _filled_banks(config, x, y, index, epoch: int, n_train: int):
    """Our TE bank and the reference one, after the epochs before ``epoch`` filled both (the
    EMA runs across epochs) with *another* model's outputs, so that the targets differ from
    the current softmax (else the TE term and its gradient vanish on the natural batch)."""
    bank = TEBank(n_train, N_CLASSES, config.te_alpha)
    ref_bank = _RefBank(n_train, N_CLASSES, config.te_alpha)
    before = _model(seed=5)
    for e in range(config.te_start_epoch, epoch):
        method_step(config, before, x, y, index, e, bank)
        ref_bank.targets(before, x, index)
    return bank, ref_bank


@pytest.mark.parametrize("epoch", [1, 5])  # 5 ≥ te_start_epoch: plain TRADES all the same
def test_trades_loss_gradient_matches_official_formulation(monkeypatch, epoch):
    model, (x, y) = _model(), _batch()
    seen = _capture(monkeypatch, "TradesPGD")
    config = _config("trades")
    torch.manual_seed(11)
    out = method_step(config, model, x, y, torch.arange(BATCH), epoch, None)
    ((_, x_adv, _),) = seen
    torch.manual_seed(11)  # same start: the official attack gives the same x'
    assert torch.equal(x_adv, _official_trades_attack(model, x, config, None, 0.0))
    _assert_step_counts(out, model, x, x_adv, y)
    assert float((x_adv - x).abs().max()) > 0.05  # the attack moved: the KL term matters
    model.train()
    ref = _ref_trades_loss(model, x, x_adv, y, config.trades_beta)
    assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=LOSS_RTOL)
    _assert_grads_close(_grads(out.loss, model), _grads(ref, model))
    # the control: the classic bug (natural softmax detached) is far outside the tolerance
    detached = F.cross_entropy(model(x), y) + config.trades_beta / BATCH * F.kl_div(
        F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1).detach(), reduction="sum"
    )
    with pytest.raises(AssertionError):
        _assert_grads_close(_grads(detached, model), _grads(ref, model))


def test_trades_attack_matches_official_loop_step_by_step():
    model, (x, y) = _model(), _batch()
    model.eval()
    eps, step = 0.1, 0.03
    for steps in range(1, 5):
        gen = torch.Generator().manual_seed(5)
        ours = attacks_mod.TradesPGD(eps, step, steps, generator=gen)(model, x, y)
        gen = torch.Generator().manual_seed(5)
        # trades.py (no clamp of the start: x is interior, so the start is inside the box)
        x_adv = x + 0.001 * torch.empty_like(x).normal_(generator=gen)
        with torch.no_grad():
            p_nat = F.softmax(model(x), dim=1)
        for _ in range(steps):
            x_adv.requires_grad_()
            loss_kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_nat, reduction="sum")
            (grad,) = torch.autograd.grad(loss_kl, [x_adv])
            x_adv = x_adv.detach() + step * torch.sign(grad)
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
        assert torch.equal(ours, x_adv), steps


# ------------------------------------------------------------------ PGD-TE and TRADES-TE
@pytest.mark.parametrize("epoch", [1, 2, 4, 7])
def test_pgd_te_loss_and_attack_objective_match_official(monkeypatch, epoch):
    model, (x, y) = _model(), _batch()
    config = _config("pgd-te")
    n_train = 40
    index = torch.arange(3, 3 + BATCH)
    bank, ref_bank = _filled_banks(config, x, y, index, epoch, n_train)
    seen = _capture(monkeypatch, "PGD")
    torch.manual_seed(12)
    out = method_step(config, model, x, y, index, epoch, bank)
    ((attack, x_adv, objective),) = seen[-1:]
    te_on = epoch >= config.te_start_epoch
    targets = ref_bank.targets(model, x, index) if te_on else None
    w = _ref_te_weight(epoch, config.te_start_epoch, config.te_end_epoch, config.te_weight)
    torch.manual_seed(12)  # same random start: the official attack gives the same x'
    assert torch.equal(x_adv, _official_pgd_te_attack(model, x, y, config, targets, w))
    # the official trainers train on the last iterate of one random start
    assert attack.keep_best is False and attack.restarts == 1 and attack.random_start
    _assert_step_counts(out, model, x, x_adv, y)
    model.train()
    logits_adv = model(x_adv)
    ref = F.cross_entropy(logits_adv, y)
    if te_on:
        ref = ref + w * ((F.softmax(logits_adv, dim=1) - targets) ** 2).mean()
        assert w > 0
    assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=LOSS_RTOL)
    _assert_grads_close(_grads(out.loss, model), _grads(ref, model))
    # the attack's objective: official batch mean, ours per sample (sum = B · mean)
    model.eval()
    z = torch.randn(BATCH, N_CLASSES, requires_grad=True)
    official = F.cross_entropy(z, y)
    if te_on:
        official = official + w * ((F.softmax(z, dim=1) - targets) ** 2).mean()
    (g_ref,) = torch.autograd.grad(official, z)
    if objective is None:
        assert not te_on  # plain PGD-AT before TE starts (margin form of CE, same signs)
        return
    (g_got,) = torch.autograd.grad(objective(z, y).sum() / BATCH, z)
    _assert_grads_close([g_got], [g_ref])


@pytest.mark.parametrize("epoch", [2, 4, 7])
def test_trades_te_loss_and_attack_objective_match_official(monkeypatch, epoch):
    model, (x, y) = _model(), _batch()
    config = _config("trades-te")
    index = torch.arange(BATCH)
    bank, ref_bank = _filled_banks(config, x, y, index, epoch, BATCH)
    seen = _capture(monkeypatch, "TradesPGD")
    torch.manual_seed(13)
    out = method_step(config, model, x, y, index, epoch, bank)
    ((_, x_adv, objective),) = seen[-1:]
    targets = ref_bank.targets(model, x, index)
    w = _ref_te_weight(epoch, config.te_start_epoch, config.te_end_epoch, config.te_weight)
    beta = config.trades_beta
    torch.manual_seed(13)
    assert torch.equal(x_adv, _official_trades_attack(model, x, config, targets, w))
    _assert_step_counts(out, model, x, x_adv, y)
    model.train()
    ref = _ref_trades_loss(model, x, x_adv, y, beta)
    ref = ref + w * ((F.softmax(model(x), dim=1) - targets) ** 2).mean()  # natural outputs
    assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=LOSS_RTOL)
    _assert_grads_close(_grads(out.loss, model), _grads(ref, model))
    # attack objective: (β/B)·KL_sum + w·MSE(softmax f(x'), t), gradient in the logits
    with torch.no_grad():
        model.eval()
        p_nat = F.softmax(model(x), dim=1)
    z = torch.randn(BATCH, N_CLASSES, requires_grad=True)
    official = beta / BATCH * F.kl_div(F.log_softmax(z, 1), p_nat, reduction="sum")
    official = official + w * ((F.softmax(z, dim=1) - targets) ** 2).mean()
    (g_ref,) = torch.autograd.grad(official, z)
    (g_got,) = torch.autograd.grad(objective(z, p_nat).sum() / BATCH, z)
    _assert_grads_close([g_got], [g_ref])
