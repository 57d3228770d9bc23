"""Adversarial attacks in pixel space [0, 1] (SPEC "Threat model", E1–E6).

Every attack is called like torchattacks, ``attack(model, x, y) -> x_adv``, and

- never changes the model: each module's ``training`` flag, every buffer (BatchNorm running
  statistics) and every parameter's ``requires_grad`` and ``.grad`` are as before the call
  (``notes/speed-and-library-anchors.md`` §4.1 item 7; torchattacks #21);
- runs the model in eval mode by default (``eval_mode=False`` keeps the caller's mode, as in
  Wong et al.'s FGSM-RS training; buffers are then restored after the attack);
- differentiates with respect to the input only (``torch.autograd.grad`` on x, parameters
  temporarily frozen), which also saves the weight-gradient work;
- keeps every iterate inside the ε-ball *and* [0, 1], including the random start
  (§4.1 items 1–2): for ℓ∞ the two boxes are intersected exactly,
  ``clamp(x_adv, max(x − ε, 0), min(x + ε, 1))``; for ℓ2 the step is projected onto the ball
  and then clamped to [0, 1], which stays in the ball (clamping only shrinks |δ_i|) but is not
  the exact projection onto the intersection;
- with ``eps = 0`` or ``steps = 0`` returns exactly ``x`` (§4.1 item 4; torchattacks #124);
- returns ``x_adv`` on x's device, in x's memory format (NCHW or channels_last), and never
  synchronises with the device inside the iterations (only :func:`check_batch`, once per
  call, unless ``validate=False``).

Restarts run batched (the batch is repeated ``restarts`` times) and the result is the
per-sample worst case: a restart that misclassifies the sample wins, then the higher loss
(§4.1 item 6; ART #714). With ``keep_best=True`` (the default for :class:`PGD`) the same rule
also picks the best iterate along each trajectory, so robust accuracy can only go down as
``steps`` or ``restarts`` grow with a fixed random start.

Cross-entropy is maximised through its logit-margin form ``log Σ_{k≠y} e^{z_k} − z_y``
(:func:`margin_cross_entropy`): CE = softplus(that), so its gradient is a positive multiple of
CE's and every sign/normalised step is the same, but it never underflows to a zero gradient on
confidently classified points (cleverhans #350).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Valid image range of every data set in the suite (pixel space).
PIXEL_BOUNDS: tuple[float, float] = (0.0, 1.0)
#: Accepted spellings of the two threat models.
_NORM_ALIASES = {"inf": "inf", "linf": "inf", "l_inf": "inf", "2": "2", "l2": "2"}
#: Std of TRADES' Gaussian random start (Zhang et al. 2019, trades.py: 0.001 * randn).
TRADES_START_STD = 0.001
#: Floor for per-sample norms before dividing (avoids 0/0 for zero gradients or deltas).
_NORM_FLOOR = 1e-12
#: Bisection iterations of the exact ℓ2-with-box linear attack (float64: 2^-100 relative).
_L2_BISECTION_STEPS = 100
#: Smallest magnitude divided by in float64 (only reached where v_i has the guarded sign).
_TINY64 = 1e-300
#: Relative tolerance of the affinity check of :class:`LinearExactAttack`.
_AFFINE_RTOL = 1e-4


# ----------------------------------------------------------------------------- validation


def norm_name(norm: str | float | int) -> str:
    """The canonical name ("inf" or "2") of a norm given as a name, alias or number."""
    key = str(norm).lower()  # float("inf") -> "inf", 2 -> "2", 2.0 -> "2.0"
    if isinstance(norm, (int, float)) and not isinstance(norm, bool) and norm == 2:
        key = "2"
    if key not in _NORM_ALIASES:
        raise ValueError(f"norm must be 'inf' or '2', got {norm!r}")
    return _NORM_ALIASES[key]


def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite float >= 0, got {eps!r}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return float(eps)


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f"alpha (step size) must be a finite float > 0, got {alpha!r}")
    if alpha <= 0:
        raise ValueError(f"alpha (step size) must be > 0, got {alpha}")
    return float(alpha)


def _check_count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_bounds(bounds: tuple[float, float] | None) -> tuple[float, float] | None:
    if bounds is None:
        return None
    lo, hi = (float(b) for b in bounds)
    if not lo < hi:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
    return lo, hi


def check_batch(
    x: torch.Tensor, y: torch.Tensor, bounds: tuple[float, float] | None = PIXEL_BOUNDS
) -> int | None:
    """Raise ValueError/TypeError unless ``x`` is a finite float batch in ``bounds`` and ``y``
    holds one non-negative integer label per sample. Costs one host sync.

    Returns the largest label (None for an empty batch), which the attacks compare with the
    model's number of outputs before any label is used as an index (on CUDA an out-of-range
    index is a device-side assert that poisons the process, not a catchable error)."""
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__}")
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
        raise TypeError(
            f"y must be an int64 (or int32) tensor of labels, got {getattr(y, 'dtype', type(y))}"
        )
    if x.ndim < 2:
        raise ValueError(f"x must have shape (n, ...), got {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    if x.numel() == 0:
        return None
    stats = torch.stack(
        [
            x.min().float(),
            x.max().float(),
            torch.isnan(x).any().float(),
            y.min().float(),
            y.max().float(),
        ]
    ).tolist()
    if stats[2] > 0:
        raise ValueError("x must not contain NaN")
    if bounds is not None and (stats[0] < bounds[0] or stats[1] > bounds[1]):
        raise ValueError(
            f"x must lie in [{bounds[0]}, {bounds[1]}] (pixel space), got [{stats[0]}, {stats[1]}]"
        )
    if stats[3] < 0:
        raise ValueError(f"y must hold labels >= 0, got min {int(stats[3])}")
    return int(stats[4])


def check_labels_fit(label_max: int | None, logits: torch.Tensor) -> None:
    """ValueError if a label (largest: ``label_max``, from :func:`check_batch`) is not below the
    number of outputs of ``logits`` (n, C). No device access; None skips the check."""
    if label_max is not None and label_max >= logits.shape[1]:
        raise ValueError(
            f"y: every label must be below the model's number of outputs ({logits.shape[1]}), "
            f"got label {label_max}"
        )


# ---------------------------------------------------------------------- model state hygiene


@contextlib.contextmanager
def attack_mode(model: nn.Module, eval_mode: bool = True) -> Iterator[None]:
    """Context in which an attack may run ``model`` without leaving any trace on it.

    Inside: the model is in eval mode (if ``eval_mode``) and every leaf parameter has
    ``requires_grad=False`` (so no weight gradients are built or stored). On exit every
    module's ``training`` flag and every parameter's ``requires_grad`` are restored; when
    ``eval_mode`` is False (BatchNorm may update its running statistics) all buffers are
    restored bit-for-bit.
    """
    flags = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad) for p in model.parameters() if p.is_leaf]
    saved_buffers = None
    if not eval_mode:
        saved_buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        if eval_mode:
            model.eval()
        for p, _ in params:
            p.requires_grad_(False)
        yield
    finally:
        for m, flag in flags:
            m.training = flag
        for p, req in params:
            p.requires_grad_(req)
        if saved_buffers is not None:
            with torch.no_grad():
                for b, copy in saved_buffers:
                    b.copy_(copy)


# ------------------------------------------------------------------------------- losses


def margin_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return ``log Σ_{k≠y} exp(z_k) − z_y`` per sample (float32).

    Cross-entropy equals ``softplus`` of this value, so both rank perturbations identically and
    their input gradients differ by the positive factor sigmoid(·); this form keeps a nonzero
    gradient when CE's own gradient underflows (p_y rounds to 1).
    """
    z = logits.float()
    zy = z.gather(1, y.view(-1, 1)).squeeze(1)
    others = z.scatter(1, y.view(-1, 1), float("-inf"))
    return torch.logsumexp(others, dim=1) - zy


def trades_kl(adv_logits: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
    """Return per-sample KL(p_clean ‖ p_adv) = Σ_c p_c (log p_c − log softmax(z_adv)_c).

    This is TRADES' ``KLDivLoss(log_softmax(f(x_adv)), softmax(f(x)))`` (Zhang et al. 2019,
    trades.py) before the batch sum.
    """
    logp_adv = F.log_softmax(adv_logits.float(), dim=1)
    return (torch.special.xlogy(clean_probs, clean_probs) - clean_probs * logp_adv).sum(dim=1)


def _per_sample(loss: torch.Tensor, n: int, name: str) -> torch.Tensor:
    if loss.shape != (n,):
        raise ValueError(
            f"{name} must return one loss per sample, shape ({n},), got {tuple(loss.shape)}"
        )
    return loss.float()


# ------------------------------------------------------------------------------- attacks


class Attack:
    """Base class: ``attack(model, x, y) -> x_adv`` with validation and state hygiene.

    Subclasses implement :meth:`_perturb`, called inside :func:`attack_mode`. Call-time
    keywords: ``loss_fn`` replaces the constructor's objective for this call; ``rows=(lo, hi,
    n)`` says that ``x`` is rows ``lo:hi`` of a batch of ``n``: the random start is drawn for
    all ``n`` rows exactly as for the whole batch, and rows ``lo:hi`` are kept (a data-parallel
    rank then gets the single-process start of its examples and ends with the same RNG state).
    """

    eval_mode: bool = True
    bounds: tuple[float, float] | None = PIXEL_BOUNDS
    validate: bool = True
    #: Largest label of the current call (set by :meth:`__call__` when validating).
    _label_max: int | None = None
    _call_loss_fn: LossFn | None = None
    _rows: tuple[int, int, int] | None = None

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        loss_fn: LossFn | None = None,
        rows: tuple[int, int, int] | None = None,
    ) -> torch.Tensor:
        if rows is not None and not (
            0 <= rows[0] and rows[1] <= rows[2] and rows[1] - rows[0] == len(x)
        ):
            raise ValueError(
                f"rows must be (lo, hi, n), 0 <= lo <= hi <= n, hi - lo = len(x): {rows}"
            )
        self._call_loss_fn, self._rows = loss_fn, rows
        self._label_max = check_batch(x, y, self.bounds) if self.validate else None
        x = x.detach()
        y = y.detach().long()
        with attack_mode(model, self.eval_mode), torch.enable_grad():
            try:
                return self._perturb(model, x, y)
            except (IndexError, RuntimeError) as exc:
                # A label >= the model's number of outputs surfaces as an index error deep
                # inside torch; report it as the user's input error (issue 4 "Bad input").
                if "out of bounds" not in str(exc):
                    raise
                raise ValueError(
                    f"y: every label must be below the model's number of outputs ({exc})"
                ) from exc

    def _perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _box(
    x: torch.Tensor, eps: float, bounds: tuple[float, float] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    lower, upper = x - eps, x + eps
    if bounds is not None:
        lower = lower.clamp_min(bounds[0])
        upper = upper.clamp_max(bounds[1])
    return lower, upper


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view((-1,) + (1,) * (t.ndim - 1))


def _check_generator_device(generator: torch.Generator | None, x: torch.Tensor) -> None:
    """ValueError unless ``generator`` is None or on x's device type (torch refuses to fill a
    CUDA tensor from a CPU generator and vice versa, with a less direct message)."""
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"generator must be on x's device type {x.device.type!r} (or None for the global "
            f"RNG), got a generator on {str(generator.device)!r}"
        )


def _draw(
    like: torch.Tensor,
    fill: Callable[[torch.Tensor], torch.Tensor],
    rows: tuple[int, int, int] | None,
    restarts: int = 1,
) -> torch.Tensor:
    """``fill(torch.empty_like(like))``; with ``rows=(lo, hi, n)``, where ``like`` holds rows
    ``lo:hi`` of each of ``restarts`` blocks of a batch of ``n``, fill the whole ``restarts·n``
    rows (same shape, dtype and memory format, hence the same numbers) and keep ``like``'s."""
    if rows is None:
        return fill(torch.empty_like(like))
    lo, hi, n = rows
    shape = like.shape[1:]
    cl = like.ndim == 4 and like.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if cl else torch.contiguous_format
    full = torch.empty(
        (restarts * n, *shape), dtype=like.dtype, device=like.device, memory_format=fmt
    )
    return fill(full).view(restarts, n, *shape)[:, lo:hi].reshape(like.shape)


def _random_start(
    x: torch.Tensor,
    eps: float,
    norm: str,
    lower: torch.Tensor,
    upper: torch.Tensor,
    bounds: tuple[float, float] | None,
    generator: torch.Generator | None,
    rows: tuple[int, int, int] | None = None,
    restarts: int = 1,
) -> torch.Tensor:
    if norm == "inf":
        # Same draw as torchattacks.PGD: empty_like(x).uniform_(-eps, eps) from the given RNG.
        noise = _draw(x, lambda t: t.uniform_(-eps, eps, generator=generator), rows, restarts)
        return torch.clamp(x + noise, lower, upper)
    # ℓ2: uniform in the ball (Gaussian direction, radius eps * U^(1/D)).
    direction = _draw(x, lambda t: t.normal_(generator=generator), rows, restarts)
    direction = direction / _flat_norm(direction).clamp_min(_NORM_FLOOR)
    dim = math.prod(x.shape[1:])
    u = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype)
    u = _draw(u, lambda t: t.uniform_(0, 1, generator=generator), rows, restarts)
    radius = eps * u.pow(1.0 / dim)
    x_adv = x + direction * radius
    return x_adv.clamp(*bounds) if bounds is not None else x_adv


class _Best:
    """Per-sample worst case seen so far: misclassified beats correct, then higher loss."""

    def __init__(self, x: torch.Tensor):
        n = x.shape[0]
        self.x = x.clone()
        self.wrong = torch.zeros(n, dtype=torch.bool, device=x.device)
        self.loss = torch.full((n,), float("-inf"), device=x.device)

    def update(self, x: torch.Tensor, wrong: torch.Tensor, loss: torch.Tensor) -> None:
        loss = torch.nan_to_num(loss.detach(), nan=float("-inf"))
        better = (wrong & ~self.wrong) | ((wrong == self.wrong) & (loss > self.loss))
        self.x = torch.where(better.view((-1,) + (1,) * (x.ndim - 1)), x, self.x)
        self.wrong = self.wrong | wrong
        self.loss = torch.where(better, loss, self.loss)


def select_worst_case(
    candidates: torch.Tensor, wrong: torch.Tensor, loss: torch.Tensor
) -> torch.Tensor:
    """Return, per sample, the candidate that is misclassified if any is, else of highest loss.

    Parameters
    ----------
    candidates : tensor (R, n, ...)
        R candidate adversarial inputs per sample (e.g. restarts).
    wrong : bool tensor (R, n)
        Whether candidate r misclassifies sample i.
    loss : tensor (R, n)
        The attack objective at each candidate.

    Returns
    -------
    tensor (n, ...)
    """
    loss = torch.nan_to_num(loss.float(), nan=float("-inf"))
    neg_inf = torch.tensor(float("-inf"), device=loss.device)
    # Among misclassifying candidates the highest loss; rows with none fall back to all rows.
    key_wrong = torch.where(wrong, loss, neg_inf)
    idx_wrong = key_wrong.argmax(dim=0)
    idx_any = loss.argmax(dim=0)
    idx = torch.where(wrong.any(dim=0), idx_wrong, idx_any)
    gather = idx.view((1, -1) + (1,) * (candidates.ndim - 2)).expand((1,) + candidates.shape[1:])
    return candidates.gather(0, gather).squeeze(0)


class PGD(Attack):
    """Projected gradient descent (Madry et al. 2018) in ℓ∞ or ℓ2, pixel space.

    Parameters
    ----------
    eps : float >= 0
        Radius of the threat ball.
    alpha : float > 0
        Step size (ℓ∞: per-coordinate sign step; ℓ2: length of the normalised step).
    steps : int >= 0
        Number of gradient steps (0 returns ``x``).
    norm : {"inf", "2"}
    random_start : bool
        ℓ∞: x + U(−ε, ε) per coordinate (same draw as torchattacks), then the box; ℓ2:
        uniform in the ball. Then clamped to [0, 1].
    restarts : int >= 1
        Independent random starts, run as one batch; per-sample worst case is returned.
    loss_fn : callable, optional
        ``loss_fn(logits, y) -> per-sample loss`` to maximise instead of cross-entropy
        (e.g. the TE objective of [P2]). ``y`` is always the class labels.
    eval_mode : bool
        Run the model in eval mode (default) or in its current mode.
    keep_best : bool
        Return, per sample, the worst iterate (misclassified first, then highest loss) instead
        of the last one; costs one extra forward pass.
    generator : torch.Generator, optional
        RNG of the random start, on x's device type (ValueError otherwise); the global RNG
        when omitted.
    bounds : (float, float) or None
        Valid input range (default [0, 1]); None disables the box (synthetic data only).
    amp_dtype : torch.dtype, optional
        Run the forward pass under ``torch.autocast`` with this dtype (bf16 on GPU); the loss
        and the update stay in float32.
    channels_last : bool
        Feed 4-D inputs in channels_last memory format (pair with a channels_last model).
        The result has the memory format of the given ``x`` either way.
    """

    def __init__(
        self,
        eps: float,
        alpha: float,
        steps: int,
        norm: str = "inf",
        random_start: bool = True,
        restarts: int = 1,
        loss_fn: LossFn | None = None,
        eval_mode: bool = True,
        *,
        keep_best: bool = True,
        generator: torch.Generator | None = None,
        bounds: tuple[float, float] | None = PIXEL_BOUNDS,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        validate: bool = True,
    ):
        self.eps = _check_eps(eps)
        self.alpha = _check_alpha(alpha)
        self.steps = _check_count(steps, "steps", 0)
        self.norm = norm_name(norm)
        self.random_start = bool(random_start)
        self.restarts = _check_count(restarts, "restarts", 1)
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable or None, got {type(loss_fn).__name__}")
        self.loss_fn = loss_fn
        self.eval_mode = bool(eval_mode)
        self.keep_best = bool(keep_best)
        self.generator = generator
        self.bounds = _check_bounds(bounds)
        self.amp_dtype = amp_dtype
        self.channels_last = bool(channels_last)
        self.validate = bool(validate)

    # The objective; subclasses (TRADES) override it.
    def _objective(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss_fn = self._call_loss_fn or self.loss_fn
        if loss_fn is None:
            return margin_cross_entropy(logits, y)
        return _per_sample(loss_fn(logits, y), y.shape[0], "loss_fn")

    def _prepare(self, model: nn.Module, x: torch.Tensor) -> None:
        """Hook run once per call before the iterations (TRADES computes clean outputs)."""

    def _start(self, x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        if self.random_start:
            return _random_start(
                x, self.eps, self.norm, lower, upper, self.bounds, self.generator,
                self._rows, self.restarts,
            )  # fmt: skip
        return x.clone()

    def _forward(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.amp_dtype is None:
            return model(x)
        with torch.autocast(device_type=x.device.type, dtype=self.amp_dtype):
            return model(x)

    def _step(
        self,
        x_adv: torch.Tensor,
        grad: torch.Tensor,
        x: torch.Tensor,
        lower: torch.Tensor,
        upper: torch.Tensor,
    ) -> torch.Tensor:
        if self.norm == "inf":
            return torch.clamp(x_adv + self.alpha * grad.sign(), lower, upper)
        x_adv = x_adv + self.alpha * grad / _flat_norm(grad).clamp_min(_NORM_FLOOR)
        delta = x_adv - x
        delta = delta * (self.eps / _flat_norm(delta).clamp_min(_NORM_FLOOR)).clamp(max=1.0)
        x_adv = x + delta
        return x_adv.clamp(*self.bounds) if self.bounds is not None else x_adv

    def _run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, need_score: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One batched trajectory per row; returns (x_adv, wrong, loss) of the chosen iterate."""
        lower, upper = _box(x, self.eps, self.bounds) if self.norm == "inf" else (x, x)
        x_adv = self._start(x, lower, upper)
        best = _Best(x_adv) if self.keep_best else None
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            logits = self._forward(model, x_adv)
            check_labels_fit(self._label_max, logits)  # before y indexes anything
            loss = self._objective(logits, y)
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            x_adv = x_adv.detach()
            if best is not None:
                best.update(x_adv, logits.detach().argmax(dim=1) != y, loss.detach())
            x_adv = self._step(x_adv, grad, x, lower, upper)
        if best is None and not need_score:
            return x_adv, None, None
        with torch.no_grad():
            logits = self._forward(model, x_adv)
            wrong, loss = logits.argmax(dim=1) != y, self._objective(logits, y)
        if best is None:
            return x_adv, wrong, loss
        best.update(x_adv, wrong, loss)
        return best.x, best.wrong, best.loss

    def _perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.steps == 0 or x.numel() == 0:
            if self.steps and self._rows is not None:
                self._start(x, x, x)  # an empty shard draws the start as the others do
            return x.clone()
        _check_generator_device(self.generator, x)
        orig_format_cl = x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        r = self.restarts
        if r == 1:
            self._prepare(model, x)
            x_adv, _, _ = self._run(model, x, y, need_score=False)
        else:
            xr = x.repeat((r,) + (1,) * (x.ndim - 1))
            if self.channels_last and x.ndim == 4:
                xr = xr.contiguous(memory_format=torch.channels_last)
            self._prepare(model, xr)
            cand, wrong, loss = self._run(model, xr, y.repeat(r), need_score=True)
            n = x.shape[0]
            assert wrong is not None and loss is not None
            x_adv = select_worst_case(
                cand.view((r, n) + x.shape[1:]), wrong.view(r, n), loss.view(r, n)
            )
        if x_adv.ndim == 4:  # the caller's memory format (NCHW or channels_last) back
            fmt = torch.channels_last if orig_format_cl else torch.contiguous_format
            x_adv = x_adv.contiguous(memory_format=fmt)
        return x_adv.detach()


class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al. 2015): x + ε·sign(∇ₓCE), clamped to [0, 1].

    Equals ``PGD(eps, alpha=eps, steps=1, random_start=False, keep_best=False)``.
    """

    def __init__(self, eps: float, eval_mode: bool = True, **kw: object):
        eps = _check_eps(eps)
        super().__init__(
            eps,
            max(eps, _NORM_FLOOR),
            1,
            "inf",
            random_start=False,
            eval_mode=eval_mode,
            keep_best=False,
            **kw,  # type: ignore[arg-type]
        )


class FGSMRS(PGD):
    """FGSM with random start (Wong, Rice & Kolter 2020, "Fast is better than free").

    δ ~ U(−ε, ε) (the same bound on every channel), projected to [0, 1]; then one step
    δ ← clamp(δ + α·sign(∇), −ε, ε), projected to [0, 1]. Wong et al. use α = 1.25 ε and keep
    the model in train mode while crafting (pass ``eval_mode=False`` for that).
    Equals ``PGD(eps, alpha, steps=1, random_start=True, keep_best=False)``.
    """

    def __init__(self, eps: float, alpha: float, eval_mode: bool = True, **kw: object):
        super().__init__(
            eps,
            alpha,
            1,
            "inf",
            random_start=True,
            eval_mode=eval_mode,
            keep_best=False,
            **kw,  # type: ignore[arg-type]
        )


class TradesPGD(PGD):
    """The TRADES inner maximisation (Zhang et al. 2019): ℓ∞ PGD on KL(f(x) ‖ f(x_adv)).

    Start at x + 0.001·N(0, I) (TRADES' trades.py), clamped to the ε-ball and [0, 1] (the
    official code does not clamp the start); then ``steps`` sign steps of size ``alpha`` on the
    per-sample objective ``loss_fn(adv_logits, clean_probs)`` (default :func:`trades_kl`), where
    ``clean_probs = softmax(f(x))`` is computed once, without gradient, in the attack's mode.
    For TRADES+TE ([P2]) pass a ``loss_fn`` closing over the TE targets.
    Returns the last iterate unless ``keep_best=True``.
    """

    def __init__(
        self,
        eps: float,
        alpha: float,
        steps: int,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        eval_mode: bool = True,
        *,
        keep_best: bool = False,
        start_std: float = TRADES_START_STD,
        **kw: object,
    ):
        super().__init__(
            eps,
            alpha,
            steps,
            "inf",
            random_start=True,
            restarts=1,
            loss_fn=None,
            eval_mode=eval_mode,
            keep_best=keep_best,
            **kw,  # type: ignore[arg-type]
        )
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable or None, got {type(loss_fn).__name__}")
        self.trades_loss_fn = loss_fn
        self.start_std = float(start_std)
        self._clean_probs: torch.Tensor | None = None

    def _prepare(self, model: nn.Module, x: torch.Tensor) -> None:
        with torch.no_grad():
            self._clean_probs = F.softmax(self._forward(model, x).float(), dim=1)

    def _start(self, x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        noise = _draw(x, lambda t: t.normal_(generator=self.generator), self._rows)
        return torch.clamp(x + self.start_std * noise, lower, upper)

    def _objective(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert self._clean_probs is not None
        loss_fn = self._call_loss_fn or self.trades_loss_fn
        if loss_fn is None:
            return trades_kl(logits, self._clean_probs)
        out = loss_fn(logits, self._clean_probs)
        return _per_sample(out, y.shape[0], "loss_fn")

    def _perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        try:
            return super()._perturb(model, x, y)
        finally:
            self._clean_probs = None


# ----------------------------------------------------------------- exact linear attack


def affine_map(
    model: nn.Module,
    in_shape: tuple[int, ...],
    device: torch.device,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(W, b)`` with ``model(x) = W·flatten(x) + b`` for an affine model.

    Read off from d + 1 evaluations (at 0 and at the unit vectors); the caller checks that the
    model really is affine.
    """
    d = math.prod(in_shape)
    param = next(iter(model.parameters()), None)
    mdtype = param.dtype if param is not None else torch.float32
    with torch.no_grad():
        basis = torch.cat([torch.zeros(1, d), torch.eye(d)]).to(device=device, dtype=mdtype)
        out = model(basis.view((d + 1,) + tuple(in_shape))).to(dtype)
    b = out[0]
    return (out[1:] - b).T.contiguous(), b


def linear_worst_case(
    w: torch.Tensor,
    b: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "inf",
    bounds: tuple[float, float] | None = PIXEL_BOUNDS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact worst case of an affine classifier z = W x + b over the ε-ball ∩ box.

    Statement: for each class j ≠ y the maximum of the linear function (W_j − W_y)·x' over
    the feasible set {‖x' − x‖_p ≤ ε, lo ≤ x' ≤ hi} is attained at
    ℓ∞: x'_i = hi_i if v_i > 0, lo_i if v_i < 0, x_i if v_i = 0 (with hi = min(x+ε, 1),
    lo = max(x−ε, 0)); ℓ2: x' = x + clamp(λ v, lo − x, hi − x) with the λ ≥ 0 at which
    ‖δ‖₂ = ε (KKT; found by bisection) or all coordinates saturate. The returned point
    maximises max_{j≠y} z_j − z_y, so the sample is robust iff the returned margin is < 0
    (ties at 0 count as non-robust). Source: SPEC T3 "companion facts"
    (−δ·y·∂‖w‖_q without the box; ``notes/speed-and-library-anchors.md`` §4.2).

    Parameters
    ----------
    w : tensor (C, d);  b : tensor (C,);  x : tensor (n, d);  y : tensor (n,)

    Returns
    -------
    x_adv : tensor (n, d) (dtype of x)
    margin : tensor (n,) float64, max_{j≠y} z_j(x_adv) − z_y(x_adv)
    """
    norm = norm_name(norm)
    eps = _check_eps(eps)
    w64, b64, x64 = w.double(), b.double(), x.double().flatten(1)
    n = x64.shape[0]
    v = w64.unsqueeze(0) - w64[y].unsqueeze(1)  # (n, C, d)
    const = b64.unsqueeze(0) - b64[y].unsqueeze(1)  # (n, C)
    lo = torch.full_like(x64, -eps)
    hi = torch.full_like(x64, eps)
    if bounds is not None:
        lo = torch.maximum(lo, bounds[0] - x64)
        hi = torch.minimum(hi, bounds[1] - x64)
    lo3, hi3 = lo.unsqueeze(1), hi.unsqueeze(1)
    if norm == "inf":
        delta = torch.where(v > 0, hi3, torch.where(v < 0, lo3, torch.zeros_like(v)))
    else:
        # Saturation λ of each coordinate; beyond max of these δ(λ) is constant.
        with torch.no_grad():
            sat = torch.where(
                v > 0,
                hi3 / v.clamp_min(_TINY64),
                torch.where(v < 0, lo3 / v.clamp_max(-_TINY64), torch.zeros_like(v)),
            )
        lam_hi = sat.amax(dim=2, keepdim=True)  # (n, C, 1)
        full = torch.clamp(lam_hi * v, lo3, hi3)
        lam_lo = torch.zeros_like(lam_hi)
        for _ in range(_L2_BISECTION_STEPS):
            mid = 0.5 * (lam_lo + lam_hi)
            too_long = torch.clamp(mid * v, lo3, hi3).norm(dim=2, keepdim=True) > eps
            lam_hi = torch.where(too_long, mid, lam_hi)
            lam_lo = torch.where(too_long, lam_lo, mid)
        delta = torch.clamp(lam_lo * v, lo3, hi3)
        fits = full.norm(dim=2, keepdim=True) <= eps
        delta = torch.where(fits, full, delta)
    margins = (v * (x64.unsqueeze(1) + delta)).sum(dim=2) + const  # (n, C)
    margins = margins.scatter(1, y.view(-1, 1), float("-inf"))
    j = margins.argmax(dim=1)
    best_delta = delta[torch.arange(n, device=delta.device), j]
    x_adv = (x64 + best_delta).to(x.dtype)
    if bounds is not None:
        x_adv = x_adv.clamp(*bounds)
    return x_adv, margins.max(dim=1).values


class LinearExactAttack(Attack):
    """The exact worst-case perturbation of an affine model (closed form, see
    :func:`linear_worst_case`). The model's affine map is read off with :func:`affine_map`
    and checked on the batch (ValueError if the model is not affine).

    Parameters
    ----------
    eps : float >= 0
    norm : {"inf", "2"}
    bounds : (float, float) or None
    """

    def __init__(
        self, eps: float, norm: str = "inf", *, bounds: tuple[float, float] | None = PIXEL_BOUNDS
    ):
        self.eps = _check_eps(eps)
        self.norm = norm_name(norm)
        self.bounds = _check_bounds(bounds)
        self.eval_mode = True

    def _perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return x.clone()
        in_shape = tuple(x.shape[1:])
        # Exact arithmetic is the point: no reduced-precision autocast from a caller's context
        # (bf16 logits fail the affinity check and round the closed form).
        no_autocast = torch.autocast(device_type=x.device.type, enabled=False)
        with torch.no_grad(), no_autocast:
            w, b = affine_map(model, in_shape, x.device)
            logits = model(x).double()
            pred = x.double().flatten(1) @ w.T + b
            scale = logits.abs().max().clamp_min(1.0)
            if float((logits - pred).abs().max()) > _AFFINE_RTOL * float(scale):
                raise ValueError("model must be affine (logits = W x + b) for LinearExactAttack")
            if int(y.max()) >= w.shape[0]:
                raise ValueError(f"y must hold labels < num_classes={w.shape[0]}")
            x_adv, _ = linear_worst_case(w, b, x.flatten(1), y, self.eps, self.norm, self.bounds)
        return x_adv.view_as(x)


# ------------------------------------------------------------------------------ scoring


def perturb_in_batches(
    model: nn.Module,
    attack: Attack,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 512,
) -> torch.Tensor:
    """Return ``attack(model, x, y)`` computed ``batch_size`` samples at a time.

    Memory is bounded by one batch (a whole training set in one call holds every
    activation of every sample); each sample's result is what the attack gives it in its
    batch. The result lies on x's device with x's shape.
    """
    _check_count(batch_size, "batch_size", 1)
    if x.shape[0] <= batch_size:
        return attack(model, x, y)
    parts = [
        attack(model, x[start : start + batch_size], y[start : start + batch_size])
        for start in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(parts)


def correct_under_attack(
    model: nn.Module,
    attack: Attack | None,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 512,
) -> torch.Tensor:
    """Return a bool tensor (n,): sample i is classified correctly at ``attack(model, x_i, y_i)``
    (at x_i itself when ``attack`` is None). Predictions are made in eval mode; the model's
    flags are restored."""
    _check_count(batch_size, "batch_size", 1)
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        xa = attack(model, xb, yb) if attack is not None else xb
        with attack_mode(model, True), torch.no_grad():
            out.append(model(xa).argmax(dim=1) == yb)
    if not out:
        return torch.zeros(0, dtype=torch.bool, device=x.device)
    return torch.cat(out)
