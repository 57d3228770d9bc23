"""Training methods (SPEC E1, E3–E6): the loss of one batch, per ``config.method``.

``standard`` (CE on clean inputs), ``pgd`` (Madry et al. 2018, CE on PGD examples),
``fgsm-rs`` (Wong, Rice and Kolter 2020), ``trades`` (Zhang et al. 2019: CE(f(x), y) +
β·KL(f(x') ‖ f(x)), x' from the KL attack) and the temporal-ensembling variants ``pgd-te`` and
``trades-te`` of [P2], exactly as its official ``loss.py`` and ``train_te.py`` (SPEC E6): a
soft-label bank (:class:`TEBank`) updated on the clean augmented batch in eval mode once
``e >= te_start_epoch``, and the penalty ``w(e)·mean(softmax − t)²`` (:func:`te_weight`,
:func:`te_penalty`) in the attack objective and in the loss — on the adversarial logits for
PGD-TE, on the *natural* logits in TRADES-TE's loss, as the official code has it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robmem.empirics.attacks import FGSMRS, PGD, Attack, TradesPGD, trades_kl
from robmem.empirics.config import TrainConfig

#: Laine & Aila (2017) sigmoid ramp-up exponent, as ``sigmoid_rampup`` in [P2]'s train_te.py.
TE_RAMPUP_EXPONENT = 5.0


def te_rampup(epoch: int, start: int, end: int) -> float:
    """Return [P2]'s ramp ``r(e)`` in [0, 1] (``sigmoid_rampup`` of ``train_te.py``).

    ``r(e) = 0`` for ``e < start``, ``1`` for ``e > end``, else
    ``exp(−5 (1 − (e − start)/(end − start))²)`` (Laine & Aila 2017). Epochs are 1-based.
    """
    if end <= start:
        raise ValueError(f"end must be > start={start}, got {end}")
    if epoch < start:
        return 0.0
    if epoch > end:
        return 1.0
    phase = 1.0 - (epoch - start) / (end - start)
    return math.exp(-TE_RAMPUP_EXPONENT * phase * phase)


def te_weight(epoch: int, config: TrainConfig) -> float:
    """Return ``w(e) = te_weight · r(e)`` for a TE method, 0 otherwise (SPEC E6)."""
    if not METHODS[config.method].te:
        return 0.0
    return config.te_weight * te_rampup(epoch, config.te_start_epoch, config.te_end_epoch)


def te_penalty(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return the per-sample TE penalty ``mean_c (p_ic − t_ic)²``, shape (n,).

    The batch mean of this equals the official ``((softmax − t) ** 2).mean()`` over
    batch × classes, so ``te_weight = 300`` weighs the per-sample *sum* over classes by
    300 / C (30 on CIFAR-10); ``notes/paper-dong-memorization-at.md`` §4.2.
    """
    return ((probs - targets) ** 2).mean(dim=1)


class TEBank:
    """The soft-label bank of [P2]'s TE: zeros (N × C), EMA of softmax, row-renormalised.

    Parameters
    ----------
    num_samples, num_classes : int
    alpha : float
        EMA momentum in [0, 1) (official 0.9).
    device : torch device
    """

    def __init__(self, num_samples: int, num_classes: int, alpha: float, device=None) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.bank = torch.zeros(num_samples, num_classes, dtype=torch.float32, device=device)

    def update(self, index: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """EMA-update rows ``index`` with ``probs`` and return their normalised targets.

        ``S_i <- α S_i + (1 − α) p_i``; target ``t_i = S_i / Σ_c S_ic``.
        """
        probs = probs.detach().float()
        rows = self.alpha * self.bank[index] + (1.0 - self.alpha) * probs
        self.bank[index] = rows
        return rows / rows.sum(dim=1, keepdim=True)


def _kl_per_sample(logits_adv: torch.Tensor, probs_nat: torch.Tensor) -> torch.Tensor:
    """``KL(p_nat ‖ softmax(logits_adv))`` per sample, as ``KLDivLoss(log_softmax(adv), p)``."""
    logp_adv = F.log_softmax(logits_adv.float(), dim=1)
    return F.kl_div(logp_adv, probs_nat.float(), reduction="none").sum(dim=1)


def _te_attack_loss(
    targets: torch.Tensor, weight: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-sample PGD-TE attack objective ``CE(f(x'), y) + w·mean_c(softmax f(x') − t)²``."""

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        ce = F.cross_entropy(logits, labels, reduction="none")
        return ce + weight * te_penalty(F.softmax(logits, dim=1), targets)

    return loss_fn


def _trades_te_attack_loss(
    beta: float, targets: torch.Tensor, weight: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-sample TRADES-TE attack objective ``β·KL(p_nat ‖ f(x')) + w·mean_c(softmax f(x') − t)²``.

    The official ``(β/B)·KL_sum + w·mean_{batch×classes}`` is ``1/B`` times the batch sum of
    this, so both have the same sign gradient per sample.
    """

    def loss_fn(adv_logits: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
        adv_logits = adv_logits.float()
        kl = trades_kl(adv_logits, clean_probs)
        return beta * kl + weight * te_penalty(F.softmax(adv_logits, dim=1), targets)

    return loss_fn


@dataclass
class StepOutput:
    loss: torch.Tensor
    correct_clean: torch.Tensor | None
    correct_robust: torch.Tensor | None


def _clean_loss(config, model, x, y, attack, rows, targets, weight) -> StepOutput:
    model.train()
    logits = model(x).float()
    loss = F.cross_entropy(logits, y)
    correct = (logits.argmax(1) == y).sum()
    return StepOutput(loss, correct, None)


def _adversarial_loss(config, model, x, y, attack, rows, targets, weight) -> StepOutput:
    """CE on the attack's examples (PGD-AT, FGSM-RS), plus the TE term once active."""
    loss_fn = _te_attack_loss(targets, weight) if targets is not None else None
    x_adv = attack(model, x, y, loss_fn=loss_fn, rows=rows)
    model.train()
    logits_adv = model(x_adv).float()
    loss = F.cross_entropy(logits_adv, y)
    if targets is not None:
        loss = loss + weight * te_penalty(F.softmax(logits_adv, dim=1), targets).mean()
    correct_rob = (logits_adv.argmax(1) == y).sum()
    return StepOutput(loss, None, correct_rob)


def _trades_loss(config, model, x, y, attack, rows, targets, weight) -> StepOutput:
    """TRADES and TRADES+TE: the KL attack (Gaussian start), TE term inside it once active."""
    loss_fn = None
    if targets is not None:
        loss_fn = _trades_te_attack_loss(config.trades_beta, targets, weight)
    x_adv = attack(model, x, y, loss_fn=loss_fn, rows=rows)
    model.train()
    logits_nat = model(x).float()
    logits_adv = model(x_adv).float()
    batch = len(y)
    kl = _kl_per_sample(logits_adv, F.softmax(logits_nat, dim=1)).sum() / batch
    loss = F.cross_entropy(logits_nat, y) + config.trades_beta * kl
    if targets is not None:
        # Official TRADES_TE: TE term on the *natural* logits in the outer loss.
        loss = loss + weight * te_penalty(F.softmax(logits_nat, dim=1), targets).mean()
    correct_clean = (logits_nat.argmax(1) == y).sum()
    correct_rob = (logits_adv.argmax(1) == y).sum()
    return StepOutput(loss, correct_clean, correct_rob)


# The training attacks run on data checked once in prepare_data: no per-call check (a sync).
def _pgd_attack(config: TrainConfig) -> Attack:
    return PGD(
        config.epsilon,
        config.attack_step_size,
        config.attack_steps,
        norm=config.norm,
        random_start=True,
        restarts=1,
        eval_mode=config.attack_eval_mode,
        keep_best=False,  # the official trainers train on the last iterate
        validate=False,
    )


def _fgsm_rs_attack(config: TrainConfig) -> Attack:
    return FGSMRS(
        config.epsilon, config.fgsm_step_size, eval_mode=config.attack_eval_mode, validate=False
    )


def _trades_attack(config: TrainConfig) -> Attack:
    return TradesPGD(
        config.epsilon,
        config.attack_step_size,
        config.attack_steps,
        eval_mode=config.attack_eval_mode,
        validate=False,
    )


@dataclass(frozen=True)
class Method:
    """A training method: its training attack (None: none), its batch loss, whether it uses TE.

    ``loss(config, model, x, y, attack, rows, targets, weight)``; ``targets`` are the TE
    targets of the batch once TE is active (else None), ``weight`` the TE weight ``w(e)``.
    """

    name: str
    build_attack: Callable[[TrainConfig], Attack | None]
    loss: Callable[..., StepOutput]
    te: bool = False


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("standard", lambda config: None, _clean_loss),
        Method("pgd", _pgd_attack, _adversarial_loss),
        Method("fgsm-rs", _fgsm_rs_attack, _adversarial_loss),
        Method("trades", _trades_attack, _trades_loss),
        Method("pgd-te", _pgd_attack, _adversarial_loss, te=True),
        Method("trades-te", _trades_attack, _trades_loss, te=True),
    )
}


def method_step(
    config: TrainConfig,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    epoch: int,
    bank: TEBank | None,
    *,
    attack: Attack | None = None,
    rows: tuple[int, int, int] | None = None,
) -> StepOutput:
    """Return the training loss of one batch for ``config.method`` (model left in train mode).

    ``x`` is the (augmented) clean batch, ``index`` its row numbers in the training set (the TE
    bank's keys), ``epoch`` 1-based. ``attack`` is the method's training attack (built from
    the config when None); ``rows=(lo, hi, n)``: ``x`` is rows ``lo:hi`` of a global batch of
    ``n`` (data-parallel shard; see :class:`robmem.empirics.attacks.Attack`).
    """
    method = METHODS[config.method]
    if attack is None:
        attack = method.build_attack(config)
    weight = te_weight(epoch, config)
    targets = None
    if method.te and epoch >= config.te_start_epoch:
        # Official TE code: clean logits of the augmented batch, eval mode, before the attack.
        if bank is None:
            raise ValueError(f"bank: method={config.method!r} needs a TEBank, got None")
        model.eval()
        with torch.no_grad():
            targets = bank.update(index, F.softmax(model(x).float(), dim=1))
    return method.loss(config, model, x, y, attack, rows, targets, weight)
