"""The one-command report (SPEC B5): verdict table, numbers, figures and re-creating commands.

:func:`build_report` evaluates the selected claims of the registry at one tier and writes into
an output folder

* ``index.html``: a self-contained page (figures embedded as base64 PNG) with the verdict
  summary table on top, then per claim: the paper's claim, the criterion, the verdict, the
  numbers, the figures with captions and the exact command that re-creates it;
* ``report.md``: the Markdown twin (figures linked from ``figures/``);
* ``report.json`` and ``numbers.csv``: every number, machine-readable;
* ``figures/*.png``;
* ``.robmem-report.json``: a marker with the manifest of files written, by which a later
  report recognises the folder as its own.

A non-empty output folder that is not a previous robmem report is refused unless ``force``;
files are only ever (over)written, never deleted, except files listed in a previous report's
own manifest.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
import logging
import pathlib
import platform
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from robmem.bridge import render
from robmem.bridge.cache import RunCache
from robmem.bridge.claims.runs import merge_requests, recorded_seconds, run_requests
from robmem.bridge.criteria import AMENDMENTS, criteria_table
from robmem.bridge.records import Records
from robmem.bridge.registry import (
    SMALL_TIERS,
    Claim,
    ClaimContext,
    ClaimResult,
    check_tier,
    select_claims,
)
from robmem.bridge.render import FIGURES_DIR, format_number, html_table, json_safe, md_table
from robmem.bridge.verdicts import FAILED, INCONCLUSIVE, NOT_RUN

logger = logging.getLogger(__name__)

MARKER_FILE = ".robmem-report.json"
MARKER_KIND = "robmem-report"
HTML_FILE = "index.html"
MARKDOWN_FILE = "report.md"
JSON_FILE = "report.json"
CSV_FILE = "numbers.csv"

_VERDICT_COLOURS = {
    "reproduced": "#1b7a2e",
    "verified": "#1b7a2e",
    "not reproduced": "#b3261e",
    "failed": "#b3261e",
    "inconclusive": "#8a6d00",
    "not applicable at this tier": "#6a4c93",
    "not run at this tier": "#555555",
    "pipeline checked (no verdict)": "#555555",
}


@dataclass
class ClaimOutcome:
    """A claim with its result at the report's tier, its wall time and re-creating command."""

    claim: Claim
    result: ClaimResult
    wall_s: float
    command: str
    error: str | None = None
    #: training runs the claim reads, how many of them other claims read too, and the seconds
    #: of training and per-epoch evaluation they recorded (None: not all were found)
    runs: int = 0
    shared_runs: int = 0
    run_seconds: float | None = None


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    out_dir: pathlib.Path
    tier: str
    outcomes: list[ClaimOutcome]
    wall_s: float
    files: list[str] = field(default_factory=list)


def recreate_command(tier: str, claim_id: str, out_dir: str = "report") -> str:
    """The exact shell command that re-creates one claim's section."""
    return f"robmem report --tier {tier} --claims {claim_id} --out {out_dir}-{claim_id}"


def evaluate_claims(
    claims: Sequence[Claim],
    tier: str,
    figures_dir: pathlib.Path,
    cache: RunCache,
    *,
    progress: Callable[[str], None] | None = None,
    device: str | None = None,
    jobs: int = 1,
) -> list[ClaimOutcome]:
    """Run every training run the claims need (once each, ``jobs`` at a time), then evaluate
    each claim on the records (not-run tiers give their stated reason).

    ``device`` overrides the device of every training run (part of the cache key).
    """
    check_tier(tier)
    say = progress or (lambda message: None)
    enabled = [c for c in claims if c.plan(tier).enabled]
    # each claim's distinct runs (also for its time line); the report trains their union
    runs_of = {
        c.id: merge_requests([r.on_device(device) for r in c.requests(tier)]) for c in enabled
    }
    requests = [r for own in runs_of.values() for r in own]
    records = Records()
    run_error = None
    if requests:
        say(f"training runs: {len(merge_requests(requests))} distinct (cached ones are reused)")
        try:
            records = run_requests(requests, cache, jobs=jobs, progress=say)
        except Exception as exc:  # a failing run must not sink the theory claims
            logger.error("training runs failed:\n%s", traceback.format_exc())
            run_error = f"{type(exc).__name__}: {exc}"
    readers = Counter(r.cache_name for own in runs_of.values() for r in own)
    outcomes = []
    for k, claim in enumerate(claims, start=1):
        plan = claim.plan(tier)
        own = runs_of.get(claim.id, [])
        secs = [recorded_seconds(r, cache) for r in own]
        start = time.perf_counter()
        error = None
        if not plan.enabled:
            result = ClaimResult(verdict=NOT_RUN, summary=plan.reason)
        elif run_error is not None and claim.requests(tier):
            error = f"training runs failed ({run_error})"
            result = ClaimResult(
                verdict=INCONCLUSIVE if claim.empirical else FAILED,
                summary=f"{error}; no verdict.",
            )
        else:
            say(f"[{k}/{len(claims)}] {claim.id}: {claim.title}")
            ctx = ClaimContext(
                tier=tier,
                figures_dir=figures_dir,
                records=records,
                progress=lambda m, cid=claim.id: say(f"    {cid}: {m}"),
            )
            try:
                result = claim.evaluate(ctx)
                claim.check_verdict(result.verdict)
            except Exception as exc:  # a failing claim must not sink the whole report
                logger.error("claim %s failed:\n%s", claim.id, traceback.format_exc())
                error = f"{type(exc).__name__}: {exc}"
                result = ClaimResult(
                    verdict=INCONCLUSIVE if claim.empirical else FAILED,
                    summary=f"evaluation failed ({error}); no verdict.",
                )
        if plan.enabled and claim.empirical and tier in SMALL_TIERS and plan.scale:
            result.summary = f"[{tier} tier: {plan.scale}; not the papers' scale] {result.summary}"
        wall = time.perf_counter() - start
        if plan.enabled:
            say(f"[{k}/{len(claims)}] {claim.id}: {result.verdict} ({wall:.1f} s)")
        outcomes.append(
            ClaimOutcome(
                claim=claim,
                result=result,
                wall_s=wall,
                command=recreate_command(tier, claim.id),
                error=error,
                runs=len(own),
                shared_runs=sum(readers[r.cache_name] > 1 for r in own),
                run_seconds=None if None in secs else float(sum(s for s in secs if s)),
            )
        )
    return outcomes


def time_text(o: ClaimOutcome) -> str:
    """The claim's time: its evaluation here, and what its training runs recorded."""
    text = f"evaluation {o.wall_s:.1f} s here"
    if o.runs:
        shared = f", {o.shared_runs} of them shared with other claims" if o.shared_runs else ""
        took = (
            "its runs' time was not found in the cache"
            if o.run_seconds is None
            else f"{o.run_seconds / 60:.1f} min of training and per-epoch evaluation recorded, "
            "summed over the runs (one worker each)"
        )
        text += f"; {o.runs} training runs{shared}: {took}"
    return text


def vars_of(criterion: Any) -> dict[str, Any]:
    """A criterion as JSON (name, statistic, side, threshold, upper, unit, source)."""
    return {k: getattr(criterion, k) for k in (
        "name", "statistic", "side", "threshold", "upper", "unit", "source")}  # fmt: skip


def estimate_rows(result: ClaimResult) -> list[dict[str, Any]]:
    """One row per estimate behind a verdict: mean, CI, n, method, per-seed values."""
    rows = []
    for name, e in result.estimates.items():
        d = e.as_dict()
        rows.append({
            "statistic": name, "mean": d["mean"], "95% CI low": d["ci_low"],
            "95% CI high": d["ci_high"], "n": d["n"], "method": d["method"],
            "per-unit values": ", ".join(format_number(v) for v in d["values"]),
        })  # fmt: skip
    return rows


def amendment_rows() -> list[dict[str, Any]]:
    return [asdict(a) for a in AMENDMENTS]


def _outcome_json(o: ClaimOutcome) -> dict[str, Any]:
    return {
        "id": o.claim.id,
        "title": o.claim.title,
        "paper_claim": o.claim.paper_claim,
        "source": o.claim.source,
        "kind": o.claim.kind,
        "criterion": o.claim.rule_text(),
        "premises": [vars_of(c) for c in o.claim.premises],
        "criteria": [vars_of(c) for c in o.claim.criteria],
        "verdict": o.result.verdict,
        "estimates": {k: e.as_dict() for k, e in o.result.estimates.items()},
        "readings": [list(r) for r in o.result.readings],
        "summary": o.result.summary,
        "numbers": o.result.numbers,
        "table": o.result.table,
        "figures": [
            {"file": f"{FIGURES_DIR}/{f.filename}", "caption": f.caption} for f in o.result.figures
        ],
        "notes": o.result.notes,
        "command": o.command,
        "wall_s": round(o.wall_s, 3),
        "runs": o.runs,
        "shared_runs": o.shared_runs,
        "run_seconds": None if o.run_seconds is None else round(o.run_seconds, 1),
        "error": o.error,
    }


def _verdict_badge(verdict: str) -> str:
    colour = _VERDICT_COLOURS.get(verdict, "#555")
    return f"<span class='verdict' style='background:{colour}'>{html.escape(verdict)}</span>"


def render_html(
    report_meta: dict[str, Any], outcomes: list[ClaimOutcome], out: pathlib.Path
) -> str:
    """The self-contained HTML page (figures inlined as base64 PNG)."""
    esc = html.escape
    parts = [
        f"<h1>robmem report: <code>{esc(report_meta['tier'])}</code> tier</h1>",
        f"<p>Generated {esc(report_meta['generated_utc'])} on {esc(report_meta['host'])} in "
        f"{report_meta['wall_s']:.1f} s. Command: <code>{esc(report_meta['command'])}</code>. "
        "Verdict criteria are fixed in <code>bridge/claims/</code> before any run; estimates "
        "from attacks (PGD) are lower estimates of the true maxima.</p>",
        "<p>Empirical claims: reproduced / not reproduced / inconclusive / not applicable at "
        "this tier, each read from 95 % confidence intervals over seeds against pre-registered "
        "thresholds (bridge/criteria.py). Mathematical claims: verified / failed, with their "
        "kind. The smoke tier gives no scientific verdict. Verdicts below the gpu tier hold "
        "only at the scale stated in their summary.</p>",
        "<h2>Verdicts</h2><table><tr><th>id</th><th>claim</th><th>kind</th><th>verdict</th>"
        "<th>summary</th></tr>",
    ]
    for o in outcomes:
        parts.append(
            f"<tr><td><a href='#{o.claim.id}'>{o.claim.id}</a></td><td>{esc(o.claim.title)}</td>"
            f"<td>{esc(o.claim.kind)}</td><td>{_verdict_badge(o.result.verdict)}</td>"
            f"<td>{esc(o.result.summary)}</td></tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Amendments</h2><p>Criteria changed after results were seen.</p>")
    parts.append(html_table(amendment_rows()))
    for o in outcomes:
        c, r = o.claim, o.result
        parts.append(f"<section id='{c.id}'><h2>{c.id}. {esc(c.title)}</h2>")
        parts.append(f"<p>{_verdict_badge(r.verdict)} {esc(r.summary)}</p>")
        parts.append(f"<p><b>Paper's claim.</b> {esc(c.paper_claim)} <i>({esc(c.source)})</i></p>")
        parts.append(
            f"<p class='crit'><b>Criterion (fixed in advance; kind: {esc(c.kind)}).</b> "
            f"{esc(c.rule_text())}</p>"
        )
        plan = c.plan(report_meta["tier"])
        if plan.enabled:
            parts.append(f"<p><b>Runs at this tier.</b> {esc(plan.runs)}</p>")
        if r.estimates:
            parts.append("<p><b>Estimates behind the verdict.</b></p>")
            parts.append(html_table(estimate_rows(r)))
        if r.readings:
            parts.append(
                "<p><b>Readings.</b> " + esc("; ".join(f"{n}: {v}" for n, v in r.readings)) + "</p>"
            )
        figures = [(f.filename, f.caption) for f in r.figures]
        parts += render.html_details(r.numbers, r.table, figures, r.notes, out, " class='numbers'")
        parts.append(f"<p>Re-create: <code>{esc(o.command)}</code> ({esc(time_text(o))})</p>")
        parts.append("</section>")
    return render.html_page(f"robmem report ({report_meta['tier']} tier)", parts)


def render_markdown(report_meta: dict[str, Any], outcomes: list[ClaimOutcome]) -> str:
    """The Markdown twin of the HTML page (figures linked, not embedded)."""
    lines = [
        f"# robmem report: `{report_meta['tier']}` tier",
        "",
        f"Generated {report_meta['generated_utc']} on {report_meta['host']} in "
        f"{report_meta['wall_s']:.1f} s. Command: `{report_meta['command']}`.",
        "",
        "Empirical verdicts are read from 95 % confidence intervals over seeds against "
        "pre-registered thresholds (bridge/criteria.py); mathematical claims are verified / "
        "failed with their kind; the smoke tier gives no scientific verdict; verdicts below "
        "the gpu tier hold only at the scale stated in their summary.",
        "",
        "## Verdicts",
        "",
        "| id | claim | kind | verdict | summary |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        summary = o.result.summary.replace("|", "\\|")
        lines.append(
            f"| {o.claim.id} | {o.claim.title} | {o.claim.kind} | **{o.result.verdict}** | "
            f"{summary} |"
        )
    lines += ["", "## Amendments", "", "Criteria changed after results were seen.", ""]
    lines += [md_table(amendment_rows()), ""]
    for o in outcomes:
        c, r = o.claim, o.result
        lines += ["", f"## {c.id}. {c.title}", "", f"**Verdict: {r.verdict}.** {r.summary}", ""]
        lines += [f"**Paper's claim.** {c.paper_claim} ({c.source})", ""]
        lines += [f"**Criterion (fixed in advance; kind: {c.kind}).** {c.rule_text()}", ""]
        plan = c.plan(report_meta["tier"])
        if plan.enabled:
            lines += [f"**Runs at this tier.** {plan.runs}", ""]
        if r.estimates:
            lines += ["**Estimates behind the verdict.**", "", md_table(estimate_rows(r)), ""]
        if r.readings:
            lines += ["**Readings.** " + "; ".join(f"{n}: {v}" for n, v in r.readings), ""]
        lines += render.md_details(
            r.numbers, r.table, [(f.filename, f.caption) for f in r.figures], r.notes
        )
        lines += [f"Re-create: `{o.command}` ({time_text(o)})", ""]
    return "\n".join(lines) + "\n"


def _write_csv(outcomes: list[ClaimOutcome]) -> str:
    """Every estimate (mean, CI, n, method, per-unit values joined by ';') and every other
    number; pandas reads it with ``pd.read_csv``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["claim", "verdict", "number", "value", "ci_low", "ci_high", "n", "method", "values"]
    )

    def cell(v: Any) -> Any:
        return "" if v is None else v

    for o in outcomes:
        for key, e in o.result.estimates.items():
            d = e.as_dict()
            writer.writerow([
                o.claim.id, o.result.verdict, key, cell(d["mean"]), cell(d["ci_low"]),
                cell(d["ci_high"]), d["n"], d["method"],
                ";".join("" if v is None else repr(v) for v in d["values"]),
            ])  # fmt: skip
        for key, value in o.result.numbers.items():
            writer.writerow([o.claim.id, o.result.verdict, key, cell(value), "", "", "", "", ""])
    return buf.getvalue()


def build_report(
    tier: str,
    out_dir: str | pathlib.Path,
    *,
    claim_ids: Sequence[str] | None = None,
    force: bool = False,
    cache: RunCache | None = None,
    progress: Callable[[str], None] | None = None,
    command: str | None = None,
    device: str | None = None,
    jobs: int = 1,
) -> Report:
    """Evaluate the claims at ``tier`` and write the report into ``out_dir`` (SPEC B5).

    Parameters
    ----------
    tier : one of robmem.bridge.registry.TIERS
    out_dir : path-like
        Empty/new folder, or a previous robmem report (else ``force``).
    claim_ids : sequence of str, optional
        Subset of claim ids (default: all).
    force : bool
        Write into a non-empty folder that is not a previous report (no file is deleted).
    cache : RunCache, optional
        Run cache (default folder: :func:`robmem.bridge.cache.default_cache_dir`).
    progress : callable, optional
        ``progress(message)``, e.g. printing to stderr.
    command : str, optional
        The command line shown in the report header.
    device : str, optional
        Device of every training run ("cpu", "cuda", "cuda:N" or "auto"); None keeps the
        tier's configs (CPU below the gpu tier). Shown in the report header.
    jobs : int >= 1
        Training runs executed at once (worker processes).

    Returns
    -------
    Report
    """
    check_tier(tier)
    if device is not None:
        from robmem.empirics.config import TrainConfig

        TrainConfig(device=device)  # ValueError naming `device` and its allowed values
    claims = select_claims(claim_ids)
    out = render.prepare_output_dir(out_dir, MARKER_FILE, MARKER_KIND, force=force)
    # Mark the folder as a report now, so that a run killed before it finishes can be re-run
    # into the same folder (the final marker, written last, lists every file written).
    in_progress = {"kind": MARKER_KIND, "state": "in progress", "files": []}
    (out / MARKER_FILE).write_text(json.dumps(in_progress, indent=1) + "\n")
    cache = cache if cache is not None else RunCache()
    start = time.perf_counter()
    outcomes = evaluate_claims(
        claims, tier, out / FIGURES_DIR, cache, progress=progress, device=device, jobs=jobs
    )
    wall = time.perf_counter() - start
    for o in outcomes:
        for f in o.result.figures:
            if not (out / FIGURES_DIR / f.filename).is_file():
                raise RuntimeError(f"claim {o.claim.id} listed missing figure {f.filename}")
    meta = {
        "kind": MARKER_KIND,
        "tier": tier,
        "generated_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "host": f"{platform.node() or 'host'} ({platform.machine()}, {platform.system()})",
        "wall_s": wall,
        "command": command or f"robmem report --tier {tier} --out {out}",
        "device": device or "as configured by the tier",
        "jobs": jobs,
        "cache_dir": str(cache.root),
        "cache_hits": list(cache.hits),
        "cache_misses": list(cache.misses),
    }
    for o in outcomes:  # the tables and the JSON show the same (finite or None) values
        o.result.numbers = json_safe(o.result.numbers)
        o.result.table = json_safe(o.result.table)
    doc = {
        **meta,
        "amendments": amendment_rows(),
        "criteria": criteria_table(),
        "claims": [_outcome_json(o) for o in outcomes],
    }
    (out / JSON_FILE).write_text(json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n")
    (out / CSV_FILE).write_text(_write_csv(outcomes))
    (out / MARKDOWN_FILE).write_text(render_markdown(meta, outcomes))
    (out / HTML_FILE).write_text(render_html(meta, outcomes, out))
    files = [JSON_FILE, CSV_FILE, MARKDOWN_FILE, HTML_FILE] + [
        f"{FIGURES_DIR}/{f.filename}" for o in outcomes for f in o.result.figures
    ]
    marker = {
        "kind": MARKER_KIND,
        "tier": tier,
        "files": files,
        "generated_utc": meta["generated_utc"],
    }
    (out / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n")
    return Report(out_dir=out, tier=tier, outcomes=outcomes, wall_s=wall, files=files)
