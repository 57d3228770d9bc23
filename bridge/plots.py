"""Bound-vs-measurement figures of the report (SPEC B1-B4, E1-E6), matplotlib Agg backend.

Each function writes one PNG and returns the :class:`bridge.registry.Figure` (file name and
caption). Captions always name the data, model, ε, seeds and tier (via :class:`Setup`); axes
carry units ("nats" for cross-entropy, "%" for accuracies, "pixel units, [0,1] scale" for ε).
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bridge.registry import Figure

#: Resolution of the PNG files (dots per inch): legible in the HTML at 100 % zoom.
DPI: int = 110
EPS_LABEL = "ℓ∞ radius ε (pixel units, [0,1] scale)"
LOSS_UNIT = "nats"
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


def _epoch_colours(n: int):
    plt = _plt()
    cmap = plt.get_cmap("viridis")
    return [cmap(k / max(n - 1, 1)) for k in range(n)]


def plot_flatness_vs_eps(
    curves: Mapping[int, Mapping[str, Sequence[float]]],
    eps: Sequence[float],
    train_eps: float,
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
) -> Figure:
    """E2: mean max-gradient-norm and loss change vs ε, one curve per epoch, train vs test.

    ``curves[epoch][key]`` with keys ``train_grad``, ``test_grad``, ``train_change``,
    ``test_change`` (lists over ``eps``).
    """
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    epochs = sorted(curves)
    colours = _epoch_colours(len(epochs))
    panels = [
        ("train_grad", "train: max ‖∇ₓL‖₁ in ball (nats per pixel unit)"),
        ("test_grad", "test: max ‖∇ₓL‖₁ in ball (nats per pixel unit)"),
        ("train_change", f"train: max loss change in ball ({LOSS_UNIT})"),
        ("test_change", f"test: max loss change in ball ({LOSS_UNIT})"),
    ]
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for colour, epoch in zip(colours, epochs, strict=True):
            ax.plot(eps, curves[epoch][key], marker="o", ms=3, color=colour, label=f"epoch {epoch}")
        ax.axvline(train_eps, color="k", ls="--", lw=1, label="training ε")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(title.split(": ")[1], fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel(EPS_LABEL)
    axes[0, 0].legend(fontsize=7)
    text = (
        "E2 (input loss landscape, [P1] Figs 2-3): mean over samples of the PGD lower estimate "
        "of max_{‖ξ‖∞≤ε} ‖∇ₓL(x+ξ)‖₁ (top) and of max_{‖ξ‖∞≤ε} L(x+ξ)−L(x) (bottom), train "
        "(left) vs test (right), one curve per epoch; dashed line = training radius."
    )
    return _save(fig, figures_dir, filename, text, setup)


def plot_gap_vs_bounds(
    epochs: Sequence[int],
    robust_gap: Sequence[float],
    first_order: Sequence[float],
    grad_term: Sequence[float],
    global_bound: Sequence[float],
    per_eps: Mapping[str, Sequence[float]] | None,
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
    *,
    measured_change: Sequence[float] | None = None,
) -> Figure:
    """B1: measured robust gap vs the global-flatness and first-order bounds over epochs.

    Left: per epoch, the measured robust loss gap (robust test − robust train loss), the
    Thm 6.3 shape ``N^{-1/(d+2)}·global flatness`` (C = 1, C(D,L) = 0), the exact first-order
    bound ``ε·mean max ‖∇ₓL‖₁`` on the test set (with its measured left side), and the
    gradient-norm term itself on a second axis. Right (optional): the same at the last epoch
    against ε (keys ``eps``, ``change``, ``first_order``).
    """
    plt = _plt()
    ncols = 2 if per_eps else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.8 * ncols, 5.2), squeeze=False)
    ax = axes[0, 0]
    robust_gap = np.maximum(np.asarray(robust_gap, dtype=float), LOG_FLOOR)
    ax.plot(epochs, robust_gap, "o-", color="C3", label="measured robust gap (test − train)")
    if measured_change is not None:
        ax.plot(epochs, measured_change, "s-", color="C2", label="test: mean max loss change")
    ax.plot(epochs, first_order, "^--", color="C0", label="first-order bound ε·E max‖∇ₓL‖₁")
    ax.plot(epochs, global_bound, "v:", color="C1", label="Thm 6.3 shape N^(-1/(d+2))·flatness")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"cross-entropy ({LOSS_UNIT}, log scale)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(epochs, grad_term, "d-", color="grey", alpha=0.6, label="test E max‖∇ₓL‖₁ (right)")
    ax2.set_ylabel("gradient-norm term (nats per pixel unit)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax.set_title("per epoch, at the training ε", fontsize=10)
    if per_eps:
        bx = axes[0, 1]
        bx.plot(
            per_eps["eps"], per_eps["change"], "s-", color="C2", label="test: mean max loss change"
        )
        bx.plot(per_eps["eps"], per_eps["first_order"], "^--", color="C0", label="ε·E max‖∇ₓL‖₁")
        bx.set_xlabel(EPS_LABEL)
        bx.set_ylabel(f"cross-entropy ({LOSS_UNIT})")
        bx.set_title("last epoch, per ε (test set)", fontsize=10)
        bx.grid(alpha=0.3)
        bx.legend(fontsize=7)
    text = (
        "B1: measured robust generalization gap against [P1] Thm 6.3 (global flatness; the "
        "hidden constants are set to C = 1, C(D,L) = 0, so it is a shape, not a certified "
        "bound) and the exact first-order bound (mean-value theorem), whose gradient term is "
        "a PGD lower estimate of the supremum. Left axis log scale (values below "
        f"{LOG_FLOOR:g} drawn at {LOG_FLOOR:g})."
    )
    return _save(fig, figures_dir, filename, text, setup)


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


def plot_construction_vs_at(
    rows: Sequence[Mapping[str, float]],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
) -> Figure:
    """B3: certified robust train / clean test / robust test accuracy, construction vs AT.

    ``rows``: dicts with ``name`` and the three accuracies in percent (None = not measured).
    """
    plt = _plt()
    metrics = [
        ("robust_train_acc", "robust train"),
        ("clean_test_acc", "clean test"),
        ("robust_test_acc", "robust test (PGD)"),
    ]
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(metrics))
    for k, row in enumerate(rows):
        vals = [row.get(m) for m, _ in metrics]
        heights = [v if v is not None else 0.0 for v in vals]
        bars = ax.bar(x + (k - (len(rows) - 1) / 2) * width, heights, width, label=row["name"])
        for bar, v in zip(bars, vals, strict=True):
            label = "n/a" if v is None else f"{v:.0f}"
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height() + 1,
                label,
                ha="center",
                fontsize=7,
            )
    ax.set_xticks(x, [name for _, name in metrics])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 110)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax.grid(alpha=0.3, axis="y")
    text = (
        "B3: the T1 robust-memorization construction (certified robust train accuracy by "
        "interval arithmetic) next to an adversarially trained network, on the same data; "
        "robust test accuracy by PGD (an upper estimate of true robust accuracy)."
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


def plot_training_curves(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
    *,
    title_text: str,
    ylabel: str,
    xlabel: str = "epoch",
    log_y: bool = False,
    chance: float | None = None,
) -> Figure:
    """Generic curves (E3 accuracies, E4 gradient norms, E6 robust test accuracy).

    ``series[label] = {"x": [...], "y": [...]}``.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, xy in series.items():
        ax.plot(xy["x"], xy["y"], "-", lw=1.4, label=label)
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, figures_dir, filename, title_text, setup)


def plot_accuracy_table(
    rows: Sequence[Mapping[str, float]],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
) -> Figure:
    """E1: the four accuracies (robust test/train, clean test/train) of standard vs AT runs."""
    plt = _plt()
    keys = [
        ("robust_test", "robust test"),
        ("robust_train", "robust train"),
        ("clean_test", "clean test"),
        ("clean_train", "clean train"),
    ]
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(keys))
    for k, row in enumerate(rows):
        vals = [float(row[key]) for key, _ in keys]
        bars = ax.bar(x + (k - (len(rows) - 1) / 2) * width, vals, width, label=str(row["name"]))
        for bar, v in zip(bars, vals, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 1, f"{v:.1f}", ha="center", fontsize=7)
    ax.set_xticks(x, [name for _, name in keys])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 112)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4)
    ax.grid(alpha=0.3, axis="y")
    text = (
        "E1 ([P1] Table 1 protocol): robust (PGD) and clean accuracy on train and test for "
        "standard training vs PGD-AT."
    )
    return _save(fig, figures_dir, filename, text, setup)


# ---------------------------------------------------------------- spread across seeds
def plot_bars_ci(
    groups: Mapping[str, Mapping[str, object]],
    figures_dir: pathlib.Path,
    filename: str,
    setup: Setup,
    *,
    title_text: str,
    ylabel: str,
    chance: float | None = None,
) -> Figure:
    """Grouped bars of means with 95 % CI error bars and the per-seed values as dots.

    ``groups[group][bar] = Estimate`` (:class:`bridge.stats.Estimate`); unbounded intervals
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
            mean = float(est.mean) if est is not None else float("nan")  # type: ignore[attr-defined]
            means.append(mean)
            lo = est.low if est is not None and math.isfinite(est.low) else mean  # type: ignore[attr-defined]
            hi = est.high if est is not None and math.isfinite(est.high) else mean  # type: ignore[attr-defined]
            errs[0].append(max(mean - lo, 0.0))
            errs[1].append(max(hi - mean, 0.0))
        ax.bar(pos, means, width, yerr=errs, capsize=3, label=group, alpha=0.8)
        for p, m in zip(pos, metrics, strict=True):
            est = bars.get(m)
            if est is not None and est.values:  # type: ignore[attr-defined]
                vals = list(est.values)  # type: ignore[attr-defined]
                ax.plot([p] * len(vals), vals, "k.", ms=3)
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    ax.set_xticks(x, metrics, fontsize=8)
    ax.set_ylabel(ylabel)
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
    from bridge.stats import mean_ci

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
