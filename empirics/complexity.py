"""Complexity measures of trained models versus the robust generalization gap (SPEC E5, B4).

[P2] trains PGD-AT models at increasing label-noise rates and asks whether norm- and
flatness-based complexity measures track the robust generalization gap; the claim is that most
do not. The measures themselves are computed by the theory-side calculator
:func:`robmem.empirics.measures.complexity_measures` (SPEC T4); this module collects them
per model. Each measure class's Kendall rank correlation τ with the gap (bootstrap over models)
is computed by the report, :func:`robmem.bridge.claims.noise_rates.e5_estimates`.

The calculator returns more keys than there are measures (``notes/verdict-audit.md`` §2): some
are bookkeeping (``params``, ``n_layers``, …, :data:`NON_MEASURE_KEYS`), several are strictly
monotone functions of one another for a fixed architecture (``spec_product`` =
exp(½·``log_prod_of_spec``); ``log_sum_of_spec`` = log d + ``log_prod_of_spec``/d; …), and two
shrink as the predicted gap grows (the margin γ and the PAC-Bayes σ). :data:`MEASURE_CLASSES`
keeps one entry per rank-equivalence class with an orientation sign, and
:func:`measure_classes` maps a measures dict to those deduplicated, oriented values, so a
positive Kendall τ always means "the measure predicts the gap's order".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: Keys of ``complexity_measures`` that are not complexity measures: sizes and counters of the
#: architecture (constant within a family of one architecture), a flag, and the PAC-Bayes
#: search's Monte-Carlo training error (an input of the certificate, not a measure).
NON_MEASURE_KEYS: frozenset[str] = frozenset(
    {
        "params",
        "n_layers",
        "n_batchnorm_folded",
        "n_spectral_upper_bounds",
        "margin_nonpositive",
        "pacbayes_mc_error",
    }
)


@dataclass(frozen=True)
class MeasureClass:
    """One rank-equivalence class of complexity measures (SPEC E5, T4).

    Attributes
    ----------
    name : str
        Name of the class (what the Kendall table shows).
    key : str
        The ``complexity_measures`` key whose value represents the class.
    sign : int
        +1 or −1 such that ``sign · value`` grows when the measure predicts a *larger* robust
        generalization gap (larger norms, smaller margins, smaller PAC-Bayes σ).
    duplicates : tuple of str
        Other keys that are strictly monotone functions of ``key`` when the architecture (depth)
        is fixed, so they have the same Kendall τ up to the sign; they are dropped.
    needs : str or None
        ``"init_model"`` or ``"pac_bayes"`` when the key only exists with that input.
    reference : str
        Equation of Jiang et al. 2020 (as ``MEASURE_EQUATIONS``) and the notes section
        (``notes/bounds-and-constructions.md`` §1–§2) defining it.
    """

    name: str
    key: str
    sign: int
    duplicates: tuple[str, ...] = ()
    needs: str | None = None
    reference: str = ""


#: One entry per class of measures. Rank-duplicates hold for a family of one architecture
#: (fixed depth d): spec_product = exp(½ log_prod_of_spec); log_sum_of_X = log d +
#: log_prod_of_X / d; inverse_margin = 1/γ² is a decreasing function of γ while γ > 0 (the
#: signed γ is kept: with robust margins γ can be ≤ 0 at high label noise, where 1/γ² is no
#: longer monotone); pacbayes_flatness = 1/σ².
MEASURE_CLASSES: tuple[MeasureClass, ...] = (
    MeasureClass("margin", "margin", -1, ("inverse_margin",), None,
                 "Jiang eq. 22 (1/γ²); notes §1.1 margin = 10th percentile"),
    MeasureClass("spectral_product", "log_prod_of_spec", +1,
                 ("spec_product", "log_sum_of_spec"), None, "Jiang eq. 32, 35; notes §1.1"),
    MeasureClass("spectral_product_over_margin", "log_prod_of_spec_over_margin", +1,
                 ("log_sum_of_spec_over_margin",), None, "Jiang eq. 31, 34; notes §1.1"),
    MeasureClass("frobenius_product", "log_prod_of_fro", +1, ("log_sum_of_fro",), None,
                 "Jiang eq. 37, 39; notes §1.1"),
    MeasureClass("frobenius_product_over_margin", "log_prod_of_fro_over_margin", +1,
                 ("log_sum_of_fro_over_margin",), None, "Jiang eq. 36, 38; notes §1.1"),
    MeasureClass("fro_over_spec", "fro_over_spec", +1, (), None, "Jiang eq. 33; notes §1.1"),
    MeasureClass("spec_orig_main", "log_spec_orig_main", +1, (), None,
                 "Jiang eq. 30; notes §1.1"),
    MeasureClass("param_norm", "param_norm", +1, (), None, "Jiang eq. 42; notes §1.1"),
    MeasureClass("path_norm", "path_norm", +1, (), None, "Jiang eq. 44; notes §1.1-1.2"),
    MeasureClass("path_norm_over_margin", "path_norm_over_margin", +1, (), None,
                 "Jiang eq. 43; notes §1.1"),
    MeasureClass("bartlett2017_bound", "bartlett2017_bound", +1, (), None,
                 "Bartlett et al. 2017 spectral bound; notes §1.2"),
    MeasureClass("neyshabur2018_bound", "neyshabur2018_bound", +1, (), None,
                 "Neyshabur et al. 2018 spectral-Frobenius bound; notes §1.2"),
    MeasureClass("fro_dist", "fro_dist", +1, (), "init_model", "Jiang eq. 40; notes §1.1"),
    MeasureClass("dist_spec_init", "dist_spec_init", +1, (), "init_model",
                 "Jiang eq. 41; notes §1.1"),
    MeasureClass("spec_init_main", "log_spec_init_main", +1, (), "init_model",
                 "Jiang eq. 29; notes §1.1"),
    MeasureClass("pacbayes_sigma", "pacbayes_sigma", -1, ("pacbayes_flatness",), "pac_bayes",
                 "Jiang eq. 53 (1/σ²); notes §1.1 σ search"),
    MeasureClass("pacbayes_init", "pacbayes_init", +1, (), "pac_bayes",
                 "Jiang eq. 48; notes §1.1"),
    MeasureClass("pacbayes_orig", "pacbayes_orig", +1, (), "pac_bayes",
                 "Jiang eq. 49; notes §1.1"),
    MeasureClass("pacbayes_kl_certificate", "pacbayes_kl_certificate", +1, (), "pac_bayes",
                 "kl-inverted Gaussian-posterior certificate; notes §1.4"),
    MeasureClass("pacbayes_mag_flatness", "pacbayes_mag_flatness", +1, (), "pac_bayes",
                 "Jiang eq. 61 (magnitude-aware 1/σ²); notes §1.1"),
    MeasureClass("pacbayes_mag_init", "pacbayes_mag_init", +1, (), "pac_bayes",
                 "Jiang eq. 56; notes §1.1"),
    MeasureClass("pacbayes_mag_orig", "pacbayes_mag_orig", +1, (), "pac_bayes",
                 "Jiang eq. 57; notes §1.1"),
)  # fmt: skip


def measure_classes(measures: Mapping[str, float], *, strict: bool = False) -> dict[str, float]:
    """Map a measures dict to deduplicated, oriented class values (SPEC E5; notes §1–§2).

    For every class of :data:`MEASURE_CLASSES` whose source key is in ``measures``, the value is
    ``sign · measures[key]``: larger always predicts a larger robust gap. Rank-duplicates of the
    key and the :data:`NON_MEASURE_KEYS` are dropped. Classes whose key is missing (no
    ``init_model``, no PAC-Bayes search, or a non-finite value that ``model_complexity``
    dropped) are absent.

    Parameters
    ----------
    measures : mapping
        Output of :func:`model_complexity` (or ``complexity_measures``).
    strict : bool
        Raise ``ValueError`` on a key that is neither a class key, a duplicate nor a non-measure
        (default: ignore it with a debug log).

    Returns
    -------
    dict
        Class name → oriented value, in the order of :data:`MEASURE_CLASSES`.
    """
    if not isinstance(measures, Mapping):
        raise TypeError(f"measures must be a mapping of name -> value, got {type(measures)}")
    known = set(NON_MEASURE_KEYS)
    for c in MEASURE_CLASSES:
        known.add(c.key)
        known.update(c.duplicates)
    unknown = sorted(set(measures) - known)
    if unknown:
        if strict:
            raise ValueError(f"measures has keys outside every measure class: {unknown}")
        logger.debug("keys outside every measure class ignored: %s", unknown)
    out: dict[str, float] = {}
    for c in MEASURE_CLASSES:
        if c.key in measures:
            out[c.name] = c.sign * float(measures[c.key])
    return out


def initial_model(config: Any, *, device: str = "cpu") -> Any:
    """Rebuild the model of a training run at initialization, for distance-from-init measures.

    ``empirics.trainers`` seeds torch with ``config.seed`` and builds the model before any other
    torch draw (data loading and label noise use their own generators), so the same seed and
    ``build_model`` call give the run's exact initial weights. The caller's torch RNG state is
    left unchanged.

    Parameters
    ----------
    config : robmem.empirics.config.TrainConfig
    device : str
    """
    import torch

    from robmem.empirics.config import TrainConfig
    from robmem.empirics.trainers import build_run_model, prepare_data

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    data = prepare_data(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_run_model(config, data)
    return model.to(device).eval()


def model_complexity(
    model: Any, x: Any, y: Any, init_model: Any | None = None, **kwargs: Any
) -> dict[str, float]:
    """Complexity measures of one trained model (delegates to ``robmem.empirics.measures``).

    Parameters
    ----------
    model : torch.nn.Module
    x, y : torch.Tensor
        Training data (the measures that need margins use them).
    init_model : torch.nn.Module, optional
        The same architecture at initialization (e.g. :func:`initial_model` of the run's
        config). Without it the distance-from-init classes (``fro_dist``, ``dist_spec_init``,
        ``spec_init_main``) are missing and the PAC-Bayes prior is centred at 0 — pass it for
        E5 (``notes/verdict-audit.md`` §2).
    **kwargs
        Passed to ``complexity_measures``.

    Returns
    -------
    dict
        Measure name → value (finite floats only; non-finite values are dropped with a log).
    """
    from robmem.empirics.measures import complexity_measures

    if init_model is not None:
        if type(init_model) is not type(model):
            raise TypeError(
                f"init_model must have the type of model ({type(model).__name__}), "
                f"got {type(init_model).__name__}"
            )
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        init_shapes = {k: tuple(v.shape) for k, v in init_model.state_dict().items()}
        if shapes != init_shapes:
            raise ValueError("init_model must have the same architecture (state-dict shapes)")
    raw = complexity_measures(model, x, y, init_model=init_model, **kwargs)
    out: dict[str, float] = {}
    for name, value in raw.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[str(name)] = v
        else:
            logger.warning("measure %s is not finite (%r); dropped", name, value)
    return out
