"""``robmem train``: run one training configuration in a run directory.

Every :class:`robmem.empirics.config.TrainConfig` field is a flag (``--field-name``), typed from the
dataclass, with the field's unit-bearing comment as its help. Booleans come in pairs
(``--augment`` / ``--no-augment``), optional values accept ``none``, float flags accept
fractions such as ``8/255``. A config file (``--config x.toml`` or ``.json``) or a named
preset (``--preset``) gives the base; flags override it.

Examples::

    robmem train --run-dir runs/digits-pgd --dataset digits --model mlp --method pgd \\
        --epsilon 0.1 --epochs 20 --schedule constant --lr 0.05
    robmem train --run-dir runs/digits-pgd --resume          # continue with the stored config
    robmem train --preset rice-cifar10-pgd --run-dir runs/rice --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import dataclasses
import fractions
import json
import pathlib
import sys
import types
import typing
from typing import Any

#: Flags whose values are restricted to a fixed list (the config validates them too).
_CHOICES = {
    "method": "METHODS",
    "schedule": "SCHEDULES",
    "norm": "NORMS",
    "optimizer": "OPTIMIZERS",
    "precision": "PRECISIONS",
    "select_mode": None,
}
#: Metrics shown in the final summary, in order.
_SUMMARY_KEYS = (
    "train_clean_acc",
    "train_robust_acc",
    "test_clean_acc",
    "test_robust_acc",
    "val_clean_acc",
    "val_robust_acc",
    "grad_norm_mean",
)


def parse_float(text: str) -> float:
    """Parse a float or a fraction (``"8/255"``); reject NaN/inf."""
    try:
        value = float(fractions.Fraction(text.strip()))
    except (ValueError, ZeroDivisionError) as exc:
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from exc
    return value


def parse_int(text: str) -> int:
    """Parse an integer."""
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc


def list_of(parse, *, spaces: bool = False):
    """An argparse type: comma-separated values (also space-separated with ``spaces``), each
    parsed by ``parse``; at least one."""

    def inner(text: str) -> list:
        if spaces:
            text = text.replace(" ", ",")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError("needs at least one value, e.g. 0,1,2")
        return [parse(p) for p in parts]

    inner.__name__ = f"list of {getattr(parse, '__name__', 'value')}"
    return inner


def _optional(parse):
    def inner(text: str):
        if text.strip().lower() in ("none", "null"):
            return None
        return parse(text)

    inner.__name__ = getattr(parse, "__name__", "value")
    return inner


def parse_json_object(text: str) -> dict:
    """Parse a JSON object (``'{"hidden": [64]}'``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return value


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per TrainConfig field (default: not given, i.e. keep the base value)."""
    from robmem.empirics import config as cfg

    hints = typing.get_type_hints(cfg.TrainConfig)
    comments = cfg.field_comments()
    group = parser.add_argument_group("training configuration (TrainConfig fields)")
    for f in dataclasses.fields(cfg.TrainConfig):
        hint = hints[f.name]
        optional = False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0]
        origin = typing.get_origin(hint) or hint
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        help_text = comments.get(f.name, "")
        if f.name in _CHOICES:
            attr = _CHOICES[f.name]
            kwargs["choices"] = list(getattr(cfg, attr)) if attr else ["max", "min"]
        if origin is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is list:
            kwargs["nargs"] = "*"
            kwargs["type"] = int
            kwargs["metavar"] = "EPOCH"
        elif origin is dict:
            kwargs["type"] = parse_json_object
            kwargs["metavar"] = "JSON"
        else:
            parse = {int: int, float: parse_float, str: str}[origin]
            kwargs["type"] = _optional(parse) if optional else parse
            if "choices" not in kwargs:
                kwargs["metavar"] = origin.__name__.upper()
            if optional:
                help_text += " ('none' for None)"
        group.add_argument("--" + f.name.replace("_", "-"), help=help_text, **kwargs)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    from robmem.empirics.config import PRESETS

    parser = subparsers.add_parser(
        "train",
        help="train a model (standard, PGD-AT, FGSM-RS, TRADES, +TE) in a run directory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", type=pathlib.Path, help="run directory (must be new/empty)")
    parser.add_argument("--config", type=pathlib.Path, help="base config file (.toml or .json)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="base config preset")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its last checkpoint (config must match; "
        "without --config/--preset the stored config is the base)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show progress bars with live clean/robust accuracy (stderr)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config and exit without training",
    )
    parser.add_argument(
        "--format",
        choices=["toml", "json"],
        default="toml",
        help="format of the config printed by --dry-run",
    )
    add_config_flags(parser)
    parser.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    """Return the TrainConfig given by ``--config``/``--preset``/stored run, then the flags."""
    from robmem.empirics.config import TrainConfig, preset

    if args.config is not None and args.preset is not None:
        raise ValueError("--config and --preset are exclusive; give one of them")
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(args, f.name)
    }
    if args.config is not None:
        if not args.config.exists():
            raise FileNotFoundError(f"--config {args.config}: no such file")
        try:
            base = TrainConfig.load(args.config).to_dict()
        except (ValueError, TypeError) as exc:  # bad syntax or a field of the wrong type/range
            raise ValueError(f"--config {args.config}: {exc}") from exc
    elif args.preset is not None:
        base = preset(args.preset).to_dict()
    elif args.resume and args.run_dir is not None and (args.run_dir / "config.json").exists():
        base = TrainConfig.load(args.run_dir / "config.json").to_dict()
    else:
        base = TrainConfig().to_dict()
    return TrainConfig.from_dict({**base, **overrides})


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robmem train``; returns the exit code."""
    config = resolve_config(args)
    if args.dry_run:
        sys.stdout.write(config.to_toml() if args.format == "toml" else config.to_json())
        return 0
    if args.run_dir is None:
        raise ValueError("--run-dir is required (a new or empty folder, or --resume)")
    from robmem.empirics.checkpoint import CheckpointError
    from robmem.empirics.trainers import NonFiniteLossError, train

    try:
        result = train(config, args.run_dir, resume=args.resume, progress=args.progress)
    except NonFiniteLossError as exc:
        print(f"robmem train: stopped: {exc}", file=sys.stderr)
        return 3
    except CheckpointError as exc:
        print(f"robmem train: error: {exc}", file=sys.stderr)
        return 2
    last = result.metrics[-1] if result.metrics else {}
    print(f"run: {result.run_dir}")
    print(f"metrics: {result.metrics_path}  (one JSON row per epoch)")
    print(f"steps:   {result.steps_path}  (loss, grad_norm, lr per step)")
    print(f"last:    {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        b = result.best
        print(
            f"best:    {result.best_checkpoint}  ({b['metric']}={b['value']:.4f} at epoch "
            f"{b['epoch']}, selected on {b['selected_on']})"
        )
    shown = [(k, last[k]) for k in _SUMMARY_KEYS if last.get(k) is not None]
    if shown:
        print(f"epoch {last.get('epoch')}: " + "  ".join(f"{k}={v:.4f}" for k, v in shown))
    return 0
