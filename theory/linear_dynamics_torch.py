r"""Adversarial-training dynamics on linearly separable data ([P1] §5; SPEC T3). Uses torch.

* :func:`adversarial_training_linear` — FGSM adversarial training of a zero-initialized linear
  model with the exponential loss; returns the direction's cosine to w* over iterations.
  With the ℓ2 attack on large-margin data this is the setting of [P1] Thm 5.1; with any ℓp
  attack its direction converges to the robust max-margin direction
  (:func:`robmem.theory.linear.robust_max_margin_direction`; Li, Fang, Wang et al., ICLR 2020).
* :func:`train_mixed_learner` — the [P1] Thm 5.2 mixed learner
  f(x) = w₀ᵀx + Σ_j a_j σ(w_jᵀx − b) trained adversarially on all data; reports its robust
  training error and how well its neurons align with the small-margin points' noise ξ_i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from robmem.theory.bounds.validation import (
    dual_exponent,
    require_int_at_least,
    require_nonnegative,
    require_norm_exponent,
    require_positive,
)
from robmem.theory.data_models import LinearSeparableData

#: Denominator guard when normalizing a zero input gradient (FGSM at w = 0 gives ξ = 0).
GRAD_NORM_FLOOR = 1e-300
#: PGD step size as a multiple of radius/steps (Madry et al. 2018 use 2.5·ε/steps).
PGD_STEP_FACTOR = 2.5
#: Guard for ℓ2 normalizations inside PGD (gradients and perturbations near zero).
PGD_NORM_FLOOR = 1e-12


def steepest_ascent_step(grad: torch.Tensor, delta: float, p: float) -> torch.Tensor:
    r"""δ·argmax_{‖v‖_p≤1} gᵀv per row: the FGSM step in ℓp (Goodfellow et al. 2014 for p = ∞).

    p = ∞: δ·sign(g); p = 2: δ·g/‖g‖₂; p = 1: δ·sign(g_k) e_k at k = argmax|g_k|;
    otherwise δ·sign(g)|g|^{q−1}/‖g‖_q^{q−1}. Rows with g = 0 give 0.
    """
    if math.isinf(p):
        return delta * torch.sign(grad)
    if p == 1:
        idx = grad.abs().argmax(dim=1, keepdim=True)
        out = torch.zeros_like(grad)
        out.scatter_(1, idx, torch.sign(grad.gather(1, idx)))
        return delta * out
    q = p / (p - 1.0)
    norm = torch.linalg.vector_norm(grad, ord=q, dim=1, keepdim=True).clamp_min(GRAD_NORM_FLOOR)
    return delta * torch.sign(grad) * (grad.abs() / norm) ** (q - 1.0)


@dataclass(frozen=True)
class ATTrajectory:
    """Result of :func:`adversarial_training_linear`.

    Attributes
    ----------
    w : ndarray, shape (d,)
        Final weights.
    direction : ndarray, shape (d,)
        w / ‖w‖₂.
    iterations : ndarray of int
        Iterations at which the cosines were recorded.
    cosine_to_reference : ndarray
        cos(w_t, reference) at those iterations (reference = w* when given).
    robust_margins : ndarray
        min_i (y_i w_tᵀx_i − δ‖w_t‖_q)/‖w_t‖₂ at those iterations.
    """

    w: np.ndarray
    direction: np.ndarray
    iterations: np.ndarray
    cosine_to_reference: np.ndarray
    robust_margins: np.ndarray


def adversarial_training_linear(
    x: np.ndarray,
    y: np.ndarray,
    *,
    delta: float,
    p: float | str = 2,
    n_iter: int = 2000,
    lr: float = 1.0,
    normalized: bool = True,
    reference: np.ndarray | None = None,
    record_every: int = 10,
) -> ATTrajectory:
    r"""FGSM adversarial training of f(x) = wᵀx with the exponential loss, from w = 0.

    Each iteration: compute the input gradient of ℓ(x) = exp(−y wᵀx) at the clean points
    (autograd), take the FGSM step ξ_i = δ·argmax_{‖v‖_p≤1} ∇ₓℓ_iᵀv
    (:func:`steepest_ascent_step`), then take a gradient step on
    L(w) = (1/N) Σ_i exp(−y_i wᵀ(x_i + ξ_i)) with ξ held fixed. For a linear model the FGSM
    point is the exact worst case, so L is the exact robust exponential loss.

    ``normalized=True`` uses the step size lr/L(w_t) (normalized GD, Nacson et al. 2019),
    computed stably as a gradient step on log L; it has the same limit direction as plain GD
    and converges faster. ``normalized=False`` is plain GD with step ``lr``.

    Statement checked ([P1] Thm 5.1): on large-margin data with the ℓ2 attack,
    ‖lim_k w_k/‖w_k‖ − w*‖₂ = o(1). The limit direction is the robust max-margin direction
    (Li, Fang, Wang et al. 2020), which [P1] argues is within o(1) of w*.

    Parameters
    ----------
    x : ndarray, shape (n, d)
    y : ndarray, shape (n,), ±1
    delta : float
        Attack radius (>= 0).
    p : float or "inf"
        Attack norm.
    n_iter : int
        Iterations (>= 1).
    lr : float
        Step size (> 0).
    normalized : bool
        See above.
    reference : ndarray, shape (d,), optional
        Direction to report cosines against (e.g. w* or the cvxpy max-margin direction).
    record_every : int
        Recording period (>= 1).
    """
    delta = require_nonnegative("delta", delta)
    p = require_norm_exponent("p", p)
    n_iter = require_int_at_least("n_iter", n_iter, 1)
    lr = require_positive("lr", lr)
    record_every = require_int_at_least("record_every", record_every, 1)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64)).reshape(-1)
    if xt.ndim != 2 or xt.shape[0] == 0 or yt.shape[0] != xt.shape[0]:
        raise ValueError(f"x must be (n, d) with n >= 1 and y of length n; got {tuple(xt.shape)}")
    q = dual_exponent(p)
    ref = None
    if reference is not None:
        ref = torch.as_tensor(np.asarray(reference, dtype=np.float64))
        ref = ref / torch.linalg.vector_norm(ref)
    w = torch.zeros(xt.shape[1], dtype=torch.float64, requires_grad=True)
    its, cosines, margins = [], [], []
    for k in range(1, n_iter + 1):
        x_req = xt.clone().requires_grad_(True)
        # log of the per-sample exponential loss: its input gradient has the same direction
        # as exp(-y w'x)'s (a positive per-sample factor), which FGSM normalizes away, and it
        # cannot overflow once ||w|| is large.
        clean_log_loss = (-yt * (x_req @ w.detach())).sum()
        (grad_x,) = torch.autograd.grad(clean_log_loss, x_req)
        x_adv = (xt + steepest_ascent_step(grad_x, delta, p)).detach()
        scores = -yt * (x_adv @ w)
        objective = torch.logsumexp(scores, 0) if normalized else torch.exp(scores).mean()
        (grad_w,) = torch.autograd.grad(objective, w)
        with torch.no_grad():
            w -= lr * grad_w
        if k % record_every == 0 or k == n_iter:
            with torch.no_grad():
                norm = float(torch.linalg.vector_norm(w))
                its.append(k)
                if norm == 0:
                    cosines.append(0.0)
                    margins.append(-math.inf)
                    continue
                wd = w / norm
                cosines.append(float(wd @ ref) if ref is not None else math.nan)
                robust = yt * (xt @ wd) - delta * torch.linalg.vector_norm(wd, ord=q)
                margins.append(float(robust.min()))
    w_np = w.detach().numpy().copy()
    norm = np.linalg.norm(w_np)
    return ATTrajectory(
        w=w_np,
        direction=w_np / norm if norm > 0 else w_np,
        iterations=np.asarray(its),
        cosine_to_reference=np.asarray(cosines),
        robust_margins=np.asarray(margins),
    )


@dataclass(frozen=True)
class MixedLearnerResult:
    """Result of :func:`train_mixed_learner`.

    Attributes
    ----------
    robust_train_error, robust_error_large, robust_error_small, clean_train_error : float
        0-1 errors on the training set; robust ones under an ℓ2 PGD attack of radius δ
        (a lower estimate of the exact robust error).
    alignment : ndarray, shape (n_small,)
        For each small-margin point i, max over neurons j with a_j y_i > 0 of cos(w_j, ξ_i).
    alignment_at_init : ndarray, shape (n_small,)
        The same quantity at initialization (chance level ≈ √(2 log m / d)).
    linear_cosine_to_w_star : float
        cos(w₀, w*) at the end.
    history : list of dict
        Per recorded iteration: loss and robust error.
    """

    robust_train_error: float
    robust_error_large: float
    robust_error_small: float
    clean_train_error: float
    alignment: np.ndarray
    alignment_at_init: np.ndarray
    linear_cosine_to_w_star: float
    history: list[dict] = field(default_factory=list)


class _MixedLearner(torch.nn.Module):
    def __init__(self, dim: int, n_neurons: int, bias: float, init_scale: float, gen) -> None:
        super().__init__()
        self.w0 = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))
        # rows ~ N(0, I/d): unit expected norm, so w_j'x is O(||x||/sqrt(d)) and some units fire
        self.w = torch.nn.Parameter(
            torch.randn(n_neurons, dim, dtype=torch.float64, generator=gen) / math.sqrt(dim)
        )
        self.a = torch.nn.Parameter(
            init_scale * torch.randn(n_neurons, dtype=torch.float64, generator=gen)
        )
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w0 + torch.relu(x @ self.w.T - self.bias) @ self.a


def _pgd_l2(model, x, y, delta, steps, step_size, restarts, gen) -> torch.Tensor:
    """ℓ2 PGD minimizing y·f(x+ξ) over ‖ξ‖₂ ≤ δ; returns the worst of the restarts."""
    best = x.clone()
    best_score = torch.full((x.shape[0],), math.inf, dtype=x.dtype)
    for r in range(restarts):
        if r == 0:
            xi = torch.zeros_like(x)
        else:
            xi = torch.randn(x.shape, dtype=x.dtype, generator=gen)
            xi = xi / torch.linalg.vector_norm(xi, dim=1, keepdim=True) * delta
        for _ in range(steps):
            xi.requires_grad_(True)
            score = (y * model(x + xi)).sum()
            (g,) = torch.autograd.grad(score, xi)
            with torch.no_grad():
                xi = xi - step_size * g / torch.linalg.vector_norm(
                    g, dim=1, keepdim=True
                ).clamp_min(PGD_NORM_FLOOR)
                norm = torch.linalg.vector_norm(xi, dim=1, keepdim=True)
                xi = xi * torch.clamp(delta / norm.clamp_min(PGD_NORM_FLOOR), max=1.0)
        with torch.no_grad():
            score = y * model(x + xi)
            better = score < best_score
            best[better] = (x + xi)[better]
            best_score = torch.minimum(best_score, score)
    return best.detach()


def _alignment(model: _MixedLearner, noise: torch.Tensor, y_small: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        wn = model.w / torch.linalg.vector_norm(model.w, dim=1, keepdim=True).clamp_min(1e-300)
        xn = noise / torch.linalg.vector_norm(noise, dim=1, keepdim=True).clamp_min(1e-300)
        cos = xn @ wn.T  # (n_small, m)
        same_sign = (y_small[:, None] * model.a[None, :]) > 0
        cos = torch.where(same_sign, cos, torch.full_like(cos, -1.0))
        return cos.max(dim=1).values.numpy()


def train_mixed_learner(
    data: LinearSeparableData,
    *,
    delta: float,
    n_neurons: int | None = None,
    bias: float = 0.5,
    n_iter: int = 400,
    lr: float = 0.05,
    init_scale: float = 0.01,
    attack_steps: int = 5,
    eval_attack_steps: int = 50,
    eval_restarts: int = 3,
    seed: int = 0,
) -> MixedLearnerResult:
    r"""Adversarially train the [P1] Thm 5.2 mixed learner and measure noise memorization.

    Model: f(x) = w₀ᵀx + Σ_{j=1}^m a_j σ(w_jᵀx − b), σ = ReLU, w₀ = 0 and small Gaussian
    (w_j, a_j) at init. Training ("modified adversarial training"; [P1] does not give the
    algorithm, this is our documented choice): full-batch Adam on the logistic loss at ℓ2 PGD
    adversarial points (``attack_steps`` steps of size 2.5δ/steps, Madry et al.), all of
    (w₀, w_j, a_j) trained. [P1] Thm 5.2 states that the robust training error tends to 0 and
    that the limit is w*ᵀx + Σ_{small} y_i φ(ξ_iᵀx): neurons memorize the noise ξ_i of the
    small-margin points. Measured: robust and clean training error (PGD with restarts), and
    for each small-margin point the best cosine between a same-sign neuron and ξ_i.

    Parameters
    ----------
    data : LinearSeparableData
        From :func:`robmem.theory.data_models.linear_separable_data`; needs n_small >= 1.
    delta : float
        ℓ2 radius (> 0); choose β < δ < α so that the linear part alone cannot be robust on
        small-margin points.
    n_neurons : int, optional
        m (default 2·n_small).
    bias : float
        Threshold b (>= 0).
    n_iter, lr, init_scale, attack_steps, eval_attack_steps, eval_restarts, seed
        Optimization and evaluation settings.
    """
    delta = require_positive("delta", delta)
    bias = require_nonnegative("bias", bias)
    n_iter = require_int_at_least("n_iter", n_iter, 1)
    lr = require_positive("lr", lr)
    n_small = int(data.is_small.sum())
    if n_small < 1:
        raise ValueError("data must contain small-margin points (n_small in [1, inf)), got 0")
    m = require_int_at_least("n_neurons", n_neurons if n_neurons is not None else 2 * n_small, 1)
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(data.x, dtype=torch.float64)
    y = torch.as_tensor(data.y, dtype=torch.float64)
    small = torch.as_tensor(data.is_small)
    noise_small = torch.as_tensor(data.noise[data.is_small], dtype=torch.float64)
    model = _MixedLearner(x.shape[1], m, bias, init_scale, gen)
    align0 = _alignment(model, noise_small, y[small])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step = PGD_STEP_FACTOR * delta / max(attack_steps, 1)
    history: list[dict] = []
    for k in range(1, n_iter + 1):
        x_adv = _pgd_l2(model, x, y, delta, attack_steps, step, 1, gen)
        loss = torch.nn.functional.softplus(-y * model(x_adv)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k % max(1, n_iter // 10) == 0 or k == n_iter:
            with torch.no_grad():
                err = float(((y * model(x_adv)) <= 0).double().mean())
            history.append(
                {"iteration": k, "loss": float(loss.detach()), "robust_error_train_attack": err}
            )
    eval_step = PGD_STEP_FACTOR * delta / eval_attack_steps
    x_adv = _pgd_l2(model, x, y, delta, eval_attack_steps, eval_step, eval_restarts, gen)
    with torch.no_grad():
        robust_wrong = (y * model(x_adv)) <= 0
        clean_wrong = (y * model(x)) <= 0
        w0 = model.w0.numpy()
        cos_w0 = float(w0 @ data.w_star / max(np.linalg.norm(w0), 1e-300))
    large = ~small
    return MixedLearnerResult(
        robust_train_error=float(robust_wrong.double().mean()),
        robust_error_large=float(robust_wrong[large].double().mean()) if large.any() else 0.0,
        robust_error_small=float(robust_wrong[small].double().mean()),
        clean_train_error=float(clean_wrong.double().mean()),
        alignment=_alignment(model, noise_small, y[small]),
        alignment_at_init=align0,
        linear_cosine_to_w_star=cos_w0,
        history=history,
    )
