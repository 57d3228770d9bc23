"""Bound-vs-measurement analysis of a model the user brings (issue 15; SPEC E1, E2, E5, B1, B2).

:func:`analyze` takes any ``torch.nn.Module`` that maps inputs in [0, 1] to logits, and data
as tensors, a built-in data set name or a torchvision-style data set, and measures what the
report measures for the suite's own runs:

* **E1** clean and robust accuracy and cross-entropy on train and test, PGD with restarts over
  one or more attack seeds (per-sample worst case over every attack), plus AutoAttack when the
  ``autoattack`` package is installed (detected, never required);
* **E2** the input-loss landscape on a grid of ℓ∞ radii, train and test
  (:func:`robmem.empirics.landscape.input_landscape`);
* **B1** the measured robust gap next to the exact first-order bound and the [P1] Thm 6.3
  global-flatness shape (:mod:`robmem.theory.bounds.flatness`);
* **E5** the complexity measures of [P2] (:func:`robmem.empirics.complexity.model_complexity`;
  distances to initialization when an init model is given);
* **B2** the clean gap against the VC bound (:mod:`robmem.theory.bounds.vc`; the
  Bartlett-Harvey-Liaw-Mehrabian VC dimension from the layers the model calls);
* per-example robust loss and margin at the per-sample worst attack point.

Every number that rests on samples is an :class:`robmem.bridge.stats.Estimate` with its n and a 95 %
interval: accuracies over n examples get a Wilson interval, means over n examples a t
interval, differences of two accuracies Newcombe's hybrid score interval, differences of two
means a Welch interval, and accuracies per attack seed a t interval over the seeds. Attack
and flatness numbers are lower estimates of the true maxima (a stronger search can only
raise the loss and lower the robust accuracy).

Bad input raises ``ValueError``/``TypeError`` naming the argument; where the user may mean
what they passed, a named :class:`AnalyzeWarning` subclass is issued instead.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robmem.bridge.stats import CONFIDENCE, Estimate, fraction_ci, mean_ci
from robmem.empirics.attacks import norm_name

logger = logging.getLogger(__name__)

#: Radii of the E2/B1 landscape as multiples of the analysis ε: the grid of the report's E2
#: claim (``robmem.bridge.claims.at_small.landscape_spec``), 0 to 3ε around the training radius.
DEFAULT_EPS_FACTORS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
#: PGD step as a fraction of ε: the trainer's evaluation default ``eval_step_size = ε/4``
#: (2/255 at 8/255, the [R20]/[P2] ratio).
DEFAULT_STEP_FRACTION: float = 0.25
#: PGD steps of the robust evaluation (the trainer's ``eval_attack_steps`` default).
DEFAULT_STEPS: int = 10
#: Points per split on which the landscape is measured (the report's cpu tier of E2).
DEFAULT_LANDSCAPE_SAMPLES: int = 200
#: Failure probability Δ of the VC bound (the report's B2 claim uses the same).
B2_CONFIDENCE: float = 0.05
#: Confidence argument of the Thm 6.3 shape; with C(D, L) = 0 (as in the report's B1) it does
#: not enter the value.
THM63_CONFIDENCE: float = 0.5
#: Relative slack of the measured first-order relation (float round-off only, as in B1).
FIRST_ORDER_RTOL: float = 1e-6
#: Outputs whose rows sum to 1 within this (and lie in [0, 1]) are taken to be probabilities.
PROBABILITY_ATOL: float = 1e-4
#: Samples on which the model's outputs are checked (logits vs probabilities, label range).
CHECK_SAMPLES: int = 256
#: Per-example arrays of each split that :meth:`Analysis.as_dict` keeps (the rest is in the CSV).
PER_EXAMPLE_JSON: tuple[str, ...] = ("robust_loss", "robust_margin", "clean_margin")
#: Attack names accepted by ``autoattack=``.
AUTOATTACK_CHOICES: tuple[str, ...] = ("auto", "off", "on")


class AnalyzeWarning(UserWarning):
    """Base class of the warnings :func:`analyze` issues where the user may mean the input."""


class ProbabilityOutputWarning(AnalyzeWarning):
    """Every output lies in [0, 1] (sigmoid-like), although the rows do not sum to 1."""


class LabelCoverageWarning(AnalyzeWarning):
    """The labels use fewer classes than the model has outputs (a subset of the classes?)."""


# ============================================================================ result types
@dataclass(frozen=True)
class AttackSettings:
    """The threat model and the attacks of one analysis.

    Attributes
    ----------
    eps : float
        Radius in pixel units ([0, 1] scale).
    norm : str
        ``"inf"`` or ``"2"``.
    steps : int
        PGD steps.
    step_size : float
        PGD step in pixel units.
    restarts : int
        Random restarts per attack seed (batched, per-sample worst case).
    seeds : tuple of int
        One PGD run per seed; per sample the worst case over all of them counts.
    autoattack : bool
        Whether AutoAttack (standard version) ran too.
    """

    eps: float
    norm: str
    steps: int
    step_size: float
    restarts: int
    seeds: tuple[int, ...]
    autoattack: bool = False

    def describe(self) -> str:
        extra = " + AutoAttack (standard)" if self.autoattack else ""
        return (
            f"ℓ{self.norm} ε = {self.eps:.4g}, PGD-{self.steps} (step {self.step_size:.4g}, "
            f"{self.restarts} restart(s)) × seeds {list(self.seeds)}{extra}"
        )


@dataclass(frozen=True)
class PerExample:
    """Per-example numbers of one split (index = position in the analysed split).

    ``robust_*`` are at the per-sample worst point over every attack; margins are
    ``z_y − max_{k≠y} z_k`` (negative = misclassified).
    """

    index: np.ndarray
    label: np.ndarray
    clean_correct: np.ndarray
    robust_correct: np.ndarray
    clean_loss: np.ndarray
    robust_loss: np.ndarray
    clean_margin: np.ndarray
    robust_margin: np.ndarray

    def rows(self, split: str) -> list[dict[str, Any]]:
        """One dict per example (for ``per_example.csv``)."""
        return [
            {
                "split": split,
                "index": int(self.index[i]),
                "label": int(self.label[i]),
                "clean_correct": bool(self.clean_correct[i]),
                "robust_correct": bool(self.robust_correct[i]),
                "clean_loss": float(self.clean_loss[i]),
                "robust_loss": float(self.robust_loss[i]),
                "clean_margin": float(self.clean_margin[i]),
                "robust_margin": float(self.robust_margin[i]),
            }
            for i in range(len(self.index))
        ]


@dataclass(frozen=True)
class SplitMeasurement:
    """Clean and robust accuracy and loss of one split (SPEC E1), with CIs.

    Attributes
    ----------
    split : str
    n : int
    clean_acc, robust_acc : Estimate
        Fractions with Wilson intervals over the n examples; ``robust_acc`` counts an example
        as robust only if no attack (no seed, no restart, not AutoAttack) fools the model.
    clean_loss, robust_loss : Estimate
        Mean cross-entropy (nats) with t intervals over the examples.
    robust_acc_per_seed : Estimate
        Robust accuracy of each PGD seed alone, t interval over the seeds (unbounded with one).
    attack_acc : dict
        Attack name → robust accuracy under that attack alone (Wilson).
    per_example : PerExample
    """

    split: str
    n: int
    clean_acc: Estimate
    robust_acc: Estimate
    clean_loss: Estimate
    robust_loss: Estimate
    robust_acc_per_seed: Estimate
    attack_acc: dict[str, Estimate]
    per_example: PerExample


@dataclass(frozen=True)
class FlatnessCurve:
    """E2 on one split: the landscape over the ε grid (lower estimates of the maxima).

    Attributes
    ----------
    split : str
    eps : tuple of float
    grad_norm : tuple of Estimate
        Mean over samples of max_{‖ξ‖∞≤ε} ‖∇ₓL(x+ξ)‖₁ (nats per pixel unit), per radius.
    loss_change : tuple of Estimate
        Mean over samples of max_{‖ξ‖∞≤ε} L(x+ξ) − L(x) (nats), per radius.
    clean_grad_norm : Estimate
        Mean ‖∇ₓL(x)‖₁ at the clean points ([P1] Prop 6.4's term).
    first_order_excess : tuple of float
        Per radius, max over samples of loss change − ε·max‖∇ₓL‖₁ (≤ 0: consistent).
    n : int
    settings : dict
    """

    split: str
    eps: tuple[float, ...]
    grad_norm: tuple[Estimate, ...]
    loss_change: tuple[Estimate, ...]
    clean_grad_norm: Estimate
    first_order_excess: tuple[float, ...]
    n: int
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FlatnessBounds:
    """B1 at the analysis radius: measured robust gap next to the flatness bounds.

    Attributes
    ----------
    eps : float
    robust_loss_gap : Estimate
        Test − train mean robust cross-entropy (Welch interval).
    robust_acc_gap : Estimate
        Train − test robust accuracy (Newcombe interval).
    test_robust_minus_clean_loss : Estimate
        Mean over test examples of robust − clean loss at the attack points (t interval).
    test_loss_change : Estimate
        Landscape estimate of the mean max loss change in the ball (test).
    test_grad_term : Estimate
        Global flatness E_test max ‖∇ₓL‖₁ at ε (t interval).
    first_order_bound : float
        ε · test_grad_term.mean (exact mean-value bound on the mean loss change).
    first_order_bound_ci : Estimate
        The same with the interval of the gradient term scaled by ε.
    thm63_shape : float
        [P1] Thm 6.3 with C = 1, C(D, L) = 0: N^(−1/(d+2)) · global flatness.
    rate : float
        N^(−1/(d+2)).
    first_order_relation_holds : bool
        Mean loss change ≤ ε·mean gradient term at every radius and split.
    max_first_order_excess : float
    """

    eps: float
    robust_loss_gap: Estimate
    robust_acc_gap: Estimate
    test_robust_minus_clean_loss: Estimate
    test_loss_change: Estimate
    test_grad_term: Estimate
    first_order_bound: float
    first_order_bound_ci: Estimate
    thm63_shape: float
    rate: float
    first_order_relation_holds: bool
    max_first_order_excess: float


@dataclass(frozen=True)
class ComplexityResult:
    """E5 complexity measures of the model on the analysed training points.

    Deterministic functions of the weights and the n training points (margins at the PGD
    points); PAC-Bayes σ comes from a seeded Monte-Carlo search. No sampling interval.
    """

    values: dict[str, float]
    n: int
    init_model_given: bool
    pac_bayes: bool


@dataclass(frozen=True)
class CleanBound:
    """B2: the measured clean gap against the VC bound.

    Attributes
    ----------
    layers : tuple of str
        Names of the Linear/Conv layers in call order.
    units, layer_params : tuple of int
        Output units per sample and parameters (weights + biases) of each layer.
    vc_dim : float
        BHLM upper bound on the VC dimension.
    vc_bound : float
        Mohri VC gap bound at N = n_train, Δ = :data:`B2_CONFIDENCE`.
    sqrt_bound : float
        [P1] Thm 6.2 form √(VCdim/N) (C = 1).
    measured_clean_gap : Estimate
        Train − test clean accuracy (Newcombe interval).
    n_train : int
    """

    layers: tuple[str, ...]
    units: tuple[int, ...]
    layer_params: tuple[int, ...]
    vc_dim: float
    vc_bound: float
    sqrt_bound: float
    measured_clean_gap: Estimate
    n_train: int

    @property
    def vacuous(self) -> bool:
        return self.vc_bound >= 1.0


@dataclass(frozen=True)
class Analysis:
    """Everything :func:`analyze` measured on one model.

    Attributes
    ----------
    label : str
        Name of the model (e.g. ``"epoch 8"``), shown in the output.
    epoch : int or None
        Training epoch of the checkpoint, when known.
    data : str
        Description of the data.
    model : str
        Description of the model (class, parameter count).
    dim, num_classes : int
    attack : AttackSettings
    train, test : SplitMeasurement
    flatness : dict
        Split → :class:`FlatnessCurve` (empty when skipped).
    b1 : FlatnessBounds or None
    complexity : ComplexityResult or None
    b2 : CleanBound or None
    skipped : dict
        Section id → why it was not measured.
    notes : tuple of str
    settings : dict
        Sample sizes and seeds of every part, for the record.
    """

    label: str
    epoch: int | None
    data: str
    model: str
    dim: int
    num_classes: int
    attack: AttackSettings
    train: SplitMeasurement
    test: SplitMeasurement
    flatness: dict[str, FlatnessCurve]
    b1: FlatnessBounds | None
    complexity: ComplexityResult | None
    b2: CleanBound | None
    skipped: dict[str, str]
    notes: tuple[str, ...]
    settings: dict[str, Any]

    def e1_rows(self) -> list[dict[str, Any]]:
        """The E1 table (percent): robust test, robust train, clean test, clean train."""
        rows = []
        for name, est in (
            ("robust test", self.test.robust_acc),
            ("robust train", self.train.robust_acc),
            ("clean test", self.test.clean_acc),
            ("clean train", self.train.clean_acc),
        ):
            pct = est.scaled(100.0)
            rows.append(
                {
                    "quantity": name,
                    "accuracy_pct": pct.mean,
                    "ci_low_pct": pct.low,
                    "ci_high_pct": pct.high,
                    "n": pct.n,
                    "method": pct.method,
                }
            )
        return rows

    def numbers(self) -> dict[str, Any]:
        """Flat name → value mapping of the headline numbers (CSV/JSON)."""
        out: dict[str, Any] = {}

        def put(prefix: str, est: Estimate) -> None:
            out[prefix] = est.mean
            out[f"{prefix}_ci_low"] = est.low
            out[f"{prefix}_ci_high"] = est.high
            out[f"{prefix}_n"] = est.n

        for s in (self.train, self.test):
            for key in ("clean_acc", "robust_acc", "clean_loss", "robust_loss"):
                put(f"{s.split}_{key}", getattr(s, key))
        put("robust_acc_gap", _newcombe_difference(self.train.robust_acc, self.test.robust_acc))
        put("clean_acc_gap", _newcombe_difference(self.train.clean_acc, self.test.clean_acc))
        if self.b1 is not None:
            b = self.b1
            put("b1_robust_loss_gap", b.robust_loss_gap)
            put("b1_test_grad_term", b.test_grad_term)
            put("b1_test_loss_change", b.test_loss_change)
            out["b1_first_order_bound"] = b.first_order_bound
            out["b1_thm63_shape"] = b.thm63_shape
            out["b1_first_order_relation_holds"] = b.first_order_relation_holds
        if self.b2 is not None:
            out["b2_vc_dim_upper"] = self.b2.vc_dim
            out["b2_vc_bound"] = self.b2.vc_bound
            out["b2_vacuous"] = self.b2.vacuous
        if self.complexity is not None:
            for k, v in sorted(self.complexity.values.items()):
                out[f"e5_{k}"] = v
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole analysis (per-example arrays as lists)."""

        def fields(obj: Any, *skip: str) -> dict[str, Any]:
            return {k: _plain(v) for k, v in vars(obj).items() if k not in skip}

        def split(s: SplitMeasurement) -> dict[str, Any]:
            pe = {k: getattr(s.per_example, k).tolist() for k in PER_EXAMPLE_JSON}
            return {**fields(s, "split", "per_example"), "per_example": pe}

        flat = {k: fields(c, "split") for k, c in self.flatness.items()}
        b1 = None if self.b1 is None else fields(self.b1)
        b2 = None if self.b2 is None else {**fields(self.b2), "vacuous": self.b2.vacuous}
        return {
            "label": self.label,
            "epoch": self.epoch,
            "data": self.data,
            "model": self.model,
            "dim": self.dim,
            "num_classes": self.num_classes,
            "attack": vars(self.attack),
            "train": split(self.train),
            "test": split(self.test),
            "e1": self.e1_rows(),
            "flatness": flat,
            "b1": b1,
            "complexity": None if self.complexity is None else vars(self.complexity),
            "b2": b2,
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
            "settings": dict(self.settings),
        }


def _plain(value: Any) -> Any:
    """Estimates as dicts and tuples as lists, recursively (JSON-ready)."""
    if isinstance(value, Estimate):
        return value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


# ============================================================================ statistics
def _newcombe_difference(a: Estimate, b: Estimate) -> Estimate:
    """a − b for two independent proportions with Wilson intervals: Newcombe's hybrid score
    interval (Newcombe 1998, method 10): d ∓ √((p_a − l_a)² + (u_b − p_b)²) etc."""
    d = a.mean - b.mean
    low = d - math.sqrt((a.mean - a.low) ** 2 + (b.high - b.mean) ** 2)
    high = d + math.sqrt((a.high - a.mean) ** 2 + (b.mean - b.low) ** 2)
    return Estimate(d, low, high, min(a.n, b.n), "newcombe", (), a.confidence)


def _welch_difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> Estimate:
    """mean(a) − mean(b) of two independent samples with the Welch t interval."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Estimate(d, -math.inf, math.inf, min(len(a), len(b)), "welch", (), confidence)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Estimate(d, d, d, min(len(a), len(b)), "welch", (), confidence)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df=dof)) * se
    return Estimate(d, d - half, d + half, min(len(a), len(b)), "welch", (), confidence)


def _finite_mean_ci(values: np.ndarray, name: str) -> Estimate:
    arr = np.asarray(values, dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        logger.warning("%s: %d non-finite values replaced by the float max", name, int(bad.sum()))
        arr = np.nan_to_num(arr, nan=np.finfo(float).max, posinf=np.finfo(float).max)
    # Per-example values live in PerExample / per_example.csv, not in every Estimate.
    return dataclasses.replace(mean_ci(arr.tolist()), values=())


# ============================================================================ input checks
def _require_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < low:
        raise ValueError(f"{name} must be an integer in [{low}, inf), got {value!r}")
    return int(value)


def _require_number(
    name: str, value: Any, low: float = 0.0, high: float = math.inf, *, open_low: bool = False
) -> float:
    """``value`` as a float in [low, high] ((low, high] with ``open_low``), pixel units."""
    span = f"{'(' if open_low else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in {span} (pixel units), got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and (v > low if open_low else v >= low) and v <= high):
        raise ValueError(f"{name} must lie in {span} (pixel units, [0,1] scale), got {value!r}")
    return v


def _as_float_images(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name} must be a floating-point tensor in [0, 1], got dtype {x.dtype} "
            "(divide 8-bit images by 255)"
        )
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (n, ...), got {tuple(x.shape)}")
    return x.detach().float()


def _as_labels(y: Any, name: str, n: int) -> torch.Tensor:
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(np.ascontiguousarray(y))
    if isinstance(y, (list, tuple)):
        y = torch.as_tensor(y)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of integer labels, got {type(y).__name__}")
    if torch.is_floating_point(y) or y.dtype == torch.bool or torch.is_complex(y):
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the inputs, got {tuple(y.shape)}")
    return y.detach().long()


def _check_pixel_range(x: torch.Tensor, name: str) -> None:
    if x.numel() == 0:
        raise ValueError(f"{name} must hold at least one example (n in [1, inf)), got 0")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1] (pixel space), got values in [{lo:.4g}, {hi:.4g}]; "
            "attacks run in pixel space, so put any normalization inside the model "
            "(e.g. robmem.empirics.models.Normalize)"
        )


def check_model(model: Any) -> None:
    """Raise unless ``model`` is an ``nn.Module`` whose BatchNorm/Dropout layers are in eval mode.

    Every measurement runs the model in eval mode; a BatchNorm left in train mode would be
    measured with running statistics it may never have collected, so it is refused.

    Raises
    ------
    TypeError
        ``model`` is not a ``torch.nn.Module``.
    ValueError
        A BatchNorm or Dropout layer is in train mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    stochastic = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    for name, mod in model.named_modules():
        if isinstance(mod, stochastic) and mod.training:
            kind = "BatchNorm" if isinstance(mod, stochastic[0]) else "Dropout"
            raise ValueError(
                f"model: {kind} layer {name or '<root>'!r} is in train mode; call model.eval() "
                "first (every measurement runs in eval mode, with the running statistics)"
            )


def check_outputs(
    logits: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    *,
    check_logits: bool = True,
) -> int:
    """Check the model's outputs on a sample and the label ranges; return the class count.

    Parameters
    ----------
    logits : tensor (n, C)
        The model's outputs on a few inputs.
    labels : mapping
        Name (``train_y``, ``test_y``) → labels.
    check_logits : bool
        Refuse outputs that are probabilities (rows in [0, 1] summing to 1).

    Raises
    ------
    ValueError
        Outputs not of shape (n, C ≥ 2), probabilities instead of logits, or a label outside
        0..C−1.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"model must return a tensor of logits (n, num_classes), got {type(logits).__name__}"
        )
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(
            "model must return logits of shape (n, num_classes) with num_classes >= 2, got "
            f"outputs of shape {tuple(logits.shape)}"
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("model returned non-finite outputs (NaN or inf) on the data")
    c = int(logits.shape[1])
    in_unit = bool(((logits >= 0) & (logits <= 1)).all())
    if in_unit and check_logits:
        sums = logits.double().sum(dim=1)
        if bool(((sums - 1.0).abs() <= PROBABILITY_ATOL).all()):
            raise ValueError(
                "model returns probabilities (every output row lies in [0, 1] and sums to 1), "
                "but the attacks and losses need logits: remove the final softmax (log-softmax "
                "outputs are fine), or pass check_logits=False if these really are logits"
            )
        warnings.warn(
            "model outputs all lie in [0, 1] (a sigmoid output?); they are used as logits",
            ProbabilityOutputWarning,
            stacklevel=3,
        )
    for name, y in labels.items():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= c:
            hint = " (the labels look 1-based; subtract 1)" if lo == 1 and hi == c else ""
            raise ValueError(
                f"{name}: labels must lie in 0..{c - 1} (the model has {c} outputs), "
                f"got labels in {lo}..{hi}{hint}"
            )
    used = int(torch.unique(torch.cat([y.cpu() for y in labels.values()])).numel())
    if used < c:
        warnings.warn(
            f"the labels use {used} of the model's {c} classes; the analysis continues",
            LabelCoverageWarning,
            stacklevel=3,
        )
    return c


# ============================================================================ data
@dataclass(frozen=True)
class AnalysisData:
    """The train and test tensors analysed, with their provenance."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    name: str
    train_index: np.ndarray
    test_index: np.ndarray


def _subset_index(n: int, keep: int | None, seed: int, name: str) -> np.ndarray:
    if keep is None or keep >= n:
        return np.arange(n)
    keep = _require_int(name, keep, 1)
    gen = torch.Generator().manual_seed(int(seed))
    return np.sort(torch.randperm(n, generator=gen)[:keep].numpy())


def _item_to_tensor(img: Any) -> torch.Tensor:
    if isinstance(img, torch.Tensor):
        t = img
    else:
        arr = np.asarray(img)  # PIL images and arrays
        if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4) and arr.shape[0] not in (1, 3, 4):
            arr = arr.transpose(2, 0, 1)  # HWC -> CHW (PIL colour images)
        elif arr.ndim == 2:
            arr = arr[None]  # greyscale -> 1×H×W
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.uint8:
        t = t.float() / 255.0  # what torchvision's ToTensor does
    return t


def _from_dataset(ds: Any, keep: int | None, seed: int, name: str) -> tuple[Any, Any, np.ndarray]:
    n = len(ds)
    if n == 0:
        raise ValueError(f"{name} must hold at least one example (n in [1, inf)), got 0")
    idx = _subset_index(n, keep, seed, f"n_{name}")
    xs, ys = [], []
    for i in idx:
        item = ds[int(i)]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(
                f"{name}: items must be (image, label) pairs, got {type(item).__name__}"
            )
        xs.append(_item_to_tensor(item[0]))
        ys.append(int(item[1]))
    try:
        x = torch.stack(xs)
    except RuntimeError as exc:
        raise ValueError(f"{name}: images must all have the same shape ({exc})") from exc
    return x, torch.as_tensor(ys, dtype=torch.int64), idx


def _one_split(
    data: Any, keep: int | None, seed: int, name: str
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"{name} must be an (x, y) pair, got a sequence of {len(data)}")
        x = _as_float_images(data[0], f"{name}_x")
        y = _as_labels(data[1], f"{name}_y", x.shape[0])
        idx = _subset_index(x.shape[0], keep, seed, f"n_{name}")
        return x[torch.as_tensor(idx)], y[torch.as_tensor(idx)], idx
    if isinstance(data, torch.utils.data.Dataset) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__")
    ):
        x, y, idx = _from_dataset(data, keep, seed, name)
        return _as_float_images(x, f"{name}_x"), _as_labels(y, f"{name}_y", len(y)), idx
    raise TypeError(
        f"{name} must be an (x, y) pair of tensors, a torch Dataset of (image, label) pairs, a "
        f"built-in data set name or a robmem.empirics.data.DatasetSplit; got {type(data).__name__}"
    )


def resolve_data(
    train: Any,
    test: Any = None,
    *,
    data_root: str | None = None,
    data_seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    download: bool = False,
) -> AnalysisData:
    """Turn the accepted data forms into checked float tensors in [0, 1] with int64 labels.

    Parameters
    ----------
    train, test
        Either ``train`` is a built-in data set name (:data:`empirics.data.DATASET_NAMES`) or an
        :class:`empirics.data.DatasetSplit` and ``test`` is None; or each is an ``(x, y)`` pair
        (tensors or numpy arrays, x float in [0, 1]) or a torch/torchvision data set of
        ``(image, label)`` pairs (PIL or uint8 images are scaled by 1/255, as ``ToTensor``).
    data_root : str, optional
        torchvision root / MNIST idx folder for built-in names.
    data_seed : int
        Seed of the built-in split and of the subsampling.
    n_train, n_test : int, optional
        Keep this many examples (seeded subset, order kept).
    download : bool
        Let torchvision download a built-in data set.
    """
    from robmem.empirics.data import DATASET_NAMES, DatasetSplit, load_dataset

    _require_int("data_seed", data_seed, 0)
    if isinstance(train, str):
        if train not in DATASET_NAMES:
            raise ValueError(f"train must be one of {DATASET_NAMES} when a name, got {train!r}")
        if test is not None:
            raise ValueError("test must be None when train names a built-in data set")
        split = load_dataset(
            train, root=data_root, download=download, n_train=n_train, n_test=n_test,
            seed=data_seed,
        )  # fmt: skip
        name = f"{train} (data seed {data_seed})"
        tr_idx, te_idx = np.arange(len(split.train_y)), np.arange(len(split.test_y))
        train_x, train_y, test_x, test_y = split.train_x, split.train_y, split.test_x, split.test_y
    else:
        if isinstance(train, DatasetSplit):
            if test is not None:
                raise ValueError("test must be None when train is a DatasetSplit")
            name = train.name
            train, test = (train.train_x, train.train_y), (train.test_x, train.test_y)
        elif test is None:
            raise ValueError("test is required unless train names a built-in data set")
        else:
            name = "user data"
        train_x, train_y, tr_idx = _one_split(train, n_train, data_seed, "train")
        test_x, test_y, te_idx = _one_split(test, n_test, data_seed, "test")
    _check_pixel_range(train_x, "train_x")
    _check_pixel_range(test_x, "test_x")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(
            f"test_x must have the input shape of train_x {tuple(train_x.shape[1:])}, got "
            f"{tuple(test_x.shape[1:])}"
        )
    return AnalysisData(
        train_x, train_y.long(), test_x, test_y.long(), name, np.asarray(tr_idx),
        np.asarray(te_idx),
    )  # fmt: skip


# ============================================================================ measurements
def autoattack_available() -> bool:
    """Whether the ``autoattack`` package (Croce & Hein 2020) is importable."""
    return importlib.util.find_spec("autoattack") is not None


def _worst_case(
    attacks: Sequence[tuple[str, Callable[..., torch.Tensor]]],
    correct: dict[str, list[np.ndarray]],
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """Per sample the worst point over several attacks.

    A candidate that misclassifies wins, then the higher cross-entropy (the rule of
    :func:`robmem.empirics.attacks.select_worst_case`). Appends, per attack, which examples it
    left correct to ``correct[name]``.
    """
    from robmem.empirics.attacks import select_worst_case

    cands, wrongs, losses = [], [], []
    for name, attack in attacks:
        x_adv = attack(model, x, y).detach()
        with torch.no_grad():
            logits = model(x_adv).float()
        wrong = logits.argmax(dim=1) != y
        correct[name].append((~wrong).cpu().numpy())
        cands.append(x_adv)
        wrongs.append(wrong)
        losses.append(F.cross_entropy(logits, y, reduction="none"))
    return select_worst_case(torch.stack(cands), torch.stack(wrongs), torch.stack(losses))


def _build_attacks(
    settings: AttackSettings, device: torch.device, model: nn.Module
) -> list[tuple[str, Callable[..., torch.Tensor]]]:
    from robmem.empirics.attacks import PGD

    gen_device = device if device.type == "cuda" else torch.device("cpu")
    out: list[tuple[str, Callable[..., torch.Tensor]]] = []
    for seed in settings.seeds:
        gen = torch.Generator(device=gen_device).manual_seed(int(seed))
        pgd = PGD(
            settings.eps, settings.step_size, settings.steps, norm=settings.norm,
            restarts=settings.restarts, generator=gen,
        )  # fmt: skip
        out.append((f"PGD-{settings.steps} seed {seed}", pgd))
    if settings.autoattack:
        from autoattack import AutoAttack  # optional dependency, detected by the caller

        adversary = AutoAttack(
            model,
            norm="Linf" if settings.norm == "inf" else "L2",
            eps=settings.eps,
            version="standard",
            seed=int(settings.seeds[0]),
            device=str(device),
            verbose=False,
        )

        def run_autoattack(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return adversary.run_standard_evaluation(x, y, bs=x.shape[0])

        out.append(("AutoAttack", run_autoattack))
    return out


def _per_example(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-example cross-entropy, correctness and margin of ``model`` at ``x``, in batches."""
    from robmem.empirics.measures import classification_margins

    loss, correct, margin = [], [], []
    with torch.no_grad():
        for start in range(0, int(x.shape[0]), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model(xb).float()
            loss.append(F.cross_entropy(logits, yb, reduction="none").cpu().numpy())
            correct.append((logits.argmax(dim=1) == yb).cpu().numpy())
            margin.append(classification_margins(logits, yb).cpu().numpy())
    return (
        np.concatenate(loss).astype(float),
        np.concatenate(correct).astype(bool),
        np.concatenate(margin).astype(float),
    )


def measure_split(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: AttackSettings,
    *,
    split: str,
    index: np.ndarray | None = None,
    batch_size: int = 256,
    progress: Callable[[str], None] | None = None,
) -> tuple[SplitMeasurement, torch.Tensor]:
    """E1 numbers and per-example robust loss and margin of one split.

    ``x``, ``y`` must be on the model's device. Returns the measurement and the worst-case
    adversarial inputs (used for the robust margins of the complexity measures).
    """
    from robmem.empirics.attacks import attack_mode

    say = progress or (lambda message: None)
    n = int(x.shape[0])
    attacks = _build_attacks(settings, x.device, model)
    correct: dict[str, list[np.ndarray]] = {name: [] for name, _ in attacks}
    parts: list[torch.Tensor] = []
    with attack_mode(model):
        for start in range(0, n, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            parts.append(_worst_case(attacks, correct, model, xb, yb))
            say(f"{split}: attacked batch {len(parts)}/{math.ceil(n / batch_size)}")
        x_adv = torch.cat(parts)
        robust_loss, robust_correct, robust_margin = _per_example(model, x_adv, y, batch_size)
    clean_loss, clean_correct, clean_margin = _per_example(model, x, y, batch_size)
    per = PerExample(
        index=np.arange(n) if index is None else np.asarray(index),
        label=y.cpu().numpy(),
        clean_correct=clean_correct,
        robust_correct=robust_correct,
        clean_loss=clean_loss,
        robust_loss=robust_loss,
        clean_margin=clean_margin,
        robust_margin=robust_margin,
    )
    attack_acc = {
        name: fraction_ci(int(np.concatenate(flags).sum()), n) for name, flags in correct.items()
    }
    per_seed = [v.mean for k, v in attack_acc.items() if k.startswith("PGD")]
    return (
        SplitMeasurement(
            split=split,
            n=n,
            clean_acc=fraction_ci(int(clean_correct.sum()), n),
            robust_acc=fraction_ci(int(robust_correct.sum()), n),
            clean_loss=_finite_mean_ci(clean_loss, f"{split} clean loss"),
            robust_loss=_finite_mean_ci(robust_loss, f"{split} robust loss"),
            robust_acc_per_seed=mean_ci(per_seed),
            attack_acc=attack_acc,
            per_example=per,
        ),
        x_adv,
    )


def measure_flatness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_grid: Sequence[float],
    *,
    split: str,
    samples: int = DEFAULT_LANDSCAPE_SAMPLES,
    steps: int = DEFAULT_STEPS,
    restarts: int = 1,
    seed: int = 0,
    batch_size: int = 256,
) -> FlatnessCurve:
    """E2 on one split: :func:`robmem.empirics.landscape.input_landscape` on a seeded subset."""
    from robmem.empirics.landscape import first_order_violation, input_landscape

    idx = _subset_index(int(x.shape[0]), samples, seed, "landscape_samples")
    sel = torch.as_tensor(idx, device=x.device)
    res = input_landscape(
        model, x[sel], y[sel], list(eps_grid), steps=steps, restarts=restarts,
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    return FlatnessCurve(
        split=split,
        eps=tuple(float(e) for e in res.eps),
        grad_norm=tuple(_finite_mean_ci(r, f"{split} grad norm") for r in res.grad_norm),
        loss_change=tuple(_finite_mean_ci(r, f"{split} loss change") for r in res.loss_change),
        clean_grad_norm=_finite_mean_ci(res.clean_grad_norm, f"{split} clean grad norm"),
        first_order_excess=tuple(float(v) for v in first_order_violation(res)),
        n=len(idx),
        settings={**res.settings, "samples": len(idx), "subset_seed": int(seed)},
    )


def flatness_bounds(
    train: SplitMeasurement,
    test: SplitMeasurement,
    curves: Mapping[str, FlatnessCurve],
    eps: float,
    *,
    n_train: int,
    dim: int,
) -> FlatnessBounds:
    """B1 at radius ``eps`` from the E1 measurements and the E2 curves (as the report's B1)."""
    from robmem.theory.bounds.flatness import first_order_robust_gap, global_flatness_gap

    t = curves["test"]
    k = min(range(len(t.eps)), key=lambda i: abs(t.eps[i] - eps))
    g = t.grad_norm[k]
    first = first_order_robust_gap(delta=t.eps[k], grad_dual_sup=max(g.mean, 0.0))
    shape = global_flatness_gap(
        n=n_train, dim=dim, grad_term=max(g.mean, 0.0), c_dl=0.0, confidence=THM63_CONFIDENCE
    )
    excess = []
    for c in curves.values():
        for x, lc, gn in zip(c.eps, c.loss_change, c.grad_norm, strict=True):
            excess.append(lc.mean - x * gn.mean - FIRST_ORDER_RTOL * max(1.0, x * gn.mean))
    pe = test.per_example
    return FlatnessBounds(
        eps=float(t.eps[k]),
        robust_loss_gap=_welch_difference(pe.robust_loss, train.per_example.robust_loss),
        robust_acc_gap=_newcombe_difference(train.robust_acc, test.robust_acc),
        test_robust_minus_clean_loss=_finite_mean_ci(
            pe.robust_loss - pe.clean_loss, "robust − clean loss"
        ),
        test_loss_change=t.loss_change[k],
        test_grad_term=g,
        first_order_bound=first.value,
        first_order_bound_ci=g.scaled(t.eps[k]),
        thm63_shape=shape.value,
        rate=shape.terms["rate"],
        first_order_relation_holds=max(excess) <= 0.0,
        max_first_order_excess=float(max(excess)),
    )


def layered_architecture(
    model: nn.Module, x: torch.Tensor
) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    """Linear/Conv layers in call order with their output units per sample and parameters.

    Found with forward hooks on one forward pass of ``x`` (a layer called twice is counted
    once). Raises ValueError when the model has none (or cannot take hooks, e.g. TorchScript).
    """
    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    seen: dict[str, tuple[int, int]] = {}
    handles = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
            if name not in seen:
                params = sum(p.numel() for p in mod.parameters(recurse=False))
                seen[name] = (int(out[0].numel()), int(params))

        return hook

    try:
        for name, mod in model.named_modules():
            if isinstance(mod, layers):
                handles.append(mod.register_forward_hook(hook_for(name)))
        with torch.no_grad():
            model(x[:1])
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        raise ValueError(f"model: its layers cannot be inspected with hooks ({exc})") from exc
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise ValueError(
            "model: no torch.nn Linear/Conv layer was called (a TorchScript or exported "
            "model hides its layers); the VC bound needs them"
        )
    names = tuple(seen)
    return names, tuple(seen[n][0] for n in names), tuple(seen[n][1] for n in names)


def clean_bound(
    model: nn.Module, x: torch.Tensor, train: SplitMeasurement, test: SplitMeasurement
) -> CleanBound:
    """B2: BHLM VC dimension of the called layers, Mohri's VC gap bound, the measured gap."""
    from robmem.theory.bounds.vc import (
        clean_gap_sqrt_complexity,
        vc_dimension_upper_from_layers,
        vc_generalization_gap,
    )

    names, units, params = layered_architecture(model, x)
    vc = vc_dimension_upper_from_layers(list(units), list(params)).value
    return CleanBound(
        layers=names,
        units=units,
        layer_params=params,
        vc_dim=vc,
        vc_bound=vc_generalization_gap(n=train.n, vc=vc, confidence=B2_CONFIDENCE).value,
        sqrt_bound=clean_gap_sqrt_complexity(n=train.n, complexity=vc).value,
        measured_clean_gap=_newcombe_difference(train.clean_acc, test.clean_acc),
        n_train=train.n,
    )


def _same_architecture(model: nn.Module, init_model: nn.Module) -> None:
    a = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in init_model.state_dict().items()}
    if a != b:
        raise ValueError(
            "init_model must have the architecture of model (same state-dict keys and shapes)"
        )


def _describe_model(model: nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    inner = getattr(model, "net", None)
    cls = type(inner).__name__ if isinstance(inner, nn.Module) else type(model).__name__
    return f"{cls} ({n:,} parameters)"


# ============================================================================ entry point
def analyze(
    model: nn.Module,
    train: Any,
    test: Any = None,
    *,
    eps: float,
    norm: str = "inf",
    steps: int = DEFAULT_STEPS,
    step_size: float | None = None,
    restarts: int = 1,
    attack_seeds: Sequence[int] = (0,),
    autoattack: str = "auto",
    n_train: int | None = None,
    n_test: int | None = None,
    data_root: str | None = None,
    data_seed: int = 0,
    download: bool = False,
    eps_grid: Sequence[float] | None = None,
    landscape_samples: int = DEFAULT_LANDSCAPE_SAMPLES,
    landscape_steps: int = DEFAULT_STEPS,
    landscape_seed: int = 0,
    init_model: nn.Module | None = None,
    complexity: bool = True,
    pac_bayes: bool = True,
    vc_bound: bool = True,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    check_logits: bool = True,
    label: str = "model",
    epoch: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Analysis:
    """Measure a user's model the way the report measures the suite's runs.

    Parameters
    ----------
    model : torch.nn.Module
        Maps inputs in [0, 1] (the data's shape) to logits (n, C). BatchNorm/Dropout layers
        must be in eval mode. Not modified (mode, parameters and gradients are restored).
    train, test
        Data; see :func:`resolve_data` (a built-in name, a ``DatasetSplit``, ``(x, y)`` pairs
        or torch/torchvision data sets).
    eps : float in [0, 1]
        Threat radius in pixel units.
    norm : {"inf", "2"}
        Threat norm. The landscape (E2) and B1 are ℓ∞ only (skipped for ℓ2).
    steps, step_size, restarts : PGD settings
        Default PGD-10 with step ε/4 (the trainer's evaluation), one restart per seed.
    attack_seeds : sequence of int
        One PGD run per seed (its random starts); robust accuracy counts the per-sample worst
        case over all of them, and the per-seed accuracies get a t interval over seeds.
    autoattack : {"auto", "on", "off"}
        ``"auto"`` runs AutoAttack (standard) too when the ``autoattack`` package is installed;
        ``"on"`` requires it (ValueError if missing); ``"off"`` never runs it.
    n_train, n_test : int, optional
        Analyse a seeded subset of this many examples per split.
    data_root, data_seed, download
        For built-in names (see :func:`resolve_data`); ``data_seed`` also seeds subsets.
    eps_grid : sequence of float, optional
        Radii of E2/B1; default ``eps`` × :data:`DEFAULT_EPS_FACTORS`. ``eps`` is added if absent.
    landscape_samples, landscape_steps, landscape_seed : int
        Points per split, ascent steps and seed (subset and random starts) of E2.
    init_model : torch.nn.Module, optional
        The same architecture at initialization (distance-to-init measures of E5).
    complexity, pac_bayes, vc_bound : bool
        Compute E5 (with the PAC-Bayes σ search) and B2.
    batch_size : int
        Examples per forward/attack batch.
    device : str or torch.device, optional
        Where to compute; default the device of the model's parameters.
    check_logits : bool
        Refuse outputs that are probabilities (see :func:`check_outputs`).
    label, epoch
        Name and training epoch of the model, shown in the output.
    progress : callable, optional
        ``progress(message)`` for long attacks (the library itself only logs).

    Returns
    -------
    Analysis

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named, with the allowed range), inputs outside [0, 1], BatchNorm in
        train mode, labels outside the model's classes, probabilities instead of logits.

    Warns
    -----
    ProbabilityOutputWarning, LabelCoverageWarning
    """
    check_model(model)
    say = progress or (lambda message: None)
    norm = norm_name(norm)
    # an ℓ2 radius may exceed 1 (e.g. 2.0 on MNIST)
    eps = _require_number("eps", eps, high=1.0 if norm == "inf" else math.inf)
    steps = _require_int("steps", steps, 0)
    restarts = _require_int("restarts", restarts, 1)
    batch_size = _require_int("batch_size", batch_size, 1)
    landscape_samples = _require_int("landscape_samples", landscape_samples, 1)
    landscape_steps = _require_int("landscape_steps", landscape_steps, 1)
    landscape_seed = _require_int("landscape_seed", landscape_seed, 0)
    if step_size is None:
        step_size = DEFAULT_STEP_FRACTION * eps if eps > 0 else 1.0
    step_size = _require_number("step_size", step_size, open_low=True)
    seeds = tuple(_require_int("attack_seeds", s, 0) for s in attack_seeds)
    if not seeds:
        raise ValueError("attack_seeds must hold at least one seed (length in [1, inf))")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"attack_seeds must be distinct, got {list(seeds)}")
    if autoattack not in AUTOATTACK_CHOICES:
        raise ValueError(f"autoattack must be one of {AUTOATTACK_CHOICES}, got {autoattack!r}")
    have_aa = autoattack_available()
    if autoattack == "on" and not have_aa:
        raise ValueError(
            "autoattack='on' needs the autoattack package (pip install "
            "git+https://github.com/fra31/auto-attack); use 'auto' to run it only when present"
        )
    use_aa = autoattack != "off" and have_aa and eps > 0
    grid: list[float] = []
    if norm == "inf":
        if eps_grid is None:  # radii above 1 are the whole box [0, 1]^d: clipped
            eps_grid = [min(eps * f, 1.0) for f in DEFAULT_EPS_FACTORS]
        grid = sorted({_require_number("eps_grid", e, high=1.0) for e in eps_grid} | {eps})
    if init_model is not None:
        check_model(init_model)
        _same_architecture(model, init_model)
    if device is None:
        first = next(model.parameters(), None)
        dev = first.device if first is not None else torch.device("cpu")
    else:
        dev = torch.device(device)

    data = resolve_data(
        train, test, data_root=data_root, data_seed=data_seed, n_train=n_train, n_test=n_test,
        download=download,
    )  # fmt: skip
    settings = AttackSettings(eps, norm, steps, step_size, restarts, seeds, use_aa)
    train_x, train_y = data.train_x.to(dev), data.train_y.to(dev)
    test_x, test_y = data.test_x.to(dev), data.test_y.to(dev)
    with torch.no_grad():
        probe = model(train_x[:CHECK_SAMPLES])
    num_classes = check_outputs(
        probe, {"train_y": data.train_y, "test_y": data.test_y}, check_logits=check_logits
    )
    dim = int(math.prod(train_x.shape[1:]))
    notes: list[str] = [
        "Robust numbers rest on attacks: robust accuracy is an upper estimate and robust loss "
        "a lower estimate of the true worst case; flatness terms are lower estimates of maxima."
    ]
    skipped: dict[str, str] = {}
    if not use_aa:
        notes.append(
            "AutoAttack was not run ("
            + ("autoattack='off'" if autoattack == "off" else "package not installed")
            + "); robust accuracy is under PGD only."
            if eps > 0
            else "ε = 0: robust = clean."
        )

    say(f"E1: attacking {len(train_y)} train points ({settings.describe()})")
    train_m, train_adv = measure_split(
        model, train_x, train_y, settings, split="train", index=data.train_index,
        batch_size=batch_size, progress=say,
    )  # fmt: skip
    say(f"E1: attacking {len(test_y)} test points")
    test_m, _ = measure_split(
        model, test_x, test_y, settings, split="test", index=data.test_index,
        batch_size=batch_size, progress=say,
    )  # fmt: skip

    curves: dict[str, FlatnessCurve] = {}
    b1 = None
    if norm != "inf":
        reason = "the landscape measurement (robmem.empirics.landscape) is ℓ∞ only; norm is ℓ2"
        skipped["E2"] = skipped["B1"] = reason
    else:
        for name, (xs, ys) in (("train", (train_x, train_y)), ("test", (test_x, test_y))):
            say(f"E2: input landscape on {min(landscape_samples, len(ys))} {name} points")
            curves[name] = measure_flatness(
                model, xs, ys, grid, split=name, samples=landscape_samples,
                steps=landscape_steps, seed=landscape_seed, batch_size=batch_size,
            )  # fmt: skip
        b1 = flatness_bounds(train_m, test_m, curves, eps, n_train=train_m.n, dim=dim)

    comp = None
    if complexity:
        from robmem.empirics.complexity import model_complexity

        say("E5: complexity measures")
        try:
            values = model_complexity(
                model, train_x, train_y, init_model=init_model, x_margin=train_adv,
                pac_bayes=pac_bayes, batch_size=batch_size,
            )  # fmt: skip
            comp = ComplexityResult(values, train_m.n, init_model is not None, pac_bayes)
        except (ValueError, TypeError, RuntimeError, AttributeError, NotImplementedError) as exc:
            logger.warning("complexity measures unavailable: %s", exc)
            skipped["E5"] = f"complexity measures unavailable for this model ({exc})"
    else:
        skipped["E5"] = "not requested (complexity=False)"
    if comp is not None and init_model is None:
        notes.append("No init model given: distance-to-initialization measures are absent.")

    b2 = None
    if vc_bound:
        try:
            b2 = clean_bound(model, train_x, train_m, test_m)
        except ValueError as exc:
            skipped["B2"] = str(exc)
    else:
        skipped["B2"] = "not requested (vc_bound=False)"
    run_settings = {
        "n_train": train_m.n,
        "n_test": test_m.n,
        "data_seed": data_seed,
        "attack_seeds": list(seeds),
        "eps_grid": grid,
        "landscape_samples": landscape_samples,
        "landscape_steps": landscape_steps,
        "landscape_seed": landscape_seed,
        "batch_size": batch_size,
        "device": str(dev),
        "confidence": CONFIDENCE,
    }
    return Analysis(
        label=str(label),
        epoch=epoch,
        data=data.name,
        model=_describe_model(model),
        dim=dim,
        num_classes=num_classes,
        attack=settings,
        train=train_m,
        test=test_m,
        flatness=curves,
        b1=b1,
        complexity=comp,
        b2=b2,
        skipped=skipped,
        notes=tuple(notes),
        settings=run_settings,
    )


class ExportedModule(nn.Module):
    """A ``torch.export`` program as a module whose ``train``/``eval`` are no-ops.

    Exported modules refuse ``eval()``; the attacks call it. The program is held outside the
    module tree, so its parameters are not listed (complexity measures and the VC bound are
    skipped for it; the attacks differentiate with respect to the input only). The program runs
    on the device it was exported for.
    """

    def __init__(self, program_module: Any) -> None:
        super().__init__()
        object.__setattr__(self, "_program", program_module)
        self.training = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._program(x)

    def train(self, mode: bool = True) -> ExportedModule:
        return self


# ============================================================================ run folders
def epoch_checkpoint_callback(every: int = 1) -> Callable[[Any], dict[str, Any]]:
    """A trainer callback keeping ``checkpoints/epoch-NNNN.pt`` every ``every`` epochs.

    The trainer keeps only ``last.pt`` and ``best.pt``; pass this to
    :func:`robmem.empirics.trainers.train` (``callbacks=[...]``) to keep the epochs that
    ``robmem analyze --epochs all`` draws B1's per-epoch curve from. The files use the
    suite's checksummed format and hold the model weights, the epoch and the config only.
    """
    every = _require_int("every", every, 1)

    def callback(ctx: Any) -> dict[str, Any]:
        from robmem.empirics.checkpoint import save_checkpoint

        if int(ctx.epoch) % every == 0:
            folder = ctx.run_dir / "checkpoints"
            folder.mkdir(exist_ok=True)
            save_checkpoint(
                folder / f"epoch-{int(ctx.epoch):04d}.pt",
                {
                    "epoch": int(ctx.epoch),
                    "config": ctx.config.to_json(),
                    "model": {k: v.detach().cpu() for k, v in ctx.model.state_dict().items()},
                },
            )
        return {}

    return callback


@dataclass(frozen=True)
class RunCheckpoint:
    """One saved epoch of a run folder."""

    epoch: int
    path: Any  # pathlib.Path
    names: tuple[str, ...]


def run_checkpoints(run_dir: Any) -> list[RunCheckpoint]:
    """The saved epochs of a run folder, oldest first (each checkpoint checksum-verified).

    The trainer keeps ``last.pt`` and ``best.pt`` (or ``best-by-test.pt``); files saved by
    :func:`epoch_checkpoint_callback` add further epochs. Files of the same epoch hold the same
    weights; each epoch is listed once.
    """
    import pathlib

    from robmem.empirics.checkpoint import load_checkpoint

    folder = pathlib.Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} has no checkpoints folder")
    by_epoch: dict[int, RunCheckpoint] = {}
    for path in sorted(folder.glob("*.pt")):
        payload = load_checkpoint(path, map_location="cpu")
        epoch = int(payload.get("epoch", -1))
        prev = by_epoch.get(epoch, RunCheckpoint(epoch, path, ()))  # keeps the first path
        by_epoch[epoch] = RunCheckpoint(epoch, prev.path, prev.names + (path.name,))
    if not by_epoch:
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} has no checkpoint (*.pt) files")
    return [by_epoch[e] for e in sorted(by_epoch)]


def model_from_checkpoint(config: Any, path: Any, *, device: str = "cpu") -> nn.Module:
    """Build the run's architecture and load the weights of one checkpoint (safely)."""
    from robmem.empirics.checkpoint import load_checkpoint
    from robmem.empirics.complexity import initial_model

    model = initial_model(config, device=device)
    model.load_state_dict(load_checkpoint(path, map_location=device)["model"])
    return model
