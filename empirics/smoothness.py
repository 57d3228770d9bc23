"""Gradient-instability measurements of adversarial training (SPEC E4, [P2] §2).

[P2] reports that some AT methods (TRADES under random labels) suffer from *gradient
instability*: the gradient of the adversarial objective changes abruptly between nearby
parameters. Its official ``train.py`` logs one number for it, the squared global parameter-
gradient norm averaged over the epoch's minibatches (``notes/paper-dong-memorization-at.md``
§1–§2); the theorem behind it was not retrievable, so SPEC E4 asks to measure the phenomenon:

* [P2]'s per-epoch statistic is the trainer's ``grad_norm_sq_mean`` metric (the mean over the
  epoch's steps of the squared global gradient norm before clipping,
  :func:`robmem.empirics.trainers.global_grad_norm`; each step's norm is in ``steps.jsonl``);
* :func:`local_smoothness`: a finite-difference probe of the objective's gradient-Lipschitz
  constant along a random direction, ``‖∇_θL(θ + h·u) − ∇_θL(θ)‖₂ / h`` with the adversarial
  examples recomputed at θ + h·u (``notes/verdict-audit.md`` §4, E3/E4). For a loss whose
  gradient is L-Lipschitz this is ≤ L for every h; as h → 0 it tends to ‖H u‖ where the loss is
  twice differentiable. The additive, non-vanishing part that Liu et al. (2020) derive for
  adversarial losses (of order ε·L_θx) shows up as a ratio that grows like 1/h for small h.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Methods whose loss the probe can evaluate (the TE methods need a run's soft-label bank).
PROBE_METHODS: tuple[str, ...] = ("standard", "pgd", "fgsm-rs", "trades")


@dataclass(frozen=True)
class SmoothnessProbe:
    """Result of :func:`local_smoothness` (SPEC E4).

    Attributes
    ----------
    ratio : float
        Mean over directions of ``‖∇L(θ + h·u) − ∇L(θ)‖₂ / h``.
    ratios : list of float
        One per direction.
    h : float
        Step along the unit direction (parameter units, ℓ2 over all trainable parameters).
    grad_norm : float
        ‖∇L(θ)‖₂ (for scale: the ratio times h relative to it is the gradient's relative change).
    loss : float
        L(θ) on the batch.
    loss_shifted : list of float
        L(θ + h·u) per direction.
    method : str
    trades_beta : float or None
    seed : int
    """

    ratio: float
    ratios: list[float]
    h: float
    grad_norm: float
    loss: float
    loss_shifted: list[float]
    method: str
    trades_beta: float | None
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)


def _objective_grad(
    model: nn.Module,
    params: list[nn.Parameter],
    x: torch.Tensor,
    y: torch.Tensor,
    config: Any,
    epoch: int,
    attack_seed: int,
) -> tuple[float, list[torch.Tensor]]:
    """Loss and parameter gradient of the method's objective, with a fixed attack RNG stream."""
    from robmem.empirics.methods import method_step

    device = x.device
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(attack_seed)
        index = torch.arange(len(y), device=device)
        out = method_step(config, model, x, y, index, epoch, None)
        grads = torch.autograd.grad(out.loss, params, allow_unused=True)
    grads = [
        torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads, strict=True)
    ]
    return float(out.loss.detach()), grads


def _flat_norm(tensors: Sequence[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([t.double().norm() for t in tensors])))


def local_smoothness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: Any,
    *,
    h: float = 1e-3,
    n_directions: int = 1,
    seed: int = 0,
    epoch: int = 1,
    direction: Sequence[torch.Tensor] | None = None,
) -> SmoothnessProbe:
    """Finite-difference gradient-smoothness of the training objective along random directions.

    Computes ``‖∇_θL(θ + h·u) − ∇_θL(θ)‖₂ / h`` for unit directions u (ℓ2 over all trainable
    parameters, Gaussian then normalized, drawn from ``seed``), where L is the loss of
    ``config.method`` on the fixed batch ``(x, y)`` exactly as the trainer computes it
    (:func:`robmem.empirics.methods.method_step`: PGD-AT is CE on PGD examples, TRADES is
    CE(f(x), y) + β·KL(f(x) ‖ f(x')) with ``config.trades_beta``), and the adversarial examples
    are recomputed at θ + h·u ([P2]'s instability is a property of that composite objective;
    ``notes/verdict-audit.md`` §4). SPEC E4.

    Assumptions and choices: both evaluations start from the same model state (parameters and
    BatchNorm buffers; the trainer's step runs BN in train mode, which would otherwise move the
    running statistics the attack uses between the two evaluations) and use the same attack
    random start (the global torch RNG is re-seeded with ``seed`` before each evaluation and
    restored afterwards), so the difference is due to θ alone. Computed in the model's dtype
    without autocast; in float32 keep h ≳ 1e-4·‖θ‖ so that rounding does not dominate.

    The model is left unchanged: parameters, buffers, ``.grad`` and the train/eval flag.

    Parameters
    ----------
    model : nn.Module
        The model (its trainable parameters are θ).
    x, y : torch.Tensor
        A fixed batch (inputs in [0, 1], integer labels), on the model's device.
    config : robmem.empirics.config.TrainConfig
        Method (one of :data:`PROBE_METHODS`), ε, attack steps/step size, β.
    h : float > 0
        Step length along the unit direction.
    n_directions : int >= 1
        Number of random directions (the ratio is their mean).
    seed : int
        Seed of the directions and of the attacks' random starts.
    epoch : int >= 1
        Epoch passed to the method (only matters for TE methods, which are refused).
    direction : sequence of tensors, optional
        One explicit direction (shapes of the trainable parameters; normalized here) instead of
        random ones; ``n_directions`` must then be 1.
    """
    from robmem.empirics.config import TrainConfig

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.method not in PROBE_METHODS:
        raise ValueError(f"config.method must be one of {PROBE_METHODS}, got {config.method!r}")
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not (math.isfinite(h) and h > 0):
        raise ValueError(f"h must be a finite float > 0, got {h!r}")
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or n_directions < 1:
        raise ValueError(f"n_directions must be an int >= 1, got {n_directions!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"epoch must be an int >= 1, got {epoch!r}")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(
            f"x and y must be a non-empty batch of equal length, got {x.shape[0]} and {y.shape[0]}"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model must have at least one trainable parameter")
    if direction is not None:
        if n_directions != 1:
            raise ValueError(
                f"n_directions must be 1 with an explicit direction, got {n_directions}"
            )
        direction = [torch.as_tensor(d) for d in direction]
        if [tuple(d.shape) for d in direction] != [tuple(p.shape) for p in params]:
            raise ValueError("direction must have one tensor per trainable parameter, same shapes")
        if _flat_norm(direction) == 0.0:
            raise ValueError("direction must be non-zero")

    was_training = model.training
    saved_state = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=False).items()}
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(int(seed))
    try:
        loss0, g0 = _objective_grad(model, params, x, y, config, epoch, int(seed))
        ratios, shifted = [], []
        for _ in range(n_directions):
            if direction is not None:
                u = [
                    d.to(device=p.device, dtype=p.dtype)
                    for d, p in zip(direction, params, strict=True)
                ]
            else:
                u = [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p) for p in params]
            scale = 1.0 / _flat_norm(u)
            model.load_state_dict(saved_state)
            with torch.no_grad():
                for p, d in zip(params, u, strict=True):
                    p.add_(d, alpha=float(h) * scale)
            loss1, g1 = _objective_grad(model, params, x, y, config, epoch, int(seed))
            diff = _flat_norm([a.double() - b.double() for a, b in zip(g1, g0, strict=True)])
            ratios.append(diff / float(h))
            shifted.append(loss1)
    finally:
        model.load_state_dict(saved_state)
        for p, g in zip(params, saved_grads, strict=True):
            p.grad = g
        model.train(was_training)
    return SmoothnessProbe(
        ratio=float(np.mean(ratios)),
        ratios=[float(r) for r in ratios],
        h=float(h),
        grad_norm=_flat_norm(g0),
        loss=loss0,
        loss_shifted=shifted,
        method=config.method,
        trades_beta=float(config.trades_beta) if config.method == "trades" else None,
        seed=int(seed),
    )
