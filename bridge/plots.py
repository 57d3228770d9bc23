"""Bound-vs-measurement figures of the report (SPEC B1-B4, E1-E6), matplotlib Agg backend.

Each function writes one PNG and returns the :class:`robmem.bridge.registry.Figure` (file name and
caption). Captions always name the data, model, ε, seeds and tier (via :class:`Setup`); axes
carry units ("nats" for cross-entropy, "%" for accuracies, "pixel units, [0,1] scale" for ε).
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from robmem.bridge.registry import Figure
from robmem.bridge.stats import Estimate

#: Resolution of the PNG files (dots per inch): legible in the HTML at 100 % zoom.
DPI: int = 110
EPS_LABEL = "ℓ∞ radius ε (pixel units, [0,1] scale)"
#: Smallest value drawn on a log axis (a non-positive measured gap is drawn there).
LOG_FLOOR: float = 1e-3


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Setup:
    """The experimental setup a caption must state."""

    data: str
    model: str
    eps: str
    seeds: str
    tier: str

    def caption(self) -> str:
        return (
            f"Data: {self.data}. Model: {self.model}. ε: {self.eps}. Seeds: {self.seeds}. "
            f"Tier: {self.tier}."
        )


def _save(fig, figures_dir: pathlib.Path, filename: str, text: str, setup: Setup) -> Figure:
    if not filename.endswith(".png") or "/" in filename:
        raise ValueError(f"filename must be a bare name ending in .png, got {filename!r}")
    fig.tight_layout()
    fig.savefig(pathlib.Path(figures_dir) / filename, dpi=DPI)
    _plt().close(fig)
    return Figure(filename=filename, caption=f"{text} {setup.caption()}")


def _clip_percent(ax, ylabel: str) -> None:
    """Accuracy axes show 0-100 %: a t-interval of few seeds can reach past them."""
    if "(%)" in ylabel:
        ax.set_ylim(-2.0, 105.0)


def _epoch_colours(n: int):
    plt = _plt()
    cmap = plt.get_cmap("viridis")
    return [cmap(k / max(n - 1, 1)) for k in range(n)]


def plot_vacuity(
    labels: Sequence[str],
    measured_gap: Sequence[float],
    bound: Sequence[float],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
    *,
    bound_name: str = "VC bound √(VCdim/N)",
) -> Figure:
    """B2: clean generalization gap vs the clean / VC bound, log scale, with the vacuity line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = np.arange(len(labels))
    gap = np.maximum(np.asarray(measured_gap, dtype=float), 1e-4)
    ax.bar(x - 0.2, gap, width=0.4, color="C0", label="measured clean gap (0-1 error)")
    ax.bar(x + 0.2, bound, width=0.4, color="C1", label=bound_name)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="vacuous above 1")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("test − train 0-1 error (fraction, log scale)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    text = (
        "B2: clean generalization gap against the clean / VC bound ([P1] Thm 6.2 with "
        "VCdim = W·L·log2 W, Bartlett et al. 2019, constant 1); gaps below 1e-4 are drawn "
        "at 1e-4."
    )
    return _save(fig, figures_dir, filename, text, setup)


def plot_measures_vs_gap(
    noise_rates: Sequence[float],
    gaps: Sequence[float],
    measures: Mapping[str, Sequence[float]],
    taus: Mapping[str, float],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
) -> Figure:
    """B4/E5: each complexity measure (normalized to [0,1]) and the robust gap vs noise rate."""
    plt = _plt()
    # measures that are constant over the family (τ undefined) carry no ranking information
    taus = {n: t for n, t in taus.items() if t is not None and math.isfinite(t)}
    measures = {n: v for n, v in measures.items() if n in taus}
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.2), gridspec_kw={"width_ratios": [1.3, 1]})
    ax = axes[0]
    for name, vals in measures.items():
        v = np.asarray(vals, dtype=float)
        lo, hi = np.nanmin(v), np.nanmax(v)
        norm = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
        tau = taus.get(name, float("nan"))
        ax.plot(noise_rates, norm, "o-", ms=3, label=f"{name} (τ={tau:.2f})")
    g = np.asarray(gaps, dtype=float)
    gn = (g - g.min()) / (np.ptp(g) or 1.0)
    ax.plot(noise_rates, gn, "k-", lw=2.5, label="robust gap")
    ax.set_xlabel("label-noise rate (fraction of labels redrawn)")
    ax.set_ylabel("min-max normalized value (unitless)")
    ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    ax.grid(alpha=0.3)
    bx = axes[1]
    names = list(taus)
    vals = [taus[n] if math.isfinite(taus[n]) else 0.0 for n in names]
    bx.barh(names, vals, color=["C2" if v >= 0.6 else "C7" for v in vals])
    bx.axvline(0.6, color="k", ls="--", lw=1)
    bx.set_xlim(-1, 1)
    bx.set_xlabel("Kendall τ with the robust gap (unitless)")
    bx.tick_params(axis="y", labelsize=7)
    text = (
        "B4/E5: complexity measures of PGD-AT models against the robust generalization gap "
        "(robust train − robust test accuracy) across label-noise rates; right: Kendall τ, "
        "dashed line = tracking threshold 0.6; measures constant over the family are omitted."
    )
    return _save(fig, figures_dir, filename, text, setup)


# ---------------------------------------------------------------- spread across seeds
def plot_bars_ci(
    groups: Mapping[str, Mapping[str, Estimate]],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
    *,
    title_text: str,
    ylabel: str,
    chance: float | None = None,
) -> Figure:
    """Grouped bars of means with 95 % CI error bars and the per-seed values as dots.

    ``groups[group][bar] = Estimate`` (:class:`robmem.bridge.stats.Estimate`); unbounded intervals
    are drawn without a bar.
    """
    plt = _plt()
    metrics: list[str] = []
    for bars in groups.values():
        metrics.extend(m for m in bars if m not in metrics)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(metrics) * max(len(groups), 1)), 4.4))
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(metrics))
    for k, (group, bars) in enumerate(groups.items()):
        pos = x + (k - (len(groups) - 1) / 2) * width
        means, errs = [], [[], []]
        for m in metrics:
            est = bars.get(m)
            mean = float(est.mean) if est is not None else float("nan")
            means.append(mean)
            lo = est.low if est is not None and math.isfinite(est.low) else mean
            hi = est.high if est is not None and math.isfinite(est.high) else mean
            errs[0].append(max(mean - lo, 0.0))
            errs[1].append(max(hi - mean, 0.0))
        ax.bar(pos, means, width, yerr=errs, capsize=3, label=group, alpha=0.8)
        for p, m in zip(pos, metrics, strict=True):
            est = bars.get(m)
            if est is not None and est.values:
                vals = list(est.values)
                ax.plot([p] * len(vals), vals, "k.", ms=3)
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    ax.set_xticks(x, metrics, fontsize=8)
    ax.set_ylabel(ylabel)
    _clip_percent(ax, ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return _save(
        fig,
        figures_dir,
        filename,
        title_text + " Bars: mean, whiskers: 95 % CI, dots: seeds.",
        setup,
    )


def plot_curves_ci(
    series: Mapping[str, tuple[Sequence[float], Sequence[Sequence[float]]]],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
    *,
    title_text: str,
    ylabel: str,
    xlabel: str = "epoch",
    log_y: bool = False,
    chance: float | None = None,
    vlines: Sequence[float] = (),
) -> Figure:
    """Mean curve with a 95 % t-interval band over seeds: ``series[label] = (x, [y per seed])``."""
    from robmem.bridge.stats import mean_ci

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, (xs, ys) in series.items():
        ys = [list(y) for y in ys if len(y) == len(xs)]
        if not ys:
            continue
        cols = list(zip(*ys, strict=True))
        ests = [mean_ci([v for v in c if math.isfinite(v)]) for c in cols]
        mean = [e.mean for e in ests]
        lo = [e.low if math.isfinite(e.low) else e.mean for e in ests]
        hi = [e.high if math.isfinite(e.high) else e.mean for e in ests]
        (line,) = ax.plot(xs, mean, "-", lw=1.4, label=f"{label} (n={len(ys)})")
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    for v in vlines:
        ax.axvline(v, color="grey", ls="--", lw=0.8)
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _clip_percent(ax, ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(
        fig, figures_dir, filename, title_text + " Line: mean over seeds, band: 95 % CI.", setup
    )


def plot_scatter(
    groups: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
    *,
    title_text: str,
    xlabel: str,
    ylabel: str,
) -> Figure:
    """One point per model: ``groups[label] = (xs, ys)`` (e.g. by noise rate)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    colours = _epoch_colours(len(groups))
    for colour, (label, (xs, ys)) in zip(colours, groups.items(), strict=True):
        ax.scatter(xs, ys, color=colour, label=label, s=22)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, figures_dir, filename, title_text, setup)


#: Cell colours of :func:`plot_phase_diagram`, by verdict word (robmem.bridge.verdicts).
PHASE_COLOURS: dict[str, str] = {
    "reproduced": "#8fd18f",
    "not reproduced": "#f19c9c",
    "inconclusive": "#f5d97a",
    "not applicable at this tier": "#d0d0d0",
}


def plot_phase_diagram(
    rows: Sequence[str],
    columns: Sequence[str],
    verdicts: Mapping[tuple[str, str], str],
    annotations: Mapping[tuple[str, str], str],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
    *,
    title_text: str,
) -> Figure:
    """A grid of cells (``rows`` × ``columns``), each coloured by its verdict and annotated.

    ``verdicts[(row, column)]`` is a verdict word; ``annotations[(row, column)]`` a short text
    (e.g. shares of seeds with an outcome). Cells missing from ``verdicts`` are left blank.
    """
    if not rows or not columns:
        raise ValueError("rows and columns must be non-empty")
    unknown = [k for k in verdicts if k[0] not in rows or k[1] not in columns]
    if unknown:
        raise ValueError(f"verdicts has cells outside rows × columns: {unknown}")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2.6 * len(columns) + 2.2, 1.15 * len(rows) + 1.2))
    for i, row in enumerate(rows):
        for j, col in enumerate(columns):
            verdict = verdicts.get((row, col))
            colour = PHASE_COLOURS.get(verdict or "", "white")
            ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="k"))
            text = (verdict or "not run") + "\n" + annotations.get((row, col), "")
            ax.text(j + 0.5, i + 0.5, text.strip(), ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(columns))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([j + 0.5 for j in range(len(columns))], list(columns))
    ax.set_yticks([i + 0.5 for i in range(len(rows))], list(rows))
    ax.tick_params(length=0)
    return _save(fig, figures_dir, filename, title_text, setup)
