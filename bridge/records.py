"""Typed records of finished training runs: what a claim's verdict is computed from (SPEC B5).

A claim is a pure function from :class:`RunRecord` objects to a verdict, so that unit tests can
hand-make records (no training) and drive every claim to each of its verdicts. The run store
(:mod:`robmem.bridge.claims.runs`) turns a run folder into a record; :func:`record_from_json` /
:meth:`RunRecord.to_json` are the cached form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _num(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class EpochRow:
    """One evaluated epoch: accuracies (fractions) and mean cross-entropy losses (nats)."""

    epoch: int
    train_clean_acc: float | None = None
    train_robust_acc: float | None = None
    test_clean_acc: float | None = None
    test_robust_acc: float | None = None
    train_clean_loss: float | None = None
    train_robust_loss: float | None = None
    test_clean_loss: float | None = None
    test_robust_loss: float | None = None

    @classmethod
    def from_metrics(cls, row: Mapping[str, Any]) -> EpochRow:
        columns = [f.name for f in fields(cls) if f.name != "epoch"]
        return cls(int(row["epoch"]), **{k: _num(row.get(k)) for k in columns})

    @property
    def evaluated(self) -> bool:
        return self.test_clean_acc is not None

    @property
    def robust_gap(self) -> float:
        """Robust train − robust test accuracy (fraction)."""
        return self._difference("train_robust_acc", "test_robust_acc")

    @property
    def clean_gap(self) -> float:
        """Clean train − clean test accuracy (fraction)."""
        return self._difference("train_clean_acc", "test_clean_acc")

    @property
    def robust_loss_gap(self) -> float:
        """Robust test − robust train cross-entropy (nats)."""
        return self._difference("test_robust_loss", "train_robust_loss")

    def _difference(self, a: str, b: str) -> float:
        for name in (a, b):
            if getattr(self, name) is None:
                raise ValueError(f"the record has no {name} at this epoch (was it evaluated?)")
        return getattr(self, a) - getattr(self, b)


@dataclass(frozen=True)
class LandscapeCurve:
    """E2 landscape of one split at one epoch: per radius, the mean over samples of a PGD
    lower estimate of max ‖∇ₓL‖₁ (``grad_norm``) and of max L(x+ξ) − L(x) (``loss_change``)."""

    eps: tuple[float, ...]
    grad_norm: tuple[float, ...]
    loss_change: tuple[float, ...]
    n: int = 0

    def at(self, radius: float) -> tuple[float, float]:
        """``(grad_norm, loss_change)`` at the grid radius nearest ``radius``."""
        k = min(range(len(self.eps)), key=lambda i: abs(self.eps[i] - radius))
        return self.grad_norm[k], self.loss_change[k]


@dataclass(frozen=True)
class FitRecord:
    """Per-example robust fit (SPEC E6) at tracked epochs: 0/1 correctness per training point."""

    epochs: tuple[int, ...]
    correct: tuple[tuple[int, ...], ...]  # [epoch index][example]
    loss: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """A finished run: its settings, per-epoch metrics and the measurements taken on it.

    Attributes
    ----------
    family : str
        The run family (all seeds of one setting share it, e.g. ``"e1-at-digits"``).
    seed : int
    config : dict
        The :class:`robmem.empirics.config.TrainConfig` as a dict.
    rows : tuple of EpochRow
        Evaluated epochs, in order.
    epoch_grad_sq : tuple of float
        [P2]'s E4 statistic: per epoch, the mean over optimisation steps of the squared global
        parameter-gradient ℓ2 norm.
    landscape : mapping
        Epoch → split (``"train"``/``"test"``) → :class:`LandscapeCurve`.
    fit : FitRecord, optional
    flipped : tuple of bool, optional
        Which training labels the label-noise draw changed.
    measures : mapping
        Post-training measurements by name (complexity measures, construction, probes).
    """

    family: str
    seed: int
    config: Mapping[str, Any]
    rows: tuple[EpochRow, ...]
    epoch_grad_sq: tuple[float, ...] = ()
    landscape: Mapping[int, Mapping[str, LandscapeCurve]] = field(default_factory=dict)
    fit: FitRecord | None = None
    flipped: tuple[bool, ...] | None = None
    measures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> EpochRow:
        """The last evaluated epoch."""
        rows = [r for r in self.rows if r.evaluated]
        if not rows:
            raise ValueError(f"run {self.family} seed {self.seed} has no evaluated epoch")
        return rows[-1]

    def best(self, key: str = "test_robust_acc") -> EpochRow:
        """The evaluated epoch with the largest ``key`` (first one on ties)."""
        rows = [r for r in self.rows if getattr(r, key) is not None]
        if not rows:
            raise ValueError(f"run {self.family} seed {self.seed} has no {key}")
        return max(rows, key=lambda r: getattr(r, key))

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["landscape"] = {
            str(e): {s: asdict(c) for s, c in splits.items()}
            for e, splits in self.landscape.items()
        }
        return doc


def record_from_json(doc: Mapping[str, Any]) -> RunRecord:
    """Inverse of :meth:`RunRecord.to_json`."""
    fit = doc.get("fit")
    return RunRecord(
        family=str(doc["family"]),
        seed=int(doc["seed"]),
        config=dict(doc["config"]),
        rows=tuple(EpochRow(**r) for r in doc["rows"]),
        epoch_grad_sq=tuple(float(v) for v in doc.get("epoch_grad_sq", ())),
        landscape={
            int(e): {
                s: LandscapeCurve(
                    tuple(c["eps"]), tuple(c["grad_norm"]), tuple(c["loss_change"]), int(c["n"])
                )
                for s, c in splits.items()
            }
            for e, splits in doc.get("landscape", {}).items()
        },
        fit=(
            FitRecord(
                tuple(fit["epochs"]),
                tuple(tuple(c) for c in fit["correct"]),
                tuple(tuple(v) for v in fit.get("loss", ())),
            )
            if fit
            else None
        ),
        flipped=tuple(bool(v) for v in doc["flipped"]) if doc.get("flipped") is not None else None,
        measures=dict(doc.get("measures", {})),
    )


@dataclass
class Records:
    """The records a report holds, looked up by family (all seeds, in seed order)."""

    _by_family: dict[str, dict[int, RunRecord]] = field(default_factory=dict)

    def add(self, record: RunRecord) -> None:
        self._by_family.setdefault(record.family, {})[record.seed] = record

    def family(self, name: str, seeds: Sequence[int] | None = None) -> list[RunRecord]:
        """All records of ``name`` (those of ``seeds`` when given), ordered by seed."""
        found = self._by_family.get(name, {})
        if seeds is None:
            if not found:
                raise KeyError(f"no runs of family {name!r}; have {sorted(self._by_family)}")
            return [found[s] for s in sorted(found)]
        missing = [s for s in seeds if s not in found]
        if missing:
            raise KeyError(f"family {name!r} lacks seeds {missing}")
        return [found[s] for s in seeds]
