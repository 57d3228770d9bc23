"""AT-epoch benchmark: PGD-AT training steps of PreActResNet-18 on CIFAR-shaped tensors.

Claim measured: throughput (images/s) of one PGD-K adversarial-training step of our trainer
(:func:`empirics.trainers.method_step` + SGD step), the seconds an epoch of 50,000 images
would take at that rate, and the ratio of that time to the device's FLOP floor; side by side,
the same step written the straightforward way with ``torchattacks.PGD``.

Evidence: wall-clock over ``--iters`` timed steps after ``--warmup`` untimed ones, on random
inputs in [0, 1] with random labels (the cost of a step does not depend on the data).
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one full step (what
actually runs: attack forwards and input-only backwards, the training forward/backward), and
compared with the cost model (2K + 3)·F of ``notes/speed-and-library-anchors.md`` §2.2.
The floor uses the device's peak: ``--peak-tflops`` if given, else the best rate of a large
matmul measured here in the step's dtype (an *achievable* peak, so the ratio is optimistic
about the hardware, i.e. conservative about our code).

CPU is the default (small batch, few iterations); ``--device cuda`` uses bf16 autocast and
channels_last unless told otherwise. Prints one JSON object.

    python benchmarks/bench_at_epoch.py                       # CPU, batch 8
    python benchmarks/bench_at_epoch.py --device cuda --batch-size 512 --iters 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time

import torch
import torch.nn.functional as F

#: Images per CIFAR-10 training epoch.
CIFAR10_TRAIN_SIZE = 50_000
#: [R20]/[P2] training attack: ε = 8/255, step 2/255, 10 steps.
EPS, STEP, STEPS = 8 / 255, 2 / 255, 10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, bf16: bool):
    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, size: int, reps: int) -> float:
    """Return the best measured FLOP/s of a ``size``×``size`` matmul (an achievable peak)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``model`` on ``x`` (FlopCounterMode; 1 MAC = 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def step_flops(step, *args) -> int:
    """FLOPs counted over one call of ``step(*args)``, backward passes included.

    FlopCounterMode's module tracker installs backward hooks that ``torch.autograd.grad``
    with respect to a leaf input (what attacks do) refuses, so only its dispatch-level
    counter is entered here (global totals are all we need).
    """
    from torch.utils import flop_counter

    counter = flop_counter.FlopCounterMode(display=False)
    mode = flop_counter._FlopCounterMode(counter)
    with mode:
        step(*args)
    return int(counter.get_total_flops())


def _ours_step(config, model, opt, x, y, idx, autocast):
    from empirics.trainers import method_step

    opt.zero_grad(set_to_none=True)
    with autocast:
        out = method_step(config, model, x, y, idx, 1, None)
    out.loss.backward()
    opt.step()


def _torchattacks_step(atk, model, opt, x, y, autocast):
    model.eval()
    with autocast:
        x_adv = atk(x, y)
    model.train()
    opt.zero_grad(set_to_none=True)
    with autocast:
        loss = F.cross_entropy(model(x_adv).float(), y)
    loss.backward()
    opt.step()


def _time(fn, device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def run(args: argparse.Namespace) -> dict:
    from empirics.config import TrainConfig
    from empirics.models import build_model

    device = torch.device(args.device)
    bf16 = args.precision == "bf16"
    channels_last = args.channels_last
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    autocast = _autocast(device, bf16)

    def make_model():
        m = build_model(args.model, 10, (3, 32, 32)).to(device)
        return m.to(memory_format=torch.channels_last) if channels_last else m

    x = torch.rand(args.batch_size, 3, 32, 32, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    idx = torch.arange(args.batch_size, device=device)
    config = TrainConfig(
        method="pgd", epsilon=EPS, attack_step_size=STEP, attack_steps=args.steps,
        precision=args.precision, channels_last=channels_last,
    )  # fmt: skip

    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    fwd = forward_flops(model, x[:1])
    counted = step_flops(_ours_step, config, model, opt, x, y, idx, autocast) / args.batch_size
    ours_s = _time(
        lambda: _ours_step(config, model, opt, x, y, idx, autocast), device, args.warmup, args.iters
    )
    dtype = torch.bfloat16 if bf16 else torch.float32
    peak = (
        args.peak_tflops * 1e12
        if args.peak_tflops
        else matmul_peak_flops(device, dtype, args.matmul_size, reps=5)
    )
    model_flops_per_image = (2 * args.steps + 3) * fwd
    result: dict = {
        "benchmark": "bench_at_epoch",
        "claim": "PGD-AT step throughput vs torchattacks and vs the device FLOP floor",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model,
        "batch_size": args.batch_size,
        "pgd_steps": args.steps,
        "precision": args.precision,
        "channels_last": channels_last,
        "warmup": args.warmup,
        "iters": args.iters,
        "forward_flops_per_image": fwd,
        "cost_model_flops_per_image": model_flops_per_image,
        "counted_flops_per_image_ours": counted,
        "peak_flops_per_s": peak,
        "peak_source": "--peak-tflops" if args.peak_tflops else "measured matmul",
        "ours": _summary(ours_s, args.batch_size, counted, peak),
    }  # fmt: skip
    if not args.no_torchattacks:
        import torchattacks

        model2 = make_model()
        opt2 = torch.optim.SGD(model2.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        atk = torchattacks.PGD(model2, eps=EPS, alpha=STEP, steps=args.steps, random_start=True)
        counted_ta = (
            step_flops(_torchattacks_step, atk, model2, opt2, x, y, autocast) / args.batch_size
        )
        ta_s = _time(
            lambda: _torchattacks_step(atk, model2, opt2, x, y, autocast),
            device,
            args.warmup,
            args.iters,
        )
        result["torchattacks"] = _summary(ta_s, args.batch_size, counted_ta, peak)
        result["speedup_vs_torchattacks"] = ta_s / ours_s
    return result


def _summary(seconds_per_step: float, batch: int, flops_per_image: float, peak: float) -> dict:
    ips = batch / seconds_per_step
    epoch_s = CIFAR10_TRAIN_SIZE / ips
    floor_s = CIFAR10_TRAIN_SIZE * flops_per_image / peak
    return {
        "seconds_per_step": seconds_per_step,
        "images_per_s": ips,
        "seconds_per_epoch_50k": epoch_s,
        "flop_floor_seconds_per_epoch_50k": floor_s,
        "ratio_to_flop_floor": epoch_s / floor_s,
        "achieved_flops_per_s": flops_per_image * ips,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--model", default="preactresnet18")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 CPU / 512 CUDA")
    parser.add_argument("--steps", type=int, default=STEPS, help="PGD steps (K)")
    parser.add_argument("--iters", type=int, default=None, help="timed steps (2 CPU / 20 CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (1 CPU / 5 CUDA)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None,
        help="NHWC memory format (default on for CUDA)",
    )  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak, TFLOP/s")
    parser.add_argument("--matmul-size", type=int, default=None, help="size of the peak matmul")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-torchattacks", action="store_true", help="skip the baseline")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.batch_size is None:
        args.batch_size = 512 if cuda else 8
    if args.iters is None:
        args.iters = 20 if cuda else 2
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.precision = args.precision or ("bf16" if cuda else "fp32")
    args.channels_last = cuda if args.channels_last is None else args.channels_last
    args.matmul_size = args.matmul_size or (8192 if cuda else 2048)
    if args.batch_size < 1 or args.iters < 1 or args.steps < 0 or args.warmup < 0:
        parser.error("--batch-size and --iters must be >= 1, --steps and --warmup >= 0")
    json.dump(run(args), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
