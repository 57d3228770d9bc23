"""AT-epoch benchmark: PGD-10 adversarial training of PreActResNet-18 / WRN-34-10, CIFAR-shaped.

Claim measured (issue 6): seconds per 50,000-image PGD-K AT epoch, images/s, achieved
TFLOP/s and the ratio to the FLOP floor, for an fp32 baseline and for each speed option of
our trainer (bf16 autocast, channels_last, ``torch.compile``, CUDA graphs), side by side in
the same run with the same training step written the straightforward way with
``torchattacks.PGD``.

What one timed step is (``ours``): exactly the trainer's step: a batch gathered from the
50,000 synthetic images held on the device, random crop + flip on the device
(:func:`empirics.trainers.training_batch`), then :func:`empirics.trainers.training_step`
(PGD-K with input-only gradients, the finiteness check, backward, gradient norm, SGD step).
The torchattacks step gets the same on-device batch and augmentation (the same
``training_batch`` call) and the same optimizer (:func:`empirics.trainers.build_optimizer`), then
``torchattacks.PGD`` (model in eval mode, as [R20]/[P2]) and a cross-entropy SGD step.
Speed does not depend on pixel values, so the images are uniform noise with random labels.

Evidence: every variant is built and warmed up (``--warmup`` untimed steps absorb cuDNN
autotuning and compilation), then ``--rounds`` interleaved rounds time ``--iters / --rounds``
steps of each variant in turn, each bracketed by a device synchronisation, and the median
round is reported (interleaving keeps machine drift from favouring whichever side runs
first; measured back to back, the same code read 9% apart on this CPU).
FLOPs are counted once by ``torch.utils.flop_counter`` over one eager fp32 step (the math of
every variant is the same) and compared with the cost model (2K + 3)·F of
``notes/speed-and-library-anchors.md`` §2.2. Two floors are reported:

- ``flop_floor_*``: counted FLOPs at the device's peak, ``--peak-tflops`` if given, else the
  best rate of a large matmul measured here in fp32 or bf16, whichever is faster (an
  *achievable* peak, so the ratio is conservative about our code; a ratio below 1 means the
  matmul underestimated the peak, as a small CPU matmul can);
- ``nominal_floor_seconds_per_epoch_50k``: the cost model at ``--nominal-tflops`` (790 TF/s,
  the H100 bf16 figure of the notes' §2.3, which gives ≈ 1.6 s for PreActResNet-18 and
  ≈ 19 s for WRN-34-10), so the issue's targets (≤ 5 s, ≤ 70 s) read directly.

A variant that fails (e.g. an unsupported compile mode) is recorded with its error and the
others go on. Prints one JSON object.

    python benchmarks/bench_at_epoch.py                                  # CPU smoke, fp32
    python benchmarks/bench_at_epoch.py --device cuda                    # all variants
    python benchmarks/bench_at_epoch.py --device cuda --model wrn-34-10 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

#: Images per CIFAR-10 training epoch.
CIFAR10_TRAIN_SIZE = 50_000
#: [R20]/[P2] training attack: ε = 8/255, step 2/255, 10 steps.
EPS, STEP, STEPS = 8 / 255, 2 / 255, 10
#: SGD learning rate of every timed step (momentum 0.9, weight decay 5e-4: TrainConfig's).
LR = 0.01
#: H100 bf16 dense TFLOP/s used for the floor in notes/speed-and-library-anchors.md §2.3.
NOMINAL_TFLOPS = 790.0
#: Speed variants: name -> TrainConfig fields. "fp32" is the baseline.
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"precision": "fp32", "channels_last": False, "compile": False},
    "bf16": {"precision": "bf16", "channels_last": False, "compile": False},
    "bf16-cl": {"precision": "bf16", "channels_last": True, "compile": False},
    "bf16-cl-compile": {
        "precision": "bf16", "channels_last": True, "compile": True, "compile_mode": "default",
    },
    "bf16-cl-autotune": {
        "precision": "bf16", "channels_last": True, "compile": True,
        "compile_mode": "max-autotune-no-cudagraphs",
    },
    "bf16-cl-cudagraphs": {
        "precision": "bf16", "channels_last": True, "compile": True,
        "compile_mode": "reduce-overhead",
    },
}  # fmt: skip
#: Model aliases: name -> (build_model name, kwargs).
MODEL_ALIASES: dict[str, tuple[str, dict[str, int]]] = {
    "wrn-34-10": ("wrn", {"depth": 34, "widen": 10}),
    "wrn-28-10": ("wrn", {"depth": 28, "widen": 10}),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def resolve_model(name: str) -> tuple[str, dict[str, int]]:
    """Return ``(build_model name, kwargs)`` for a model name or alias."""
    from robmem.empirics.models import MODEL_NAMES

    if name in MODEL_ALIASES:
        return MODEL_ALIASES[name]
    if name not in MODEL_NAMES:
        raise ValueError(f"--model must be one of {[*MODEL_NAMES, *MODEL_ALIASES]}, got {name!r}")
    return name, {}


class Workload:
    """The synthetic on-device training set and the batches every timed step draws from it."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        gen = torch.Generator().manual_seed(0)
        n = args.train_size
        self.x = torch.rand(n, 3, 32, 32, generator=gen).to(device)
        self.y = torch.randint(0, 10, (n,), generator=gen).to(device)
        self.device = device
        self.batch_size = args.batch_size
        self.cursor = 0
        self.perm = torch.randperm(n, generator=gen).to(device)

    def next_index(self) -> torch.Tensor:
        """Row numbers of the next batch (cycling through one fixed permutation)."""
        n = len(self.perm)
        if self.cursor + self.batch_size > n:
            self.cursor = 0
        idx = self.perm[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return idx


def _config(args: argparse.Namespace, fields: dict[str, Any]):
    from robmem.empirics.config import TrainConfig

    return TrainConfig(
        method="pgd", epsilon=EPS, attack_step_size=STEP, attack_steps=args.steps,
        augment=True, batch_size=args.batch_size, device=args.device, lr=LR, **fields,
    )  # fmt: skip


def _model(args: argparse.Namespace, config, device: torch.device) -> torch.nn.Module:
    from robmem.empirics.models import build_model

    name, kwargs = resolve_model(args.model)
    torch.manual_seed(0)
    model = build_model(name, 10, (3, 32, 32), **kwargs).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def ours_step_fn(args, config, device: torch.device, data: Workload):
    """Return a closure running one step of our trainer (batch, augmentation, PGD-AT step)."""
    from robmem.empirics.trainers import (
        _autocast,
        build_optimizer,
        compiled_step_model,
        training_batch,
        training_step,
    )

    model = _model(args, config, device)
    step_model = compiled_step_model(model, config)
    opt = build_optimizer(config, model)
    autocast = _autocast(config, device)
    gen = torch.Generator(device=device).manual_seed(1)

    def step() -> None:
        idx = data.next_index()
        xb, yb = training_batch(data.x, data.y, idx, config, gen)
        _, gnorm, _ = training_step(
            config, step_model, model, opt, xb, yb, idx, 1, None, autocast, LR
        )
        if gnorm is None:
            raise FloatingPointError("non-finite loss in the benchmark step")

    return step


def restated_torchattacks_pgd(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
) -> torch.Tensor:
    """``torchattacks.PGD.forward`` (v3.5) restated, for machines without torchattacks.

    Mean cross-entropy, start ``x + U(-ε, ε)`` clamped to [0, 1] from the global RNG, ``steps``
    sign steps of size ``alpha``, projection onto the ε-box and [0, 1]. torchattacks' own
    ``__call__`` adds input-range checks and mode switching; those are left out here (so this
    baseline is, if anything, faster than the real one).
    """
    images = images.clone().detach()
    adv = images + torch.empty_like(images).uniform_(-eps, eps)
    adv = torch.clamp(adv, min=0, max=1).detach()
    for _ in range(steps):
        adv.requires_grad = True
        cost = F.cross_entropy(model(adv), labels)
        grad = torch.autograd.grad(cost, adv, retain_graph=False, create_graph=False)[0]
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - images, min=-eps, max=eps)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    return adv


def torchattacks_impl() -> str:
    """Name of the baseline attack used here: torchattacks if importable, else the restatement."""
    try:
        import torchattacks
    except ImportError as exc:  # e.g. the GPU image ships neither torchattacks nor scipy
        return f"restated torchattacks.PGD.forward ({type(exc).__name__}: {exc})"
    return f"torchattacks {torchattacks.__version__}"


def torchattacks_step_fn(args, config, device: torch.device, data: Workload):
    """Return a closure running the straightforward torchattacks PGD-AT step."""
    from robmem.empirics.trainers import _autocast, build_optimizer, training_batch

    model = _model(args, config, device)
    opt = build_optimizer(config, model)
    if torchattacks_impl().startswith("torchattacks"):
        import torchattacks

        attack = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=args.steps, random_start=True)
    else:

        def attack(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return restated_torchattacks_pgd(model, x, y, EPS, STEP, args.steps)

    autocast = _autocast(config, device)
    gen = torch.Generator(device=device).manual_seed(1)

    def step() -> None:
        x, y = training_batch(data.x, data.y, data.next_index(), config, gen)
        model.eval()
        with autocast:
            x_adv = attack(x, y)
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(x_adv).float(), y)
        loss.backward()
        opt.step()

    return step


def _time(fn, device: torch.device, iters: int) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def summary(
    seconds_per_step: float, batch: int, flops_per_image: float, peak: float
) -> dict[str, float]:
    """Per-step time turned into epoch time, throughput, achieved FLOP/s and floor ratio."""
    ips = batch / seconds_per_step
    epoch_s = CIFAR10_TRAIN_SIZE / ips
    floor_s = CIFAR10_TRAIN_SIZE * flops_per_image / peak
    return {
        "seconds_per_step": seconds_per_step,
        "images_per_s": ips,
        "seconds_per_epoch_50k": epoch_s,
        "flop_floor_seconds_per_epoch_50k": floor_s,
        "ratio_to_flop_floor": epoch_s / floor_s,
        "achieved_tflops_per_s": flops_per_image * ips / 1e12,
    }


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _row(seconds: list[float], args, flops: float, peak: float, nominal_floor: float) -> dict:
    row: dict[str, Any] = summary(statistics.median(seconds), args.batch_size, flops, peak)
    row["ratio_to_nominal_floor"] = row["seconds_per_epoch_50k"] / nominal_floor
    row["seconds_per_step_rounds"] = seconds
    return row


def measure_interleaved(jobs, args, device, data, flops, peak, nominal_floor, record) -> None:
    """Time every job into ``record[side][name]``: warm-up each, then interleaved rounds.

    Each job is built and warmed up (``--warmup`` steps: compilation, cuDNN autotuning) in
    turn; then ``--rounds`` rounds time ``--iters / --rounds`` steps of every job in turn, so
    slow drifts of the machine (clocks, temperature, other load) hit all jobs alike. A row
    reports the median per-step time over the rounds. A job that raises is recorded with its
    error and dropped; the others go on. ``record`` is saved after every stage (``--out``).
    """
    steps: dict[tuple[str, str], Any] = {}
    warmup_info: dict[tuple[str, str], dict[str, float]] = {}
    for side, name, make_step in jobs:
        config = _config(args, VARIANTS[name])
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        try:
            step = make_step(args, config, device, data)
            for _ in range(args.warmup):
                step()
            _sync(device)
        except Exception as exc:  # noqa: BLE001 - one failing variant is a result, not a crash
            record[side][name] = {"error": _error_text(exc)}
        else:
            steps[(side, name)] = step
            info = warmup_info[(side, name)] = {"warmup_wall_s": time.perf_counter() - t0}
            if device.type == "cuda":
                peak_mem = torch.cuda.max_memory_allocated(device) - before
                info["peak_memory_gib_own"] = peak_mem / 2**30
            record[side][name] = dict(info)
        _save_partial(args.out, record)
    per_round = max(1, args.iters // args.rounds)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    for _ in range(args.rounds):
        for key, step in list(steps.items()):
            try:
                times[key].append(_time(step, device, per_round))
            except Exception as exc:  # noqa: BLE001
                record[key[0]][key[1]] = {"error": _error_text(exc)}
                del steps[key], times[key]
                continue
            row = _row(times[key], args, flops, peak, nominal_floor)
            record[key[0]][key[1]] = {**row, **warmup_info[key]}
        _save_partial(args.out, record)


def run(args: argparse.Namespace) -> dict:
    """Run every requested variant (ours, then torchattacks) and return the JSON record."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = Workload(args, device)

    # FLOPs: one eager fp32 step of our trainer; the forward of the same model.
    base = _config(args, VARIANTS["fp32"])
    fwd = forward_flops(_model(args, base, device), data.x[:1])
    counted = step_flops(ours_step_fn(args, base, device, data)) / args.batch_size
    cost_model = (2 * args.steps + 3) * fwd
    matmul_peaks: dict[str, float] = {}
    if args.peak_tflops:
        peak, peak_source = args.peak_tflops * 1e12, "--peak-tflops"
    else:
        # The faster of fp32 and bf16: the floor must bound every variant, bf16 ones included.
        for dtype in (torch.float32, torch.bfloat16):
            name = str(dtype).split(".")[-1]
            matmul_peaks[name] = matmul_peak_flops(device, dtype, args.matmul_size, reps=5)
        best_dtype = max(matmul_peaks, key=matmul_peaks.__getitem__)
        peak = matmul_peaks[best_dtype]
        peak_source = f"measured {args.matmul_size}² matmul, {best_dtype} (the faster dtype)"
    nominal_floor = CIFAR10_TRAIN_SIZE * cost_model / (args.nominal_tflops * 1e12)

    ta_variants = {"none": [], "baseline": ["fp32"], "all": args.variants}[args.torchattacks]
    ta_variants = [v for v in ta_variants if not VARIANTS[v].get("compile")]  # eager baseline
    model_name, model_kwargs = resolve_model(args.model)
    record: dict[str, Any] = {
        "benchmark": "bench_at_epoch",
        "claim": "PGD-AT epoch time vs the FLOP floor and vs a torchattacks training step",
        "complete": False,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # What "fp32" means here: cuDNN convolutions may use TF32 on Ampere+ by default.
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "model": args.model,
        "build_model": [model_name, model_kwargs],
        "batch_size": args.batch_size,
        "train_size_on_device": args.train_size,
        "pgd_steps": args.steps,
        "warmup": args.warmup,
        "iters": args.iters,
        "forward_flops_per_image": fwd,
        "cost_model_flops_per_image": cost_model,
        "counted_flops_per_image": counted,
        "peak_flops_per_s": peak,
        "peak_source": peak_source,
        "matmul_peak_flops_per_s": matmul_peaks,
        "nominal_tflops": args.nominal_tflops,
        "nominal_floor_seconds_per_epoch_50k": nominal_floor,
        "variants": {k: VARIANTS[k] for k in args.variants},
        "ours": {},
        "torchattacks_impl": torchattacks_impl() if ta_variants else None,
        "torchattacks": {},
        "best_variant": None,
        "speedups": {},
    }  # fmt: skip
    ours, ta = record["ours"], record["torchattacks"]
    jobs = [("ours", n, ours_step_fn) for n in args.variants]
    jobs += [("torchattacks", n, torchattacks_step_fn) for n in ta_variants]
    measure_interleaved(jobs, args, device, data, counted, peak, nominal_floor, record)

    ok = {k: v for k, v in ours.items() if "error" not in v}
    best = min(ok, key=lambda k: ok[k]["seconds_per_epoch_50k"]) if ok else None
    comparisons: dict[str, float] = record["speedups"]
    if best is not None and "fp32" in ok:
        comparisons["best_vs_ours_fp32"] = (
            ok["fp32"]["seconds_per_epoch_50k"] / ok[best]["seconds_per_epoch_50k"]
        )
    if best is not None and "error" not in ta.get("fp32", {"error": ""}):
        comparisons["best_vs_torchattacks_fp32"] = (
            ta["fp32"]["seconds_per_epoch_50k"] / ok[best]["seconds_per_epoch_50k"]
        )
    for name, row in ta.items():
        if "error" not in row and name in ok:
            comparisons[f"ours_vs_torchattacks_{name}"] = (
                row["seconds_per_epoch_50k"] / ok[name]["seconds_per_epoch_50k"]
            )
    record["best_variant"] = best
    record["complete"] = True
    _save_partial(args.out, record)
    return record


def _save_partial(path: str | None, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (temp file + rename), if a path is given."""
    if path is None:
        return
    target = pathlib.Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--model", default="preactresnet18", help="a model name, or wrn-34-10")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 CPU / 512 CUDA")
    parser.add_argument(
        "--train-size", type=int, default=None,
        help="synthetic images held on the device (default 50,000 CUDA / 256 CPU)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=STEPS, help="PGD steps (K)")
    parser.add_argument(
        "--iters", type=int, default=None, help="timed steps per variant (2 CPU / 20 CUDA)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None,
        help="interleaved timing rounds, iters/rounds steps each (default min(iters, 5))",
    )  # fmt: skip
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (1 CPU / 5 CUDA)")
    parser.add_argument(
        "--variants", default=None,
        help=f"comma list of {list(VARIANTS)} (default: all but bf16-cl-autotune on CUDA, "
        "whose autotuning takes minutes per graph; fp32 on CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--torchattacks", choices=["none", "baseline", "all"], default="baseline",
        help="torchattacks steps: none, the fp32 baseline, or every eager variant",
    )  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak, TFLOP/s")
    parser.add_argument("--nominal-tflops", type=float, default=NOMINAL_TFLOPS,
                        help="TFLOP/s of the nominal floor (H100 bf16 per the notes)")  # fmt: skip
    parser.add_argument("--matmul-size", type=int, default=None, help="size of the peak matmul")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--out", default=None,
        help="also write the JSON here, rewritten after every variant (complete: false until "
        "the end), so a run cut short by a time limit keeps what it measured",
    )  # fmt: skip
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.batch_size is None:
        args.batch_size = 512 if cuda else 8
    if args.train_size is None:
        args.train_size = CIFAR10_TRAIN_SIZE if cuda else 256
    if args.iters is None:
        args.iters = 20 if cuda else 2
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.rounds = args.rounds if args.rounds is not None else min(args.iters, 5)
    args.matmul_size = args.matmul_size or (8192 if cuda else 2048)
    if args.variants is None:
        args.variants = [v for v in VARIANTS if v != "bf16-cl-autotune"] if cuda else ["fp32"]
    else:
        args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in args.variants if v not in VARIANTS]
        if unknown or not args.variants:
            parser.error(f"--variants must name some of {list(VARIANTS)}, got {unknown or '[]'}")
    if args.batch_size < 1 or args.iters < 1 or args.steps < 0 or args.warmup < 0:
        parser.error("--batch-size and --iters must be >= 1, --steps and --warmup >= 0")
    if not 1 <= args.rounds <= args.iters:
        parser.error(f"--rounds must be in [1, --iters={args.iters}], got {args.rounds}")
    if args.train_size < args.batch_size:
        parser.error(f"--train-size must be >= --batch-size={args.batch_size}")
    if args.nominal_tflops <= 0 or (args.peak_tflops is not None and args.peak_tflops <= 0):
        parser.error("--nominal-tflops and --peak-tflops must be > 0")
    try:
        resolve_model(args.model)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
