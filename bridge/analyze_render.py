"""Output of ``robmem analyze``: HTML, Markdown, JSON, CSV and figures (issue 15).

The same files and figure style as ``robmem report`` (:mod:`robmem.bridge.report`): a
self-contained ``index.html`` (figures inlined), its Markdown twin ``report.md``,
``report.json`` with every number and interval, ``numbers.csv`` (section, model, number,
value), ``per_example.csv`` (robust loss and margin of every analysed example) and
``figures/*.png``. One section per measurement (E1, E2, B1, E5, B2, per-example), each with
the command that re-creates it. Several analyses (the saved epochs of one run) share one
page: the sections show the last, and B1 adds the per-epoch curve.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
import logging
import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robmem.bridge import render
from robmem.bridge.analyze import Analysis
from robmem.bridge.plots import DPI, EPS_LABEL, LOG_FLOOR, _epoch_colours, _plt
from robmem.bridge.render import FIGURES_DIR, format_number, json_safe
from robmem.bridge.stats import Estimate

logger = logging.getLogger(__name__)

MARKER_FILE = ".robmem-analysis.json"
MARKER_KIND = "robmem-analysis"
HTML_FILE = "index.html"
MARKDOWN_FILE = "report.md"
JSON_FILE = "report.json"
CSV_FILE = "numbers.csv"
PER_EXAMPLE_FILE = "per_example.csv"


@dataclass
class Section:
    """One measurement's part of the page."""

    id: str
    title: str
    what: str
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)
    notes: list[str] = field(default_factory=list)


def ci_text(est: Estimate, scale: float = 1.0) -> str:
    """``"12.3 [10.1, 14.5] (n=300, wilson)"``."""
    e = est.scaled(scale) if scale != 1.0 else est
    return (
        f"{format_number(e.mean)} [{format_number(e.low)}, {format_number(e.high)}] "
        f"(n={e.n}, {e.method})"
    )


# ============================================================================ output folder
def check_output_dir(out_dir: str | pathlib.Path, *, force: bool = False) -> dict[str, Any] | None:
    """:func:`bridge.render.check_output_dir` for an analysis folder (refused before any work)."""
    return render.check_output_dir(out_dir, MARKER_FILE, MARKER_KIND, force=force)


# ============================================================================ figures
def _caption(a: Analysis, text: str) -> str:
    return (
        f"{text} Data: {a.data} ({a.train.n} train / {a.test.n} test). Model: {a.model}. "
        f"ε: {a.attack.describe()}. Seeds: attack {list(a.attack.seeds)}, landscape "
        f"{a.settings['landscape_seed']}, data {a.settings['data_seed']}. Tier: user model."
    )


def _save(fig: Any, figures: pathlib.Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(figures / name, dpi=DPI)
    _plt().close(fig)
    return name


def _err(ests: Sequence[Estimate], scale: float = 1.0) -> np.ndarray:
    lo = [max(e.mean - e.low, 0.0) * scale if math.isfinite(e.low) else 0.0 for e in ests]
    hi = [max(e.high - e.mean, 0.0) * scale if math.isfinite(e.high) else 0.0 for e in ests]
    return np.asarray([lo, hi])


def figure_e1(a: Analysis, figures: pathlib.Path) -> tuple[str, str]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ests = [a.test.robust_acc, a.train.robust_acc, a.test.clean_acc, a.train.clean_acc]
    names = ["robust test", "robust train", "clean test", "clean train"]
    ax.bar(names, [100 * e.mean for e in ests], yerr=_err(ests, 100), capsize=4,
           color=["C3", "C1", "C0", "C2"])  # fmt: skip
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, figures, "e1_accuracies.png"), _caption(
        a, "E1 ([P1] Table 1): the four accuracies with 95 % Wilson intervals over the examples."
    )


def figure_e2(analyses: Sequence[Analysis], figures: pathlib.Path) -> tuple[str, str]:
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    colours = _epoch_colours(len(analyses))
    last = analyses[-1]
    panels = [
        ("train", "grad_norm", "train: max ‖∇ₓL‖₁ in ball (nats per pixel unit)"),
        ("test", "grad_norm", "test: max ‖∇ₓL‖₁ in ball (nats per pixel unit)"),
        ("train", "loss_change", "train: max loss change in ball (nats)"),
        ("test", "loss_change", "test: max loss change in ball (nats)"),
    ]
    for ax, (split, key, title) in zip(axes.flat, panels, strict=True):
        for a, colour in zip(analyses, colours, strict=True):
            c = a.flatness[split]
            ests = getattr(c, key)
            mean = np.asarray([e.mean for e in ests])
            lo = np.asarray([e.low if math.isfinite(e.low) else e.mean for e in ests])
            hi = np.asarray([e.high if math.isfinite(e.high) else e.mean for e in ests])
            ax.plot(c.eps, mean, marker="o", ms=3, color=colour, label=a.label)
            ax.fill_between(c.eps, lo, hi, color=colour, alpha=0.2)
        ax.axvline(last.attack.eps, color="k", ls="--", lw=1, label="analysis ε")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel(EPS_LABEL)
    axes[0, 0].legend(fontsize=7)
    return _save(fig, figures, "e2_flatness_vs_eps.png"), _caption(
        last,
        "E2 (input loss landscape, [P1] Figs 2-3): mean over samples of the PGD lower estimate "
        "of max_{‖ξ‖∞≤ε} ‖∇ₓL(x+ξ)‖₁ (top) and of max_{‖ξ‖∞≤ε} L(x+ξ)−L(x) (bottom), train "
        "(left) vs test (right); bands = 95 % t intervals over the samples; dashed line = "
        "analysis radius.",
    )


def figure_b1(analyses: Sequence[Analysis], figures: pathlib.Path) -> tuple[str, str]:
    plt = _plt()
    last = analyses[-1]
    per_epoch = len(analyses) >= 2
    fig, axes = plt.subplots(1, 2, figsize=(11.6, 5.2), squeeze=False)
    ax = axes[0, 0]
    if per_epoch:
        xs = [a.epoch if a.epoch is not None else k for k, a in enumerate(analyses)]
        xlabel = "epoch"
        title = "per saved epoch, at the analysis ε"
    else:
        xs = [0]
        xlabel = last.label
        title = "at the analysis ε"
    bs = [a.b1 for a in analyses]
    gap = [max(b.robust_loss_gap.mean, LOG_FLOOR) for b in bs]
    ax.errorbar(xs, gap, yerr=_err([b.robust_loss_gap for b in bs]), fmt="o-", color="C3",
                capsize=3, label="measured robust loss gap (test − train)")  # fmt: skip
    ax.errorbar(xs, [max(b.test_loss_change.mean, LOG_FLOOR) for b in bs],
                yerr=_err([b.test_loss_change for b in bs]), fmt="s-", color="C2", capsize=3,
                label="test: mean max loss change")  # fmt: skip
    ax.errorbar(xs, [max(b.first_order_bound, LOG_FLOOR) for b in bs],
                yerr=_err([b.first_order_bound_ci for b in bs]), fmt="^--", color="C0",
                capsize=3, label="first-order bound ε·E max‖∇ₓL‖₁")  # fmt: skip
    ax.plot(xs, [max(b.thm63_shape, LOG_FLOOR) for b in bs], "v:", color="C1",
            label="Thm 6.3 shape N^(-1/(d+2))·flatness")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cross-entropy (nats, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    bx = axes[0, 1]
    t = last.flatness["test"]
    bx.plot(t.eps, [e.mean for e in t.loss_change], "s-", color="C2",
            label="test: mean max loss change")  # fmt: skip
    bx.plot(t.eps, [x * e.mean for x, e in zip(t.eps, t.grad_norm, strict=True)], "^--",
            color="C0", label="ε·E max‖∇ₓL‖₁")  # fmt: skip
    bx.set_xlabel(EPS_LABEL)
    bx.set_ylabel("cross-entropy (nats)")
    bx.set_title(f"{last.label}, per ε (test set)", fontsize=10)
    bx.grid(alpha=0.3)
    bx.legend(fontsize=7)
    return _save(fig, figures, "b1_gap_vs_bounds.png"), _caption(
        last,
        "B1: measured robust generalization gap against [P1] Thm 6.3 (global flatness; hidden "
        "constants set to C = 1, C(D,L) = 0, so a shape, not a certified bound) and the exact "
        "first-order bound (mean-value theorem), whose gradient term is a PGD lower estimate "
        f"of the supremum. Error bars: 95 % intervals. Left axis log scale (values below "
        f"{LOG_FLOOR:g} drawn at {LOG_FLOOR:g}).",
    )


def figure_b2(a: Analysis, figures: pathlib.Path) -> tuple[str, str]:
    plt = _plt()
    b = a.b2
    assert b is not None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    gap = max(b.measured_clean_gap.mean, 1e-4)
    ax.bar([0], [gap], width=0.4, color="C0", label="measured clean gap (0-1 error)",
           yerr=_err([b.measured_clean_gap]), capsize=4)  # fmt: skip
    ax.bar([0.5], [b.vc_bound], width=0.4, color="C1", label="VC bound (BHLM VCdim, Δ = 0.05)")
    ax.axhline(1.0, color="k", ls="--", lw=1, label="vacuous above 1")
    ax.set_yscale("log")
    ax.set_xticks([0, 0.5], ["measured", "bound"])
    ax.set_ylabel("test − train 0-1 error (fraction, log scale)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, figures, "b2_clean_gap_vs_vc.png"), _caption(
        a,
        "B2: clean generalization gap (Newcombe 95 % interval) against the VC bound "
        "√(2 log Π(N)/N) + √(log(1/Δ)/(2N)) with the Bartlett-Harvey-Liaw-Mehrabian VC "
        "dimension of the called layers; gaps below 1e-4 drawn at 1e-4.",
    )


def figure_per_example(a: Analysis, figures: pathlib.Path) -> tuple[str, str]:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    for s, colour in ((a.train, "C1"), (a.test, "C3")):
        pe = s.per_example
        axes[0].hist(pe.robust_loss, bins=40, alpha=0.55, color=colour, label=s.split)
        axes[1].hist(pe.robust_margin, bins=40, alpha=0.55, color=colour, label=s.split)
    axes[0].set_xlabel("robust cross-entropy per example (nats)")
    axes[1].set_xlabel("robust margin z_y − max_{k≠y} z_k (logit units; < 0: fooled)")
    axes[1].axvline(0.0, color="k", ls="--", lw=1)
    for ax in axes:
        ax.set_ylabel("examples")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, figures, "per_example_robust_loss.png"), _caption(
        a,
        "Per-example robust loss and margin ([P2] §4) at the per-sample worst attack point, "
        "train vs test.",
    )


# ============================================================================ sections
def _est_row(name: str, est: Estimate, unit: str = "", scale: float = 1.0) -> dict[str, Any]:
    e = est.scaled(scale) if scale != 1.0 else est
    return {
        "quantity": name,
        "value": e.mean,
        "ci_low": e.low,
        "ci_high": e.high,
        "n": e.n,
        "method": e.method,
        "unit": unit,
    }


def build_sections(analyses: Sequence[Analysis], figures: pathlib.Path) -> list[Section]:
    """The page's sections for one analysis or the saved epochs of one run (last shown)."""
    a = analyses[-1]
    sections: list[Section] = []
    multi = len(analyses) >= 2

    # ---- E1
    sec = Section(
        "E1",
        "Clean and robust accuracy and loss, train vs test",
        "[P1] Table 1: adversarial training gives a large robust gap and a small clean gap.",
        f"robust {ci_text(a.train.robust_acc, 100)} % train vs "
        f"{ci_text(a.test.robust_acc, 100)} % test; clean "
        f"{ci_text(a.train.clean_acc, 100)} % vs {ci_text(a.test.clean_acc, 100)} %.",
    )
    for s in (a.train, a.test):
        sec.table.append(_est_row(f"{s.split} clean accuracy", s.clean_acc, "%", 100))
        sec.table.append(_est_row(f"{s.split} robust accuracy", s.robust_acc, "%", 100))
        sec.table.append(_est_row(f"{s.split} clean loss", s.clean_loss, "nats"))
        sec.table.append(_est_row(f"{s.split} robust loss", s.robust_loss, "nats"))
        if len(a.attack.seeds) > 1:
            sec.table.append(
                _est_row(f"{s.split} robust accuracy per PGD seed", s.robust_acc_per_seed, "%", 100)
            )
        for name, est in s.attack_acc.items():
            sec.table.append(_est_row(f"{s.split} robust accuracy, {name} alone", est, "%", 100))
    if b1 := a.b1:
        sec.table.append(
            _est_row("robust accuracy gap (train − test)", b1.robust_acc_gap, "pts", 100)
        )
    if b2 := a.b2:
        sec.table.append(
            _est_row("clean accuracy gap (train − test)", b2.measured_clean_gap, "pts", 100)
        )
    sec.figures.append(figure_e1(a, figures))
    if multi:
        for x in analyses:
            sec.notes.append(
                f"{x.label}: robust train {ci_text(x.train.robust_acc, 100)} %, robust test "
                f"{ci_text(x.test.robust_acc, 100)} %, clean train "
                f"{format_number(100 * x.train.clean_acc.mean)} %, clean test "
                f"{format_number(100 * x.test.clean_acc.mean)} %."
            )
    sec.notes.append(
        "Robust accuracy counts an example as robust only if no attack fools it (per-sample "
        "worst case over seeds, restarts and AutoAttack when run): an upper estimate."
    )
    sections.append(sec)

    # ---- E2
    if a.flatness:
        sec = Section(
            "E2",
            "Input loss landscape over ε, train and test",
            "[P1] §4 Figs 2-4: on training points the landscape is flat up to the training "
            "radius and rises after it; on test points (global flatness) it is not flat.",
            "",
        )
        k = min(
            range(len(a.flatness["test"].eps)),
            key=lambda i: abs(a.flatness["test"].eps[i] - a.attack.eps),
        )
        g_tr, g_te = a.flatness["train"].grad_norm[k], a.flatness["test"].grad_norm[k]
        sec.summary = (
            f"at ε = {a.attack.eps:g}: train E max‖∇ₓL‖₁ = {ci_text(g_tr)}, test = {ci_text(g_te)}."
        )
        for split, c in a.flatness.items():
            for x, g, lc in zip(c.eps, c.grad_norm, c.loss_change, strict=True):
                sec.table.append(
                    {"split": split, "eps": x, "grad_norm_mean": g.mean, "grad_ci_low": g.low,
                     "grad_ci_high": g.high, "loss_change_mean": lc.mean,
                     "loss_change_ci_low": lc.low, "loss_change_ci_high": lc.high, "n": g.n}
                )  # fmt: skip
        sec.figures.append(figure_e2(analyses, figures))
        sec.notes.append(
            "Each value is the mean over samples of a lower estimate (PGD ascent with "
            f"{a.flatness['train'].settings.get('steps')} steps) of the maximum in the ball."
        )
        sections.append(sec)

    # ---- B1
    if a.b1 is not None:
        b = a.b1
        sec = Section(
            "B1",
            "Robust gap vs global-flatness and first-order bounds",
            "[P1] Thm 6.3: gap ≲ N^(−1/(d+2))·(E_D max ‖∇ₓL‖₁ + C/√Δ); the exact first-order "
            "form bounds the loss change in the ball by ε·max ‖∇ₓL‖₁.",
            f"robust loss gap {ci_text(b.robust_loss_gap)} nats; first-order bound "
            f"{format_number(b.first_order_bound)} (test loss change {ci_text(b.test_loss_change)}"
            f"); Thm 6.3 shape {format_number(b.thm63_shape)}; measured first-order relation "
            f"{'holds' if b.first_order_relation_holds else 'fails'} at every radius.",
        )
        sec.numbers = {
            "eps": b.eps,
            "rate N^(-1/(d+2))": b.rate,
            "first_order_bound": b.first_order_bound,
            "thm63_shape": b.thm63_shape,
            "first_order_relation_holds": b.first_order_relation_holds,
            "max_first_order_excess": b.max_first_order_excess,
        }
        sec.table = [
            _est_row("robust loss gap (test − train)", b.robust_loss_gap, "nats"),
            _est_row("robust accuracy gap (train − test)", b.robust_acc_gap, "pts", 100),
            _est_row(
                "test robust − clean loss (attack points)", b.test_robust_minus_clean_loss, "nats"
            ),  # fmt: skip
            _est_row("test mean max loss change (landscape)", b.test_loss_change, "nats"),
            _est_row("test global flatness E max‖∇ₓL‖₁", b.test_grad_term, "nats/pixel"),
            _est_row("first-order bound ε·E max‖∇ₓL‖₁", b.first_order_bound_ci, "nats"),
        ]
        if multi:
            for x in analyses:
                xb = x.b1
                assert xb is not None
                unit = (
                    f"nats (first-order {format_number(xb.first_order_bound)}, "
                    f"Thm 6.3 shape {format_number(xb.thm63_shape)})"
                )
                sec.table.append(_est_row(f"per epoch: {x.label}", xb.robust_loss_gap, unit))
        sec.figures.append(figure_b1(analyses, figures))
        sec.notes.append(
            "Thm 6.3 has unknown constants; drawn with C = 1 and C(D,L) = 0. The first-order "
            "bound holds for the true maxima; the gradient term is a lower estimate, so a "
            "violation would mean the estimate is too weak."
        )
        if not multi:
            sec.notes.append(
                "One checkpoint: the per-epoch curve needs several saved epochs (a run folder "
                "keeps last.pt and best.pt; bridge.analyze.epoch_checkpoint_callback keeps more)."
            )
        sections.append(sec)

    # ---- E5
    if a.complexity is not None:
        c = a.complexity
        sec = Section(
            "E5",
            "Complexity measures",
            "[P2]: norm-, margin- and sharpness-based complexity measures (Jiang et al. 2020 "
            "names) of the model; across models most do not track the robust gap.",
            f"{len(c.values)} measures on {c.n} training points (margins at the PGD points)"
            + ("; distances to init included." if c.init_model_given else "; no init model."),
        )
        if multi:
            names = sorted(set.intersection(*(set(x.complexity.values) for x in analyses
                                              if x.complexity is not None)))  # fmt: skip
            for n in names:
                row: dict[str, Any] = {"measure": n}
                for x in analyses:
                    if x.complexity is not None:
                        row[x.label] = x.complexity.values[n]
                sec.table.append(row)
        else:
            sec.table = [{"measure": k, "value": v} for k, v in sorted(c.values.items())]
        sec.notes.append(
            "Deterministic functions of the weights and the n training points (PAC-Bayes σ from "
            "a seeded Monte-Carlo search); no sampling interval is attached."
        )
        sections.append(sec)

    # ---- B2
    if a.b2 is not None:
        b2 = a.b2
        sec = Section(
            "B2",
            "Clean gap vs the VC bound (vacuity)",
            "[P1] §6: the standard bound L_D ≤ L_S + √(Complexity/N) is vacuous for networks "
            "large enough to memorize robustly, although the clean gap is small.",
            f"VC bound {format_number(b2.vc_bound)} ({'vacuous' if b2.vacuous else 'not vacuous'}"
            f"; VCdim ≤ {format_number(b2.vc_dim)}, N = {b2.n_train}) vs measured clean gap "
            f"{ci_text(b2.measured_clean_gap, 100)} pts.",
        )
        sec.numbers = {
            "vc_dim_upper": b2.vc_dim,
            "vc_bound": b2.vc_bound,
            "sqrt_vc_over_n (Thm 6.2 form, C = 1)": b2.sqrt_bound,
            "bound_vacuous": b2.vacuous,
            "n_train": b2.n_train,
        }
        sec.table = [
            {"layer": n, "units": u, "parameters": p}
            for n, u, p in zip(b2.layers, b2.units, b2.layer_params, strict=True)
        ]
        sec.figures.append(figure_b2(a, figures))
        sec.notes.append(
            "VC dimension: Bartlett-Harvey-Liaw-Mehrabian Thm 7 on the Linear/Conv layers in "
            "call order (units = outputs per example, weight-shared parameters counted once; "
            "pooling and skips are treated as a layered piecewise-linear net)."
        )
        sections.append(sec)

    # ---- per example
    sec = Section(
        "PE",
        "Per-example robust loss and margin",
        "[P2] §4: robust overfitting as memorization of hard examples; the per-example robust "
        "loss shows which training points are fitted and how far.",
        "",
    )
    for s in (a.train, a.test):
        pe = s.per_example
        q = np.quantile(pe.robust_loss, [0.1, 0.5, 0.9])
        m = np.quantile(pe.robust_margin, [0.1, 0.5, 0.9])
        sec.table.append(
            {"split": s.split, "n": s.n, "robust_loss_q10": q[0], "robust_loss_median": q[1],
             "robust_loss_q90": q[2], "robust_margin_q10": m[0], "robust_margin_median": m[1],
             "robust_margin_q90": m[2],
             "fraction_margin_below_0": float(np.mean(pe.robust_margin < 0))}
        )  # fmt: skip
    sec.summary = (
        f"median robust loss {format_number(sec.table[0]['robust_loss_median'])} nats (train) vs "
        f"{format_number(sec.table[1]['robust_loss_median'])} (test); every example in "
        f"{PER_EXAMPLE_FILE}."
    )
    sec.figures.append(figure_per_example(a, figures))
    sections.append(sec)

    for sid, reason in a.skipped.items():
        sections.append(Section(sid, "not measured", "", reason))
    return sections


# ============================================================================ rendering
def render_html(meta: dict[str, Any], sections: list[Section], out: pathlib.Path) -> str:
    """The self-contained page (figures inlined)."""
    esc = html.escape
    parts = [
        f"<h1>robmem analyze: <code>{esc(meta['source'])}</code></h1>",
        f"<p>Generated {esc(meta['generated_utc'])} in {meta['wall_s']:.1f} s. Model: "
        f"{esc(meta['model'])}. Data: {esc(meta['data'])}. Threat model: "
        f"{esc(meta['attack'])}. Command: <code>{esc(meta['command'])}</code>. Intervals are "
        "95 %; attack and flatness numbers are lower estimates of the true maxima.</p>",
        "<h2>Sections</h2><table><tr><th>id</th><th>measurement</th><th>summary</th></tr>",
    ]
    for s in sections:
        parts.append(
            f"<tr><td><a href='#{s.id}'>{s.id}</a></td><td>{esc(s.title)}</td>"
            f"<td>{esc(s.summary)}</td></tr>"
        )
    parts.append("</table>")
    parts += render.html_notes(meta["notes"])
    for s in sections:
        parts.append(f"<section id='{s.id}'><h2>{s.id}. {esc(s.title)}</h2>")
        if s.what:
            parts.append(f"<p class='crit'><b>What it measures.</b> {esc(s.what)}</p>")
        parts.append(f"<p>{esc(s.summary)}</p>")
        parts += render.html_details(s.numbers, s.table, s.figures, s.notes, out)
        parts.append(f"<p>Re-create: <code>{esc(meta['command'])}</code></p></section>")
    return render.html_page(f"robmem analyze: {meta['source']}", parts)


def render_markdown(meta: dict[str, Any], sections: list[Section]) -> str:
    """The Markdown twin (figures linked)."""
    lines = [
        f"# robmem analyze: `{meta['source']}`",
        "",
        f"Generated {meta['generated_utc']} in {meta['wall_s']:.1f} s. Model: {meta['model']}. "
        f"Data: {meta['data']}. Threat model: {meta['attack']}. Command: `{meta['command']}`.",
        "",
        "| id | measurement | summary |",
        "|---|---|---|",
    ]
    for s in sections:
        summary = s.summary.replace("|", "\\|")
        lines.append(f"| {s.id} | {s.title} | {summary} |")
    lines.append("")
    lines += render.md_notes(meta["notes"])
    for s in sections:
        lines += ["", f"## {s.id}. {s.title}", ""]
        if s.what:
            lines += [f"**What it measures.** {s.what}", ""]
        lines += [s.summary, ""]
        lines += render.md_details(s.numbers, s.table, s.figures, s.notes)
        lines += [f"Re-create: `{meta['command']}`", ""]
    return "\n".join(lines) + "\n"


def _numbers_csv(analyses: Sequence[Analysis]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "epoch", "number", "value"])
    for a in analyses:
        for k, v in a.numbers().items():
            w.writerow([a.label, "" if a.epoch is None else a.epoch, k, json_safe(v)])
    return buf.getvalue()


def _per_example_csv(a: Analysis) -> str:
    buf = io.StringIO()
    rows = a.train.per_example.rows("train") + a.test.per_example.rows("test")
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_analysis(
    analyses: Sequence[Analysis],
    out_dir: str | pathlib.Path,
    *,
    command: str,
    source: str,
    wall_s: float = 0.0,
    force: bool = False,
) -> list[str]:
    """Write the page, its Markdown twin, JSON, CSVs and figures; return the files written.

    Parameters
    ----------
    analyses : sequence of Analysis
        One analysis, or one per saved epoch of a run (oldest first; the last is shown in
        every section, B1 draws the per-epoch curve).
    out_dir : path
        New or empty folder, or a previous analysis (else ``force``).
    command : str
        The command line that re-creates the output.
    source : str
        What was analysed (run folder or model file), for the header.
    """
    if not analyses:
        raise ValueError("analyses must hold at least one Analysis (length in [1, inf))")
    out = render.prepare_output_dir(out_dir, MARKER_FILE, MARKER_KIND, force=force)
    figures = out / FIGURES_DIR
    sections = build_sections(list(analyses), figures)
    a = analyses[-1]
    meta = {
        "kind": MARKER_KIND,
        "source": source,
        "command": command,
        "generated_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "wall_s": wall_s,
        "model": a.model,
        "data": f"{a.data}, {a.train.n} train / {a.test.n} test",
        "attack": a.attack.describe(),
        "notes": list(a.notes),
    }
    doc = {
        **meta,
        "sections": [
            {"id": s.id, "title": s.title, "summary": s.summary, "numbers": s.numbers,
             "table": s.table, "figures": [{"file": f"{FIGURES_DIR}/{f}", "caption": c}
                                           for f, c in s.figures], "notes": s.notes}
            for s in sections
        ],
        "analyses": [x.as_dict() for x in analyses],
    }  # fmt: skip
    (out / JSON_FILE).write_text(
        json.dumps(json_safe(doc), indent=1, allow_nan=False, default=str) + "\n"
    )
    (out / CSV_FILE).write_text(_numbers_csv(analyses))
    (out / PER_EXAMPLE_FILE).write_text(_per_example_csv(a))
    (out / MARKDOWN_FILE).write_text(render_markdown(meta, sections))
    (out / HTML_FILE).write_text(render_html(meta, sections, out))
    files = [JSON_FILE, CSV_FILE, PER_EXAMPLE_FILE, MARKDOWN_FILE, HTML_FILE] + [
        f"{FIGURES_DIR}/{f}" for s in sections for f, _ in s.figures
    ]
    marker = {"kind": MARKER_KIND, "files": files, "generated_utc": meta["generated_utc"]}
    (out / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n")
    logger.info("wrote %d files to %s", len(files), out)
    return files
