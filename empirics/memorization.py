"""Per-example robust loss tracking: which training points are fitted late (SPEC E6, [P2] §4).

[P2] attributes robust overfitting to the network memorizing "hard" adversarial training
examples with their one-hot labels after the first learning-rate decay. To see this we record,
at chosen epochs, each training example's robust loss (cross-entropy at a PGD point) and whether
it is robustly classified, and derive

* the **stably fitted epoch** (:func:`stably_fitted_epoch`): the first recorded epoch from
  which it stays robustly classified at every later record (``-1`` if it is not robustly
  classified at the last record);
* the **late-fitted set**: examples whose stable-fit epoch is after a given epoch (e.g. the
  first lr decay), the candidates for memorized hard examples.

Everything here is bookkeeping over numbers the attack produces; the attack itself is passed in
(any ``attack(model, x, y) -> x_adv``, e.g. :class:`robmem.empirics.attacks.PGD`).

Two non-circular mechanism statistics (``notes/verdict-audit.md`` §4, E6) test [P2]'s account
with quantities that are not selected by robust loss:

* :func:`late_fitted_enrichment`: are label-flipped examples over-represented among the
  late-fitted ones? (odds ratio with a 95 % CI; enrichment when the CI lies above 1);
* :func:`late_set_agreement`: do different seeds fit the *same* examples late? (pairwise
  Jaccard index and Cohen's κ, each next to its chance level).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
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


def stably_fitted_epoch(epochs: Sequence[int], correct: Any) -> np.ndarray:
    """Per example, the first recorded epoch from which it stays robustly classified at every
    later record; ``NEVER`` if it is not robustly classified at the last record ([P2], SPEC E6).

    Parameters
    ----------
    epochs : sequence of int
        The recorded epochs, strictly increasing.
    correct : array of bool (or 0/1), shape (len(epochs), n_examples)
        Robust correctness of every example at every record.
    """
    epochs = [int(e) for e in epochs]
    correct = np.asarray(correct)
    if correct.ndim != 2 or correct.shape[0] != len(epochs):
        raise ValueError(
            f"correct must have shape (len(epochs)={len(epochs)}, n_examples), got {correct.shape}"
        )
    if any(b <= a for a, b in itertools.pairwise(epochs)):
        raise ValueError(f"epochs must strictly increase, got {epochs}")
    # suffix-AND: stays[k] = all(correct[k:])
    stays = np.logical_and.accumulate(correct[::-1].astype(bool), axis=0)[::-1]
    out = np.full(correct.shape[1], NEVER, dtype=int)
    hit = stays.any(axis=0)
    out[hit] = np.asarray(epochs, dtype=int)[stays.argmax(axis=0)[hit]]
    return out


# ---------------------------------------------------------------------------------------------
# Mechanism statistics (SPEC E6)

#: Haldane–Anscombe correction: 0.5 added to every cell of a 2×2 table with a zero cell.
HALDANE_ANSCOMBE = 0.5


def _bool_mask(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value.cpu() if hasattr(value, "cpu") else value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D boolean mask, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (or 0/1), got dtype {arr.dtype}")
        arr = arr.astype(bool)
    return arr


@dataclass(frozen=True)
class Enrichment:
    """Odds ratio of being label-flipped among late-fitted vs other examples (SPEC E6).

    Attributes
    ----------
    odds_ratio, ci_low, ci_high : float
        Point estimate and confidence interval.
    confidence : float
    table : list of list of int
        ``[[late & flipped, late & clean], [other & flipped, other & clean]]``.
    method : str
        ``"sample"`` (scipy's sample odds ratio and its Woolf log-normal CI) or
        ``"haldane-anscombe"`` (0.5 added to every cell because one is zero, then Woolf).
    p_value : float
        One-sided Fisher exact test of odds ratio > 1 (``scipy.stats.fisher_exact``).
    frac_flipped_late, frac_flipped_other : float
        Share of flipped labels among late-fitted and among other examples (nan if empty).
    enriched : bool
        ``ci_low > 1``: flipped labels are over-represented among late-fitted examples.
    """

    odds_ratio: float
    ci_low: float
    ci_high: float
    confidence: float
    table: list[list[int]]
    method: str
    p_value: float
    frac_flipped_late: float
    frac_flipped_other: float
    enriched: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)


def late_fitted_enrichment(
    late_mask: Any, flipped_mask: Any, *, confidence: float = 0.95
) -> Enrichment:
    """Odds ratio of label flips among late-fitted vs other training examples (SPEC E6).

    [P2] attributes robust overfitting to memorizing hard examples with their one-hot labels
    after the lr decay. With label noise, a flipped label is hard by construction and is known
    without looking at the loss, so "late-fitted examples are enriched in flipped labels" is a
    test that is not circular (unlike comparing the robust loss of late-fitted examples, which
    are selected by it; ``notes/verdict-audit.md`` §2, E6).

    With the 2×2 table ``a = late & flipped``, ``b = late & clean``, ``c = other & flipped``,
    ``d = other & clean``, the odds ratio is ``ad / (bc)``. When every cell is positive this is
    :func:`scipy.stats.contingency.odds_ratio` (``kind="sample"``) and its CI, Woolf's
    ``exp(log OR ± z·√(1/a + 1/b + 1/c + 1/d))``. When a cell is zero the sample odds ratio is
    0 or ∞ and Woolf's CI is undefined, so 0.5 is added to every cell (Haldane 1956, Anscombe
    1956) and the same formula is applied (``method="haldane-anscombe"``). Assumes the examples
    are independent draws (the usual large-sample assumption of the Woolf interval); the
    one-sided Fisher exact p-value is exact under the table's margins.

    Parameters
    ----------
    late_mask, flipped_mask : array of bool, shape (n,)
        E.g. ``stably_fitted_epoch(epochs, correct) > epoch`` and the run's ``flipped`` mask.
    confidence : float in (0, 1)

    Raises
    ------
    ValueError
        Masks of different lengths or not 1-D boolean; a row or column of the table is empty
        (no late-fitted, no other, no flipped or no clean example: the odds ratio is undefined).
    """
    from scipy.stats import fisher_exact, norm
    from scipy.stats.contingency import odds_ratio

    late = _bool_mask(late_mask, "late_mask")
    flipped = _bool_mask(flipped_mask, "flipped_mask")
    if late.shape != flipped.shape:
        raise ValueError(
            f"late_mask and flipped_mask must have the same length, got {late.size} and "
            f"{flipped.size}"
        )
    if not (isinstance(confidence, float) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}")
    a = int(np.sum(late & flipped))
    b = int(np.sum(late & ~flipped))
    c = int(np.sum(~late & flipped))
    d = int(np.sum(~late & ~flipped))
    table = [[a, b], [c, d]]
    for label, total in (
        ("late-fitted", a + b),
        ("other (not late-fitted)", c + d),
        ("flipped", a + c),
        ("clean (not flipped)", b + d),
    ):
        if total == 0:
            raise ValueError(
                f"late_mask/flipped_mask: no {label} example, the odds ratio is undefined "
                f"(table {table})"
            )
    if min(a, b, c, d) > 0:
        res = odds_ratio(table, kind="sample")
        ci = res.confidence_interval(confidence_level=confidence)
        est, low, high, method = float(res.statistic), float(ci.low), float(ci.high), "sample"
    else:
        h = HALDANE_ANSCOMBE
        log_or = math.log((a + h) * (d + h) / ((b + h) * (c + h)))
        se = math.sqrt(sum(1.0 / (v + h) for v in (a, b, c, d)))
        z = float(norm.ppf(0.5 + confidence / 2.0))
        est = math.exp(log_or)
        low, high = math.exp(log_or - z * se), math.exp(log_or + z * se)
        method = "haldane-anscombe"
    _, p_value = fisher_exact(table, alternative="greater")
    return Enrichment(
        odds_ratio=est,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        table=table,
        method=method,
        p_value=float(p_value),
        frac_flipped_late=a / (a + b),
        frac_flipped_other=c / (c + d),
        enriched=bool(low > 1.0),
    )


def chance_jaccard(n: int, k1: int, k2: int) -> float:
    """Expected Jaccard index of two independent uniformly random subsets of sizes k1, k2 of n.

    The overlap I is hypergeometric (population n, k1 marked, k2 drawn), and
    ``E[J] = Σ_i P(I = i) · i / (k1 + k2 − i)`` (exact; ``scipy.stats.hypergeom``). Two empty
    sets give nan (their Jaccard index is undefined).
    """
    from scipy.stats import hypergeom

    for name, v in (("n", n), ("k1", k1), ("k2", k2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    if k1 > n or k2 > n:
        raise ValueError(f"k1 and k2 must be <= n={n}, got {k1} and {k2}")
    if k1 + k2 == 0:
        return float("nan")
    i = np.arange(max(0, k1 + k2 - n), min(k1, k2) + 1)
    pmf = hypergeom.pmf(i, n, k1, k2)
    return float(np.sum(pmf * i / (k1 + k2 - i)))


@dataclass(frozen=True)
class SetAgreement:
    """Agreement of late-fitted sets across seeds (SPEC E6).

    Attributes
    ----------
    n_seeds, n_pairs : int
    jaccard_mean, jaccard_chance_mean : float
        Mean pairwise Jaccard index and the mean of its chance levels (independent random sets
        of the same sizes, :func:`chance_jaccard`); nan when every pair is empty.
    kappa_mean : float
        Mean pairwise Cohen's κ (``sklearn.metrics.cohen_kappa_score``); 0 is chance by
        construction, 1 identical sets. Pairs where κ is undefined (a constant mask) are
        skipped; nan if all are.
    jaccard, jaccard_chance, kappa : list of float
        Per pair, in ``itertools.combinations`` order.
    set_sizes : list of int
    """

    n_seeds: int
    n_pairs: int
    jaccard_mean: float
    jaccard_chance_mean: float
    kappa_mean: float
    jaccard: list[float]
    jaccard_chance: list[float]
    kappa: list[float]
    set_sizes: list[int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def late_set_agreement(masks: Sequence[Any]) -> SetAgreement:
    """Do different seeds fit the same training examples late? (SPEC E6).

    For every pair of seeds' late-fitted masks (over the same training examples, e.g. the same
    data and label-noise draw with different init/order/attack seeds): the Jaccard index
    ``|A ∩ B| / |A ∪ B|`` next to its chance level for independent random sets of the same
    sizes (:func:`chance_jaccard`), and Cohen's κ of the two masks (chance agreement is κ = 0).
    Sets well above chance say that lateness is a property of the examples (hard or flipped),
    not of the run's randomness.

    Parameters
    ----------
    masks : sequence of arrays of bool, shape (n,) each
        At least two.
    """
    from sklearn.metrics import cohen_kappa_score

    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        masks = list(masks)
    if not isinstance(masks, Sequence) or len(masks) < 2:
        raise ValueError("masks must be a sequence of at least 2 boolean masks (one per seed)")
    arrs = [_bool_mask(m, f"masks[{i}]") for i, m in enumerate(masks)]
    n = arrs[0].size
    if any(a.size != n for a in arrs):
        raise ValueError(f"masks must all have the same length, got {[a.size for a in arrs]}")
    jac, chance, kappa = [], [], []
    for a, b in itertools.combinations(arrs, 2):
        union = int(np.sum(a | b))
        jac.append(float(np.sum(a & b)) / union if union else float("nan"))
        chance.append(chance_jaccard(n, int(a.sum()), int(b.sum())))
        if (a.all() and b.all()) or (not a.any() and not b.any()):
            kappa.append(float("nan"))  # both constant and equal: κ = 0/0
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                kappa.append(float(cohen_kappa_score(a, b)))
    return SetAgreement(
        n_seeds=len(arrs),
        n_pairs=len(jac),
        jaccard_mean=_nanmean(jac),
        jaccard_chance_mean=_nanmean(chance),
        kappa_mean=_nanmean(kappa),
        jaccard=jac,
        jaccard_chance=chance,
        kappa=kappa,
        set_sizes=[int(a.sum()) for a in arrs],
    )
