"""``robmem report``: evaluate every claim at a tier and write the HTML + Markdown report.

Examples
--------
``robmem report --tier cpu --out report_cpu`` (≤ 10 min on 2 CPU cores; runs are cached, so
a second call reuses them), ``robmem report --tier smoke --out /tmp/r --claims E2,B1``,
``robmem report --list``.
"""

from __future__ import annotations

import argparse
import sys
import time

from robmem.bridge.cache import RunCache, default_cache_dir
from robmem.bridge.registry import TIERS, select_claims


def _claim_list(text: str) -> list[str]:
    ids = [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("--claims needs at least one claim id, e.g. E2,B1")
    return ids


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--jobs must be an integer >= 1, got {value}")
    return value


def default_jobs(device: str | None) -> int:
    """Cores for CPU training; one process on a GPU (runs share it better in sequence)."""
    import os

    if device is not None and device != "cpu":
        return 1
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    p = subparsers.add_parser(
        "report",
        help="run the claims at a tier and write the HTML/Markdown report",
        description=(
            "Evaluate the claim registry (SPEC E1-E6, B1-B4, T1-T4) at one tier and write a "
            "self-contained HTML page, its Markdown twin, PNG figures and JSON/CSV numbers."
        ),
    )
    p.add_argument(
        "--tier", choices=TIERS, default=None, help="scale tier (required unless --list)"
    )
    p.add_argument("--out", default=None, help="output folder (new, empty, or a previous report)")
    p.add_argument(
        "--claims",
        type=_claim_list,
        default=None,
        help="comma-separated claim ids to evaluate (default: all), e.g. E1,E2,B1",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty folder that is not a previous report (deletes nothing)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help=f"run cache folder (default $ROBMEM_CACHE or {default_cache_dir()})",
    )
    p.add_argument(
        "--no-cache", action="store_true", help="re-run every run instead of reusing cached ones"
    )
    p.add_argument(
        "--device",
        default=None,
        help="device of every training run: cpu, cuda, cuda:N or auto (default: the tier's)",
    )
    p.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        help="training runs at once, in worker processes (default: the number of CPU cores, "
        "or 1 on a GPU device)",
    )
    p.add_argument("--list", action="store_true", help="list the claims and their tiers, then exit")
    p.set_defaults(func=run)


def _list_claims(args: argparse.Namespace) -> int:
    for claim in select_claims(args.claims):
        tiers = ", ".join(f"{t}: {'runs' if claim.plan(t).enabled else 'not run'}" for t in TIERS)
        print(f"{claim.id:3s} {claim.title}  [{tiers}]")
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robmem report``; prints progress to stderr and the verdicts to stdout."""
    from robmem.bridge.report import build_report

    if args.list:
        return _list_claims(args)
    if args.tier is None:
        raise ValueError(f"--tier is required; choose one of {', '.join(TIERS)}")
    if args.out is None:
        raise ValueError("--out is required: the folder to write the report into")
    cache = RunCache(args.cache_dir, enabled=not args.no_cache)
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", file=sys.stderr, flush=True)

    command = " ".join(["robmem", "report", "--tier", args.tier, "--out", str(args.out)])
    if args.claims:
        command += " --claims " + ",".join(args.claims)
    if args.device:
        command += f" --device {args.device}"
    jobs = args.jobs if args.jobs is not None else default_jobs(args.device)
    report = build_report(
        args.tier,
        args.out,
        claim_ids=args.claims,
        force=args.force,
        cache=cache,
        progress=progress,
        command=command,
        device=args.device,
        jobs=jobs,
    )
    print(f"robmem report ({args.tier} tier) in {report.wall_s:.1f} s -> {report.out_dir}")
    for outcome in report.outcomes:
        print(f"  {outcome.claim.id:3s} {outcome.result.verdict:22s} {outcome.claim.title}")
    print(f"open {report.out_dir / 'index.html'}")
    return 0
