"""Per-example robust loss tracking: which training points are fitted late (SPEC E6, [P2] §4).

[P2] attributes robust overfitting to the network memorizing "hard" adversarial training
examples with their one-hot labels after the first learning-rate decay. To see this we record,
at chosen epochs, each training example's robust loss (cross-entropy at a PGD point) and whether
it is robustly classified, and derive

* the **first epoch fitted**: the first recorded epoch at which the example is robustly
  classified;
* the **stably fitted epoch**: the first recorded epoch from which it stays robustly classified
  at every later record (``-1`` if it is not robustly classified at the last record);
* the **late-fitted set**: examples whose stable-fit epoch is at or after a given epoch (e.g.
  the first lr decay), the candidates for memorized hard examples.

Everything here is bookkeeping over numbers the attack produces; the attack itself is passed in
(any ``attack(model, x, y) -> x_adv``, e.g. :class:`empirics.attacks.PGD`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Marker for "never (stably) fitted" in epoch arrays.
NEVER: int = -1


def per_example_robust_loss(
    model: Any,
    x: Any,
    y: Any,
    attack: Callable[[Any, Any, Any], Any],
    *,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example cross-entropy and correctness at the attack's point.

    Parameters
    ----------
    model : torch.nn.Module
    x, y : torch.Tensor
        Inputs in [0, 1] and integer labels (the labels trained on, possibly noisy).
    attack : callable
        ``attack(model, x, y) -> x_adv``.
    batch_size : int

    Returns
    -------
    loss : ndarray, shape (n,)
    correct : ndarray of bool, shape (n,)
    """
    import torch
    import torch.nn.functional as F

    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
    was_training = model.training
    model.eval()
    losses, corrects = [], []
    try:
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            x_adv = attack(model, xb, yb)
            with torch.no_grad():
                logits = model(x_adv)
                losses.append(F.cross_entropy(logits, yb, reduction="none").cpu().numpy())
                corrects.append((logits.argmax(dim=1) == yb).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(losses).astype(float), np.concatenate(corrects).astype(bool)


class RobustFitTracker:
    """Records per-example robust loss and correctness over epochs ([P2], SPEC E6).

    Parameters
    ----------
    n_examples : int
        Size of the tracked training set; every record must have this length.
    """

    def __init__(self, n_examples: int) -> None:
        if isinstance(n_examples, bool) or int(n_examples) < 1:
            raise ValueError(f"n_examples must be an integer >= 1, got {n_examples!r}")
        self.n_examples = int(n_examples)
        self.epochs: list[int] = []
        self._loss: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []

    def record(self, epoch: int, loss: np.ndarray, correct: np.ndarray) -> None:
        """Add one epoch's per-example robust loss and correctness (epochs strictly increase)."""
        loss = np.asarray(loss, dtype=float)
        correct = np.asarray(correct, dtype=bool)
        if loss.shape != (self.n_examples,) or correct.shape != (self.n_examples,):
            raise ValueError(
                f"loss and correct must have shape ({self.n_examples},), "
                f"got {loss.shape} and {correct.shape}"
            )
        if self.epochs and int(epoch) <= self.epochs[-1]:
            raise ValueError(f"epoch must exceed the last recorded epoch {self.epochs[-1]}")
        self.epochs.append(int(epoch))
        self._loss.append(loss)
        self._correct.append(correct)

    @property
    def loss(self) -> np.ndarray:
        """Robust loss, shape (n_records, n_examples)."""
        return np.stack(self._loss) if self._loss else np.zeros((0, self.n_examples))

    @property
    def correct(self) -> np.ndarray:
        """Robust correctness, shape (n_records, n_examples)."""
        if not self._correct:
            return np.zeros((0, self.n_examples), dtype=bool)
        return np.stack(self._correct)

    def first_fitted_epoch(self) -> np.ndarray:
        """First recorded epoch with the example robustly classified; ``NEVER`` if none."""
        corr = self.correct
        out = np.full(self.n_examples, NEVER, dtype=int)
        if corr.shape[0] == 0:
            return out
        any_fit = corr.any(axis=0)
        first = corr.argmax(axis=0)
        out[any_fit] = np.asarray(self.epochs)[first[any_fit]]
        return out

    def stably_fitted_epoch(self) -> np.ndarray:
        """First recorded epoch from which the example stays robustly classified; else ``NEVER``."""
        corr = self.correct
        out = np.full(self.n_examples, NEVER, dtype=int)
        if corr.shape[0] == 0:
            return out
        # suffix-AND: stays[k] = all(corr[k:])
        stays = np.flip(np.logical_and.accumulate(np.flip(corr, axis=0), axis=0), axis=0)
        fitted = stays[-1]
        first = stays.argmax(axis=0)
        out[fitted] = np.asarray(self.epochs)[first[fitted]]
        return out

    def late_fitted(self, epoch: int) -> np.ndarray:
        """Mask of examples stably fitted only at or after ``epoch`` (the "hard" ones)."""
        stable = self.stably_fitted_epoch()
        return stable >= int(epoch)

    def summary(self, late_epoch: int, reference_epoch: int | None = None) -> dict[str, Any]:
        """JSON-ready summary: fractions fitted, late-fitted count, their robust loss.

        Parameters
        ----------
        late_epoch : int
            Examples stably fitted at or after this epoch count as late-fitted.
        reference_epoch : int, optional
            Recorded epoch at which to compare the robust loss of late-fitted vs other examples
            (e.g. the best checkpoint); default the first record.
        """
        if not self.epochs:
            raise ValueError("summary needs at least one record")
        ref = self.epochs[0] if reference_epoch is None else int(reference_epoch)
        if ref not in self.epochs:
            raise ValueError(f"reference_epoch must be one of the recorded epochs {self.epochs}")
        k = self.epochs.index(ref)
        late = self.late_fitted(late_epoch)
        loss_ref = self.loss[k]
        return {
            "epochs": list(self.epochs),
            "robust_train_acc": self.correct.mean(axis=1).tolist(),
            "n_late_fitted": int(late.sum()),
            "fraction_late_fitted": float(late.mean()),
            "fraction_never_stably_fitted": float((self.stably_fitted_epoch() == NEVER).mean()),
            "reference_epoch": ref,
            "late_loss_at_reference": float(loss_ref[late].mean()) if late.any() else None,
            "other_loss_at_reference": float(loss_ref[~late].mean()) if (~late).any() else None,
        }


def memorization_callback(
    x: Any,
    y: Any,
    attack: Callable[[Any, Any, Any], Any],
    tracker: RobustFitTracker,
    epochs: Iterable[int] | None = None,
    *,
    batch_size: int = 256,
) -> Callable[[Any], dict[str, Any]]:
    """A per-epoch training callback feeding ``tracker`` (every epoch, or the chosen ones).

    Returns ``callback(ctx) -> dict`` reading ``ctx.model`` and ``ctx.epoch``; it adds
    ``memorization/robust_train_acc`` and ``memorization/robust_train_loss`` to the metrics.
    """
    chosen = None if epochs is None else {int(e) for e in epochs}

    def callback(ctx: Any) -> dict[str, Any]:
        epoch = int(ctx.epoch)
        if chosen is not None and epoch not in chosen:
            return {}
        loss, correct = per_example_robust_loss(ctx.model, x, y, attack, batch_size=batch_size)
        tracker.record(epoch, loss, correct)
        return {
            "memorization/robust_train_acc": float(correct.mean()),
            "memorization/robust_train_loss": float(loss.mean()),
        }

    return callback
