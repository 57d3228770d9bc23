"""Our PGD versus torchattacks' PGD: same model, batch, steps, ε, α and device; prints JSON.

Usage (CPU default; ``--device cuda`` on a GPU)::

    python benchmarks/bench_attacks.py --model lenet5 --shape 1,28,28 --batch 256 --steps 10
    python benchmarks/bench_attacks.py --model preactresnet18 --shape 3,32,32 --batch 512 \\
        --device cuda --precision bf16 --channels-last

Two of our configurations are timed against torchattacks.PGD (which returns the last iterate):

- ``ours_parity``: fp32, the model's own memory format, last iterate — the same work as
  torchattacks, so the ratio isolates implementation overhead;
- ``ours``: the options given on the command line (``--precision bf16`` autocast,
  ``--channels-last``, ``--keep-best``).

With ``--channels-last`` the model is converted once and *both* libraries attack that same
converted model (torchattacks inherits the conv speed-up; our ratio then shows only what our
attack adds). The reported time is the median over ``--repeats`` timed runs after
``--warmup`` untimed ones, the three attacks interleaved; on CUDA every run is bracketed
by ``torch.cuda.synchronize()``.
Throughput is attacked images per second; ``ratio = ours / torchattacks``.

Where torchattacks is not installed (e.g. a bare GPU image) the baseline is
``restated_torchattacks_pgd`` of ``bench_at_epoch.py`` (torchattacks' PGD loop restated, without
its input checks), named in ``baseline``; with ``--no-torchattacks`` only our two
configurations are timed and the baseline row and the ratios are ``null``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

#: Default threat model: CIFAR-style ℓ∞ 8/255 with step 2/255 (Madry / Rice et al.).
DEFAULT_EPS = 8 / 255
DEFAULT_ALPHA = 2 / 255


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--shape must be like 3,32,32, got {text!r}") from exc
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"--shape must hold positive ints, got {text!r}")
    return shape


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="lenet5", help="an empirics.models name (default lenet5)")
    p.add_argument("--shape", type=_parse_shape, default=(1, 28, 28), help="C,H,W of one input")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eps", type=float, default=DEFAULT_EPS)
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--channels-last", action="store_true", help="convert model and inputs")
    p.add_argument("--keep-best", action="store_true", help="our best-iterate selection")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-torchattacks",
        action="store_true",
        help="time only our PGD (no torchattacks baseline)",
    )
    return p


def _baseline(
    model: torch.nn.Module, args: argparse.Namespace
) -> tuple[str | None, str | None, Callable[[torch.Tensor, torch.Tensor], object] | None]:
    """``(baseline name, torchattacks version, attack(x, y))``: torchattacks.PGD, else its
    restatement from ``bench_at_epoch.py``; all None with ``--no-torchattacks``."""
    if args.no_torchattacks:
        return None, None, None
    try:
        import torchattacks
    except ImportError:
        import importlib.util
        import pathlib

        path = pathlib.Path(__file__).resolve().with_name("bench_at_epoch.py")
        spec = importlib.util.spec_from_file_location("bench_at_epoch", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)

        def restated(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return mod.restated_torchattacks_pgd(model, x, y, args.eps, args.alpha, args.steps)

        return "restated torchattacks.PGD (torchattacks not installed)", None, restated
    theirs = torchattacks.PGD(model, eps=args.eps, alpha=args.alpha, steps=args.steps)
    return f"torchattacks {torchattacks.__version__}", torchattacks.__version__, theirs


def _timed_interleaved(
    fns: list[Callable[[], object]], device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Median seconds of each function; the functions alternate within every repeat so that a
    load change on a shared machine hits all of them alike."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        for fn in fns:
            fn()
    sync()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> dict:
    """Time both attacks and return the JSON-ready result."""
    from robmem.empirics.attacks import PGD
    from robmem.empirics.models import build_model

    if args.batch < 1 or args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        raise ValueError("--batch, --steps, --repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = build_model(args.model, args.classes, args.shape).to(device).eval()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = torch.rand((args.batch,) + tuple(args.shape), device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)

    baseline, ta_version, theirs = _baseline(model, args)
    parity = PGD(args.eps, args.alpha, args.steps, keep_best=False)
    ours = PGD(
        args.eps,
        args.alpha,
        args.steps,
        keep_best=args.keep_best,
        amp_dtype=torch.bfloat16 if args.precision == "bf16" else None,
        channels_last=args.channels_last,
    )
    fns: list[Callable[[], object]] = [lambda: parity(model, x, y), lambda: ours(model, x, y)]
    if theirs is not None:
        fns.append(lambda: theirs(x, y))
    times = _timed_interleaved(fns, device, args.warmup, args.repeats)
    t_parity, t_ours = times[0], times[1]
    t_theirs = times[2] if theirs is not None else None

    def row(seconds: float | None) -> dict | None:
        if seconds is None:
            return None
        return {"seconds_per_batch": seconds, "images_per_s": args.batch / seconds}

    return {
        "benchmark": "pgd: robmem.empirics.attacks.PGD vs torchattacks.PGD",
        "device": str(device),
        "device_name": _device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchattacks": ta_version,
        "baseline": baseline,
        "model": args.model,
        "in_shape": list(args.shape),
        "batch": args.batch,
        "steps": args.steps,
        "eps": args.eps,
        "alpha": args.alpha,
        "repeats": args.repeats,
        "statistic": "median seconds per attacked batch",
        "channels_last_model": args.channels_last,
        "torchattacks_pgd": row(t_theirs),
        "ours_parity": {**row(t_parity), "options": "fp32, last iterate"},
        "ours": {
            **row(t_ours),
            "options": {
                "precision": args.precision,
                "channels_last": args.channels_last,
                "keep_best": args.keep_best,
            },
        },
        "ratio_parity": None if t_theirs is None else t_theirs / t_parity,
        "ratio": None if t_theirs is None else t_theirs / t_ours,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
