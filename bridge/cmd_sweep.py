"""``robmem sweep``: run a grid of training runs (seeds × noise rates × ε × …) from one base.

The base config comes from ``--config``/``--preset`` and the TrainConfig flags of
``robmem train``; the grid from ``--seeds``, ``--noise-rates``, ``--epsilons`` and any number of
``--grid FIELD=V1,V2``. Each run gets the folder ``OUT/<field=value_...>``; finished runs are
skipped, interrupted ones resumed (:mod:`robmem.bridge.sweep`).

Examples::

    robmem sweep --out runs/e5 --dataset digits --method pgd --epochs 20 \\
        --seeds 0,1,2 --noise-rates 0,0.2,0.4,0.6,0.8,1 --jobs 2
    robmem sweep --out runs/eps --preset rice-cifar10-pgd --epsilons 2/255,4/255,8/255 \\
        --backend ray --ray-address auto --gpus-per-run 1
    robmem sweep --out runs/e5 --seeds 0,1 --dry-run          # list the runs only
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from robmem.bridge.cmd_train import (
    add_config_flags,
    list_of,
    parse_float,
    parse_int,
    resolve_config,
)


def _grid_item(text: str) -> tuple[str, list]:
    """Parse ``FIELD=V1,V2`` (values as JSON where possible: numbers, true/false, null)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=V1,V2,..., got {text!r}")
    key, _, values = text.partition("=")
    key = key.strip().replace("-", "_")
    parsed = []
    for part in [p.strip() for p in values.split(",") if p.strip()]:
        try:
            parsed.append(json.loads(part))
        except json.JSONDecodeError:
            try:
                parsed.append(parse_float(part))
            except argparse.ArgumentTypeError:
                parsed.append(part)
    if not key or not parsed:
        raise argparse.ArgumentTypeError(f"expected FIELD=V1,V2,..., got {text!r}")
    return key, parsed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` sub-command."""
    from robmem.bridge.sweep import BACKENDS
    from robmem.empirics.config import PRESETS

    p = subparsers.add_parser(
        "sweep",
        help="run a grid of training runs (seeds x noise rates x eps) locally or on Ray",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=pathlib.Path, help="sweep folder (one sub-folder per run)")
    p.add_argument("--config", type=pathlib.Path, help="base config file (.toml or .json)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="base config preset")
    p.add_argument("--seeds", type=list_of(parse_int), help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument(
        "--noise-rates", type=list_of(parse_float), help="label-noise rates, e.g. 0,0.2,1"
    )
    p.add_argument("--epsilons", type=list_of(parse_float), help="attack radii, e.g. 2/255,8/255")
    p.add_argument(
        "--grid",
        type=_grid_item,
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="another grid axis over any TrainConfig field (repeatable)",
    )
    p.add_argument("--backend", choices=BACKENDS, default="local", help="execution engine")
    p.add_argument(
        "--jobs", type=parse_int, default=1, help="parallel processes of the local backend (>= 1)"
    )
    p.add_argument(
        "--ray-address", default=None, help="Ray cluster address ('auto' = the running one)"
    )
    p.add_argument("--cpus-per-run", type=parse_float, default=1.0, help="Ray CPUs per run")
    p.add_argument("--gpus-per-run", type=parse_float, default=0.0, help="Ray GPUs per run")
    p.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    add_config_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robmem sweep``; returns 0 when every run completed or was skipped."""
    from robmem.bridge.sweep import FAILED, run_sweep, sweep_runs, write_manifest

    if args.out is None:
        raise ValueError("--out is required (the sweep folder)")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    args.resume, args.run_dir = False, None  # what resolve_config expects of `robmem train`
    base = resolve_config(args)
    grid: dict[str, list] = {}
    for flag, key in (("seeds", "seed"), ("noise_rates", "label_noise"), ("epsilons", "epsilon")):
        if getattr(args, flag) is not None:
            grid[key] = getattr(args, flag)
    for key, values in args.grid:
        if key in grid:
            raise ValueError(f"--grid {key}=...: field {key!r} is already a sweep axis")
        grid[key] = values
    runs = sweep_runs(base, grid, args.out)
    if args.dry_run:
        for r in runs:
            print(f"{r.name}\t{r.run_dir}")
        return 0
    write_manifest(args.out, runs, grid)
    outcomes = run_sweep(
        runs,
        backend=args.backend,
        jobs=args.jobs,
        ray_address=args.ray_address,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=args.gpus_per_run,
    )
    for o in outcomes:
        detail = o.error if o.status == FAILED else json.dumps(o.final)
        print(f"{o.status:9s} {o.name}  {detail}")
    failed = sum(o.status == FAILED for o in outcomes)
    print(f"{len(outcomes)} runs: {len(outcomes) - failed} ok, {failed} failed", file=sys.stderr)
    return 1 if failed else 0
