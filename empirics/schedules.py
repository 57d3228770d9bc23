"""Learning-rate schedules of the AT literature, as pure functions of the step count.

A schedule maps the 0-based global optimisation step ``step`` and the number of steps per
epoch to a learning rate. Being pure, a schedule needs no state in a checkpoint beyond the
step count, and a resumed run gets exactly the same rates.

Conventions (the sources' own):

- ``piecewise``, ``cosine``, ``cyclic`` are evaluated per iteration at the fractional epoch
  ``t = (step + 1) / steps_per_epoch``, as ``lr_schedule(epoch + (i + 1) / len(batches))`` in
  [R20]'s ``train_cifar.py`` (github.com/locuslab/robust_overfitting).
- ``multistep`` is epoch-granular, as ``torch.optim.lr_scheduler.MultiStepLR`` stepped once
  after each epoch in [P2]'s ``train_te.py``: the epoch with 1-based index ``k`` runs at
  ``lr · gamma^#{m in milestones : m <= k - 1}``, so milestones ``[100, 150]`` give epochs
  1–100 at ``lr``, 101–150 at ``lr·gamma`` and the rest at ``lr·gamma²``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field

from robmem.empirics.config import SCHEDULES, TrainConfig

#: [R20] piecewise schedule: the lr drops ×0.1 at half and again at three quarters of training
#: (``train_cifar.py``: ``t / epochs < 0.5 -> lr_max``, ``< 0.75 -> lr_max / 10``, else ``/100``).
RICE_PIECEWISE_FRACTIONS: tuple[float, float] = (0.5, 0.75)
RICE_PIECEWISE_FACTORS: tuple[float, float, float] = (1.0, 0.1, 0.01)


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule; ``lr_at(step, steps_per_epoch)`` gives the rate of a step.

    Parameters
    ----------
    name : str
        One of :data:`robmem.empirics.config.SCHEDULES`.
    lr_max : float
        Peak learning rate.
    epochs : int
        Length of training in epochs (the horizon of piecewise, cosine and cyclic).
    milestones : tuple of int
        Multistep: epochs after which the rate is multiplied by ``gamma``.
    gamma : float
        Multistep decay factor.
    peak_fraction : float
        Cyclic: the fraction of ``epochs`` at which the triangle peaks. [R20]'s and
        [Wong et al. 2020]'s ``np.interp([t], [0, epochs * 2 // 5, epochs], [0, lr_max, 0])``
        corresponds to 0.4.
    """

    name: str
    lr_max: float
    epochs: int
    milestones: tuple[int, ...] = field(default_factory=tuple)
    gamma: float = 0.1
    peak_fraction: float = 0.4

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"name must be one of {list(SCHEDULES)}, got {self.name!r}")
        if not self.lr_max >= 0:
            raise ValueError(f"lr_max must be >= 0, got {self.lr_max}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not 0 < self.peak_fraction < 1:
            raise ValueError(f"peak_fraction must be in (0, 1), got {self.peak_fraction}")
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Return the learning rate used by the 0-based global step ``step``."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if self.name == "constant":
            return self.lr_max
        if self.name == "multistep":
            completed_epochs = step // steps_per_epoch
            drops = bisect.bisect_right(list(self.milestones), completed_epochs)
            return self.lr_max * self.gamma**drops
        t = (step + 1) / steps_per_epoch  # fractional epochs elapsed, [R20] convention
        if self.name == "piecewise":
            return piecewise_lr(t, self.lr_max, self.epochs)
        if self.name == "cosine":
            return cosine_lr(t, self.lr_max, self.epochs)
        return cyclic_lr(t, self.lr_max, self.epochs, self.peak_fraction)

    def state_dict(self) -> dict:
        """Return the schedule's parameters (it has no other state)."""
        return {**asdict(self), "milestones": list(self.milestones)}


def piecewise_lr(t: float, lr_max: float, epochs: int) -> float:
    """Return [R20]'s piecewise rate at fractional epoch ``t``.

    ``lr_max`` for ``t/epochs < 0.5``, ``lr_max/10`` for ``t/epochs < 0.75``, else
    ``lr_max/100`` (``train_cifar.py``, github.com/locuslab/robust_overfitting).
    """
    frac = t / epochs
    for boundary, factor in zip(RICE_PIECEWISE_FRACTIONS, RICE_PIECEWISE_FACTORS, strict=False):
        if frac < boundary:
            return lr_max * factor
    return lr_max * RICE_PIECEWISE_FACTORS[-1]


def cosine_lr(t: float, lr_max: float, epochs: int) -> float:
    """Return ``lr_max · (1 + cos(π t / epochs)) / 2`` (``t`` clipped to ``[0, epochs]``)."""
    t = min(max(t, 0.0), float(epochs))
    return lr_max * 0.5 * (1.0 + math.cos(math.pi * t / epochs))


def cyclic_lr(t: float, lr_max: float, epochs: int, peak_fraction: float = 0.4) -> float:
    """Return the triangular (one-cycle) rate: 0 → ``lr_max`` at ``peak_fraction·epochs`` → 0.

    Linear interpolation through ``(0, 0)``, ``(peak, lr_max)``, ``(epochs, 0)``, constant
    outside ``[0, epochs]``; this is ``np.interp`` as used by Wong et al. (2020) and [R20].
    """
    peak = peak_fraction * epochs
    if t <= 0:
        return 0.0
    if t <= peak:
        return lr_max * t / peak
    if t >= epochs:
        return 0.0
    return lr_max * (epochs - t) / (epochs - peak)


def schedule_from_config(config: TrainConfig) -> Schedule:
    """Return the :class:`Schedule` a :class:`robmem.empirics.config.TrainConfig` describes."""
    return Schedule(
        name=config.schedule,
        lr_max=config.peak_lr,
        epochs=config.epochs,
        milestones=tuple(config.milestones),
        gamma=config.lr_gamma,
        peak_fraction=config.cyclic_peak_fraction,
    )
