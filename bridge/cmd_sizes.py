"""``robmem sizes``: print the SPEC T2 size table for given (N, d, ε, δ).

Example: ``robmem sizes --n 1000 --d 784 --eps 0.1 --delta 0.05``.
"""

from __future__ import annotations

import argparse
import json

from robmem.theory.sizes import format_size_table, size_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sizes`` sub-parser."""
    parser = subparsers.add_parser(
        "sizes",
        help="print the T2 size table (clean < robust memorization < robust generalization)",
        description=(
            "Sizes for N points in d dimensions, classes 2*eps-separated, robust radius delta "
            "(0 < delta < eps < 1/2): clean classifier, the T1 construction's exact count, the "
            "memorization and robust-generalization lower bounds, and the VC bound's vacuity."
        ),
    )
    parser.add_argument("--n", type=int, required=True, help="number of training points N >= 1")
    parser.add_argument("--d", type=int, required=True, help="input dimension d >= 1")
    parser.add_argument(
        "--eps", type=float, required=True, help="half the class separation, in (0, 1/2)"
    )
    parser.add_argument("--delta", type=float, required=True, help="robust radius, in (0, eps)")
    parser.add_argument(
        "--norm", choices=("inf", "2"), default="inf", help="norm of the construction"
    )
    parser.add_argument(
        "--clean-hidden-layers",
        type=int,
        default=1,
        help="hidden layers of the width-d clean classifier (>= 0, default 1)",
    )
    parser.add_argument(
        "--confidence", type=float, default=0.05, help="failure probability of the VC bound"
    )
    parser.add_argument(
        "--C", dest="constant", type=float, default=1.0, help="hidden constant of the O/Omega rows"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute and print the table; errors in the arguments raise ValueError."""
    table = size_table(
        args.n,
        args.d,
        args.eps,
        args.delta,
        norm=args.norm,
        clean_hidden_layers=args.clean_hidden_layers,
        confidence=args.confidence,
        C=args.constant,
    )
    if args.json:
        rows = [
            {
                "key": r.key,
                "label": r.label.strip(),
                "value": r.value if r.value != float("inf") else None,
                "log10_value": r.log10_value,
                "formula": r.formula,
                "source": r.source,
                "certified": r.certified,
            }
            for r in table.rows
        ]
        print(
            json.dumps(
                {
                    "n": table.n_points,
                    "d": table.dim,
                    "eps": table.eps,
                    "delta": table.delta,
                    "rows": rows,
                },
                indent=2,
            )
        )
    else:
        print(format_size_table(table))
    return 0
