"""Placeholder: this subcommand is being written (see COMMAND_MODULES in bridge/cli.py)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # pragma: no cover
    return None
