"""The ``robmem`` command line.

Each subcommand lives in its own module in :mod:`bridge` and exposes
``register(subparsers) -> None``, which adds an ``argparse`` sub-parser whose
``func`` default is called with the parsed namespace and returns an exit code.
Library code never prints; only these command functions write to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Subcommand modules, in the order they appear in ``robmem --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "robmem.bridge.cmd_construct",
    "robmem.bridge.cmd_sizes",
    "robmem.bridge.cmd_train",
    "robmem.bridge.cmd_report",
    "robmem.bridge.cmd_sweep",
    "robmem.bridge.cmd_analyze",
)


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robmem",
        description="Verify robust-memorization theory and measure robust overfitting.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"robmem {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
