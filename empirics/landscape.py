"""Loss landscape over the input: local and global flatness (SPEC E2, [P1] §4.3, Figs 2-4).

For a classifier f, a per-sample loss L(f(x), y) and an ℓ∞ radius ε, this module estimates, per
sample,

* the *flatness term* ``max_{‖ξ‖∞≤ε} ‖∇ₓ L(f(x+ξ), y)‖₁`` (ℓ1 is the dual of ℓ∞), and
* the *loss change* ``max_{‖ξ‖∞≤ε} L(f(x+ξ), y) − L(f(x), y)``,

on a grid of radii. Both maxima are found by projected sign-gradient ascent (PGD) with random
restarts, keeping the best value seen at *any* iterate (including ξ = 0), so each number is a
**lower estimate** of the true maximum: a larger search can only raise it. The gradient-norm
ascent differentiates ``‖∇ₓL‖₁`` with respect to x (double back-propagation); for a ReLU
network that second derivative comes only from the softmax, which is enough for the ascent to
move. The points visited by the loss ascent also feed the gradient-norm estimate (the gradient
is computed there anyway), which can only tighten the lower estimate.

Averaged over training points the flatness term is [P1]'s *local flatness*; over test points
(a sample of D) it is the *global flatness* of [P1] Thm 6.3. The exact first-order relation
``loss change ≤ ε · max ‖∇ₓL‖₁`` (mean-value theorem, SPEC T4) holds per sample for the true
maxima; with lower estimates it can fail, and :func:`first_order_violation` reports by how much.

The model is put in eval mode during measurement (BN running statistics, no dropout) and
restored afterwards; parameter ``.grad`` fields are never touched (input-only gradients via
``torch.autograd.grad``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Step size of the ascent as a multiple of ε/steps. 2.5·ε/steps is the usual PGD choice
#: (Madry et al. 2018, §A): it lets the iterate cross the ball and reach its faces.
STEP_SIZE_FACTOR: float = 2.5

#: Default quantiles reported next to the mean (lower decile, median, upper decile).
DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)


def _check_eps(eps: float, name: str = "eps") -> float:
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {eps!r}")
    return eps


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _per_sample_ce(logits: Any, y: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(logits, y, reduction="none")


def _random_start(x: Any, eps: float, generator: Any) -> Any:
    import torch

    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    return torch.clamp(x + (2.0 * noise - 1.0) * eps, 0.0, 1.0)


def _project(x_adv: Any, x: Any, eps: float) -> Any:
    import torch

    return torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0.0, 1.0)


def _loss_and_gradnorm(
    model: Any,
    x: Any,
    y: Any,
    loss_fn: Callable[[Any, Any], Any],
    *,
    second_order: bool,
    label_max: int | None = None,
) -> tuple[Any, Any, Any]:
    """Per-sample loss, per-sample ‖∇ₓL‖₁, and the ascent direction for the wanted objective.

    With ``second_order`` the returned direction is ∇ₓ‖∇ₓL‖₁ (double back-prop), else ∇ₓL.
    ``label_max`` (the largest label) is checked against the outputs before the loss uses y.
    """
    import torch

    from robmem.empirics.attacks import check_labels_fit

    x = x.detach().requires_grad_(True)
    logits = model(x)
    check_labels_fit(label_max, logits)
    loss = loss_fn(logits, y)
    (grad,) = torch.autograd.grad(loss.sum(), x, create_graph=second_order)
    gnorm = grad.abs().flatten(1).sum(dim=1)
    if second_order:
        if gnorm.requires_grad:
            (direction,) = torch.autograd.grad(gnorm.sum(), x)
        else:  # piecewise-linear loss in x: the gradient norm is locally constant
            direction = torch.zeros_like(x)
    else:
        direction = grad
    return loss.detach(), gnorm.detach(), direction.detach()


def _ascent(
    model: Any,
    x: Any,
    y: Any,
    eps: float,
    *,
    objective: str,
    steps: int,
    restarts: int,
    step_size: float | None,
    loss_fn: Callable[[Any, Any], Any],
    generator: Any,
) -> tuple[Any, Any]:
    """Best (loss, gradnorm) seen by sign-gradient ascent on ``objective`` ∈ {loss, gradnorm}."""
    import torch

    second_order = objective == "gradnorm"
    best_loss, best_gnorm, _ = _loss_and_gradnorm(model, x, y, loss_fn, second_order=False)
    if eps == 0.0:
        return best_loss, best_gnorm
    alpha = step_size if step_size is not None else STEP_SIZE_FACTOR * eps / steps
    for _ in range(restarts):
        x_adv = _random_start(x, eps, generator)
        for step in range(steps + 1):
            loss, gnorm, direction = _loss_and_gradnorm(
                model, x_adv, y, loss_fn, second_order=second_order
            )
            best_loss = torch.maximum(best_loss, loss)
            best_gnorm = torch.maximum(best_gnorm, gnorm)
            if step == steps:
                break
            x_adv = _project(x_adv + alpha * direction.sign(), x, eps)
    return best_loss, best_gnorm


@dataclass(frozen=True)
class LandscapeResult:
    """Per-sample landscape measurements on a grid of radii (SPEC E2).

    Attributes
    ----------
    eps : ndarray, shape (E,)
        The ℓ∞ radii.
    grad_norm : ndarray, shape (E, n)
        Lower estimate of ``max_{‖ξ‖∞≤ε} ‖∇ₓL(x+ξ)‖₁`` per radius and sample.
    loss_change : ndarray, shape (E, n)
        Lower estimate of ``max_{‖ξ‖∞≤ε} L(x+ξ) − L(x)`` (≥ 0, since ξ = 0 is included).
    clean_loss : ndarray, shape (n,)
        ``L(x)`` per sample.
    clean_grad_norm : ndarray, shape (n,)
        ``‖∇ₓL(x)‖₁`` per sample (the term of [P1] Prop 6.4).
    settings : dict
        Search settings (steps, restarts, step size rule, seed), for the record.
    """

    eps: np.ndarray
    grad_norm: np.ndarray
    loss_change: np.ndarray
    clean_loss: np.ndarray
    clean_grad_norm: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> dict[str, Any]:
        """Mean and quantiles over samples, per radius (JSON-ready lists)."""
        for q in quantiles:
            if not 0.0 <= float(q) <= 1.0:
                raise ValueError(f"quantiles must lie in [0, 1], got {q!r}")
        out: dict[str, Any] = {
            "eps": self.eps.tolist(),
            "n": int(self.clean_loss.shape[0]),
            "grad_norm_mean": self.grad_norm.mean(axis=1).tolist(),
            "loss_change_mean": self.loss_change.mean(axis=1).tolist(),
            "clean_loss_mean": float(self.clean_loss.mean()),
            "clean_grad_norm_mean": float(self.clean_grad_norm.mean()),
            "lower_estimate": True,
            "settings": dict(self.settings),
        }
        for q in quantiles:
            key = f"q{round(100 * float(q)):02d}"
            out[f"grad_norm_{key}"] = np.quantile(self.grad_norm, q, axis=1).tolist()
            out[f"loss_change_{key}"] = np.quantile(self.loss_change, q, axis=1).tolist()
        return out


def input_landscape(
    model: Any,
    x: Any,
    y: Any,
    eps_grid: Iterable[float],
    *,
    steps: int = 10,
    restarts: int = 1,
    step_size: float | None = None,
    batch_size: int = 256,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    seed: int = 0,
) -> LandscapeResult:
    """Measure the input-space loss landscape of ``model`` at ``(x, y)`` (SPEC E2).

    Parameters
    ----------
    model : torch.nn.Module
        Classifier mapping inputs in [0, 1] to logits.
    x : torch.Tensor, shape (n, ...)
        Inputs in [0, 1].
    y : torch.Tensor, shape (n,)
        Integer labels.
    eps_grid : iterable of float
        ℓ∞ radii (each ≥ 0).
    steps : int
        Ascent steps per restart.
    restarts : int
        Random restarts per radius and objective (the max over them is kept).
    step_size : float, optional
        Ascent step; default ``STEP_SIZE_FACTOR · ε / steps``.
    batch_size : int
        Samples per forward pass.
    loss_fn : callable, optional
        ``loss_fn(logits, y) -> per-sample loss``; default cross-entropy.
    seed : int
        Seed of the random starts.

    Returns
    -------
    LandscapeResult
        Per-sample **lower estimates** of both maxima.
    """
    import torch

    eps_list = [_check_eps(e, "eps_grid") for e in eps_grid]
    if not eps_list:
        raise ValueError("eps_grid must contain at least one radius")
    steps = _check_positive_int(steps, "steps")
    restarts = _check_positive_int(restarts, "restarts")
    batch_size = _check_positive_int(batch_size, "batch_size")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one sample")
    from robmem.empirics.attacks import check_batch

    label_max = check_batch(x, y)  # finite, in [0, 1] (pixel space), one label per sample
    loss_fn = loss_fn or _per_sample_ce
    generator = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.eval()
    kw = dict(
        steps=steps, restarts=restarts, step_size=step_size, loss_fn=loss_fn, generator=generator
    )
    n = x.shape[0]
    grad_norm = np.zeros((len(eps_list), n))
    loss_change = np.zeros((len(eps_list), n))
    clean_loss = np.zeros(n)
    clean_gnorm = np.zeros(n)
    try:
        for start in range(0, n, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            sl = slice(start, start + xb.shape[0])
            l0, g0, _ = _loss_and_gradnorm(
                model, xb, yb, loss_fn, second_order=False, label_max=label_max
            )
            clean_loss[sl] = l0.cpu().numpy()
            clean_gnorm[sl] = g0.cpu().numpy()
            for k, eps in enumerate(eps_list):
                best_loss, g_from_loss = _ascent(model, xb, yb, eps, objective="loss", **kw)
                _, g_from_g = _ascent(model, xb, yb, eps, objective="gradnorm", **kw)
                grad_norm[k, sl] = torch.maximum(g_from_loss, g_from_g).cpu().numpy()
                loss_change[k, sl] = (best_loss - l0).clamp_min(0.0).cpu().numpy()
    finally:
        model.train(was_training)
    settings = {
        "steps": steps,
        "restarts": restarts,
        "step_size": step_size if step_size is not None else f"{STEP_SIZE_FACTOR}*eps/steps",
        "seed": int(seed),
        "norm": "inf",
    }
    return LandscapeResult(
        eps=np.asarray(eps_list, dtype=float),
        grad_norm=grad_norm,
        loss_change=loss_change,
        clean_loss=clean_loss,
        clean_grad_norm=clean_gnorm,
        settings=settings,
    )


def first_order_violation(result: LandscapeResult) -> np.ndarray:
    """Largest per-sample excess of ``loss change − ε·max‖∇ₓL‖₁`` per radius, shape (E,).

    The mean-value theorem gives ``max_ball L(x+ξ) − L(x) ≤ ε · max_ball ‖∇ₓL(x+ξ)‖₁`` for the
    true maxima (SPEC T4, exact first-order form; notes §2.4). Both sides here are lower
    estimates, so a positive value means the gradient-norm search under-estimated its maximum
    by at least that much; zero or negative means the measured numbers are consistent.
    """
    bound = result.eps[:, None] * result.grad_norm
    return (result.loss_change - bound).max(axis=1)


def landscape_callback(
    splits: dict[str, tuple[Any, Any] | Callable[[Any], tuple[Any, Any]]],
    eps_grid: Sequence[float],
    epochs: Iterable[int],
    *,
    steps: int = 10,
    restarts: int = 1,
    batch_size: int = 256,
    seed: int = 0,
    store: dict[int, dict[str, LandscapeResult]] | None = None,
) -> Callable[[Any], dict[str, Any]]:
    """A per-epoch training callback that measures the landscape at chosen epochs.

    Parameters
    ----------
    splits : dict
        Name (e.g. ``"train"``, ``"test"``) → ``(x, y)`` tensors to measure on, or a callable
        ``ctx -> (x, y)`` (e.g. a fixed subset of ``ctx.train_x``, which only exists once the
        trainer has loaded the data).
    eps_grid : sequence of float
        Radii.
    epochs : iterable of int
        Epoch numbers (as given by the trainer's context ``epoch`` attribute) to measure at.
    store : dict, optional
        If given, full :class:`LandscapeResult` objects are kept here, keyed by epoch then split.

    Returns
    -------
    callable
        ``callback(ctx) -> dict``: reads ``ctx.model`` and ``ctx.epoch``; returns flat metrics
        ``landscape/<split>/grad_norm_mean`` etc. (lists over ``eps_grid``), or ``{}`` at
        epochs not chosen.
    """
    chosen = {int(e) for e in epochs}
    if not splits:
        raise ValueError("splits must name at least one (x, y) pair")
    eps_grid = [_check_eps(e, "eps_grid") for e in eps_grid]

    def callback(ctx: Any) -> dict[str, Any]:
        epoch = int(ctx.epoch)
        if epoch not in chosen:
            return {}
        metrics: dict[str, Any] = {}
        for name, split in splits.items():
            xs, ys = split(ctx) if callable(split) else split
            res = input_landscape(
                ctx.model,
                xs,
                ys,
                eps_grid,
                steps=steps,
                restarts=restarts,
                batch_size=batch_size,
                seed=seed,
            )
            if store is not None:
                store.setdefault(epoch, {})[name] = res
            summ = res.summary()
            for key in ("grad_norm_mean", "loss_change_mean", "grad_norm_q50", "loss_change_q50"):
                metrics[f"landscape/{name}/{key}"] = summ[key]
            metrics[f"landscape/{name}/clean_grad_norm_mean"] = summ["clean_grad_norm_mean"]
            metrics["landscape/eps"] = list(eps_grid)
        logger.info("landscape measured at epoch %d on %s", epoch, sorted(splits))
        return metrics

    return callback
